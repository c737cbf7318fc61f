// Tests for the local audit store: group commit and durability ordering, torn-tail recovery, corruption reports, disk failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWardenError } from '../core/errors.js';
import {
  AuditCorruptionError,
  CHECKPOINTS_FILE,
  ENTRIES_FILE,
  FileAuditStore,
  defaultIo,
} from './store-file.js';
import type { StoreIo } from './store-file.js';
import { leafHash, rootFromLeafHashes } from './merkle.js';
import { MAGIC_LENGTH, RECORD_OVERHEAD } from './records.js';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'warden-store-'));
}
const payload = (i: number): Buffer => Buffer.from(`{"n":${i}}`);

async function withStore<T>(dir: string, f: (s: FileAuditStore) => Promise<T>, io?: StoreIo): Promise<T> {
  const s = await FileAuditStore.open(dir, io === undefined ? {} : { io });
  try {
    return await f(s);
  } finally {
    await s.close();
  }
}

void test('concurrent appends get consecutive indices, survive reopen, and the tree matches', async () => {
  const dir = await tmp();
  try {
    const n = 300;
    await withStore(dir, async (s) => {
      const got = await Promise.all(Array.from({ length: n }, (_, i) => s.append(payload(i))));
      assert.deepEqual(
        got.map((g) => g.index),
        Array.from({ length: n }, (_, i) => i),
      );
    });
    await withStore(dir, async (s) => {
      assert.equal(s.size, n);
      assert.deepEqual(
        s.tree.root(),
        rootFromLeafHashes(Array.from({ length: n }, (_, i) => leafHash(payload(i)))),
      );
      assert.deepEqual(Buffer.from(await s.read(123)), payload(123));
      assert.equal((await s.append(payload(n))).index, n);
    });
    const size = (await stat(join(dir, ENTRIES_FILE))).size;
    let expected = MAGIC_LENGTH;
    for (let i = 0; i <= n; i++) expected += payload(i).length + RECORD_OVERHEAD;
    assert.equal(size, expected);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('group commit: many appends share few write+fdatasync calls, and none resolves before its fdatasync', async () => {
  const dir = await tmp();
  try {
    let writes = 0;
    let syncs = 0;
    let releaseSync: (() => void) | undefined;
    let gate = true;
    const io: StoreIo = {
      write: (fh, buf, pos) => {
        writes++;
        return defaultIo.write(fh, buf, pos);
      },
      datasync: async (fh) => {
        syncs++;
        if (gate) await new Promise<void>((r) => (releaseSync = r));
        await defaultIo.datasync(fh);
      },
    };
    await withStore(
      dir,
      async (s) => {
        let resolved = 0;
        const all = Array.from({ length: 1000 }, (_, i) => s.append(payload(i)).then(() => resolved++));
        while (releaseSync === undefined) await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(resolved, 0, 'an append resolved before fdatasync returned');
        assert.equal(s.size, 0);
        gate = false;
        releaseSync();
        await Promise.all(all);
        assert.equal(resolved, 1000);
        assert.ok(writes <= 2 && syncs <= 2, `writes ${writes} syncs ${syncs}`);
      },
      io,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

async function seed(dir: string, n: number): Promise<void> {
  await withStore(dir, async (s) => {
    await Promise.all(Array.from({ length: n }, (_, i) => s.append(payload(i))));
  });
}

function recordOffset(i: number): number {
  let off = MAGIC_LENGTH;
  for (let k = 0; k < i; k++) off += payload(k).length + RECORD_OVERHEAD;
  return off;
}

void test('torn tails are truncated: incomplete record, bad checksum on the final record, zero fill', async () => {
  for (const damage of ['partial', 'final-checksum', 'zeros'] as const) {
    const dir = await tmp();
    try {
      await seed(dir, 10);
      const file = join(dir, ENTRIES_FILE);
      const goodSize = (await stat(file)).size;
      if (damage === 'partial') {
        await appendFile(file, Buffer.from([0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 10, 0, 1, 2]));
      } else if (damage === 'zeros') {
        await appendFile(file, Buffer.alloc(4096));
      } else {
        const fh = await open(file, 'r+');
        await fh.write(Buffer.from('X'), 0, 1, recordOffset(9) + 14);
        await fh.close();
      }
      const want = damage === 'final-checksum' ? 9 : 10;
      await withStore(dir, async (s) => {
        assert.equal(s.size, want, damage);
        assert.equal((await s.append(payload(want))).index, want);
      });
      await withStore(dir, (s) => Promise.resolve(assert.equal(s.size, want + 1, damage)));
      if (damage !== 'final-checksum') {
        assert.equal((await stat(file)).size, goodSize + payload(10).length + RECORD_OVERHEAD);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

void test('damage in the middle is reported with the exact index, never truncated', async () => {
  for (const damage of ['flip', 'delete', 'swap'] as const) {
    const dir = await tmp();
    try {
      await seed(dir, 20);
      const file = join(dir, ENTRIES_FILE);
      const bytes = await readFile(file);
      const a = recordOffset(7);
      const b = recordOffset(8);
      const c = recordOffset(9);
      let out: Buffer;
      if (damage === 'flip') {
        out = Buffer.from(bytes);
        out[a + 15]! ^= 0x01;
      } else if (damage === 'delete') {
        out = Buffer.concat([bytes.subarray(0, a), bytes.subarray(b)]);
      } else {
        out = Buffer.concat([
          bytes.subarray(0, a),
          bytes.subarray(b, c),
          bytes.subarray(a, b),
          bytes.subarray(c),
        ]);
      }
      await writeFile(file, out);
      await assert.rejects(FileAuditStore.open(dir), (e: unknown) => {
        assert.ok(e instanceof AuditCorruptionError, String(e));
        assert.equal(e.index, 7, damage);
        assert.equal(e.code, 'AUDIT_UNAVAILABLE');
        return true;
      });
      assert.equal((await stat(file)).size, out.length, 'the damaged file was modified');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

void test('deleting the last entries below a stored checkpoint is corruption, not a torn tail', async () => {
  const dir = await tmp();
  try {
    await withStore(dir, async (s) => {
      await Promise.all(Array.from({ length: 10 }, (_, i) => s.append(payload(i))));
      await s.appendCheckpoint(Buffer.from('origin\n10\nroot\n\n— sig\n'));
    });
    const file = join(dir, ENTRIES_FILE);
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, recordOffset(8)));
    await assert.rejects(FileAuditStore.open(dir), AuditCorruptionError);
    // A valid record with a wrong index at the very end (the one before it deleted) is never "torn".
    await writeFile(
      file,
      Buffer.concat([bytes.subarray(0, recordOffset(8)), bytes.subarray(recordOffset(9))]),
    );
    await assert.rejects(
      FileAuditStore.open(dir),
      (e: unknown) => e instanceof AuditCorruptionError && e.index === 8,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('a failed write or fsync puts the store in a failed state until recover()', async () => {
  const dir = await tmp();
  try {
    let failNext: 'write' | 'sync' | undefined;
    const io: StoreIo = {
      write: async (fh, buf, pos) => {
        if (failNext === 'write') {
          failNext = undefined;
          await defaultIo.write(fh, buf.subarray(0, 5), pos); // a partial write reaches the disk
          throw Object.assign(new Error('EIO'), { code: 'EIO' });
        }
        return defaultIo.write(fh, buf, pos);
      },
      datasync: async (fh) => {
        if (failNext === 'sync') {
          failNext = undefined;
          throw Object.assign(new Error('EIO'), { code: 'EIO' });
        }
        return defaultIo.datasync(fh);
      },
    };
    await withStore(
      dir,
      async (s) => {
        await s.append(payload(0));
        for (const kind of ['write', 'sync'] as const) {
          failNext = kind;
          const r = await Promise.allSettled([s.append(payload(1)), s.append(payload(2))]);
          for (const x of r)
            assert.ok(x.status === 'rejected' && isWardenError(x.reason, 'AUDIT_UNAVAILABLE'), kind);
          assert.ok(s.failed);
          await assert.rejects(s.append(payload(3)), (e: unknown) => isWardenError(e, 'AUDIT_UNAVAILABLE'));
          await assert.rejects(s.appendCheckpoint(Buffer.from('x')), (e: unknown) =>
            isWardenError(e, 'AUDIT_UNAVAILABLE'),
          );
          await s.recover();
          assert.ok(!s.failed);
          assert.equal(s.size, 1);
        }
        assert.equal((await s.append(payload(1))).index, 1);
      },
      io,
    );
    await withStore(dir, async (s) => {
      assert.equal(s.size, 2);
      assert.deepEqual(Buffer.from(await s.read(1)), payload(1));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('checkpoints are stored durably and read back in order; one process holds the store', async () => {
  const dir = await tmp();
  try {
    await withStore(dir, async (s) => {
      await s.appendCheckpoint(Buffer.from('a\n0\nx\n'));
      await s.appendCheckpoint(Buffer.from('a\n0\ny\n'));
      await assert.rejects(FileAuditStore.open(dir), (e: unknown) => isWardenError(e, 'AUDIT_UNAVAILABLE'));
    });
    await withStore(dir, async (s) => {
      assert.deepEqual(
        (await s.readCheckpoints()).map((b) => Buffer.from(b).toString()),
        ['a\n0\nx\n', 'a\n0\ny\n'],
      );
      assert.equal(Buffer.from(s.latestCheckpoint()!).toString(), 'a\n0\ny\n');
    });
    assert.ok((await stat(join(dir, CHECKPOINTS_FILE))).size > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('throughput: concurrent durable appends', async () => {
  const dir = await tmp();
  try {
    await withStore(dir, async (s) => {
      const entry = Buffer.alloc(200, 0x61);
      const n = 50_000;
      const t0 = performance.now();
      const window = 5000;
      const inflight: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        inflight.push(s.append(entry));
        if (inflight.length >= window) await Promise.all(inflight.splice(0));
      }
      await Promise.all(inflight);
      const rate = n / ((performance.now() - t0) / 1000);
      console.log(`durable appends: ${Math.round(rate)} entries/s`);
      assert.equal(s.size, n);
      assert.ok(rate > 10_000, `only ${Math.round(rate)}/s`);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
