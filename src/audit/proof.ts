// C2SP tlog-proof: an offline-verifiable inclusion proof (index, RFC 6962 audit path, signed checkpoint) and its strict parser.
// @see https://c2sp.org/tlog-proof (c2sp.org/tlog-proof@v1)
import { HASH_SIZE, leafHash, verifyInclusion } from './merkle.js';
import { openCheckpoint } from './checkpoint.js';
import type { Checkpoint, OpenCheckpointOptions } from './checkpoint.js';
import { decodeBase64Strict } from './note.js';

export const TLOG_PROOF_HEADER = 'c2sp.org/tlog-proof@v1';
/** Proofs larger than this are refused before parsing (a 64-hash path plus a note with many cosignatures). */
const MAX_PROOF_BYTES = 1 << 20;

export interface TlogProof {
  readonly index: number;
  /** From the leaf's sibling up to the root's child. */
  readonly proof: readonly Uint8Array[];
  /** The signed checkpoint note, verbatim (it may carry witness cosignatures). */
  readonly checkpoint: Uint8Array;
  /** Opaque, unauthenticated extra data. */
  readonly extra?: Uint8Array;
}

/** A proof that is malformed or does not verify. */
export class TlogProofError extends Error {
  readonly code = 'AUDIT_PROOF_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'TlogProofError';
  }
}

export function formatTlogProof(p: TlogProof): Uint8Array {
  if (!Number.isSafeInteger(p.index) || p.index < 0)
    throw new TlogProofError('index is not a non-negative integer');
  let out = `${TLOG_PROOF_HEADER}\n`;
  if (p.extra !== undefined) out += `extra ${Buffer.from(p.extra).toString('base64')}\n`;
  out += `index ${p.index}\n`;
  for (const h of p.proof) {
    if (h.length !== HASH_SIZE) throw new TlogProofError('proof hash is not 32 bytes');
    out += `${Buffer.from(h).toString('base64')}\n`;
  }
  return Buffer.concat([Buffer.from(`${out}\n`, 'utf8'), Buffer.from(p.checkpoint)]);
}

/** Parses a proof strictly: the header, optional `extra`, canonical `index`, canonical base64 hashes, a blank line. */
export function parseTlogProof(bytes: Uint8Array): TlogProof {
  if (bytes.length > MAX_PROOF_BYTES) throw new TlogProofError('proof is too large');
  const buf = Buffer.from(bytes);
  const split = buf.indexOf('\n\n');
  if (split < 0) throw new TlogProofError('proof has no blank line before the checkpoint');
  const head = buf.subarray(0, split).toString('utf8');
  const checkpoint = Uint8Array.from(buf.subarray(split + 2));
  const lines = head.split('\n');
  if (lines.shift() !== TLOG_PROOF_HEADER) throw new TlogProofError(`first line is not ${TLOG_PROOF_HEADER}`);
  let extra: Uint8Array | undefined;
  if (lines[0]?.startsWith('extra ') === true) {
    extra = decodeBase64Strict(lines.shift()!.slice('extra '.length));
    if (extra === undefined) throw new TlogProofError('extra is not canonical base64');
  }
  const m = /^index (0|[1-9][0-9]*)$/.exec(lines.shift() ?? '');
  if (m === null) throw new TlogProofError('missing or malformed index line');
  const index = Number(m[1]);
  if (!Number.isSafeInteger(index)) throw new TlogProofError('index is too large');
  const proof = lines.map((l, i) => {
    const h = decodeBase64Strict(l);
    if (h === undefined || h.length !== HASH_SIZE)
      throw new TlogProofError(`proof line ${i + 1} is not base64 of 32 bytes`);
    return h;
  });
  if (proof.length > 64) throw new TlogProofError('proof has too many hashes');
  return extra === undefined ? { index, proof, checkpoint } : { index, proof, checkpoint, extra };
}

/**
 * Verifies offline that `entry` (its exact bytes) is at the proof's index in the tree of a checkpoint signed by
 * one of `opts.verifiers` for `opts.origin`. Returns the checkpoint; throws TlogProofError (or the note error).
 */
export function verifyTlogProof(p: TlogProof, entry: Uint8Array, opts: OpenCheckpointOptions): Checkpoint {
  const { checkpoint } = openCheckpoint(p.checkpoint, opts);
  try {
    verifyInclusion(p.index, checkpoint.size, leafHash(entry), p.proof, checkpoint.root);
  } catch (e) {
    throw new TlogProofError(
      `entry ${p.index} is not proven in the checkpoint of size ${checkpoint.size}: ${(e as Error).message}`,
    );
  }
  return checkpoint;
}
