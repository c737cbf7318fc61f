// On-disk record framing shared by the local audit store and the offline verifier: encode, and scan a file in one pass.
//
// File  = MAGIC (16 bytes) || record*
// Record = u32be length || u64be index || 0x00 || payload[length] || check[4]
// check  = first 4 bytes of SHA-256(0x00 || payload), i.e. of the RFC 6962 leaf hash, so one hash both checks
//          the record and feeds the Merkle tree. The 0x00 byte sits right before the payload so the leaf hash is
//          computed over the file bytes in place, without a copy.
// The index lets a scan name the exact entry where a deletion or a reordering starts.
import { open } from 'node:fs/promises';
import { hash } from 'node:crypto';

export const RECORD_HEADER = 13;
export const RECORD_TRAILER = 4;
export const RECORD_OVERHEAD = RECORD_HEADER + RECORD_TRAILER;
export const MAX_RECORD_PAYLOAD = 16 * 1024 * 1024;
export const MAGIC_LENGTH = 16;
/** Largest write the store issues at once (a batch), plus one maximal record: the most a crash can tear. */
export const MAX_BATCH_BYTES = 8 * 1024 * 1024;
export const MAX_TORN_BYTES = MAX_BATCH_BYTES + MAX_RECORD_PAYLOAD + RECORD_OVERHEAD;
export const ENTRIES_MAGIC = Buffer.from('WARDEN AUDIT 01\n', 'latin1');
export const CHECKPOINTS_MAGIC = Buffer.from('WARDEN CHKPT 01\n', 'latin1');
export const REDACTIONS_MAGIC = Buffer.from('WARDEN REDCT 01\n', 'latin1');

/** Writes one record into `buf` at `pos`; returns the leaf hash of the payload. */
export function writeRecord(buf: Buffer, pos: number, index: number, payload: Uint8Array): Uint8Array {
  buf.writeUInt32BE(payload.length, pos);
  buf.writeUInt32BE(Math.floor(index / 0x100000000), pos + 4);
  buf.writeUInt32BE(index >>> 0, pos + 8);
  buf[pos + 12] = 0x00;
  buf.set(payload, pos + RECORD_HEADER);
  const leaf = hash('sha256', buf.subarray(pos + 12, pos + RECORD_HEADER + payload.length), 'buffer');
  leaf.copy(buf, pos + RECORD_HEADER + payload.length, 0, 4);
  return leaf;
}

export type ScanProblem = 'bad-magic' | 'bad-length' | 'bad-checksum' | 'bad-index' | 'bad-separator';

export interface ScanResult {
  /** Number of valid records, in order from index 0. */
  readonly count: number;
  /** File offset just after the last valid record. */
  readonly goodEnd: number;
  readonly fileSize: number;
  /**
   * 'clean': the file ends after the last valid record. 'torn': what follows can only be an interrupted,
   * never-acknowledged write (an incomplete record, a final record whose checksum fails, or zero fill).
   * 'corrupt': a bad record with more data after it; `problem` and `badIndex` say where.
   */
  readonly tail: 'clean' | 'torn' | 'corrupt';
  readonly problem?: ScanProblem;
  /** The index the first bad record should have had. */
  readonly badIndex?: number;
  readonly badOffset?: number;
}

/**
 * `payload` is empty and `redacted` true for a redacted entry: its payload bytes were overwritten with zeros and
 * `leafHash` is the leaf hash kept for it (see redaction.ts).
 */
export type RecordVisitor = (
  index: number,
  payload: Buffer,
  leafHash: Buffer,
  offset: number,
  redacted: boolean,
) => void;

export interface ScanOptions {
  /** Kept leaf hashes of redacted entries, by index. */
  readonly redacted?: ReadonlyMap<number, Uint8Array>;
}

const CHUNK = 8 * 1024 * 1024;

function allZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Scans a record file once, calling `visit` for every valid record in order. `payload` and `leafHash` are
 * views valid only during the call. A missing file scans as empty and clean (size 0).
 */
