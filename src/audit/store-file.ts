// The embedded local audit store: an append-only record file with group commit (one write + one fdatasync per batch), crash recovery and a checkpoint file.
//
// Life of an entry: append() queues the bytes -> the flush loop takes every queued entry (up to MAX_BATCH_BYTES),
// frames them as records (records.ts) into one buffer, writes it at the end of entries.dat, fdatasyncs, and only
// then adds the leaf hashes to the in-memory Merkle tree and resolves each append with its index.
// On open the file is scanned once: leaf hashes are recomputed, a torn tail (a never-acknowledged interrupted
// write) is truncated, anything else that is wrong is reported as corruption and the store does not open.
import { GroupCommit } from './group-commit.js';
import { mkdir, open, readFile, unlink, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { WardenError } from '../core/errors.js';
import { MerkleTree } from './merkle.js';
import { recordArray, type RecordArray, type RecordStorage } from './record-array.js';
import { REDACTIONS_FILE, encodeRedactionRecord, loadRedactions } from './redaction.js';
import {
  CHECKPOINTS_MAGIC,
  ENTRIES_MAGIC,
  REDACTIONS_MAGIC,
  MAGIC_LENGTH,
  MAX_BATCH_BYTES,
  MAX_RECORD_PAYLOAD,
  RECORD_HEADER,
  RECORD_OVERHEAD,
  scanRecordFile,
  writeRecord,
} from './records.js';
import type { ScanResult } from './records.js';

export const ENTRIES_FILE = 'entries.dat';
export const CHECKPOINTS_FILE = 'checkpoints.dat';
const LOCK_FILE = 'lock';

/** What a log needs from a store; a PostgreSQL-backed store can implement the same contract. */
export interface AuditStore {
  /** Number of durable entries. */
  readonly size: number;
  /** Leaf hashes of the durable entries (read-only for callers). */
  readonly tree: MerkleTree;
  /**
   * Appends one entry. MUST NOT resolve until the entry is durably on disk; rejects with
   * WardenError('AUDIT_UNAVAILABLE') if it cannot be (the caller must then refuse the statement).
   */
  append(entry: Uint8Array): Promise<{ index: number }>;
  read(index: number): Promise<Uint8Array>;
  /** Durably appends a signed checkpoint note. */
  appendCheckpoint(note: Uint8Array): Promise<void>;
  /** The last checkpoint appended (or found on open), if any. */
  latestCheckpoint(): Uint8Array | undefined;
  readCheckpoints(): Promise<Uint8Array[]>;
  close(): Promise<void>;
  /**
   * Optional: removes entry `index`'s payload durably while keeping its leaf hash (see redaction.ts). Callers go
   * through AuditLog.redact, which logs the redaction first and enforces retention.
   */
  redact?(index: number): Promise<void>;
  /** Optional: catch up with entries other writers (replicas) committed; called before signing a checkpoint. */
  sync?(): Promise<void>;
  /** Optional: whether entry `index` was redacted (`read` then returns no bytes). */
  isRedacted?(index: number): boolean | Promise<boolean>;
}

/** The store found damage it must not repair silently. */
export class AuditCorruptionError extends WardenError {
  readonly file: string;
  readonly index: number;
  readonly offset: number;
  readonly problem: string;
  constructor(file: string, index: number, offset: number, problem: string) {
    super(
      'AUDIT_UNAVAILABLE',
      `audit store is corrupt: ${file} record ${index} at offset ${offset}: ${problem}`,
      {
        detail: `file=${file} index=${index} offset=${offset} problem=${problem}`,
      },
    );
    this.file = file;
    this.index = index;
    this.offset = offset;
    this.problem = problem;
  }
}

/** Low-level I/O, replaceable in tests to inject disk failures. */
export interface StoreIo {
  write(fh: FileHandle, buf: Buffer, position: number): Promise<void>;
  datasync(fh: FileHandle): Promise<void>;
}

export const defaultIo: StoreIo = {
  async write(fh, buf, position) {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten <= 0) throw new Error('short write');
      done += bytesWritten;
    }
  },
  datasync: (fh) => fh.datasync(),
};

export interface FileStoreOptions {
  readonly io?: StoreIo;
}

/** File offsets of the entries (8 bytes each), spilled beside the tree's hashes. */
class OffsetArray {
  private readonly records: RecordArray;
  private readonly scratch = Buffer.alloc(8);
  constructor(storage: RecordStorage) {
    this.records = recordArray(8, storage);
  }
  push(v: number): void {
    this.scratch.writeDoubleLE(v, 0);
    this.records.push(this.scratch);
  }
  get(i: number): number {
    return Buffer.from(this.records.get(i)).readDoubleLE(0);
  }
  close(): void {
    this.records.close();
  }
}

