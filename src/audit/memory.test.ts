// The embedded audit store holds O(1) memory per entry: hundreds of thousands of appends leave the JS heap and buffers flat (the tree's hashes and the offsets live in spill files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { FileAuditStore } from './store-file.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function retainedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('300,000 appends to the file store leave retained memory flat (no per-entry growth)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-audit-mem-'));
  const store = await FileAuditStore.open(dir);
  try {
    const payload = Buffer.alloc(200, 'x');
    const append = async (n: number): Promise<void> => {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        pending.push(store.append(payload));
        if (pending.length >= 2000) {
          await Promise.all(pending);
          pending.length = 0;
        }
      }
      await Promise.all(pending);
    };
    await append(50_000);
    const before = retainedBytes();
    await append(300_000);
    const after = retainedBytes();
    assert.equal(store.size, 350_000);
    // In memory, the tree's leaf hashes and offsets alone would be 40 bytes × 300,000 = 12 MB.
    assert.ok(after - before < 3 * 1024 * 1024, `retained memory grew by ${after - before} bytes`);
    assert.deepEqual(store.tree.root(), store.tree.root(store.size));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
