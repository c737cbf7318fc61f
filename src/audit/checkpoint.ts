// C2SP tlog-checkpoint: strict format/parse of the checkpoint body, and signing/opening it as a signed note.
// @see https://github.com/C2SP/C2SP/blob/main/tlog-checkpoint.md
import { HASH_SIZE } from './merkle.js';
import { decodeBase64Strict, openNote, signNote } from './note.js';
import type { NoteSigner, NoteVerifier, OpenedNote } from './note.js';

export interface Checkpoint {
  /** Unique identity of the log, e.g. `warden.example.com/audit`. */
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
  /** Optional extension lines (each non-empty, without newline). */
  readonly extensions?: readonly string[];
}

/** A checkpoint body that is not exactly in the C2SP format. */
export class CheckpointError extends Error {
  readonly code = 'AUDIT_CHECKPOINT_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function assertLine(s: string, what: string): void {
  if (s.length === 0 || CONTROL.test(s))
    throw new CheckpointError(`${what} is empty or has a control character`);
}

/** `<origin>\n<size>\n<base64 root>\n` followed by extension lines. */
export function formatCheckpoint(cp: Checkpoint): string {
  assertLine(cp.origin, 'origin');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0)
    throw new CheckpointError('size is not a non-negative integer');
  if (cp.root.length !== HASH_SIZE) throw new CheckpointError('root is not 32 bytes');
  let out = `${cp.origin}\n${cp.size}\n${Buffer.from(cp.root).toString('base64')}\n`;
  for (const e of cp.extensions ?? []) {
    assertLine(e, 'extension line');
    out += `${e}\n`;
  }
  return out;
}

/** Parses a checkpoint body strictly: decimal size without leading zeros, canonical base64 of 32 bytes. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw new CheckpointError('checkpoint must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new CheckpointError('checkpoint has fewer than three lines');
  const [origin, sizeStr, rootStr, ...extensions] = lines as [string, string, string, ...string[]];
  assertLine(origin, 'origin');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeStr)) throw new CheckpointError('size is not a canonical decimal');
  const size = Number(sizeStr);
  if (!Number.isSafeInteger(size)) throw new CheckpointError('size is too large');
  const root = decodeBase64Strict(rootStr);
  if (root === undefined || root.length !== HASH_SIZE)
    throw new CheckpointError('root is not base64 of 32 bytes');
  extensions.forEach((e) => assertLine(e, 'extension line'));
  return extensions.length > 0 ? { origin, size, root, extensions } : { origin, size, root };
}

/** Formats and signs a checkpoint: the returned bytes are a C2SP signed note. */
export function signCheckpoint(cp: Checkpoint, signers: readonly NoteSigner[]): Uint8Array {
  return signNote(formatCheckpoint(cp), signers);
}

export interface OpenCheckpointOptions {
  /** The origin the caller expects; a checkpoint for another log is refused. */
  readonly origin: string;
  /** The log's keys; at least one must have signed. */
  readonly verifiers: readonly NoteVerifier[];
}

/** Opens a signed checkpoint: verifies the note, then parses the body and checks the origin. */
export function openCheckpoint(
  note: Uint8Array,
  opts: OpenCheckpointOptions,
): { checkpoint: Checkpoint; note: OpenedNote } {
  const opened = openNote(note, opts.verifiers);
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== opts.origin) {
    throw new CheckpointError(`checkpoint origin "${checkpoint.origin}" is not "${opts.origin}"`);
  }
  return { checkpoint, note: opened };
}
