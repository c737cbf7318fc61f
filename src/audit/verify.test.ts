// Attack tests for offline log verification (each tampering must be detected), and a kill -9 crash test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, LOG_KEY_FILE, loadOrCreateLogKey } from './log.js';
import { makeEntry } from './entry.js';
import { signCheckpoint } from './checkpoint.js';
import { ProofError, leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from './merkle.js';
import { generateSignerKey, parseSignerKey } from './note.js';
import { CHECKPOINTS_MAGIC, ENTRIES_MAGIC, MAGIC_LENGTH, RECORD_OVERHEAD, writeRecord } from './records.js';
import { CHECKPOINTS_FILE, ENTRIES_FILE, FileAuditStore } from './store-file.js';
import { verifyLog } from './verify.js';
import type { VerifyOptions } from './verify.js';

const ORIGIN = 'warden.test/audit';
const N = 40;

interface Fixture {
  dir: string;
  opts: VerifyOptions;
  /** Signed checkpoint notes in order (sizes 10, 25, N). */
  notes: Uint8Array[];
  payloads: Buffer[];
}

async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-verify-'));
  const log = await AuditLog.openDir(dir, { origin: ORIGIN });
  const notes: Uint8Array[] = [];
  for (let i = 0; i < N; i++) {
    await log.append(makeEntry({ kind: 'session.close', id: `e${i}`, sessionId: `s${i}`, reason: 'bye' }));
    if (i + 1 === 10 || i + 1 === 25 || i + 1 === N) notes.push(await log.checkpoint());
  }
  const payloads: Buffer[] = [];
  for (let i = 0; i < N; i++) payloads.push(Buffer.from(await log.store.read(i)));
  await log.close();
  return { dir, opts: { origin: ORIGIN, verifierKeys: [log.verifier] }, notes, payloads };
}

/** Rewrites a record file with valid framing, as an attacker who knows the format would. */
async function rewrite(path: string, magic: Buffer, payloads: readonly Uint8Array[]): Promise<void> {
  const buf = Buffer.alloc(MAGIC_LENGTH + payloads.reduce((n, p) => n + p.length + RECORD_OVERHEAD, 0));
  magic.copy(buf);
  let pos = MAGIC_LENGTH;
  payloads.forEach((p, i) => {
    writeRecord(buf, pos, i, p);
    pos += p.length + RECORD_OVERHEAD;
  });
  await writeFile(path, buf);
}

function offsetOf(payloads: readonly Buffer[], i: number): number {
  return payloads.slice(0, i).reduce((n, p) => n + p.length + RECORD_OVERHEAD, MAGIC_LENGTH);
}

async function withFixture(f: (fx: Fixture) => Promise<void>): Promise<void> {
  const fx = await fixture();
  try {
    await f(fx);
  } finally {
    await rm(fx.dir, { recursive: true, force: true });
  }
}

void test('an untouched log verifies, with every checkpoint checked', async () => {
  await withFixture(async (fx) => {
    const progress: number[] = [];
    const r = await verifyLog(fx.dir, {
      ...fx.opts,
      lastSeenCheckpoint: fx.notes[1]!,
      strictEntries: true,
      onProgress: (n) => progress.push(n),
    });
    assert.equal(r.firstError, undefined);
    assert.ok(r.ok);
    assert.equal(r.size, N);
    assert.equal(r.checkpointsChecked, 4);
    assert.deepEqual(Buffer.from(r.root), Buffer.from(rootFromLeafHashes(fx.payloads.map(leafHash))));
    assert.deepEqual(progress, [N]);
  });
});

void test('attack: a flipped byte in an entry in the middle of the file is reported at its exact index', async () => {
  await withFixture(async (fx) => {
    const file = join(fx.dir, ENTRIES_FILE);
    const bytes = await readFile(file);
    bytes[offsetOf(fx.payloads, 17) + 20]! ^= 0x04;
    await writeFile(file, bytes);
    const r = await verifyLog(fx.dir, fx.opts);
    assert.equal(r.ok, false);
    assert.equal(r.firstError?.kind, 'entry-corrupt');
    assert.equal(r.firstError?.index, 17);
  });
});

