// Tests for the `warden audit` commands, run as functions over a real log folder with captured output.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../audit/log.js';
import { encodeEntry, makeEntry } from '../audit/entry.js';
import type { AuditEntry, EntryInput } from '../audit/entry.js';
import { generateSignerKey } from '../audit/note.js';
import { leafHash, verifyConsistency } from '../audit/merkle.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import { parseVerifierKey } from '../audit/note.js';
import { ENTRIES_FILE } from '../audit/store-file.js';
import { MAGIC_LENGTH, RECORD_HEADER } from '../audit/records.js';
import { makeAuditCommands, matchesFilter, parseTime } from './audit.js';
import type { CliIo } from './audit.js';

const ORIGIN = 'cli.test/audit';

interface Captured {
  io: CliIo;
  out: () => string;
  err: () => string;
}
function capture(extra: Partial<CliIo> = {}): Captured {
  let out = '';
  let err = '';
  return {
    io: { out: (t) => (out += t), err: (t) => (err += t), errIsTTY: false, ...extra },
    out: () => out,
    err: () => err,
  };
}
async function run(
  cmd: string,
  argv: string[],
  extra: Partial<CliIo> = {},
): Promise<Captured & { code: number }> {
  const c = capture(extra);
  const code = await makeAuditCommands(c.io)[cmd]!.run(argv);
  return { ...c, code };
}

const principal = (name: string) => ({ name, kind: 'human' as const, groups: [] });
function statement(user: string, text: string, effect: 'allow' | 'deny', time: Date): EntryInput {
  return {
    kind: 'statement',
    sessionId: `s-${user}`,
    principal: principal(user),
    target: 'main',
    text,
    paramsHash: null,
    path: 'simple',
    decision: { effect, rules: [], reasons: [] },
    policyVersion: 1,
    time,
  };
}

