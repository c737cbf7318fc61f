// Tests for gateway-side witness submission over real HTTP: cosignatures verified against the configured key and kept, impostors refused and retried, consistency from the last cosigned size, state across restarts, metrics.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from './log.js';
import { makeEntry } from './entry.js';
import type { SessionCloseEntry } from './entry.js';
import { openNote } from './note.js';
import { Witness, cosignatureVerifier, generateWitnessKey } from './witness.js';
import { startWitnessServer } from './witness-http.js';
import type { RunningWitness } from './witness-http.js';
import { WitnessPublisher, cosignedFileName, parseWitnessConfigs } from './witness-publisher.js';
import type { WitnessEvent } from './witness-publisher.js';
import { Metrics } from '../admin-api/metrics.js';

const ORIGIN = 'publisher.test/log';

async function until<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const closeEntry = (i: number): SessionCloseEntry =>
  makeEntry<SessionCloseEntry>({ kind: 'session.close', sessionId: `s${i}`, reason: 'done' });

describe('WitnessPublisher', () => {
  it('submits each checkpoint, keeps verified cosignatures, refuses an impostor, survives a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-publisher-'));
    const servers: RunningWitness[] = [];
    let log: AuditLog | undefined;
    let pub: WitnessPublisher | undefined;
    try {
      log = await AuditLog.openDir(join(dir, 'log'), { origin: ORIGIN });
      const logs = new Map([[ORIGIN, [log.verifier]]]);
      const good = generateWitnessKey('publisher.test/good');
      // The impostor signs under the configured witness's name with another key.
      const configured = generateWitnessKey('publisher.test/other');
      const impostorKey = generateWitnessKey('publisher.test/other');
      const goodW = await startWitnessServer(new Witness({ skey: good.skey, logs }));
      const impostor = await startWitnessServer(new Witness({ skey: impostorKey.skey, logs }));
      servers.push(goodW, impostor);
      const events: WitnessEvent[] = [];
      const cosDir = join(dir, 'log', 'cosignatures');
      const start = (l: AuditLog): Promise<WitnessPublisher> =>
        WitnessPublisher.start({
          log: l,
          witnesses: [
            { url: goodW.url, key: good.vkey },
            { url: impostor.url, key: configured.vkey },
          ],
          dir: cosDir,
          onEvent: (e) => events.push(e),
          initialRetryMs: 20,
          maxRetryMs: 100,
        });
      pub = await start(log);
      for (let i = 0; i < 7; i++) await log.append(closeEntry(i));
      await log.checkpoint();
      const s1 = await until('the good witness cosigned size 7', () => {
        const s = pub!.status();
        return s[0]!.cosignedSize === 7 && s[1]!.consecutiveFailures >= 2 ? s : undefined;
      });
      assert.match(s1[1]!.lastError ?? '', /no cosignature by the configured witness key/);
      assert.equal(s1[1]!.cosignedSize, 0);
      assert.equal(s1[1]!.pendingSize, 7);
      assert.ok(events.some((e) => e.level === 'warn' && e.witness === 'publisher.test/other'));

      // Only the good witness's cosigned checkpoint is kept, and it verifies under both keys.
      const gv = cosignatureVerifier(good.vkey);
      assert.deepEqual(await readdir(cosDir), [cosignedFileName(gv)]);
      const kept = await readFile(join(cosDir, cosignedFileName(gv)));
      assert.equal(openNote(kept, [log.verifier, gv]).signatures.length, 2);

      // Growth: the next submission carries a consistency proof from size 7 (the witness checks it).
      for (let i = 7; i < 19; i++) await log.append(closeEntry(i));
      await log.checkpoint();
      await until('size 19 cosigned', () => (pub!.status()[0]!.cosignedSize === 19 ? true : undefined));

      // Metrics show both witnesses.
      const m = new Metrics();
      pub.registerMetrics(m);
      const text = m.render();
      assert.match(text, /warden_audit_witness_cosigned_size\{witness="publisher.test\/good"\} 19/);
      assert.match(text, /warden_audit_witness_up\{witness="publisher.test\/other"\} 0/);
      assert.match(text, /warden_audit_witness_pending_size\{witness="publisher.test\/other"\} 19/);

      // Restart: the kept cosignature says where the good witness is; nothing is resubmitted for it.
      await pub.close();
      const before = events.length;
      pub = await start(log);
      assert.equal(pub.status()[0]!.cosignedSize, 19);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(
        !events.slice(before).some((e) => e.witness === 'publisher.test/good'),
        'no new submission to the good witness',
      );
    } finally {
      await pub?.close();
      for (const s of servers) await s.close();
      await log?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a witness that restarts with an empty state is told the right old size (409) and cosigns again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-publisher-'));
    let log: AuditLog | undefined;
    let pub: WitnessPublisher | undefined;
    let w: RunningWitness | undefined;
    try {
      log = await AuditLog.openDir(join(dir, 'log'), { origin: ORIGIN });
      const key = generateWitnessKey('publisher.test/w');
      const logs = new Map([[ORIGIN, [log.verifier]]]);
      w = await startWitnessServer(new Witness({ skey: key.skey, logs }));
      pub = await WitnessPublisher.start({
        log,
        witnesses: [{ url: w.url, key: key.vkey }],
        dir: join(dir, 'cos'),
        initialRetryMs: 20,
      });
      for (let i = 0; i < 5; i++) await log.append(closeEntry(i));
      await log.checkpoint();
      await until('cosigned 5', () => (pub!.status()[0]!.cosignedSize === 5 ? true : undefined));
      // The witness loses its state (a new process, memory only): it now expects old size 0.
      const port = new URL(w.url).port;
      await w.close();
      w = await startWitnessServer(new Witness({ skey: key.skey, logs }), { port: Number(port) });
      await log.append(closeEntry(5));
      await log.checkpoint();
      await until('cosigned 6', () => (pub!.status()[0]!.cosignedSize === 6 ? true : undefined));
    } finally {
      await pub?.close();
      await w?.close();
      await log?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('configuration: bad URLs, keys that are not cosignature/v1 verifier keys, and duplicates are refused', () => {
    const k = generateWitnessKey('cfg.test/w').vkey;
    assert.equal(parseWitnessConfigs([{ url: 'https://w.example/', key: k }]).length, 1);
    for (const bad of [
      [{ url: 'ftp://w.example/', key: k }],
      [{ url: 'not a url', key: k }],
      [{ url: 'http://w.example/', key: 'cfg.test/w+00000000+AAAA' }],
      [
        { url: 'http://a.example/', key: k },
        { url: 'http://b.example/', key: k },
      ],
    ]) {
      assert.throws(() => parseWitnessConfigs(bad), /audit\.witnesses\[\d\]/);
    }
  });
});