void test('attack: an entry edited with its record checksum recomputed breaks the signed root', async () => {
  await withFixture(async (fx) => {
    const edited = fx.payloads.map((p, i) =>
      i === 17 ? Buffer.from(p.toString().replace('bye', 'bya')) : p,
    );
    await rewrite(join(fx.dir, ENTRIES_FILE), ENTRIES_MAGIC, edited);
    const r = await verifyLog(fx.dir, fx.opts);
    assert.equal(r.firstError?.kind, 'root-mismatch');
    assert.equal(r.firstError?.index, 10, 'the suspect range starts after the last good checkpoint');
    assert.equal(r.firstError?.checkpoint, 1);
    // An edit that breaks the canonical form is pinpointed exactly by strict decoding.
    const broken = fx.payloads.map((p, i) =>
      i === 17 ? Buffer.from(p.toString().replace('"v":1', '"v":1.0')) : p,
    );
    await rewrite(join(fx.dir, ENTRIES_FILE), ENTRIES_MAGIC, broken);
    const s = await verifyLog(fx.dir, { ...fx.opts, strictEntries: true });
    assert.equal(s.firstError?.kind, 'entry-invalid');
    assert.equal(s.firstError?.index, 17);
  });
});

void test('attack: a deleted entry is reported at its index; renumbered, it breaks the root', async () => {
  await withFixture(async (fx) => {
    const file = join(fx.dir, ENTRIES_FILE);
    const bytes = await readFile(file);
    await writeFile(
      file,
      Buffer.concat([
        bytes.subarray(0, offsetOf(fx.payloads, 12)),
        bytes.subarray(offsetOf(fx.payloads, 13)),
      ]),
    );
    const r = await verifyLog(fx.dir, fx.opts);
    assert.equal(r.firstError?.kind, 'entry-corrupt');
    assert.equal(r.firstError?.index, 12);
    await rewrite(
      file,
      ENTRIES_MAGIC,
      fx.payloads.filter((_, i) => i !== 12),
    );
    const s = await verifyLog(fx.dir, fx.opts);
    assert.equal(s.firstError?.kind, 'root-mismatch');
    assert.equal(s.firstError?.index, 10);
  });
});

void test('attack: two swapped entries are reported at the first; renumbered, they break the root', async () => {
  await withFixture(async (fx) => {
    const file = join(fx.dir, ENTRIES_FILE);
    const bytes = await readFile(file);
    const [a, b, c] = [offsetOf(fx.payloads, 30), offsetOf(fx.payloads, 31), offsetOf(fx.payloads, 32)];
    await writeFile(
      file,
      Buffer.concat([bytes.subarray(0, a), bytes.subarray(b, c), bytes.subarray(a, b), bytes.subarray(c)]),
    );
    const r = await verifyLog(fx.dir, fx.opts);
    assert.equal(r.firstError?.kind, 'entry-corrupt');
    assert.equal(r.firstError?.index, 30);
    const swapped = [...fx.payloads];
    [swapped[30], swapped[31]] = [swapped[31]!, swapped[30]!];
    await rewrite(file, ENTRIES_MAGIC, swapped);
    const s = await verifyLog(fx.dir, fx.opts);
    assert.equal(s.firstError?.kind, 'root-mismatch');
    assert.equal(s.firstError?.index, 25);
  });
});

