// Retention and erasure: the side file of kept leaf hashes for redacted entries, and the rules for when a redaction is allowed.
//
// A redaction removes an entry's payload but keeps its leaf hash, so the Merkle tree (and every signed checkpoint)
// still verifies. Life of a redaction (AuditLog.redact): check the retention rule -> append an `audit.redaction`
// entry naming the index, the kept leaf hash, the reason and who asked (durable first: the redaction is logged
// before it happens) -> the store keeps the leaf hash (file store: a record in redactions.dat, fdatasynced) ->
// the store removes the payload (file store: overwritten with zeros in place, so offsets do not move).
// A verifier accepts a redacted entry only with a kept hash whose prefix equals the record's original check and
// with an `audit.redaction` entry later in the log that names the same index and leaf hash.
import { join } from 'node:path';
import { WardenError } from '../core/errors.js';
import { REDACTIONS_MAGIC, scanRecordFile } from './records.js';

export const REDACTIONS_FILE = 'redactions.dat';
/** Default retention before an entry may be redacted without a lawful-erasure request. */
export const DEFAULT_RETENTION_DAYS = 365;
const DAY_MS = 86_400_000;

/** A redaction that the rules refuse (too early, no reason, already redacted, not redactable). */
export class RedactionRefusedError extends Error {
  readonly code = 'AUDIT_REDACTION_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'RedactionRefusedError';
  }
}

export interface RedactionRequest {
  /** Why (free text, recorded). Required. */
  readonly reason: string;
  /** Who asked (recorded). */
  readonly actor: string;
  /** Redact before the retention period ends (a lawful erasure request). */
  readonly lawfulErasure?: boolean;
  /** Default DEFAULT_RETENTION_DAYS. */
  readonly retentionDays?: number;
  readonly now?: Date;
}

/**
 * Throws RedactionRefusedError unless an entry written at `entryTime` may be redacted now.
 * INVARIANT: before its retention period ends, an entry is redacted only on a lawful erasure request with a reason.
 */
export function assertRedactionAllowed(entryTime: Date, req: RedactionRequest): void {
  if (req.reason.trim() === '') throw new RedactionRefusedError('a redaction needs a reason');
  if (req.actor.trim() === '') throw new RedactionRefusedError('a redaction needs the name of who asked');
  const days = req.retentionDays ?? DEFAULT_RETENTION_DAYS;
  if (!Number.isFinite(days) || days < 0) throw new RedactionRefusedError('retention days must be >= 0');
  const now = (req.now ?? new Date()).getTime();
  const ends = entryTime.getTime() + days * DAY_MS;
  if (now < ends && req.lawfulErasure !== true) {
    throw new RedactionRefusedError(
      `the entry's retention period ends ${new Date(ends).toISOString()}; before then only a lawful erasure request (with a reason) can redact it`,
    );
  }
}

/** Payload of one redactions.dat record: u64be entry index || 32-byte leaf hash. */
export function encodeRedactionRecord(index: number, leaf: Uint8Array): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32BE(Math.floor(index / 0x100000000), 0);
  b.writeUInt32BE(index >>> 0, 4);
  Buffer.from(leaf).copy(b, 8);
  return b;
}

/**
 * Reads the kept leaf hashes of a store folder (a torn last record, an interrupted redaction, is ignored).
 * Throws AUDIT_UNAVAILABLE if the file is damaged.
 */
export async function loadRedactions(
  dir: string,
): Promise<{ map: Map<number, Uint8Array>; count: number; goodEnd: number; fileSize: number }> {
  const map = new Map<number, Uint8Array>();
  let bad: string | undefined;
  const scan = await scanRecordFile(join(dir, REDACTIONS_FILE), REDACTIONS_MAGIC, (_i, p) => {
    if (p.length !== 40) {
      bad ??= 'a redaction record is not 40 bytes';
      return;
    }
    const index = p.readUInt32BE(0) * 0x100000000 + p.readUInt32BE(4);
    map.set(index, Uint8Array.from(p.subarray(8)));
  });
  if (scan.tail === 'corrupt' || bad !== undefined) {
    throw new WardenError(
      'AUDIT_UNAVAILABLE',
      `${REDACTIONS_FILE} is corrupt: ${bad ?? scan.problem ?? 'corrupt'}`,
    );
  }
  return { map, count: scan.count, goodEnd: scan.goodEnd, fileSize: scan.fileSize };
}
