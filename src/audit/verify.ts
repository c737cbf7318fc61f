// Offline verification of an audit log (a local store folder or a PostgreSQL store): recompute every leaf and the tree in one pass, check every signed checkpoint against it.
import { join } from 'node:path';
import { CompactRange, EMPTY_ROOT, leafHash } from './merkle.js';
import { openCheckpoint } from './checkpoint.js';
import { parseVerifierKey } from './note.js';
import type { NoteVerifier } from './note.js';
import { decodeEntry } from './entry.js';
import { CHECKPOINTS_MAGIC, ENTRIES_MAGIC, scanRecordFile } from './records.js';
import { CHECKPOINTS_FILE, ENTRIES_FILE } from './store-file.js';
import { loadRedactions } from './redaction.js';
import { readPgCheckpoints, readPgEntries } from './store-pg.js';
import type { PgAuditTables, PgQueryable } from './store-pg.js';

export type VerifyErrorKind =
  | 'entry-corrupt' // a record fails its checksum, framing or index: `index` is exact
  | 'entry-invalid' // (strictEntries) an entry is not a canonical, valid entry: `index` is exact
  | 'checkpoint-corrupt' // the checkpoint file's framing is damaged
  | 'checkpoint-invalid' // bad signature, unknown key, other origin or malformed body
  | 'checkpoint-fork' // two checkpoints with the same size and different roots, or sizes going down
  | 'root-mismatch' // the recomputed tree differs from a signed root: a bad entry lies in [index, checkpoint size)
  | 'redaction-unlogged' // an entry's payload is gone but no later `audit.redaction` entry names it and its hash
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
  /** Redacted entries accepted (each one named by a logged redaction). */
  readonly redacted: number;
  readonly firstError?: VerifyError;
}

export interface VerifyOptions {
  readonly origin: string;
  /** The log's verifier keys (`name+hash+base64` strings or parsed verifiers). */
  readonly verifierKeys: readonly (string | NoteVerifier)[];
  /** A signed checkpoint the verifier obtained earlier (e.g. from a witness or an export). */
  readonly lastSeenCheckpoint?: Uint8Array;
  /** More checkpoints obtained elsewhere (e.g. each witness's cosigned one): each must match the log too. */
  readonly lastSeenCheckpoints?: readonly Uint8Array[];
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
const REDACTION_MARK = Buffer.from('"kind":"audit.redaction"', 'utf8');

/**
 * The storage-independent part of verification: fed checkpoint notes, then every entry in index order, it
 * recomputes the tree and compares it with each signed root as soon as that size is reached.
 */
class Verifier {
  private readonly verifiers: NoteVerifier[];
  private readonly targets: Target[] = [];
  private readonly bySize = new Map<number, Target>();
  private sorted: Target[] = [];
  private next = 0;
  private readonly range = new CompactRange();
  private lastGood = 0;
  firstError: VerifyError | undefined;
  checked = 0;
  tornTail = false;
  /** Redacted entries: index -> kept leaf hash. */
  private readonly redactedSeen = new Map<number, Buffer>();
  /** Logged redactions: index -> leaf hash (base64) they name. */
  private readonly logged = new Map<number, string>();

  constructor(private readonly opts: VerifyOptions) {
    this.verifiers = opts.verifierKeys.map((k) => (typeof k === 'string' ? parseVerifierKey(k) : k));
  }

  get size(): number {
    return this.range.size;
  }

  private addTarget(note: Uint8Array, checkpoint: number): VerifyError | undefined {
    let cp;
    try {
      cp = openCheckpoint(note, { origin: this.opts.origin, verifiers: this.verifiers }).checkpoint;
    } catch (e) {
      return {
        kind: 'checkpoint-invalid',
        checkpoint,
        message: `checkpoint ${checkpoint}: ${(e as Error).message}`,
      };
    }
    const same = this.bySize.get(cp.size);
    if (same !== undefined && !Buffer.from(same.root).equals(cp.root)) {
      return {
        kind: 'checkpoint-fork',
        checkpoint,
        message: `checkpoints ${same.checkpoint} and ${checkpoint} sign different roots for size ${cp.size}`,
      };
    }
    const prev = this.targets[this.targets.length - 1];
    if (checkpoint >= 0 && prev !== undefined && prev.checkpoint >= 0 && cp.size < prev.size) {
      return {
        kind: 'checkpoint-fork',
        checkpoint,
        message: `checkpoint ${checkpoint} is smaller than the one before it`,
      };
    }
    const t = { size: cp.size, root: cp.root, checkpoint };
    this.targets.push(t);
    this.bySize.set(cp.size, t);
    return undefined;
  }