describe('warden audit commands', () => {
  let root: string;
  let dir: string;
  let earlyCopy: string;
  let vkeyFile: string;
  const written: AuditEntry[] = [];

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'warden-cli-audit-'));
    dir = join(root, 'audit');
    earlyCopy = join(root, 'early');
    const { skey, vkey } = generateSignerKey(ORIGIN);
    writeFileSync(join(root, 'log.key'), `${skey}\n`, { mode: 0o600 });
    vkeyFile = join(root, 'log.vkey');
    writeFileSync(vkeyFile, `${vkey}\n`);
    let log = await AuditLog.openDir(dir, { origin: ORIGIN, keyFile: join(root, 'log.key') });
    const add = async (input: EntryInput): Promise<void> => {
      const e = makeEntry(input);
      written.push(e);
      await log.append(e);
    };
    const old = new Date('2024-01-01T00:00:00.000Z');
    await add(statement('alice', 'SELECT * FROM public.orders', 'allow', old));
    await add(statement('bob', 'DELETE FROM customers', 'deny', new Date()));
    await add({
      kind: 'auth.failure',
      user: 'mallory',
      target: 'main',
      sourceAddress: '10.0.0.1',
      reason: 'unknown user',
    });
    await add(statement('alice', 'SELECT 1', 'allow', new Date()));
    await log.checkpoint();
    await log.close();
    cpSync(dir, earlyCopy, { recursive: true });
    // Grow the log further so that the copy is a truncated version of it.
    log = await AuditLog.openDir(dir, { origin: ORIGIN, keyFile: join(root, 'log.key') });
    for (let i = 0; i < 6; i++)
      await add(statement('carol', `INSERT INTO orders VALUES (${i})`, 'allow', new Date()));
    await log.checkpoint();
    await add(statement('carol', 'SELECT 2', 'allow', new Date())); // after the last checkpoint
    await log.close();
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  it('verify: passes with the published key or the key beside the log, and fails with another key', async () => {
    const a = await run('verify', ['--dir', dir, '--key', vkeyFile]);
    assert.equal(a.code, 0, a.out() + a.err());
    assert.match(a.out(), /^OK 11 entries, root \S+, 2 checkpoint\(s\) verified for cli\.test\/audit/);
    const other = join(root, 'other.vkey');
    writeFileSync(other, generateSignerKey(ORIGIN).vkey);
    const b = await run('verify', ['--dir', dir, '--key', other]);
    assert.equal(b.code, 1);
    assert.match(b.out(), /^FAIL checkpoint-invalid/);
    const c = await run('verify', ['--dir', dir, '--key', vkeyFile, '--origin', 'some.other/log']);
    assert.equal(c.code, 1);
    const missing = await run('verify', ['--dir', join(root, 'nope')]);
    assert.equal(missing.code, 2);
  });

  it('verify: names the exact entry a flipped byte damaged, and detects truncation against a last-seen checkpoint', async () => {
    const bad = join(root, 'bad');
    cpSync(dir, bad, { recursive: true });
    const file = join(bad, ENTRIES_FILE);
    const bytes = readFileSync(file);
    // Offset of entry 2's payload: magic, then records 0 and 1.
    let off = MAGIC_LENGTH;
    for (let i = 0; i < 2; i++) off += bytes.readUInt32BE(off) + RECORD_HEADER + 4;
    const at = off + RECORD_HEADER + 5;
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    writeFileSync(file, bytes);
    const r = await run('verify', ['--dir', bad, '--key', vkeyFile]);
    assert.equal(r.code, 1);
    assert.match(r.out(), /^FAIL entry-corrupt at entry 2:/);

    const seen = join(root, 'seen.checkpoint');
    const snapNote = (await run('export', ['--dir', dir])).out().trim().split('\n').pop()!;
    writeFileSync(seen, (JSON.parse(snapNote) as { checkpoint: string }).checkpoint);
    const ok = await run('verify', ['--dir', earlyCopy, '--key', vkeyFile]);
    assert.equal(ok.code, 0, 'the early copy is consistent on its own');
    const t = await run('verify', ['--dir', earlyCopy, '--key', vkeyFile, '--last-seen', seen]);
    assert.equal(t.code, 1);
    assert.match(t.out(), /^FAIL truncated at entry 4 \(checkpoint last seen\)/);
  });

  it('prove and check-proof: a c2sp tlog-proof that verifies offline, and fails for another entry', async () => {
    const proofFile = join(root, 'e3.tlog-proof');
    const entryFile = join(root, 'e3.entry');
    const p = await run('prove', [
      '--dir',
      dir,
      '--key',
      vkeyFile,
      '--index',
      '3',
      '--out',
      proofFile,
      '--entry-out',
      entryFile,
    ]);
    assert.equal(p.code, 0, p.err());
    const text = readFileSync(proofFile, 'utf8');
    assert.match(text, /^c2sp\.org\/tlog-proof@v1\nindex 3\n([A-Za-z0-9+/]{43}=\n)+\ncli\.test\/audit\n10\n/);
    assert.deepEqual(readFileSync(entryFile), Buffer.from(encodeEntry(written[3]!)));
    const ok = await run('check-proof', [proofFile, '--entry', entryFile, '--key', vkeyFile]);
    assert.equal(ok.code, 0, ok.out());
    assert.match(ok.out(), /^OK entry 3 is in cli\.test\/audit at size 10/);
    const wrong = join(root, 'wrong.entry');
    writeFileSync(wrong, encodeEntry(written[4]!));
    const bad = await run('check-proof', [proofFile, '--entry', wrong, '--key', vkeyFile]);
    assert.equal(bad.code, 1);
    assert.match(bad.out(), /^FAIL/);
    // Entry 10 was appended after the last checkpoint: no proof yet.
    const late = await run('prove', ['--dir', dir, '--key', vkeyFile, '--index', '10']);
    assert.equal(late.code, 1);
    assert.match(late.err(), /no signed checkpoint covers entry 10/);
  });

  it('consistency: a proof that the early tree is a prefix of the checkpointed one', async () => {
    const r = await run('consistency', ['--dir', dir, '--from', '4']);
    assert.equal(r.code, 0, r.err());
    const lines = r.out().trim().split('\n');
    const field = (k: string): string => lines.find((l) => l.startsWith(`${k} `))!.slice(k.length + 1);
    assert.equal(field('size1'), '4');
    assert.equal(field('size2'), '10');
    const hashes = lines.filter((l) => !l.includes(' ')).map((l) => Buffer.from(l, 'base64'));
    const v = parseVerifierKey(readFileSync(vkeyFile, 'utf8').trim());
    const early = (await run('export', ['--dir', earlyCopy])).out().trim().split('\n').pop()!;
    const cp1 = openCheckpoint(Buffer.from((JSON.parse(early) as { checkpoint: string }).checkpoint), {
      origin: ORIGIN,
      verifiers: [v],
    }).checkpoint;
    assert.equal(Buffer.from(cp1.root).toString('base64'), field('root1'));
    verifyConsistency(4, 10, hashes, cp1.root, Buffer.from(field('root2'), 'base64'));
    const bad = await run('consistency', ['--dir', dir, '--from', '0']);
    assert.equal(bad.code, 2);
  });

  it('tail: the last N entries, then new ones with --follow', async () => {
    const r = await run('tail', ['--dir', dir, '-n', '2']);
    assert.deepEqual(
      r
        .out()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { index: number }).index),
      [9, 10],
    );
    const followDir = join(root, 'follow');
    const log = await AuditLog.openDir(followDir, { origin: ORIGIN, keyFile: join(root, 'log.key') });
    await log.append(makeEntry(statement('dave', 'SELECT 0', 'allow', new Date())));
    const ac = new AbortController();
    const c = capture({ signal: ac.signal, followIntervalMs: 10 });
    const following = makeAuditCommands(c.io).tail!.run(['--dir', followDir, '-n', '1', '--follow']);
    await new Promise((res) => setTimeout(res, 30));
    for (let i = 1; i <= 3; i++)
      await log.append(makeEntry(statement('dave', `SELECT ${i}`, 'allow', new Date())));
    await new Promise((res) => setTimeout(res, 80));
    ac.abort();
    assert.equal(await following, 0);
    await log.close();
    const texts = c
      .out()
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { entry: { text: string } }).entry.text);
    assert.deepEqual(texts, ['SELECT 0', 'SELECT 1', 'SELECT 2', 'SELECT 3']);
  });

  it('search: by user, decision, table (parsed SQL), target and time', async () => {
    const idx = async (...args: string[]): Promise<number[]> =>
      (await run('search', ['--dir', dir, ...args]))
        .out()
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { index: number }).index);
    assert.deepEqual(await idx('--user', 'alice'), [0, 3]);
    assert.deepEqual(await idx('--user', 'mallory'), [2]);
    assert.deepEqual(await idx('--decision', 'deny'), [1]);
    assert.deepEqual(await idx('--table', 'orders'), [0, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(await idx('--table', 'public.customers'), [1]);
    assert.deepEqual(await idx('--user', 'alice', '--since', '2025-01-01'), [3]);
    assert.deepEqual(await idx('--until', '2024-06-01T00:00:00Z'), [0]);
    assert.deepEqual(await idx('--target', 'elsewhere'), []);
    assert.equal((await run('search', ['--dir', dir, '--decision', 'maybe'])).code, 2);
  });

  it('export: every entry with its index and leaf hash, then the latest checkpoint', async () => {
    const r = await run('export', ['--dir', dir]);
    const lines = r
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 12);
    lines.slice(0, 11).forEach((l, i) => {
      assert.equal(l.index, i);
      assert.deepEqual(l.entry, written[i]);
      assert.equal(l.leafHash, Buffer.from(leafHash(encodeEntry(written[i]!))).toString('base64'));
    });
    assert.equal(lines[11]?.size, 10);
    assert.match(String(lines[11]?.checkpoint), /^cli\.test\/audit\n10\n/);
  });

  it('parseTime and matchesFilter', () => {
    const now = new Date('2024-05-05T12:00:00.000Z');
    assert.equal(parseTime('2h', now).toISOString(), '2024-05-05T10:00:00.000Z');
    assert.equal(parseTime('2024-05-01T00:00:00Z', now).toISOString(), '2024-05-01T00:00:00.000Z');
    assert.throws(() => parseTime('yesterday-ish', now));
    const e = makeEntry(statement('erin', 'UPDATE "Orders" SET x = 1', 'allow', now));
    assert.equal(matchesFilter(e, { table: 'orders' }), true, 'text fallback matches quoted names');
    assert.equal(matchesFilter(e, { table: 'orders_archive' }), false);
    assert.equal(
      matchesFilter(makeEntry({ kind: 'session.close', sessionId: 's', reason: 'r' }), { decision: 'allow' }),
      false,
    );
  });
});