export async function scanRecordFile(
  path: string,
  magic: Buffer,
  visit?: RecordVisitor,
  opts: ScanOptions = {},
): Promise<ScanResult> {
  const redacted = opts.redacted;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return { count: 0, goodEnd: 0, fileSize: 0, tail: 'clean' };
    throw e;
  }
  try {
    const fileSize = (await fh.stat()).size;
    if (fileSize < MAGIC_LENGTH) {
      const head = Buffer.alloc(fileSize);
      await fh.read(head, 0, fileSize, 0);
      // An interrupted creation: a prefix of the magic, or zeros.
      const torn = allZero(head) || magic.subarray(0, fileSize).equals(head);
      return torn
        ? { count: 0, goodEnd: 0, fileSize, tail: fileSize === 0 ? 'clean' : 'torn' }
        : {
            count: 0,
            goodEnd: 0,
            fileSize,
            tail: 'corrupt',
            problem: 'bad-magic',
            badIndex: 0,
            badOffset: 0,
          };
    }
    const head = Buffer.alloc(MAGIC_LENGTH);
    await fh.read(head, 0, MAGIC_LENGTH, 0);
    if (!head.equals(magic)) {
      return {
        count: 0,
        goodEnd: 0,
        fileSize,
        tail: 'corrupt',
        problem: 'bad-magic',
        badIndex: 0,
        badOffset: 0,
      };
    }
    let buf = Buffer.allocUnsafe(CHUNK);
    let bufStart = MAGIC_LENGTH; // file offset of buf[0]
    let bufLen = 0;
    let pos = MAGIC_LENGTH; // file offset of the next record
    let count = 0;
    let eof = false;
    const fill = async (need: number): Promise<void> => {
      // Ensure buf holds [pos, pos + need) if the file has it.
      const rel = pos - bufStart;
      if (rel + need <= bufLen || eof) return;
      const keep = bufLen - rel;
      if (need > buf.length) {
        const bigger = Buffer.allocUnsafe(Math.max(need, buf.length * 2));
        buf.copy(bigger, 0, rel, bufLen);
        buf = bigger;
      } else {
        buf.copy(buf, 0, rel, bufLen);
      }
      bufStart = pos;
      bufLen = keep;
      while (bufLen < buf.length) {
        const { bytesRead } = await fh.read(buf, bufLen, buf.length - bufLen, bufStart + bufLen);
        if (bytesRead === 0) {
          eof = true;
          break;
        }
        bufLen += bytesRead;
      }
    };
    // INVARIANT: only bytes that an interrupted write could have left are ever called torn: they lie within
    // MAX_TORN_BYTES of the end (one group-commit batch) and are an incomplete final record, a complete final
    // record whose checksum fails, or zero fill. A record with a valid checksum but the wrong index is never torn.
    const bad = async (problem: ScanProblem, recordEnd: number): Promise<ScanResult> => {
      const at = { count, goodEnd: pos, fileSize, problem, badIndex: count, badOffset: pos } as const;
      if (problem === 'bad-index' || fileSize - pos > MAX_TORN_BYTES) return { ...at, tail: 'corrupt' };
      if (recordEnd >= fileSize) return { ...at, tail: 'torn' };
      const rest = Buffer.alloc(fileSize - pos);
      await fh.read(rest, 0, rest.length, pos);
      return { ...at, tail: allZero(rest) ? 'torn' : 'corrupt' };
    };
    while (pos < fileSize) {
      // Await only when the buffer runs dry: one microtask per record would cost more than the hash.
      if (pos - bufStart + RECORD_HEADER > bufLen) await fill(RECORD_HEADER);
      let rel = pos - bufStart;
      if (fileSize - pos < RECORD_OVERHEAD) return bad('bad-length', fileSize);
      const len = buf.readUInt32BE(rel);
      const end = pos + RECORD_OVERHEAD + len;
      if (len > MAX_RECORD_PAYLOAD || end > fileSize) return bad('bad-length', fileSize);
      if (rel + RECORD_OVERHEAD + len > bufLen) {
        await fill(RECORD_OVERHEAD + len);
        rel = pos - bufStart;
      }
      const index = buf.readUInt32BE(rel + 4) * 0x100000000 + buf.readUInt32BE(rel + 8);
      if (buf[rel + 12] !== 0x00) return bad('bad-separator', end);
      let leaf = hash('sha256', buf.subarray(rel + 12, rel + RECORD_HEADER + len), 'buffer');
      const check = buf.readUInt32BE(rel + RECORD_HEADER + len);
      let isRedacted = false;
      if (leaf.readUInt32BE(0) !== check) {
        // INVARIANT: a record is accepted as redacted only if a redaction names its index, its payload is all
        // zeros, and its stored check (written before the redaction) is the prefix of the kept leaf hash.
        const kept = redacted?.get(count);
        if (
          kept === undefined ||
          index !== count ||
          Buffer.from(kept).readUInt32BE(0) !== check ||
          !allZero(buf.subarray(rel + RECORD_HEADER, rel + RECORD_HEADER + len))
        ) {
          return bad('bad-checksum', end);
        }
        leaf = Buffer.from(kept);
        isRedacted = true;
      }
      if (index !== count) return bad('bad-index', end);
      visit?.(
        index,
        buf.subarray(rel + RECORD_HEADER, rel + RECORD_HEADER + (isRedacted ? 0 : len)),
        leaf,
        pos,
        isRedacted,
      );
      count++;
      pos = end;
    }
    return { count, goodEnd: pos, fileSize, tail: 'clean' };
  } finally {
    await fh.close();
  }
}
