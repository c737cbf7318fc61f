// Unit tests for group commit: batching, resolution only after the write, halting and resuming.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommit } from './group-commit.js';

const bytes = (n: number): Uint8Array => new Uint8Array(n);

describe('GroupCommit', () => {
  it('writes appends made together as one batch and resolves them in order, only after the write', async () => {
    const writes: number[] = [];
    let size = 0;
    let written = false;
    const gc = new GroupCommit({
      maxBatchBytes: 1 << 20,
      write: async (batch) => {
        writes.push(batch.length);
        await new Promise((r) => setTimeout(r, 5));
        written = true;
        const first = size;
        size += batch.length;
        return first;
      },
      failed: (e) => ({ error: e, halt: false }),
    });
    const all = Array.from({ length: 100 }, () =>
      gc.append(bytes(10)).then((r) => {
        assert.ok(written, 'resolved before the write returned');
        return r.index;
      }),
    );
    assert.deepEqual(await Promise.all(all), [...Array(100).keys()]);
    assert.deepEqual(writes, [100]);
  });

  it('splits batches by bytes (with per-entry overhead) and by count', async () => {
    const writes: number[] = [];
    let size = 0;
    const gc = new GroupCommit({
      maxBatchBytes: 100,
      maxBatchCount: 3,
      perEntryOverhead: 10,
      write: (batch) => {
        writes.push(batch.length);
        const first = size;
        size += batch.length;
        return Promise.resolve(first);
      },
      failed: (e) => ({ error: e, halt: false }),
    });
    await Promise.all([40, 40, 40, 1, 1, 1, 1, 500].map((n) => gc.append(bytes(n))));
    assert.deepEqual(writes, [2, 3, 2, 1]);
  });

  it('a halting failure rejects the batch and everything queued, and nothing is written until resume()', async () => {
    let fail = true;
    let size = 0;
    const writes: number[] = [];
    const gc = new GroupCommit({
      maxBatchBytes: 30,
      write: async (batch) => {
        writes.push(batch.length);
        await Promise.resolve();
        if (fail) throw new Error('disk');
        const first = size;
        size += batch.length;
        return first;
      },
      failed: () => ({ error: new Error('unavailable'), halt: true }),
    });
    const r = await Promise.allSettled([1, 2, 3].map(() => gc.append(bytes(20))));
    assert.deepEqual(
      r.map((x) => x.status),
      ['rejected', 'rejected', 'rejected'],
    );
    assert.deepEqual(writes, [1], 'the queued entries were never written');
    const held = gc.append(bytes(1));
    await new Promise((res) => setTimeout(res, 10));
    assert.deepEqual(writes, [1], 'halted: no write');
    fail = false;
    gc.resume();
    assert.equal((await held).index, 0);
    await gc.idle();
  });

  it('halt() from outside rejects queued appends; a non-halting failure only fails its own batch', async () => {
    let n = 0;
    const gc = new GroupCommit({
      maxBatchBytes: 10,
      write: async () => {
        n++;
        await Promise.resolve();
        if (n === 1) throw new Error('once');
        return n;
      },
      failed: (e) => ({ error: e, halt: false }),
    });
    const a = gc.append(bytes(10));
    const b = gc.append(bytes(10));
    await assert.rejects(a, /once/);
    assert.equal((await b).index, 2);
    const stop = new GroupCommit({
      maxBatchBytes: 10,
      write: () => new Promise(() => undefined),
      failed: (e) => ({ error: e, halt: true }),
    });
    void stop.append(bytes(10)).catch(() => undefined); // being written, never finishes
    await Promise.resolve();
    const queued = stop.append(bytes(10));
    stop.halt(new Error('checkpoint failed'));
    await assert.rejects(queued, /checkpoint failed/);
  });
});
