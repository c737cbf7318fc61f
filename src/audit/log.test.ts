// Tests for AuditLog: durable appends, proofs, signed checkpoints that never fork, key file handling, reopen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWardenError } from '../core/errors.js';
import { AuditLog, LOG_KEY_FILE, loadOrCreateLogKey } from './log.js';
import { makeEntry, encodeEntry } from './entry.js';
import { openCheckpoint } from './checkpoint.js';
import { MerkleTree, leafHash, verifyConsistency, verifyInclusion } from './merkle.js';
import { generateSignerKey, parseSignerKey } from './note.js';
import type { AuditStore } from './store-file.js';

const ORIGIN = 'warden.test/audit';
const entry = (i: number) => makeEntry({ kind: 'session.close', sessionId: `s${i}`, reason: 'bye' });

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'warden-log-'));
}

void test('append, proofs and checkpoints; reopen keeps the last signed checkpoint', async () => {
  const dir = await tmp();
  try {
    const log = await AuditLog.openDir(dir, { origin: ORIGIN });
    assert.equal(((await stat(join(dir, LOG_KEY_FILE))).mode & 0o777).toString(8), '600');
    const es = Array.from({ length: 37 }, (_, i) => entry(i));
    await Promise.all(es.map((e) => log.append(e)));
    const note = await log.checkpoint();
    const { checkpoint } = openCheckpoint(note, { origin: ORIGIN, verifiers: [log.verifier] });
    assert.equal(checkpoint.size, 37);
    assert.deepEqual(Buffer.from(checkpoint.root), Buffer.from(log.root()));
    assert.equal(await log.checkpoint(), note, 'same size: the same note, no new signature');
    const p = log.proveInclusion(5);
    const bytes = encodeEntry((await import('./entry.js')).decodeEntry(await log.store.read(5)));
    assert.deepEqual(Buffer.from(p.leafHash), Buffer.from(leafHash(bytes)));
    verifyInclusion(p.index, p.size, p.leafHash, p.proof, checkpoint.root);
    await log.append(entry(99));
    const c = log.proveConsistency(37);
    verifyConsistency(c.size1, c.size2, c.proof, checkpoint.root, log.root());
    const note2 = await log.checkpoint();
    await log.close();

    const again = await AuditLog.openDir(dir, { origin: ORIGIN });
    assert.equal(again.size, 38);
    assert.deepEqual(again.latestCheckpoint(), note2);
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** An in-memory AuditStore whose tree a test can replace, to simulate a store rewritten under the log. */
class MemoryStore implements AuditStore {
  tree = new MerkleTree();
  notes: Uint8Array[] = [];
  get size(): number {
    return this.tree.size;
  }
  append(e: Uint8Array): Promise<{ index: number }> {
    this.tree.append(leafHash(e));
    return Promise.resolve({ index: this.tree.size - 1 });
  }
  read(): Promise<Uint8Array> {
    return Promise.reject(new Error('not kept'));
  }
  appendCheckpoint(n: Uint8Array): Promise<void> {
    this.notes.push(n);
    return Promise.resolve();
  }
  latestCheckpoint(): Uint8Array | undefined {
    return this.notes[this.notes.length - 1];
  }
  readCheckpoints(): Promise<Uint8Array[]> {
    return Promise.resolve(this.notes);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function treeOf(...names: string[]): MerkleTree {
  const t = new MerkleTree();
  for (const n of names) t.append(leafHash(Buffer.from(n)));
  return t;
}

void test('checkpoint invariant: never signs a smaller tree or a tree that does not extend the last one', async () => {
  const store = new MemoryStore();
  const signer = parseSignerKey(generateSignerKey(ORIGIN).skey);
  const log = await AuditLog.open(store, { origin: ORIGIN, signer });
  store.tree = treeOf('a', 'b');
  await log.checkpoint();
  store.tree = treeOf('a');
  await assert.rejects(
    log.checkpoint(),
    (e: unknown) => isWardenError(e, 'INTERNAL') && /below signed/.test(e.message),
  );
  store.tree = treeOf('a', 'x');
  await assert.rejects(log.checkpoint(), /no longer extends/);
  store.tree = treeOf('a', 'x', 'c');
  await assert.rejects(log.checkpoint(), /no longer extends/);
  assert.equal(store.notes.length, 1);
  store.tree = treeOf('a', 'b', 'c');
  await log.checkpoint();
  assert.equal(store.notes.length, 2);
  // Reopening over a store whose entries do not match its latest checkpoint is refused.
  store.tree = treeOf('a', 'b', 'z');
  await assert.rejects(AuditLog.open(store, { origin: ORIGIN, signer }), (e: unknown) =>
    isWardenError(e, 'AUDIT_UNAVAILABLE'),
  );
});

void test('periodic checkpoints are published while the log grows; stop() ends them', async () => {
  const dir = await tmp();
  try {
    const log = await AuditLog.openDir(dir, { origin: ORIGIN, checkpointIntervalMs: 10 });
    await log.append(entry(1));
    const t0 = Date.now();
    while (log.latestCheckpoint() === undefined && Date.now() - t0 < 2000)
      await new Promise((r) => setTimeout(r, 5));
    assert.ok(log.latestCheckpoint() !== undefined);
    log.stop();
    await log.append(entry(2));
    await new Promise((r) => setTimeout(r, 40));
    const cp = openCheckpoint(log.latestCheckpoint()!, {
      origin: ORIGIN,
      verifiers: [log.verifier],
    }).checkpoint;
    assert.equal(cp.size, 1);
    await log.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('key file: refused when group/other readable, or for another origin; open refuses a foreign last checkpoint', async () => {
  const dir = await tmp();
  try {
    const keyPath = join(dir, 'k');
    await writeFile(keyPath, generateSignerKey(ORIGIN).skey, { mode: 0o644 });
    await chmod(keyPath, 0o644);
    await assert.rejects(loadOrCreateLogKey(keyPath, ORIGIN), (e: unknown) =>
      isWardenError(e, 'CONFIG_INVALID'),
    );
    await chmod(keyPath, 0o600);
    await loadOrCreateLogKey(keyPath, ORIGIN);
    await assert.rejects(loadOrCreateLogKey(keyPath, 'other/origin'), (e: unknown) =>
      isWardenError(e, 'CONFIG_INVALID'),
    );

    const logDir = join(dir, 'log');
    const log = await AuditLog.openDir(logDir, { origin: ORIGIN });
    await log.append(entry(1));
    await log.checkpoint();
    await log.close();
    // Same store, different key: the stored checkpoint is not ours.
    await assert.rejects(AuditLog.openDir(logDir, { origin: ORIGIN, keyFile: keyPath }), (e: unknown) =>
      isWardenError(e, 'AUDIT_UNAVAILABLE'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('an entry that cannot be encoded is refused with AUDIT_UNAVAILABLE', async () => {
  const dir = await tmp();
  try {
    const log = await AuditLog.openDir(dir, { origin: ORIGIN });
    const bad = { ...entry(1), reason: 1.5 } as unknown as ReturnType<typeof entry>;
    await assert.rejects(log.append(bad), (e: unknown) => isWardenError(e, 'AUDIT_UNAVAILABLE'));
    assert.equal(log.size, 0);
    await log.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
