// Read-only access to a local audit store folder, without its lock: safe while a gateway appends (tools, export, proofs).
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { hash } from 'node:crypto';
import { MerkleTree } from './merkle.js';
import {
  CHECKPOINTS_MAGIC,
  ENTRIES_MAGIC,
  MAGIC_LENGTH,
  MAX_RECORD_PAYLOAD,
  RECORD_HEADER,
  RECORD_OVERHEAD,
  scanRecordFile,
} from './records.js';
import type { RecordVisitor, ScanResult } from './records.js';
import { CHECKPOINTS_FILE, ENTRIES_FILE, AuditCorruptionError } from './store-file.js';
import { loadRedactions } from './redaction.js';

/**
 * A snapshot of a store folder: the tree of the entries present when it was opened, their offsets, and the
 * stored checkpoint notes. A torn tail (a write in progress, or one a crash interrupted) is ignored.
 */
export class LogSnapshot {
  private constructor(
    readonly dir: string,
    readonly tree: MerkleTree,
    private readonly offsets: readonly number[],
    readonly checkpoints: readonly Uint8Array[],
    readonly entriesScan: ScanResult,
    /** Kept leaf hashes of redacted entries, by index. */
    readonly redacted: ReadonlyMap<number, Uint8Array>,
  ) {}

  /** Scans `dir` once. Throws AuditCorruptionError if a file is damaged beyond a torn tail. */
  static async open(dir: string): Promise<LogSnapshot> {
    const notes: Uint8Array[] = [];
    const cScan = await scanRecordFile(join(dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, (_i, p) => {
      notes.push(Buffer.from(p));
    });
    if (cScan.tail === 'corrupt') {
      throw new AuditCorruptionError(
        CHECKPOINTS_FILE,
        cScan.badIndex ?? cScan.count,
        cScan.badOffset ?? cScan.goodEnd,
        cScan.problem ?? 'corrupt',
      );
    }
    const tree = new MerkleTree();
    const offsets: number[] = [];
    const redacted = (await loadRedactions(dir)).map;
    const eScan = await scanRecordFile(
      join(dir, ENTRIES_FILE),
      ENTRIES_MAGIC,
      (_i, _p, leaf, offset) => {
        tree.append(leaf);
        offsets.push(offset);
      },
      { redacted },
    );
    if (eScan.tail === 'corrupt') {
      throw new AuditCorruptionError(
        ENTRIES_FILE,
        eScan.badIndex ?? eScan.count,
        eScan.badOffset ?? eScan.goodEnd,
        eScan.problem ?? 'corrupt',
      );
    }
    return new LogSnapshot(dir, tree, offsets, notes, eScan, redacted);
  }

  get size(): number {
    return this.tree.size;
  }

  /** The last stored checkpoint note, if any (not verified: callers open it with the log's key). */
  get latestCheckpoint(): Uint8Array | undefined {
    return this.checkpoints[this.checkpoints.length - 1];
  }

  /** The bytes of entry `index` (empty for a redacted entry). */
  async read(index: number): Promise<Uint8Array> {
    const off = this.offsets[index];
    if (off === undefined) throw new RangeError(`no entry ${index} (the log has ${this.size})`);
    if (this.redacted.has(index)) return new Uint8Array(0);
    const fh = await open(join(this.dir, ENTRIES_FILE), 'r');
    try {
      const head = Buffer.alloc(4);
      await fh.read(head, 0, 4, off);
      const out = Buffer.alloc(head.readUInt32BE(0));
      await fh.read(out, 0, out.length, off + RECORD_HEADER);
      return out;
    } finally {
      await fh.close();
    }
  }
}

/** Calls `visit` for every valid entry record of the folder, in order (a torn tail is skipped; redacted ones flagged). */
export async function scanEntries(dir: string, visit: RecordVisitor): Promise<ScanResult> {
  const redacted = (await loadRedactions(dir)).map;
  return scanRecordFile(join(dir, ENTRIES_FILE), ENTRIES_MAGIC, visit, { redacted });
}

export interface FollowPosition {
  /** File offset of the next record to read. */
  readonly offset: number;
  /** Index the next record must carry. */
  readonly index: number;
}

/**
 * Reads the complete, valid records that follow `from` (for `tail --follow`). Stops at the first incomplete
 * record (a write in progress) and returns where to continue. Throws AuditCorruptionError on a record with
 * a complete length whose checksum or index is wrong and that is not at the end of the file.
 */
export async function readEntriesFrom(
  dir: string,
  from: FollowPosition,
): Promise<{
  records: { index: number; payload: Buffer; leafHash: Buffer; redacted?: boolean }[];
  next: FollowPosition;
}> {
  const redacted = (await loadRedactions(dir)).map;
  let fh;
  try {
    fh = await open(join(dir, ENTRIES_FILE), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], next: from };
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    let offset = Math.max(from.offset, MAGIC_LENGTH);
    let index = from.index;
    const records: { index: number; payload: Buffer; leafHash: Buffer; redacted?: boolean }[] = [];
    while (size - offset >= RECORD_OVERHEAD) {
      const head = Buffer.alloc(RECORD_HEADER);
      await fh.read(head, 0, RECORD_HEADER, offset);
      const len = head.readUInt32BE(0);
      if (len > MAX_RECORD_PAYLOAD || offset + RECORD_OVERHEAD + len > size) break;
      const body = Buffer.alloc(1 + len + 4);
      await fh.read(body, 0, body.length, offset + RECORD_HEADER - 1);
      const leaf = hash('sha256', body.subarray(0, 1 + len), 'buffer');
      const at = head.readUInt32BE(4) * 0x100000000 + head.readUInt32BE(8);
      const valid = body[0] === 0 && leaf.readUInt32BE(0) === body.readUInt32BE(1 + len) && at === index;
      const kept = redacted.get(index);
      if (
        !valid &&
        kept !== undefined &&
        body[0] === 0 &&
        at === index &&
        Buffer.from(kept).readUInt32BE(0) === body.readUInt32BE(1 + len) &&
        body.subarray(1, 1 + len).every((x) => x === 0)
      ) {
        records.push({ index, payload: Buffer.alloc(0), leafHash: Buffer.from(kept), redacted: true });
        offset += RECORD_OVERHEAD + len;
        index++;
        continue;
      }
      if (!valid) {
        // The last record may still be in flight; anything after it means damage.
        if (offset + RECORD_OVERHEAD + len >= size) break;
        throw new AuditCorruptionError(ENTRIES_FILE, index, offset, 'bad record while following');
      }
      records.push({ index, payload: body.subarray(1, 1 + len), leafHash: leaf });
      offset += RECORD_OVERHEAD + len;
      index++;
    }
    return { records, next: { offset, index } };
  } finally {
    await fh.close();
  }
}
