// Offline verification of a local audit store folder: recompute every leaf and the tree in one pass, check every signed checkpoint against it.
import { join } from 'node:path';
import { CompactRange, EMPTY_ROOT } from './merkle.js';
import { openCheckpoint } from './checkpoint.js';
import { parseVerifierKey } from './note.js';
import type { NoteVerifier } from './note.js';
import { decodeEntry } from './entry.js';
import { CHECKPOINTS_MAGIC, ENTRIES_MAGIC, scanRecordFile } from './records.js';
import { CHECKPOINTS_FILE, ENTRIES_FILE } from './store-file.js';

export type VerifyErrorKind =
  | 'entry-corrupt' // a record fails its checksum, framing or index: `index` is exact
  | 'entry-invalid' // (strictEntries) an entry is not a canonical, valid entry: `index` is exact
  | 'checkpoint-corrupt' // the checkpoint file's framing is damaged
  | 'checkpoint-invalid' // bad signature, unknown key, other origin or malformed body
  | 'checkpoint-fork' // two checkpoints with the same size and different roots, or sizes going down
  | 'root-mismatch' // the recomputed tree differs from a signed root: a bad entry lies in [index, checkpoint size)
  | 'truncated'; // the log is smaller than a signed checkpoint (or the last one the verifier saw)

export interface VerifyError {
  readonly kind: VerifyErrorKind;
  readonly message: string;
  /** The first entry index known to be bad (exact for entry-*; the start of the suspect range for root-mismatch). */
  readonly index?: number;
  /** Which stored checkpoint (0-based), or -1 for the verifier's last seen checkpoint. */
  readonly checkpoint?: number;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Entries verified (up to the first entry error). */
  readonly size: number;
  readonly root: Uint8Array;
  readonly checkpointsChecked: number;
  /** True if an interrupted, never-acknowledged write was found (and ignored) at the end of a file. */
  readonly tornTail: boolean;
  readonly firstError?: VerifyError;
}

export interface VerifyOptions {
  readonly origin: string;
  /** The log's verifier keys (`name+hash+base64` strings or parsed verifiers). */
  readonly verifierKeys: readonly (string | NoteVerifier)[];
  /** A signed checkpoint the verifier obtained earlier (e.g. from a witness or an export). */
  readonly lastSeenCheckpoint?: Uint8Array;
  /** Also decode every entry strictly (canonical JSON, valid shape). Slower; pinpoints rewritten entries. */
  readonly strictEntries?: boolean;
  readonly onProgress?: (entriesDone: number) => void;
}

interface Target {
  readonly size: number;
  readonly root: Uint8Array;
  readonly checkpoint: number;
}

const PROGRESS_EVERY = 100_000;

