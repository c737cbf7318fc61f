// Tests for the spilled record arrays: same contents as in memory, nothing left on disk, writes that fail are retried, and a spilled Merkle tree gives the same roots and proofs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { MemoryRecordArray, SpilledRecordArray } from './record-array.js';
import { MerkleTree } from './merkle.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'warden-spill-test-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rec = (i: number, size: number): Buffer =>
  createHash('sha256').update(String(i)).digest().subarray(0, size);

test('a spilled array returns exactly what was pushed, across batch boundaries, and leaves no file behind', () => {
  withDir((dir) => {
    const a = new SpilledRecordArray(32, dir, 16);
    const m = new MemoryRecordArray(32);
    for (let i = 0; i < 1000; i++) {
      a.push(rec(i, 32));
      m.push(rec(i, 32));
    }
    assert.equal(readdirSync(dir).length, 0, 'the spill file is unlinked at once');
    assert.equal(a.length, 1000);
    for (const i of [0, 1, 15, 16, 17, 500, 991, 992, 999])
      assert.deepEqual(Buffer.from(a.get(i)), rec(i, 32));
    for (let i = 0; i < 1000; i++) assert.deepEqual(Buffer.from(a.get(i)), Buffer.from(m.get(i)));
    assert.throws(() => a.get(1000), RangeError);
    assert.throws(() => a.get(-1), RangeError);
    assert.throws(() => a.push(Buffer.alloc(31)), /31 bytes/);
    a.close();
    assert.throws(() => a.get(0), /closed/);
  });
});

test('a failed spill write keeps the tail in memory and writes it later (no record is lost)', () => {
  withDir((dir) => {
    const a = new SpilledRecordArray(8, dir, 4);
    for (let i = 0; i < 6; i++) a.push(rec(i, 8));
    // Make the next flushes fail by closing the descriptor under the array, then give it a fresh one back.
    const fd = (a as unknown as { fd: number }).fd;
    (a as unknown as { fd: number | undefined }).fd = undefined;
    for (let i = 6; i < 20; i++) a.push(rec(i, 8));
    (a as unknown as { fd: number }).fd = fd;
    for (let i = 20; i < 24; i++) a.push(rec(i, 8));
    for (let i = 0; i < 24; i++) assert.deepEqual(Buffer.from(a.get(i)), rec(i, 8), `record ${i}`);
    a.close();
  });
});

test('a spilled Merkle tree gives the same roots and proofs as the in-memory one', () => {
  withDir((dir) => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.nat(), fc.nat(), (n, x, y) => {
        const mem = new MerkleTree();
        const spill = new MerkleTree({ kind: 'spill', dir });
        try {
          for (let i = 0; i < n; i++) {
            const leaf = rec(i, 32);
            mem.append(leaf);
            spill.append(leaf);
          }
          const size = 1 + (x % n);
          const index = y % size;
          assert.deepEqual(spill.root(), mem.root());
          assert.deepEqual(spill.root(size), mem.root(size));
          assert.deepEqual(Buffer.from(spill.leafHash(index)), Buffer.from(mem.leafHash(index)));
          assert.deepEqual(spill.inclusionProof(index, size), mem.inclusionProof(index, size));
          assert.deepEqual(spill.consistencyProof(size, n), mem.consistencyProof(size, n));
        } finally {
          spill.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