  /** 1. Checkpoints: signatures, origin, and no two different roots for one size, sizes never going down. */
  checkpoints(notes: readonly Uint8Array[]): boolean {
    for (let i = 0; i < notes.length; i++) {
      const e = this.addTarget(notes[i]!, i);
      if (e !== undefined) {
        this.checked = i;
        this.firstError = e;
        return false;
      }
    }
    const seen = [
      ...(this.opts.lastSeenCheckpoint !== undefined ? [this.opts.lastSeenCheckpoint] : []),
      ...(this.opts.lastSeenCheckpoints ?? []),
    ];
    for (const note of seen) {
      const e = this.addTarget(note, -1);
      if (e !== undefined) {
        this.checked = notes.length;
        this.firstError = e;
        return false;
      }
    }
    this.checked = notes.length + seen.length;
    this.sorted = [...this.bySize.values()].sort((a, b) => a.size - b.size);
    this.checkRootsAt(0);
    return this.firstError === undefined;
  }

  private checkRootsAt(size: number): void {
    while (
      this.firstError === undefined &&
      this.next < this.sorted.length &&
      this.sorted[this.next]!.size === size
    ) {
      const t = this.sorted[this.next++]!;
      if (!Buffer.from(this.range.root()).equals(t.root)) {
        this.firstError = {
          kind: 'root-mismatch',
          index: this.lastGood,
          checkpoint: t.checkpoint,
          message: `entries ${this.lastGood}..${size - 1} do not give the root signed at size ${size}`,
        };
      } else {
        this.lastGood = size;
      }
    }
  }

  /** 2. One entry (payload empty and `redacted` for a redacted one, whose `leaf` is the kept hash). */
  entry(index: number, payload: Buffer, leaf: Uint8Array, redacted: boolean): void {
    if (this.firstError !== undefined) return;
    if (redacted) {
      this.redactedSeen.set(index, Buffer.from(leaf));
    } else {
      const strict = this.opts.strictEntries === true;
      // A logged redaction only matters for an earlier redacted entry (it must name a smaller index), so the
      // payload search is skipped until one was seen: an intact log pays nothing for redaction support.
      if (strict || (this.redactedSeen.size > 0 && payload.includes(REDACTION_MARK))) {
        let e;
        try {
          e = decodeEntry(payload);
        } catch (err) {
          if (strict) {
            this.firstError = {
              kind: 'entry-invalid',
              index,
              message: `entry ${index}: ${(err as Error).message}`,
            };
            return;
          }
        }
        if (e?.kind === 'audit.redaction' && e.index < index) this.logged.set(e.index, e.leafHash);
      }
    }
    this.range.append(leaf);
    this.checkRootsAt(this.range.size);
    if (this.opts.onProgress !== undefined && this.range.size % PROGRESS_EVERY === 0)
      this.opts.onProgress(this.range.size);
  }

  fail(e: VerifyError): void {
    this.firstError ??= e;
  }

  result(): VerifyResult {
    if (this.firstError === undefined && this.next < this.sorted.length) {
      const t = this.sorted[this.sorted.length - 1]!;
      this.firstError = {
        kind: 'truncated',
        index: this.range.size,
        checkpoint: t.checkpoint,
        message: `the log has ${this.range.size} entries but a checkpoint${t.checkpoint < 0 ? ' seen earlier' : ''} signs size ${t.size}`,
      };
    }
    if (this.firstError === undefined) {
      // INVARIANT: a payload may be missing only where the log itself records the redaction of that leaf.
      for (const [index, leaf] of [...this.redactedSeen].sort((a, b) => a[0] - b[0])) {
        if (this.logged.get(index) !== leaf.toString('base64')) {
          this.firstError = {
            kind: 'redaction-unlogged',
            index,
            message: `entry ${index} has no payload, and no later audit.redaction entry names it with its leaf hash`,
          };
          break;
        }
      }
    }
    this.opts.onProgress?.(this.range.size);
    const r = {
      size: this.range.size,
      root: this.range.root(),
      checkpointsChecked: this.checked,
      tornTail: this.tornTail,
      redacted: this.redactedSeen.size,
    };
    return this.firstError === undefined
      ? { ok: true, ...r }
      : { ok: false, ...r, firstError: this.firstError };
  }

