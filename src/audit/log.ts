// The audit log: appends canonical entries to a durable store, keeps the Merkle tree, signs checkpoints that never fork, and serves proofs.
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WardenError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { decodeEntry, encodeEntry, makeEntry } from './entry.js';
import { RedactionRefusedError, assertRedactionAllowed } from './redaction.js';
import type { RedactionRequest } from './redaction.js';
import type { AuditEntry } from './entry.js';
import { formatCheckpoint, openCheckpoint } from './checkpoint.js';
import type { Checkpoint } from './checkpoint.js';
import { generateSignerKey, parseSignerKey, parseVerifierKey, signNote } from './note.js';
import type { Ed25519NoteSigner, NoteVerifier } from './note.js';
import { FileAuditStore } from './store-file.js';
import type { AuditStore } from './store-file.js';

export const LOG_KEY_FILE = 'log.key';

export interface InclusionProof {
  readonly index: number;
  readonly size: number;
  readonly leafHash: Uint8Array;
  readonly proof: readonly Uint8Array[];
  readonly root: Uint8Array;
}

export interface ConsistencyProof {
  readonly size1: number;
  readonly size2: number;
  readonly root1: Uint8Array;
  readonly root2: Uint8Array;
  readonly proof: readonly Uint8Array[];
}

export interface AuditLogOptions {
  /** Log identity; also the key name of the log's signer. */
  readonly origin: string;
  readonly signer: Ed25519NoteSigner;
  /** Sign and store a checkpoint this often (ms) when the log has grown. 0 or absent: only on demand. */
  readonly checkpointIntervalMs?: number;
  /** Told of periodic checkpoint failures (the next tick retries). */
  readonly onCheckpointError?: (e: unknown) => void;
}

const equal = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(b);

/**
 * Loads the log's Ed25519 signer key from `path`, or creates it (mode 0600) if absent. Refuses a key file
 * readable by group or others, or one whose key name is not `name`. The key text is never logged.
 */
