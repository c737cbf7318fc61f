// Tests for retention and erasure on the file store: redaction keeps verification green, removes the text, is logged, and obeys retention.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, LOG_KEY_FILE } from './log.js';
import { makeEntry, decodeEntry } from './entry.js';
import type { AuditEntry } from './entry.js';
import { verifyLog } from './verify.js';
import { LogSnapshot, scanEntries } from './reader.js';
import { RedactionRefusedError, REDACTIONS_FILE, assertRedactionAllowed } from './redaction.js';
import { ENTRIES_FILE } from './store-file.js';
import { parseSignerKey } from './note.js';

const ORIGIN = 'redact.test/log';
const DAY = 86_400_000;

const stmt = (text: string, time: Date): AuditEntry =>
  makeEntry({
    kind: 'statement',
    sessionId: 's1',
    principal: { name: 'alice', kind: 'human', groups: [] },
    target: 'main',
    text,
    paramsHash: null,
    path: 'simple',
    decision: { effect: 'allow', rules: [], reasons: [] },
    policyVersion: 1,
    time,
  });

async function withLog(f: (log: AuditLog, dir: string, vkey: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-redact-'));
  try {
    const log = await AuditLog.openDir(dir, { origin: ORIGIN });
    const vkey = parseSignerKey((await readFile(join(dir, LOG_KEY_FILE), 'utf8')).trim()).verifierKey;
    try {
      await f(log, dir, vkey);
    } finally {
      await log.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('redaction (file store)', () => {
  it('removes the text from the files, keeps the leaf hash so every checkpoint still verifies, and logs itself', async () => {
    await withLog(async (log, dir, vkey) => {
      const old = new Date(Date.now() - 400 * DAY);
      await log.append(stmt('SELECT 1', old));
      await log.append(stmt("UPDATE people SET ssn = 'SECRET-123-45' WHERE id = 7", old));
      await log.append(stmt('SELECT 3', new Date()));
      const before = await log.checkpoint();
      const rootBefore = log.root(3);
      const r = await log.redact(1, { reason: 'retention ended', actor: 'dpo@example.com' });
      const after = await log.checkpoint();
      assert.equal(r.redactionIndex, 3);
      assert.deepEqual(log.root(3), rootBefore, 'the tree over the redacted entry is unchanged');
      assert.ok(!(await readFile(join(dir, ENTRIES_FILE))).includes('SECRET-123-45'), 'the text is gone');
      const red = decodeEntry(await log.store.read(3));
      assert.ok(red.kind === 'audit.redaction');
      assert.deepEqual(
        [red.index, red.reason, red.actor, red.lawfulErasure, red.leafHash],
        [
          1,
          'retention ended',
          'dpo@example.com',
          false,
          Buffer.from(log.store.tree.leafHash(1)).toString('base64'),
        ],
      );
      assert.equal((await log.store.read(1)).length, 0);
      for (const lastSeen of [before, after]) {
        const v = await verifyLog(dir, {
          origin: ORIGIN,
          verifierKeys: [vkey],
          strictEntries: true,
          lastSeenCheckpoint: lastSeen,
        });
        assert.equal(v.ok, true, JSON.stringify(v.firstError));
        assert.equal(v.redacted, 1);
      }
      // Readers skip the payload but keep the position; a reopened store sees the same tree.
      const flags: boolean[] = [];
      await scanEntries(dir, (_i, _p, _l, _o, redacted) => flags.push(redacted));
      assert.deepEqual(flags, [false, true, false, false]);
      const snap = await LogSnapshot.open(dir);
      assert.deepEqual(snap.tree.root(), log.root());
    });
  });

  it('refuses before retention ends unless it is a lawful erasure with a reason; refuses redacting twice or a redaction record', async () => {
    await withLog(async (log, dir, vkey) => {
      await log.append(stmt('SELECT recent', new Date(Date.now() - 10 * DAY)));
      await assert.rejects(log.redact(0, { reason: 'tidy up', actor: 'ops' }), RedactionRefusedError);
      await assert.rejects(
        log.redact(0, { reason: 'tidy up', actor: 'ops', retentionDays: 30 }),
        /retention period ends/,
      );
      assert.equal(log.size, 1, 'a refused redaction leaves no entry');
      await log.redact(0, { reason: 'tidy up', actor: 'ops', retentionDays: 5 });
      await assert.rejects(
        log.redact(0, { reason: 'again', actor: 'ops', retentionDays: 5 }),
        /already redacted/,
      );
      await log.append(stmt('SELECT also recent', new Date()));
      await assert.rejects(
        log.redact(2, { reason: ' ', actor: 'ops', lawfulErasure: true }),
        /needs a reason/,
      );
      await log.redact(2, { reason: 'GDPR art. 17 request #42', actor: 'dpo', lawfulErasure: true });
      await assert.rejects(
        log.redact(1, { reason: 'x', actor: 'ops', retentionDays: 0 }),
        /redaction entries are kept/,
      );
      await log.checkpoint();
      const v = await verifyLog(dir, { origin: ORIGIN, verifierKeys: [vkey], strictEntries: true });
      assert.equal(v.ok, true, JSON.stringify(v.firstError));
      assert.equal(v.redacted, 2);
    });
    assert.throws(() => assertRedactionAllowed(new Date(), { reason: 'r', actor: '' }), /who asked/);
  });

  it('attack: an unlogged redaction, a forged kept hash, or a zeroed entry without a kept hash are detected', async () => {
    await withLog(async (log, dir, vkey) => {
      const old = new Date(Date.now() - 400 * DAY);
      for (let i = 0; i < 4; i++) await log.append(stmt(`SELECT ${i}`, old));
      await log.redact(1, { reason: 'retention ended', actor: 'ops' });
      const note = await log.checkpoint();
      await log.close();
      const opts = { origin: ORIGIN, verifierKeys: [vkey], lastSeenCheckpoint: note };
      // Copy the kept-hash record for entry 1 onto entry 2 and zero entry 2: nothing logged its redaction.
      const reds = await readFile(join(dir, REDACTIONS_FILE));
      const entries = await readFile(join(dir, ENTRIES_FILE));
      const snap = await LogSnapshot.open(dir);
      const leaf2 = snap.tree.leafHash(2);
      const rec = Buffer.from(reds.subarray(16));
      rec.writeUInt32BE(1, 8); // record index 1 (the second redaction record)
      rec.writeUInt32BE(2, 13 + 4); // entry index 2
      Buffer.from(leaf2).copy(rec, 13 + 8);
      const { hash } = await import('node:crypto');
      hash('sha256', Buffer.concat([Buffer.of(0), rec.subarray(13, 13 + 40)]), 'buffer').copy(
        rec,
        13 + 40,
        0,
        4,
      );
      await writeFile(join(dir, REDACTIONS_FILE), Buffer.concat([reds, rec]));
      const zeroed = Buffer.from(entries);
      const off = (await offsets(dir))[2]!;
      zeroed.fill(0, off + 13, off + 13 + zeroed.readUInt32BE(off));
      await writeFile(join(dir, ENTRIES_FILE), zeroed);
      let v = await verifyLog(dir, opts);
      assert.deepEqual([v.firstError?.kind, v.firstError?.index], ['redaction-unlogged', 2]);
      // Without any kept hash, a zeroed payload is a corrupt record.
      await writeFile(join(dir, REDACTIONS_FILE), reds);
      v = await verifyLog(dir, opts);
      assert.deepEqual([v.firstError?.kind, v.firstError?.index], ['entry-corrupt', 2]);
      // A kept hash that is not the entry's (prefix check fails) is corrupt too.
      await writeFile(join(dir, ENTRIES_FILE), entries);
      const forged = Buffer.from(reds);
      forged[16 + 13 + 8] = (forged[16 + 13 + 8] ?? 0) ^ 1;
      hash('sha256', Buffer.concat([Buffer.of(0), forged.subarray(16 + 13, 16 + 13 + 40)]), 'buffer').copy(
        forged,
        16 + 13 + 40,
        0,
        4,
      );
      await writeFile(join(dir, REDACTIONS_FILE), forged);
      v = await verifyLog(dir, opts);
      assert.deepEqual([v.firstError?.kind, v.firstError?.index], ['entry-corrupt', 1]);
      await writeFile(join(dir, REDACTIONS_FILE), reds);
      v = await verifyLog(dir, opts);
      assert.equal(v.ok, true, JSON.stringify(v.firstError));
    });
  });
});

async function offsets(dir: string): Promise<number[]> {
  const out: number[] = [];
  await scanEntries(dir, (_i, _p, _l, o) => out.push(o));
  return out;
}
