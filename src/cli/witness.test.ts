// Tests for the witness over HTTP and the CLI around it: cosign an extension, refuse a fork and a truncation, state survives a restart; witness-submit, verify --witness-key, redact.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MerkleTree, leafHash } from '../audit/merkle.js';
import { signCheckpoint } from '../audit/checkpoint.js';
import { generateSignerKey, openNote, parseSignerKey, parseVerifierKey } from '../audit/note.js';
import { Witness, cosignatureVerifier, generateWitnessKey } from '../audit/witness.js';
import { FileWitnessState, startWitnessServer, submitToWitness } from '../audit/witness-http.js';
import type { RunningWitness } from '../audit/witness-http.js';
import { AuditLog, LOG_KEY_FILE } from '../audit/log.js';
import { makeEntry } from '../audit/entry.js';
import { ENTRIES_FILE } from '../audit/store-file.js';
import { makeAuditCommands } from './audit.js';
import type { CliIo } from './audit.js';
import { runWitness } from './witness.js';

const ORIGIN = 'witness-http.test/log';
const logKey = generateSignerKey(ORIGIN);
const signer = parseSignerKey(logKey.skey);
const wkey = generateWitnessKey('witness.test/w1');

function tree(prefix: string, n: number): MerkleTree {
  const t = new MerkleTree();
  for (let i = 0; i < n; i++) t.append(leafHash(Buffer.from(`${prefix}-${i}`)));
  return t;
}
const note = (t: MerkleTree, size = t.size): Uint8Array =>
  signCheckpoint({ origin: ORIGIN, size, root: t.root(size) }, [signer]);

async function post(
  url: string,
  body: string | Buffer,
): Promise<{ status: number; text: string; type: string }> {
  const r = await fetch(`${url}/add-checkpoint`, { method: 'POST', body });
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') ?? '' };
}
const b64 = (h: Uint8Array): string => Buffer.from(h).toString('base64');
const req = (old: number, proof: readonly Uint8Array[], n: Uint8Array): Buffer =>
  Buffer.concat([Buffer.from(`old ${old}\n${proof.map((h) => `${b64(h)}\n`).join('')}\n`), Buffer.from(n)]);

async function startW(statePath: string): Promise<RunningWitness> {
  const w = new Witness({
    skey: wkey.skey,
    logs: new Map([[ORIGIN, [parseVerifierKey(logKey.vkey)]]]),
    state: await FileWitnessState.open(statePath),
  });
  return startWitnessServer(w);
}

function capture(): { io: CliIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (t) => (out += t), err: (t) => (err += t), errIsTTY: false },
    out: () => out,
    err: () => err,
  };
}