export async function loadOrCreateLogKey(path: string, name: string): Promise<Ed25519NoteSigner> {
  let text: string;
  try {
    await stat(path);
    // Checked on the opened file: not accessible by group or others (chmod 600).
    text = readSecret({ file: path }, 'log key file');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const { skey } = generateSignerKey(name);
    const fh = await open(path, 'wx', 0o600);
    try {
      await fh.writeFile(`${skey}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    text = skey;
  }
  let signer: Ed25519NoteSigner;
  try {
    signer = parseSignerKey(text.trim());
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `log key file ${path} is malformed`, { cause: e });
  }
  if (signer.name !== name)
    throw new WardenError('CONFIG_INVALID', `log key name "${signer.name}" is not the origin "${name}"`);
  return signer;
}

export class AuditLog {
  private lastSigned: { size: number; root: Uint8Array; note: Uint8Array } | undefined;
  private signing: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly checkpointListeners: ((note: Uint8Array, size: number) => void)[] = [];
  readonly verifier: NoteVerifier;

  private constructor(
    readonly store: AuditStore,
    private readonly opts: AuditLogOptions,
  ) {
    if (opts.signer.name !== opts.origin) {
      throw new WardenError('CONFIG_INVALID', 'the log key name must equal the log origin');
    }
    this.verifier = parseVerifierKey(opts.signer.verifierKey);
  }

  /** Opens a log over a store. The store's latest checkpoint must be ours and match the stored entries. */
  static open(store: AuditStore, opts: AuditLogOptions): Promise<AuditLog> {
    try {
      return Promise.resolve(AuditLog.openSync(store, opts));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private static openSync(store: AuditStore, opts: AuditLogOptions): AuditLog {
    const log = new AuditLog(store, opts);
    const note = store.latestCheckpoint();
    if (note !== undefined) {
      let cp: Checkpoint;
      try {
        cp = openCheckpoint(note, { origin: opts.origin, verifiers: [log.verifier] }).checkpoint;
      } catch (e) {
        throw new WardenError(
          'AUDIT_UNAVAILABLE',
          'the latest stored checkpoint is not signed by this log key',
          { cause: e },
        );
      }
      if (cp.size > store.size || !equal(store.tree.root(cp.size), cp.root)) {
        throw new WardenError(
          'AUDIT_UNAVAILABLE',
          `stored entries do not match the signed checkpoint of size ${cp.size}`,
        );
      }
      log.lastSigned = { size: cp.size, root: cp.root, note };
    }
    const ms = opts.checkpointIntervalMs ?? 0;
    if (ms > 0) {
      log.timer = setInterval(() => {
        if (log.lastSigned !== undefined && log.lastSigned.size === log.size) return;
        log.checkpoint().catch((e: unknown) => opts.onCheckpointError?.(e));
      }, ms);
      log.timer.unref();
    }
    return log;
  }

  /** The embedded default: a FileAuditStore in `dir` and a key file `dir/log.key`, created on first start. */
  static async openDir(
    dir: string,
    opts: { origin: string; keyFile?: string } & Omit<AuditLogOptions, 'origin' | 'signer'>,
  ): Promise<AuditLog> {
    const store = await FileAuditStore.open(dir);
    try {
      const signer = await loadOrCreateLogKey(opts.keyFile ?? join(dir, LOG_KEY_FILE), opts.origin);
      return await AuditLog.open(store, { ...opts, signer });
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  get origin(): string {
    return this.opts.origin;
  }

  get size(): number {
    return this.store.size;
  }

  /** Root of the durable tree (or of its first `size` entries). */
  root(size?: number): Uint8Array {
    return this.store.tree.root(size);
  }

  /**
   * Encodes and durably appends an entry. Resolves only once the entry is on disk; rejects with
   * WardenError('AUDIT_UNAVAILABLE') otherwise, and the caller must then refuse the action it records.
   */
  async append(entry: AuditEntry | Uint8Array): Promise<{ index: number }> {
    let bytes: Uint8Array;
    try {
      bytes = entry instanceof Uint8Array ? entry : encodeEntry(entry);
    } catch (e) {
      throw new WardenError('AUDIT_UNAVAILABLE', 'the audit entry could not be encoded', { cause: e });
    }
    return this.store.append(bytes);
  }

  /**
   * Signs and stores a checkpoint of the current durable tree, and returns the signed note.
   * INVARIANT: never signs two checkpoints that are inconsistent with each other: refuses a smaller tree than
   * the last signed one, a different root for the same size, or a tree whose prefix differs from the last root.
   */
  checkpoint(): Promise<Uint8Array> {
    const run = async (): Promise<Uint8Array> => {
      // A shared store (PostgreSQL, several replicas) first reads what the others appended.
      await this.store.sync?.();
      const size = this.store.size;
      const root = this.store.tree.root(size);
      const last = this.lastSigned;
      if (last !== undefined) {
        if (size < last.size)
          throw new WardenError('INTERNAL', `refusing to sign size ${size} below signed ${last.size}`);
        if (!equal(this.store.tree.root(last.size), last.root)) {
          throw new WardenError(
            'INTERNAL',
            'refusing to sign: the tree no longer extends the last signed checkpoint',
          );
        }
        if (size === last.size) return last.note;
      }
      const note = signNote(formatCheckpoint({ origin: this.opts.origin, size, root }), [this.opts.signer]);
      await this.store.appendCheckpoint(note);
      this.lastSigned = { size, root, note };
      for (const f of this.checkpointListeners) {
        try {
          f(note, size);
        } catch {
          // A listener (e.g. witness submission) never fails the checkpoint.
        }
      }
      return note;
    };
    const p = this.signing.then(run);
    this.signing = p.catch(() => undefined);
    return p;
  }

  /**
   * Redacts entry `index`: checks the retention rule, durably appends an `audit.redaction` entry (index, kept
   * leaf hash, reason, who asked), then has the store remove the payload while keeping the leaf hash.
   * Throws RedactionRefusedError when the rules refuse it; returns the index of the redaction entry.
   */
  async redact(index: number, req: RedactionRequest): Promise<{ redactionIndex: number }> {
    const store = this.store;
    if (store.redact === undefined)
      throw new RedactionRefusedError('this audit store does not support redaction');
    if (!Number.isSafeInteger(index) || index < 0 || index >= store.size)
      throw new RedactionRefusedError(`the log has no entry ${index}`);
    if ((await store.isRedacted?.(index)) === true)
      throw new RedactionRefusedError(`entry ${index} is already redacted`);
    const bytes = await store.read(index);
    if (bytes.length === 0) throw new RedactionRefusedError(`entry ${index} is already redacted`);
    let time: Date;
    try {
      const e = decodeEntry(bytes);
      if (e.kind === 'audit.redaction')
        throw new RedactionRefusedError('redaction entries are kept: they are the record of an erasure');
      time = new Date(e.time);
    } catch (e) {
      if (e instanceof RedactionRefusedError) throw e;
      throw new RedactionRefusedError(`entry ${index} is not a valid entry: ${(e as Error).message}`);
    }
    assertRedactionAllowed(time, req);
    const leaf = Buffer.from(store.tree.leafHash(index)).toString('base64');
    const { index: redactionIndex } = await this.append(
      makeEntry({
        kind: 'audit.redaction',
        index,
        leafHash: leaf,
        reason: req.reason,
        actor: req.actor,
        lawfulErasure: req.lawfulErasure === true,
        ...(req.now !== undefined ? { time: req.now } : {}),
      }),
    );
    await store.redact(index);
    return { redactionIndex };
  }

  /** Tells `f` of every checkpoint newly signed and stored from now on (e.g. to submit it to witnesses). */
  onCheckpoint(f: (note: Uint8Array, size: number) => void): void {
    this.checkpointListeners.push(f);
  }

  /** The last checkpoint signed (or found on open). */
  latestCheckpoint(): Uint8Array | undefined {
    return this.lastSigned?.note;
  }

  proveInclusion(index: number, size: number = this.size): InclusionProof {
    const tree = this.store.tree;
    return {
      index,
      size,
      leafHash: Uint8Array.from(tree.leafHash(index)),
      proof: tree.inclusionProof(index, size),
      root: tree.root(size),
    };
  }

  proveConsistency(size1: number, size2: number = this.size): ConsistencyProof {
    const tree = this.store.tree;
    return {
      size1,
      size2,
      root1: tree.root(size1),
      root2: tree.root(size2),
      proof: tree.consistencyProof(size1, size2),
    };
  }

  /** Stops periodic checkpoints. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops, waits for a checkpoint in progress, and closes the store. */
  async close(): Promise<void> {
    this.stop();
    await this.signing;
    await this.store.close();
  }
}
