// Append-only arrays of fixed-size records (leaf hashes, subtree hashes, file offsets), in memory or spilled to an
// unlinked temporary file so that a long-running log holds a bounded amount of memory however many entries it has.
//
// INVARIANT: records never change once pushed; get(i) returns a copy (or a view of bytes that never change).
// The spill file is derived data, rebuilt from the durable store at every open: it is never fsynced, and it is
// unlinked as soon as it is created, so nothing is left behind on disk after the process ends.

import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** Records per write to the spill file (64 KiB for 32-byte hashes). */
const SPILL_BATCH = 2048;

export interface RecordArray {
  readonly length: number;
  push(record: Uint8Array): void;
  get(index: number): Uint8Array;
  /** Releases the spill file (no-op in memory). */
  close(): void;
}

/** Where an array lives: in memory (short-lived readers, tests) or spilled under a folder (long-running stores). */
export type RecordStorage = { readonly kind: 'memory' } | { readonly kind: 'spill'; readonly dir: string };

/** `batch`: records kept in memory before a write to the spill file (smaller for arrays that fill slowly). */
export function recordArray(recordSize: number, storage: RecordStorage, batch = SPILL_BATCH): RecordArray {
  return storage.kind === 'memory'
    ? new MemoryRecordArray(recordSize)
    : new SpilledRecordArray(recordSize, storage.dir, batch);
}

/** Writes `record` after the `count` records in `buf`, growing it by doubling; returns the (possibly new) buffer. */
function appendRecord(buf: Buffer, count: number, record: Uint8Array, size: number): Buffer {
  if (record.length !== size) throw new Error(`record of ${record.length} bytes, ${size} expected`);
  let out = buf;
  if ((count + 1) * size > buf.length) {
    out = Buffer.alloc(buf.length * 2);
    buf.copy(out, 0, 0, count * size);
  }
  out.set(record, count * size);
  return out;
}

/** A growable buffer of records (amortised O(1) append). */
export class MemoryRecordArray implements RecordArray {
  private buf: Buffer;
  length = 0;
  constructor(private readonly size: number) {
    this.buf = Buffer.alloc(size * 1024);
  }
  push(record: Uint8Array): void {
    this.buf = appendRecord(this.buf, this.length, record, this.size);
    this.length++;
  }
  /** A view; the bytes never change once written (the buffer only grows by copying). */
  get(index: number): Uint8Array {
    return this.buf.subarray(index * this.size, (index + 1) * this.size);
  }
  close(): void {}
}

/**
 * Records in an unlinked file: the unwritten tail stays in memory, everything older is read back with pread.
 * Memory is O(batch) whatever the length. A failed write (disk full) is not an error: the tail stays in memory
 * and the write is tried again a batch later, so an append never fails half-way because of the spill file.
 */
export class SpilledRecordArray implements RecordArray {
  private fd: number | undefined;
  private pending: Buffer;
  private pendingCount = 0;
  private flushed = 0;

  constructor(
    private readonly size: number,
    dir: string,
    private readonly batch = SPILL_BATCH,
  ) {
    const path = join(dir, `.warden-spill-${randomBytes(8).toString('hex')}`);
    this.fd = openSync(path, 'wx+', 0o600);
    unlinkSync(path);
    this.pending = Buffer.alloc(size * batch);
  }

  get length(): number {
    return this.flushed + this.pendingCount;
  }

  push(record: Uint8Array): void {
    this.pending = appendRecord(this.pending, this.pendingCount, record, this.size);
    this.pendingCount++;
    if (this.pendingCount % this.batch === 0) this.tryFlush();
  }

  get(index: number): Uint8Array {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.length) {
      throw new RangeError(`record ${index} is outside 0..${this.length - 1}`);
    }
    if (index >= this.flushed) {
      const at = (index - this.flushed) * this.size;
      return Buffer.from(this.pending.subarray(at, at + this.size));
    }
    const out = Buffer.alloc(this.size);
    let got = 0;
    while (got < this.size) {
      const n = readSync(this.openFd(), out, got, this.size - got, index * this.size + got);
      if (n === 0) throw new Error(`spill file ended at record ${index}`);
      got += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Writes the whole in-memory tail; on failure keeps it (what was written is simply written again later). */
  private tryFlush(): void {
    const bytes = this.pendingCount * this.size;
    try {
      let done = 0;
      while (done < bytes) {
        done += writeSync(this.openFd(), this.pending, done, bytes - done, this.flushed * this.size + done);
      }
    } catch {
      return;
    }
    this.flushed += this.pendingCount;
    this.pendingCount = 0;
    if (this.pending.length > this.size * this.batch) this.pending = Buffer.alloc(this.size * this.batch);
  }

  private openFd(): number {
    if (this.fd === undefined) throw new Error('spilled record array is closed');
    return this.fd;
  }
}