describe('witness over HTTP (C2SP tlog-witness add-checkpoint)', () => {
  it('cosigns an extension; refuses a fork (422), a truncation (400), a stale old size (409 + size); state survives a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-witness-'));
    const statePath = join(dir, 'state.json');
    let w = await startW(statePath);
    try {
      assert.equal(new URL(w.url).hostname, '127.0.0.1', 'bound to loopback by default');
      const t = tree('a', 20);
      let r = await post(w.url, req(0, [], note(t, 8)));
      assert.equal(r.status, 200, r.text);
      const cv = cosignatureVerifier(wkey.vkey);
      const cosigned = Buffer.concat([Buffer.from(note(t, 8)), Buffer.from(r.text)]);
      assert.deepEqual(
        openNote(cosigned, [parseVerifierKey(logKey.vkey), cv]).signatures.map((s) => s.name),
        [ORIGIN, 'witness.test/w1'],
      );
      r = await post(w.url, req(8, t.consistencyProof(8, 13), note(t, 13)));
      assert.equal(r.status, 200, 'an extension with a valid proof is cosigned');

      // A fork: same size range, different history.
      const fork = tree('b', 20);
      r = await post(w.url, req(13, fork.consistencyProof(13, 20), note(fork, 20)));
      assert.equal(r.status, 422, r.text);
      // A truncation: smaller than what was cosigned.
      r = await post(w.url, req(13, [], note(t, 10)));
      assert.equal(r.status, 400, r.text);
      // A stale old size: 409 names the size to prove from.
      r = await post(w.url, req(8, t.consistencyProof(8, 20), note(t, 20)));
      assert.equal(r.status, 409);
      assert.equal(r.text, '13\n');
      assert.equal(r.type, 'text/x.tlog.size');
      // Unknown log, bad signature, malformed body.
      const other = parseSignerKey(generateSignerKey('other.test/log').skey);
      r = await post(
        w.url,
        req(0, [], signCheckpoint({ origin: 'other.test/log', size: 1, root: t.root(1) }, [other])),
      );
      assert.equal(r.status, 404);
      const forged = Buffer.from(note(t, 20));
      forged[forged.length - 5] = forged[forged.length - 5] === 0x41 ? 0x42 : 0x41;
      r = await post(w.url, req(13, t.consistencyProof(13, 20), forged));
      assert.equal(r.status, 403, r.text);
      r = await post(w.url, 'hello');
      assert.equal(r.status, 400);

      // Restart: the witness remembers size 13 and still refuses the fork.
      await w.close();
      w = await startW(statePath);
      r = await post(w.url, req(0, [], note(t, 20)));
      assert.deepEqual([r.status, r.text], [409, '13\n']);
      r = await post(w.url, req(13, fork.consistencyProof(13, 20), note(fork, 20)));
      assert.equal(r.status, 422);
      // The client retries from the size a 409 names.
      const got = await submitToWitness(w.url, note(t, 20), (a, b) => t.consistencyProof(a, b));
      assert.equal(openNote(got, [cv]).signatures.length, 1);
      const state = JSON.parse(await readFile(statePath, 'utf8')) as {
        logs: Record<string, { size: number }>;
      };
      assert.equal(state.logs[ORIGIN]?.size, 20);
    } finally {
      await w.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('warden witness serve + audit witness-submit + audit verify --witness-key; audit redact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-witness-cli-'));
    const ac = new AbortController();
    try {
      const logDir = join(dir, 'log');
      const log = await AuditLog.openDir(logDir, { origin: ORIGIN });
      const old = new Date(Date.now() - 400 * 86_400_000);
      for (let i = 0; i < 5; i++)
        await log.append(
          makeEntry({ kind: 'session.close', sessionId: 's', reason: `private-reason-${i}`, time: old }),
        );
      await log.checkpoint();
      await log.close();
      const vkeyFile = join(dir, 'log.vkey');
      await writeFile(
        vkeyFile,
        `${parseSignerKey((await readFile(join(logDir, LOG_KEY_FILE), 'utf8')).trim()).verifierKey}\n`,
      );
      const ws = capture();
      assert.equal(
        await runWitness(['keygen', '--name', 'witness.test/cli', '--out', join(dir, 'w.key')], ws.io),
        0,
      );
      const wvkey = join(dir, 'w.vkey');
      await writeFile(wvkey, ws.out());
      const serve = capture();
      const served = runWitness(
        [
          'serve',
          '--key',
          join(dir, 'w.key'),
          '--log-key',
          vkeyFile,
          '--state',
          join(dir, 'w.state'),
          '--listen',
          '127.0.0.1:0',
        ],
        { ...serve.io, signal: ac.signal },
      );
      for (let i = 0; i < 200 && !serve.out().includes('listening'); i++)
        await new Promise((r) => setTimeout(r, 10));
      const url = /listening (\S+)/.exec(serve.out())?.[1];
      assert.ok(url, serve.err());
      const cmds = (c: ReturnType<typeof capture>) => makeAuditCommands(c.io);

      let c = capture();
      assert.equal(
        await cmds(c).verify!.run(['--dir', logDir, '--key', vkeyFile, '--witness-key', wvkey]),
        2,
        'no cosigned checkpoint yet',
      );
      c = capture();
      assert.equal(await cmds(c)['witness-submit']!.run(['--dir', logDir, '--witness', url]), 0, c.err());
      c = capture();
      assert.equal(
        await cmds(c).verify!.run(['--dir', logDir, '--key', vkeyFile, '--witness-key', wvkey]),
        0,
        c.out(),
      );
      assert.match(c.out(), /cosigned by witness\.test\/cli at size 5/);

      // Redaction through the CLI: too early without --lawful-erasure for a fresh entry, fine for an old one.
      c = capture();
      assert.equal(
        await cmds(c).redact!.run([
          '--dir',
          logDir,
          '--index',
          '2',
          '--reason',
          'retention ended',
          '--actor',
          'ops',
        ]),
        0,
        c.err(),
      );
      assert.ok(!(await readFile(join(logDir, ENTRIES_FILE))).includes('private-reason-2'));
      c = capture();
      assert.equal(
        await cmds(c).redact!.run(['--dir', logDir, '--index', '5', '--reason', 'x']),
        1,
        'a redaction record is kept',
      );
      // The cosigned checkpoint (size 5) still anchors the log after the redaction and the new entries.
      c = capture();
      assert.equal(
        await cmds(c).verify!.run(['--dir', logDir, '--key', vkeyFile, '--witness-key', wvkey]),
        0,
        c.out(),
      );
      assert.match(c.out(), /1 redacted/);
      c = capture();
      await cmds(c).export!.run(['--dir', logDir]);
      assert.match(c.out(), /"index":2,"leafHash":"[^"]+","redacted":true/);

      // A witness key that did not cosign is reported.
      await writeFile(join(dir, 'other.vkey'), `${generateWitnessKey('witness.test/other').vkey}\n`);
      c = capture();
      assert.equal(
        await cmds(c).verify!.run([
          '--dir',
          logDir,
          '--key',
          vkeyFile,
          '--witness-key',
          join(dir, 'other.vkey'),
        ]),
        1,
      );
      assert.match(c.out(), /not cosigned by witness\.test\/other/);
      ac.abort();
      assert.equal(await served, 0);
    } finally {
      ac.abort();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