  failedEarly(): VerifyResult {
    return {
      ok: false,
      size: 0,
      root: EMPTY_ROOT,
      checkpointsChecked: this.checked,
      tornTail: this.tornTail,
      redacted: 0,
      firstError: this.firstError!,
    };
  }
}

/** Verifies the store in `folder`. Never throws for bad data: the result says what is wrong, first error first. */
export async function verifyLog(folder: string, opts: VerifyOptions): Promise<VerifyResult> {
  const v = new Verifier(opts);
  const notes: Buffer[] = [];
  const cScan = await scanRecordFile(join(folder, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, (_i, p) => {
    notes.push(Buffer.from(p));
  });
  if (cScan.tail === 'corrupt') {
    v.fail({
      kind: 'checkpoint-corrupt',
      checkpoint: cScan.badIndex ?? cScan.count,
      message: `checkpoint record ${cScan.badIndex ?? cScan.count}: ${cScan.problem ?? 'corrupt'}`,
    });
    return v.failedEarly();
  }
  v.tornTail ||= cScan.tail === 'torn';
  if (!v.checkpoints(notes)) return v.failedEarly();
  let redacted: Map<number, Uint8Array>;
  try {
    redacted = (await loadRedactions(folder)).map;
  } catch (e) {
    v.fail({ kind: 'entry-corrupt', index: 0, message: (e as Error).message });
    return v.failedEarly();
  }
  const eScan = await scanRecordFile(
    join(folder, ENTRIES_FILE),
    ENTRIES_MAGIC,
    (index, payload, leaf, _offset, isRedacted) => v.entry(index, payload, leaf, isRedacted),
    { redacted },
  );
  if (eScan.tail === 'corrupt') {
    v.fail({
      kind: 'entry-corrupt',
      index: eScan.badIndex ?? eScan.count,
      message: `entry ${eScan.badIndex ?? eScan.count} at offset ${eScan.badOffset ?? eScan.goodEnd}: ${eScan.problem ?? 'corrupt'}`,
    });
  }
  v.tornTail ||= eScan.tail === 'torn';
  return v.result();
}

/**
 * Verifies a PostgreSQL store (read with any role that may SELECT its tables): rows must be numbered 0..n-1
 * without gaps, each payload must match its stored leaf hash (a NULL payload is a redaction and must be logged),
 * and the recomputed tree must match every stored checkpoint. Throws only if the database cannot be read.
 */
export async function verifyPgLog(
  client: PgQueryable,
  tables: PgAuditTables,
  opts: VerifyOptions,
): Promise<VerifyResult> {
  const v = new Verifier(opts);
  if (!v.checkpoints(await readPgCheckpoints(client, tables))) return v.failedEarly();
  for await (const row of readPgEntries(client, tables)) {
    if (v.firstError !== undefined) break;
    if (row.index !== v.size) {
      v.fail({
        kind: 'entry-corrupt',
        index: v.size,
        message: `entry ${v.size} is missing (next row is ${row.index})`,
      });
      break;
    }
    if (row.payload === null) {
      v.entry(row.index, Buffer.alloc(0), row.storedLeafHash, true);
      continue;
    }
    const leaf = leafHash(row.payload);
    if (!Buffer.from(leaf).equals(row.storedLeafHash)) {
      v.fail({
        kind: 'entry-corrupt',
        index: row.index,
        message: `entry ${row.index}: payload does not match its stored leaf hash`,
      });
      break;
    }
    v.entry(row.index, row.payload, leaf, false);
  }
  return v.result();
}