/** Verifies the store in `folder`. Never throws for bad data: the result says what is wrong, first error first. */
export async function verifyLog(folder: string, opts: VerifyOptions): Promise<VerifyResult> {
  const verifiers = opts.verifierKeys.map((k) => (typeof k === 'string' ? parseVerifierKey(k) : k));
  let tornTail = false;
  const fail = (size: number, root: Uint8Array, checked: number, e: VerifyError): VerifyResult => ({
    ok: false,
    size,
    root,
    checkpointsChecked: checked,
    tornTail,
    firstError: e,
  });

  // 1. Checkpoints: signatures, origin, and no two different roots for one size, sizes never going down.
  const notes: Buffer[] = [];
  const cScan = await scanRecordFile(join(folder, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, (_i, p) => {
    notes.push(Buffer.from(p));
  });
  if (cScan.tail === 'corrupt') {
    return fail(0, EMPTY_ROOT, 0, {
      kind: 'checkpoint-corrupt',
      checkpoint: cScan.badIndex ?? cScan.count,
      message: `checkpoint record ${cScan.badIndex ?? cScan.count}: ${cScan.problem ?? 'corrupt'}`,
    });
  }
  tornTail ||= cScan.tail === 'torn';
  const targets: Target[] = [];
  const bySize = new Map<number, Target>();
  const addTarget = (note: Uint8Array, checkpoint: number): VerifyError | undefined => {
    let cp;
    try {
      cp = openCheckpoint(note, { origin: opts.origin, verifiers }).checkpoint;
    } catch (e) {
      return {
        kind: 'checkpoint-invalid',
        checkpoint,
        message: `checkpoint ${checkpoint}: ${(e as Error).message}`,
      };
    }
    const same = bySize.get(cp.size);
    if (same !== undefined && !Buffer.from(same.root).equals(cp.root)) {
      return {
        kind: 'checkpoint-fork',
        checkpoint,
        message: `checkpoints ${same.checkpoint} and ${checkpoint} sign different roots for size ${cp.size}`,
      };
    }
    const prev = targets[targets.length - 1];
    if (checkpoint >= 0 && prev !== undefined && prev.checkpoint >= 0 && cp.size < prev.size) {
      return {
        kind: 'checkpoint-fork',
        checkpoint,
        message: `checkpoint ${checkpoint} is smaller than the one before it`,
      };
    }
    const t = { size: cp.size, root: cp.root, checkpoint };
    targets.push(t);
    bySize.set(cp.size, t);
    return undefined;
  };
  for (let i = 0; i < notes.length; i++) {
    const e = addTarget(notes[i]!, i);
    if (e !== undefined) return fail(0, EMPTY_ROOT, i, e);
  }
  if (opts.lastSeenCheckpoint !== undefined) {
    const e = addTarget(opts.lastSeenCheckpoint, -1);
    if (e !== undefined) return fail(0, EMPTY_ROOT, notes.length, e);
  }
  const checked = notes.length + (opts.lastSeenCheckpoint === undefined ? 0 : 1);

  // 2. One pass over the entries: recompute leaf hashes (the record check is a prefix of the leaf hash) and
  // the tree; compare the root at every checkpointed size as soon as it is reached.
  const sorted = [...bySize.values()].sort((a, b) => a.size - b.size);
  let next = 0;
  const range = new CompactRange();
  let lastGood = 0;
  let firstError: VerifyError | undefined;
  const checkRootsAt = (size: number): void => {
    while (firstError === undefined && next < sorted.length && sorted[next]!.size === size) {
      const t = sorted[next++]!;
      if (!Buffer.from(range.root()).equals(t.root)) {
        firstError = {
          kind: 'root-mismatch',
          index: lastGood,
          checkpoint: t.checkpoint,
          message: `entries ${lastGood}..${size - 1} do not give the root signed at size ${size}`,
        };
      } else {
        lastGood = size;
      }
    }
  };
  checkRootsAt(0);
  const eScan = await scanRecordFile(join(folder, ENTRIES_FILE), ENTRIES_MAGIC, (index, payload, leaf) => {
    if (firstError !== undefined) return;
    if (opts.strictEntries === true) {
      try {
        decodeEntry(payload);
      } catch (e) {
        firstError = { kind: 'entry-invalid', index, message: `entry ${index}: ${(e as Error).message}` };
        return;
      }
    }
    range.append(leaf);
    checkRootsAt(range.size);
    if (opts.onProgress !== undefined && range.size % PROGRESS_EVERY === 0) opts.onProgress(range.size);
  });
  if (firstError === undefined && eScan.tail === 'corrupt') {
    firstError = {
      kind: 'entry-corrupt',
      index: eScan.badIndex ?? eScan.count,
      message: `entry ${eScan.badIndex ?? eScan.count} at offset ${eScan.badOffset ?? eScan.goodEnd}: ${eScan.problem ?? 'corrupt'}`,
    };
  }
  tornTail ||= eScan.tail === 'torn';
  if (firstError === undefined && next < sorted.length) {
    const t = sorted[sorted.length - 1]!;
    firstError = {
      kind: 'truncated',
      index: range.size,
      checkpoint: t.checkpoint,
      message: `the log has ${range.size} entries but a checkpoint${t.checkpoint < 0 ? ' seen earlier' : ''} signs size ${t.size}`,
    };
  }
  opts.onProgress?.(range.size);
  const result = { size: range.size, root: range.root(), checkpointsChecked: checked, tornTail };
  return firstError === undefined ? { ok: true, ...result } : { ok: false, ...result, firstError };
}