const openDirs = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Size field of a checkpoint note's body (second line), without verifying it: the log and verifier do that. */
export function checkpointSizeOf(note: Uint8Array): number | undefined {
  const text = Buffer.from(note).toString('utf8');
  const m = /^[^\n]+\n(0|[1-9][0-9]*)\n/.exec(text);
  return m === null ? undefined : Number(m[1]);
}

export class FileAuditStore implements AuditStore {
  private readonly commits = new GroupCommit({
    maxBatchBytes: MAX_BATCH_BYTES,
    perEntryOverhead: RECORD_OVERHEAD,
    write: (batch) => this.writeBatch(batch),
    // INVARIANT: after a failed write or sync nothing more is written until recover() cut the files back.
    failed: (cause) => ({ error: this.fail(cause), halt: true }),
  });
  private failure: WardenError | undefined;
  private closed = false;
  private ckptChain: Promise<void> = Promise.resolve();
  private latest: Uint8Array | undefined;
  private ckptCount = 0;
  private redacted = new Map<number, Uint8Array>();
  private redactChain: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly tree: MerkleTree,
    private readonly offsets: OffsetArray,
    private entries: FileHandle,
    private checkpoints: FileHandle,
    /** End of the last acknowledged record in entries.dat. */
    private end: number,
    private ckptEnd: number,
    private readonly io: StoreIo,
  ) {}

  /** Opens (creating if needed) the store in `dir`, recovering from a crash. Throws AuditCorruptionError on damage. */
  static async open(dir: string, opts: FileStoreOptions = {}): Promise<FileAuditStore> {
    const abs = resolve(dir);
    if (openDirs.has(abs)) throw new WardenError('AUDIT_UNAVAILABLE', `audit store ${abs} is already open`);
    await mkdir(abs, { recursive: true, mode: 0o700 });
    await takeLock(abs);
    openDirs.add(abs);
    try {
      return await FileAuditStore.load(abs, opts.io ?? defaultIo);
    } catch (e) {
      openDirs.delete(abs);
      await unlink(join(abs, LOCK_FILE)).catch(() => undefined);
      throw e;
    }
  }

  private static async load(dir: string, io: StoreIo): Promise<FileAuditStore> {
    // Checkpoints first: the latest one is a floor under which entries can never be truncated.
    const notes: Buffer[] = [];
    const cScan = await scanRecordFile(join(dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, (_i, payload) => {
      notes.length = 0;
      notes.push(Buffer.from(payload));
    });
    assertRecoverable(CHECKPOINTS_FILE, cScan);
    const latest = notes[0];
    const floor = latest === undefined ? 0 : (checkpointSizeOf(latest) ?? Number.POSITIVE_INFINITY);

    const redactions = await loadRedactions(dir);
    // Leaf hashes and offsets go to unlinked spill files in the (0700) store folder: memory stays flat.
    const spill: RecordStorage = { kind: 'spill', dir };
    const tree = new MerkleTree(spill);
    const offsets = new OffsetArray(spill);
    // Redactions whose zeroing a crash interrupted: the kept hash is durable, the payload is still there.
    const unfinished: { offset: number; length: number }[] = [];
    let keptMismatch: number | undefined;
    const eScan = await scanRecordFile(
      join(dir, ENTRIES_FILE),
      ENTRIES_MAGIC,
      (i, p, leaf, offset, isRedacted) => {
        tree.append(leaf);
        offsets.push(offset);
        const kept = redactions.map.get(i);
        if (kept !== undefined && !isRedacted) {
          if (!leaf.equals(kept)) keptMismatch ??= i;
          else unfinished.push({ offset: offset + RECORD_HEADER, length: p.length });
        }
      },
      { redacted: redactions.map },
    );
    assertRecoverable(ENTRIES_FILE, eScan);
    if (keptMismatch !== undefined) {
      throw new AuditCorruptionError(
        REDACTIONS_FILE,
        keptMismatch,
        0,
        'a kept leaf hash does not match its entry',
      );
    }
    if (eScan.count < floor) {
      throw new AuditCorruptionError(
        ENTRIES_FILE,
        eScan.count,
        eScan.goodEnd,
        `entries end before the last signed checkpoint (size ${floor})`,
      );
    }
    const entries = await openFile(dir, ENTRIES_FILE, ENTRIES_MAGIC, eScan);
    let checkpoints: FileHandle;
    try {
      checkpoints = await openFile(dir, CHECKPOINTS_FILE, CHECKPOINTS_MAGIC, cScan);
      await fsyncDir(dir);
    } catch (e) {
      await entries.close();
      throw e;
    }
    const store = new FileAuditStore(
      dir,
      tree,
      offsets,
      entries,
      checkpoints,
      Math.max(eScan.goodEnd, MAGIC_LENGTH),
      Math.max(cScan.goodEnd, MAGIC_LENGTH),
      io,
    );
    store.latest = latest;
    store.ckptCount = cScan.count;
    store.redacted = redactions.map;
    for (const u of unfinished) await io.write(entries, Buffer.alloc(u.length), u.offset);
    if (unfinished.length > 0) await io.datasync(entries);
    return store;
  }

  get size(): number {
    return this.tree.size;
  }

  /** True after a write or fsync failed, until `recover()` succeeds. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  append(entry: Uint8Array): Promise<{ index: number }> {
    if (this.closed) return Promise.reject(new WardenError('AUDIT_UNAVAILABLE', 'audit store is closed'));
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (entry.length > MAX_RECORD_PAYLOAD) {
      return Promise.reject(new WardenError('AUDIT_UNAVAILABLE', 'audit entry is too large'));
    }
    return this.commits.append(entry);
  }

  /** Writes one batch of records and fdatasyncs it; returns the first index. Throws if it did not become durable. */
  private async writeBatch(batch: readonly Uint8Array[]): Promise<number> {
    let bytes = 0;
    for (const p of batch) bytes += p.length + RECORD_OVERHEAD;
    const buf = Buffer.allocUnsafe(bytes);
    const leaves: Uint8Array[] = [];
    const offsets: number[] = [];
    let pos = 0;
    const first = this.tree.size;
    for (let i = 0; i < batch.length; i++) {
      offsets.push(this.end + pos);
      const p = batch[i] as Uint8Array;
      leaves.push(writeRecord(buf, pos, first + i, p));
      pos += p.length + RECORD_OVERHEAD;
    }
    await this.io.write(this.entries, buf, this.end);
    await this.io.datasync(this.entries);
    // INVARIANT: the tree and the acknowledged end only ever cover bytes that fdatasync has returned for.
    this.end += bytes;
    for (let i = 0; i < batch.length; i++) {
      this.tree.append(leaves[i] as Uint8Array);
      this.offsets.push(offsets[i] as number);
    }
    return first;
  }

  private fail(cause: unknown): WardenError {
    const failure = new WardenError('AUDIT_UNAVAILABLE', 'the audit store could not write durably', {
      cause,
    });
    this.failure = failure;
    return failure;
  }

  /**
   * Leaves the failed state: reopens the files and cuts them back to the last acknowledged record (the failed
   * batch was rejected, so it must not stay in the log). Throws AUDIT_UNAVAILABLE if the disk still fails.
   */
  async recover(): Promise<void> {
    if (this.failure === undefined || this.closed) return;
    await this.commits.idle();
    await this.ckptChain;
    await this.entries.close().catch(() => undefined);
    await this.checkpoints.close().catch(() => undefined);
    try {
      this.entries = await open(join(this.dir, ENTRIES_FILE), 'r+');
      await this.entries.truncate(this.end);
      await this.io.datasync(this.entries);
      this.checkpoints = await open(join(this.dir, CHECKPOINTS_FILE), 'r+');
      await this.checkpoints.truncate(this.ckptEnd);
      await this.io.datasync(this.checkpoints);
    } catch (e) {
      throw new WardenError('AUDIT_UNAVAILABLE', 'the audit store could not recover', { cause: e });
    }
    this.failure = undefined;
    this.commits.resume();
  }

  async read(index: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size)
      throw new RangeError(`no entry ${index}`);
    if (this.redacted.has(index)) return new Uint8Array(0);
    const off = this.offsets.get(index);
    const head = Buffer.alloc(4);
    await this.entries.read(head, 0, 4, off);
    const len = head.readUInt32BE(0);
    const out = Buffer.alloc(len);
    await this.entries.read(out, 0, len, off + RECORD_HEADER);
    return out;
  }

  isRedacted(index: number): boolean {
    return this.redacted.has(index);
  }

  /**
   * Keeps entry `index`'s leaf hash in redactions.dat (fdatasync), then overwrites its payload with zeros in place
   * (fdatasync). A crash in between is finished on the next open. Use AuditLog.redact, which logs it first.
   */
  redact(index: number): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.closed) throw new WardenError('AUDIT_UNAVAILABLE', 'audit store is closed');
      if (this.failure !== undefined) throw this.failure;
      if (!Number.isSafeInteger(index) || index < 0 || index >= this.size)
        throw new RangeError(`no entry ${index}`);
      if (this.redacted.has(index)) return;
      const leaf = Uint8Array.from(this.tree.leafHash(index));
      const off = this.offsets.get(index);
      const head = Buffer.alloc(4);
      await this.entries.read(head, 0, 4, off);
      const len = head.readUInt32BE(0);
      const file = join(this.dir, REDACTIONS_FILE);
      const state = await loadRedactions(this.dir);
      const payload = encodeRedactionRecord(index, leaf);
      const rec = Buffer.allocUnsafe(payload.length + RECORD_OVERHEAD);
      writeRecord(rec, 0, state.count, payload);
      const fh = await open(file, state.fileSize === 0 ? 'w+' : 'r+', 0o600);
      try {
        let pos = state.goodEnd;
        if (pos < MAGIC_LENGTH) {
          await this.io.write(fh, REDACTIONS_MAGIC, 0);
          pos = MAGIC_LENGTH;
        }
        await fh.truncate(pos);
        await this.io.write(fh, rec, pos);
        await this.io.datasync(fh);
      } finally {
        await fh.close();
      }
      if (state.fileSize === 0) await fsyncDir(this.dir);
      this.redacted.set(index, leaf);
      // INVARIANT: the payload is zeroed only after its kept leaf hash is durable.
      await this.io.write(this.entries, Buffer.alloc(len), off + RECORD_HEADER);
      await this.io.datasync(this.entries);
    };
    const p = this.redactChain.then(run);
    this.redactChain = p.catch(() => undefined);
    return p;
  }

  appendCheckpoint(note: Uint8Array): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.closed) throw new WardenError('AUDIT_UNAVAILABLE', 'audit store is closed');
      if (this.failure !== undefined) throw this.failure;
      const buf = Buffer.allocUnsafe(note.length + RECORD_OVERHEAD);
      writeRecord(buf, 0, this.ckptCount, note);
      try {
        await this.io.write(this.checkpoints, buf, this.ckptEnd);
        await this.io.datasync(this.checkpoints);
      } catch (e) {
        const failure = this.fail(e);
        this.commits.halt(failure);
        throw failure;
      }
      this.ckptEnd += buf.length;
      this.ckptCount++;
      this.latest = Uint8Array.from(note);
    };
    const p = this.ckptChain.then(run);
    this.ckptChain = p.catch(() => undefined);
    return p;
  }

  latestCheckpoint(): Uint8Array | undefined {
    return this.latest;
  }

  async readCheckpoints(): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    const scan = await scanRecordFile(join(this.dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, (_i, p) => {
      if (out.length < this.ckptCount) out.push(Buffer.from(p));
    });
    if (scan.count < this.ckptCount)
      throw new AuditCorruptionError(CHECKPOINTS_FILE, scan.count, scan.goodEnd, scan.problem ?? 'short');
    return out;
  }

  /** Waits for queued appends, then closes the files and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.commits.idle();
    await this.ckptChain;
    await this.redactChain;
    this.closed = true;
    await this.entries.close().catch(() => undefined);
    await this.checkpoints.close().catch(() => undefined);
    this.tree.close();
    this.offsets.close();
    await unlink(join(this.dir, LOCK_FILE)).catch(() => undefined);
    openDirs.delete(this.dir);
  }
}

function assertRecoverable(file: string, scan: ScanResult): void {
  if (scan.tail === 'corrupt') {
    throw new AuditCorruptionError(
      file,
      scan.badIndex ?? scan.count,
      scan.badOffset ?? scan.goodEnd,
      scan.problem ?? 'corrupt',
    );
  }
}

/** Opens a record file for writing; creates it with its magic, or cuts a torn tail off. */
async function openFile(dir: string, name: string, magic: Buffer, scan: ScanResult): Promise<FileHandle> {
  const path = join(dir, name);
  const fh = await open(path, scan.fileSize === 0 && scan.tail === 'clean' ? 'w+' : 'r+', 0o600);
  try {
    if (scan.goodEnd < MAGIC_LENGTH) {
      await fh.truncate(0);
      await fh.write(magic, 0, MAGIC_LENGTH, 0);
      await fh.datasync();
    } else if (scan.tail === 'torn') {
      // The tail was never acknowledged: cut it, durably, before anything new is appended after it.
      await fh.truncate(scan.goodEnd);
      await fh.datasync();
    }
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

async function takeLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  try {
    await writeFile(path, String(process.pid), { flag: 'wx', mode: 0o600 });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const pid = Number((await readFile(path, 'utf8')).trim());
  if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
    throw new WardenError('AUDIT_UNAVAILABLE', `audit store ${dir} is in use by process ${pid}`);
  }
  await writeFile(path, String(process.pid), { mode: 0o600 });
}