void test('attack: a truncated log re-signed as a smaller tree with the same key is caught by the last seen checkpoint', async () => {
  await withFixture(async (fx) => {
    const signer = await loadOrCreateLogKey(join(fx.dir, LOG_KEY_FILE), ORIGIN);
    const kept = fx.payloads.slice(0, 20);
    await rewrite(join(fx.dir, ENTRIES_FILE), ENTRIES_MAGIC, kept);
    const resigned = signCheckpoint(
      { origin: ORIGIN, size: 20, root: rootFromLeafHashes(kept.map(leafHash)) },
      [signer],
    );
    await rewrite(join(fx.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, [fx.notes[0]!, resigned]);
    // Without outside knowledge the forged history is self-consistent...
    assert.ok((await verifyLog(fx.dir, fx.opts)).ok);
    // ...but not against the checkpoint the verifier saw before.
    const r = await verifyLog(fx.dir, { ...fx.opts, lastSeenCheckpoint: fx.notes[2]! });
    assert.equal(r.firstError?.kind, 'truncated');
    assert.equal(r.firstError?.checkpoint, -1);
    // Truncation alone (checkpoints untouched) is caught from the stored checkpoints.
    await rewrite(join(fx.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, fx.notes);
    const t = await verifyLog(fx.dir, fx.opts);
    assert.equal(t.firstError?.kind, 'truncated');
    // ...and the store refuses to open it.
    await assert.rejects(FileAuditStore.open(fx.dir));
  });
});

void test('attack: two different roots signed for one size', async () => {
  await withFixture(async (fx) => {
    const signer = await loadOrCreateLogKey(join(fx.dir, LOG_KEY_FILE), ORIGIN);
    const fork = signCheckpoint({ origin: ORIGIN, size: 25, root: leafHash(Buffer.from('fork')) }, [signer]);
    await rewrite(join(fx.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, [...fx.notes, fork]);
    const r = await verifyLog(fx.dir, fx.opts);
    assert.equal(r.firstError?.kind, 'checkpoint-fork');
    assert.equal(r.firstError?.checkpoint, 3);
    // The same fork shown to the verifier as its last seen checkpoint.
    await rewrite(join(fx.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, fx.notes);
    const s = await verifyLog(fx.dir, { ...fx.opts, lastSeenCheckpoint: fork });
    assert.equal(s.firstError?.kind, 'checkpoint-fork');
  });
});

void test('attack: a checkpoint from another origin, or signed with an unknown key', async () => {
  await withFixture(async (fx) => {
    const signer = await loadOrCreateLogKey(join(fx.dir, LOG_KEY_FILE), ORIGIN);
    const root = rootFromLeafHashes(fx.payloads.map(leafHash));
    const otherOriginSigner = parseSignerKey(generateSignerKey('evil.example/log').skey);
    const otherOrigin = signCheckpoint({ origin: 'evil.example/log', size: N, root }, [
      otherOriginSigner,
      signer,
    ]);
    const unknownKey = signCheckpoint({ origin: ORIGIN, size: N, root }, [
      parseSignerKey(generateSignerKey(ORIGIN).skey),
    ]);
    for (const bad of [otherOrigin, unknownKey]) {
      await rewrite(join(fx.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, [...fx.notes, bad]);
      const r = await verifyLog(fx.dir, fx.opts);
      assert.equal(r.firstError?.kind, 'checkpoint-invalid');
      assert.equal(r.firstError?.checkpoint, 3);
      await rewrite(join(fx.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, fx.notes);
      const s = await verifyLog(fx.dir, { ...fx.opts, lastSeenCheckpoint: bad });
      assert.equal(s.firstError?.kind, 'checkpoint-invalid');
      assert.equal(s.firstError?.checkpoint, -1);
    }
  });
});

void test('attack: tampered proof fields are refused', async () => {
  await withFixture(async (fx) => {
    const log = await AuditLog.openDir(fx.dir, { origin: ORIGIN });
    try {
      const p = log.proveInclusion(13);
      verifyInclusion(p.index, p.size, p.leafHash, p.proof, p.root);
      const flip = (h: Uint8Array): Uint8Array => {
        const c = Uint8Array.from(h);
        c[0]! ^= 1;
        return c;
      };
      const cases: Array<() => void> = [
        () => verifyInclusion(p.index + 1, p.size, p.leafHash, p.proof, p.root),
        () => verifyInclusion(p.index, p.size * 2, p.leafHash, p.proof, p.root),
        () => verifyInclusion(p.index, p.size, flip(p.leafHash), p.proof, p.root),
        () => verifyInclusion(p.index, p.size, p.leafHash, [flip(p.proof[0]!), ...p.proof.slice(1)], p.root),
        () => verifyInclusion(p.index, p.size, p.leafHash, p.proof.slice(0, -1), p.root),
        () => verifyInclusion(p.index, p.size, p.leafHash, p.proof, flip(p.root)),
      ];
      const c = log.proveConsistency(10, 25);
      verifyConsistency(c.size1, c.size2, c.proof, c.root1, c.root2);
      cases.push(
        () => verifyConsistency(c.size1 + 1, c.size2, c.proof, c.root1, c.root2),
        () => verifyConsistency(c.size1, c.size2 * 2, c.proof, c.root1, c.root2),
        () =>
          verifyConsistency(
            c.size1,
            c.size2,
            [...c.proof.slice(0, -1), flip(c.proof[c.proof.length - 1]!)],
            c.root1,
            c.root2,
          ),
        () => verifyConsistency(c.size1, c.size2, c.proof, flip(c.root1), c.root2),
      );
      for (const [i, f] of cases.entries()) assert.throws(f, ProofError, `case ${i}`);
    } finally {
      await log.close();
    }
  });
});

void test('crash: kill -9 while appending loses no acknowledged entry, and the log verifies', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'warden-crash-'));
  try {
    for (let round = 0; round < 2; round++) {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', join(import.meta.dirname, 'crash-child.fixture.ts'), dir],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      let acked = -1;
      let ready = false;
      const exited = new Promise<void>((r) => child.on('exit', () => r()));
      await new Promise<void>((resolveKill) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const lines = out.split('\n');
          out = lines.pop() ?? '';
          for (const l of lines) {
            if (l.startsWith('ready')) ready = true;
            else acked = Math.max(acked, Number(l));
          }
          if (ready && acked >= 3000 * (round + 1)) {
            child.kill('SIGKILL');
            resolveKill();
          }
        });
        void exited.then(() => resolveKill());
      });
      await exited;
      assert.ok(acked >= 3000 * (round + 1), `child exited early after ${acked}`);
      const store = await FileAuditStore.open(dir);
      const size = store.size;
      await store.close();
      assert.ok(size > acked, `acknowledged index ${acked} lost (size ${size})`);
      const key = (await readFile(join(dir, LOG_KEY_FILE), 'utf8')).trim();
      const r = await verifyLog(dir, {
        origin: 'crash.test/log',
        verifierKeys: [parseSignerKey(key).verifierKey],
        strictEntries: true,
      });
      assert.equal(r.firstError, undefined);
      assert.ok(r.ok && r.size === size && r.checkpointsChecked > 0);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('throughput: verification of 200k entries', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'warden-vspeed-'));
  try {
    const log = await AuditLog.openDir(dir, { origin: ORIGIN });
    const entry = Buffer.from(JSON.stringify({ v: 1, kind: 'session.close', pad: 'x'.repeat(150) }));
    const n = 200_000;
    for (let i = 0; i < n; i += 10_000)
      await Promise.all(Array.from({ length: 10_000 }, () => log.append(entry)));
    await log.checkpoint();
    await log.close();
    const t0 = performance.now();
    const r = await verifyLog(dir, { origin: ORIGIN, verifierKeys: [log.verifier] });
    const rate = n / ((performance.now() - t0) / 1000);
    console.log(`verify: ${Math.round(rate)} entries/s`);
    assert.ok(r.ok && r.size === n);
    assert.ok(rate > 100_000, `only ${Math.round(rate)}/s`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
