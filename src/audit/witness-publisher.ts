// Gateway-side witness submission: every new signed checkpoint goes to each configured witness (C2SP tlog-witness add-checkpoint), cosignatures are verified and kept on disk, failures are retried with backoff and reported.
//
// Life of a checkpoint: AuditLog signs and stores it -> onCheckpoint -> each witness's worker takes the newest
// note, sends it with the consistency proof from the size that witness last cosigned (submitToWitness), checks
// that the answer carries a valid cosignature by the configured key, then writes the cosigned note durably to
// `dir/<witness>.cosigned` (temp file, fsync, rename, fsync folder). A failure is logged, counted and retried
// after a doubling delay; only the newest checkpoint is ever retried (a newer one supersedes an older one).
// INVARIANT: nothing here is on the statement path: the audit write-ahead never waits for a witness.
import { mkdir, open, readFile, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { WardenError } from '../core/errors.js';
import { openNote } from './note.js';
import type { NoteVerifier } from './note.js';
import { openCheckpoint } from './checkpoint.js';
import { submitToWitness } from './witness-http.js';
import { cosignatureVerifier } from './witness.js';
import type { AuditLog } from './log.js';
import type { Metrics } from '../admin-api/metrics.js';

/** A witness as configured: its add-checkpoint base URL and its cosigner verifier key (note format). */
export interface WitnessConfig {
  readonly url: string;
  readonly key: string;
}

export interface WitnessStatus {
  readonly name: string;
  readonly url: string;
  /** Size of the newest checkpoint this witness cosigned (0: none yet). */
  readonly cosignedSize: number;
  /** Size of the newest signed checkpoint not yet cosigned by this witness, if any. */
  readonly pendingSize?: number;
  /** Failures since the last success. */
  readonly consecutiveFailures: number;
  readonly totalFailures: number;
  readonly lastError?: string;
  readonly lastSuccessAt?: string;
  readonly nextRetryAt?: string;
}

export interface WitnessEvent {
  readonly level: 'info' | 'warn';
  readonly msg: string;
  readonly witness: string;
  readonly url: string;
  readonly size?: number;
  readonly error?: string;
  readonly retryInMs?: number;
}

export interface WitnessPublisherOptions {
  readonly log: AuditLog;
  readonly witnesses: readonly WitnessConfig[];
  /** Folder the cosigned checkpoints are kept in (one file per witness). */
  readonly dir: string;
  readonly onEvent?: (e: WitnessEvent) => void;
  /** First retry delay (default 1 s), doubled per failure up to `maxRetryMs` (default 60 s). */
  readonly initialRetryMs?: number;
  readonly maxRetryMs?: number;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
}

/** The folder, inside the audit folder, that holds each witness's latest cosigned checkpoint. */
export const COSIGNATURES_DIR = 'cosignatures';

/** Suffix of the files cosigned checkpoints are kept in. */
export const COSIGNED_SUFFIX = '.cosigned';

/** The file name a witness's cosigned checkpoint is kept under: its key name (made file-safe) and key id. */
export function cosignedFileName(v: NoteVerifier): string {
  return `${v.name.replace(/[^A-Za-z0-9._-]/g, '_')}+${v.keyId.toString(16).padStart(8, '0')}${COSIGNED_SUFFIX}`;
}

function sizeOf(note: Uint8Array): number {
  const m = /^[^\n]+\n(0|[1-9][0-9]*)\n/.exec(Buffer.from(note).toString('utf8'));
  return m === null ? -1 : Number(m[1]);
}

/** Parses configured witnesses; throws WardenError('CONFIG_INVALID') naming the bad one. */
export function parseWitnessConfigs(
  ws: readonly WitnessConfig[],
): (WitnessConfig & { readonly verifier: NoteVerifier })[] {
  const seen = new Set<string>();
  return ws.map((w, i) => {
    let u: URL;
    try {
      u = new URL(w.url);
    } catch {
      throw new WardenError('CONFIG_INVALID', `audit.witnesses[${i}].url is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new WardenError('CONFIG_INVALID', `audit.witnesses[${i}].url must be http or https`);
    let verifier: NoteVerifier;
    try {
      verifier = cosignatureVerifier(w.key.trim());
    } catch (e) {
      throw new WardenError(
        'CONFIG_INVALID',
        `audit.witnesses[${i}].key is not a cosignature/v1 verifier key: ${(e as Error).message}`,
      );
    }
    const id = `${verifier.name}+${verifier.keyId}`;
    if (seen.has(id)) throw new WardenError('CONFIG_INVALID', `audit.witnesses[${i}]: key listed twice`);
    seen.add(id);
    return { url: w.url, key: w.key.trim(), verifier };
  });
}

class WitnessWorker {
  cosignedSize = 0;
  consecutiveFailures = 0;
  totalFailures = 0;
  lastError: string | undefined;
  lastSuccessAt: Date | undefined;
  nextRetryAt: Date | undefined;
  /** The newest checkpoint to submit. */
  private want: Uint8Array | undefined;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly controller = new AbortController();
  private readonly waiters: { size: number; resolve: () => void }[] = [];

  constructor(
    readonly url: string,
    readonly verifier: NoteVerifier,
    private readonly p: WitnessPublisher,
    private readonly opts: WitnessPublisherOptions,
  ) {}

  get name(): string {
    return this.verifier.name;
  }

  get pendingSize(): number | undefined {
    const s = this.want === undefined ? -1 : sizeOf(this.want);
    return s > this.cosignedSize ? s : undefined;
  }

  offer(note: Uint8Array): void {
    if (this.closed) return;
    const size = sizeOf(note);
    if (size <= this.cosignedSize) return;
    if (this.want === undefined || size > sizeOf(this.want)) this.want = note;
    // A retry timer is pending: it will pick the newest note up; otherwise start now.
    if (this.timer === undefined) this.kick();
  }

  private kick(): void {
    if (this.running !== undefined || this.closed) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
    });
  }

  private async run(): Promise<void> {
    while (!this.closed && this.want !== undefined && sizeOf(this.want) > this.cosignedSize) {
      const note = this.want;
      const size = sizeOf(note);
      try {
        const cosigned = await this.submit(note);
        await this.p.store(this.verifier, cosigned);
        this.cosignedSize = size;
        this.consecutiveFailures = 0;
        this.lastError = undefined;
        this.lastSuccessAt = new Date();
        this.nextRetryAt = undefined;
        this.opts.onEvent?.({
          level: 'info',
          msg: 'checkpoint cosigned by witness',
          witness: this.name,
          url: this.url,
          size,
        });
        for (const w of this.waiters.filter((x) => x.size <= size)) w.resolve();
        this.waiters.splice(0, this.waiters.length, ...this.waiters.filter((x) => x.size > size));
      } catch (e) {
        if (this.closed) return;
        this.consecutiveFailures++;
        this.totalFailures++;
        this.lastError = (e as Error).message;
        const initial = this.opts.initialRetryMs ?? 1000;
        const max = this.opts.maxRetryMs ?? 60_000;
        const delay = Math.min(max, initial * 2 ** Math.min(30, this.consecutiveFailures - 1));
        this.nextRetryAt = new Date(Date.now() + delay);
        this.opts.onEvent?.({
          level: 'warn',
          msg: 'witness submission failed; will retry',
          witness: this.name,
          url: this.url,
          size,
          error: this.lastError,
          retryInMs: delay,
        });
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.kick();
        }, delay);
        this.timer.unref();
        return;
      }
    }
  }

  private async submit(note: Uint8Array): Promise<Uint8Array> {
    const tree = this.opts.log.store.tree;
    const signal = AbortSignal.any([
      this.controller.signal,
      AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
    ]);
    const cosigned = await submitToWitness(
      this.url,
      note,
      (a, b) => tree.consistencyProof(a, b),
      this.cosignedSize,
      signal,
    );
    // INVARIANT: only a cosignature by the configured key over exactly our checkpoint is kept.
    const opened = openNote(cosigned, [this.opts.log.verifier, this.verifier]);
    if (!opened.signatures.some((s) => s.name === this.verifier.name && s.keyId === this.verifier.keyId))
      throw new Error('the answer carries no cosignature by the configured witness key');
    if (Buffer.from(opened.text, 'utf8').compare(Buffer.from(note).subarray(0, opened.text.length)) !== 0)
      throw new Error('the witness cosigned another checkpoint');
    return cosigned;
  }

  /** Resolves once a checkpoint of at least `size` is cosigned. */
  cosigned(size: number): Promise<void> {
    if (this.cosignedSize >= size) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ size, resolve }));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.controller.abort();
    await this.running?.catch(() => undefined);
  }
}

export class WitnessPublisher {
  private readonly workers: WitnessWorker[];
  private writes: Promise<void> = Promise.resolve();

  private constructor(private readonly opts: WitnessPublisherOptions) {
    this.workers = parseWitnessConfigs(opts.witnesses).map(
      (w) => new WitnessWorker(w.url, w.verifier, this, opts),
    );
  }

  /**
   * Loads what each witness already cosigned (from `dir`), subscribes to new checkpoints and submits the log's
   * latest checkpoint where a witness has not cosigned it yet.
   */
  static async start(opts: WitnessPublisherOptions): Promise<WitnessPublisher> {
    const p = new WitnessPublisher(opts);
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    for (const w of p.workers) {
      const kept = await readCosigned(join(opts.dir, cosignedFileName(w.verifier)));
      if (kept === undefined) continue;
      try {
        const cp = openCheckpoint(kept, {
          origin: opts.log.origin,
          verifiers: [opts.log.verifier, w.verifier],
        }).checkpoint;
        // A kept cosignature for a tree this log does not hold is ignored (the witness then says where it is).
        if (cp.size <= opts.log.size && Buffer.from(opts.log.root(cp.size)).equals(cp.root))
          w.cosignedSize = cp.size;
      } catch {
        // Unreadable or foreign: start from 0; the witness answers 409 with its real size if it knows us.
      }
    }
    opts.log.onCheckpoint((note) => {
      for (const w of p.workers) w.offer(note);
    });
    const latest = opts.log.latestCheckpoint();
    if (latest !== undefined) for (const w of p.workers) w.offer(latest);
    return p;
  }

  /** Per witness: what it cosigned, what is pending, failures, the last error. */
  status(): WitnessStatus[] {
    return this.workers.map((w) => ({
      name: w.name,
      url: w.url,
      cosignedSize: w.cosignedSize,
      ...(w.pendingSize !== undefined ? { pendingSize: w.pendingSize } : {}),
      consecutiveFailures: w.consecutiveFailures,
      totalFailures: w.totalFailures,
      ...(w.lastError !== undefined ? { lastError: w.lastError } : {}),
      ...(w.lastSuccessAt !== undefined ? { lastSuccessAt: w.lastSuccessAt.toISOString() } : {}),
      ...(w.nextRetryAt !== undefined ? { nextRetryAt: w.nextRetryAt.toISOString() } : {}),
    }));
  }

  /**
   * Registers gauges rendered at each scrape: per witness the cosigned size, the pending size (0: none), failures
   * since the last success (alert when > 0 for long) and 1/0 whether the last attempt succeeded.
   */
  registerMetrics(registry: Metrics): void {
    const cosigned = registry.gauge(
      'warden_audit_witness_cosigned_size',
      'Size of the newest checkpoint each witness cosigned.',
      ['witness'],
    );
    const pending = registry.gauge(
      'warden_audit_witness_pending_size',
      'Size of the newest signed checkpoint a witness has not cosigned yet (0: none).',
      ['witness'],
    );
    const failures = registry.gauge(
      'warden_audit_witness_consecutive_failures',
      'Failed submissions to a witness since its last success.',
      ['witness'],
    );
    const up = registry.gauge(
      'warden_audit_witness_up',
      '1 if the last submission to the witness succeeded (or none failed yet), else 0.',
      ['witness'],
    );
    registry.onCollect(() => {
      for (const s of this.status()) {
        const l = { witness: s.name };
        cosigned.set(s.cosignedSize, l);
        pending.set(s.pendingSize ?? 0, l);
        failures.set(s.consecutiveFailures, l);
        up.set(s.consecutiveFailures === 0 ? 1 : 0, l);
      }
    });
  }

  /** Resolves once every witness cosigned a checkpoint of at least `size` (tests, shutdown). */
  async cosigned(size: number): Promise<void> {
    await Promise.all(this.workers.map((w) => w.cosigned(size)));
  }

  /** Writes a cosigned checkpoint durably (one write at a time). */
  store(v: NoteVerifier, cosigned: Uint8Array): Promise<void> {
    const run = async (): Promise<void> => {
      const path = join(this.opts.dir, cosignedFileName(v));
      const tmp = `${path}.tmp-${process.pid}`;
      const fh = await open(tmp, 'w', 0o644);
      try {
        await fh.writeFile(cosigned);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      const d = await open(this.opts.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    };
    const p = this.writes.then(run);
    this.writes = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    await this.writes;
  }
}

async function readCosigned(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Every cosigned checkpoint kept in `dir` (files ending in `.cosigned`). */
export async function readCosignedCheckpoints(dir: string): Promise<{ file: string; note: Uint8Array }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: { file: string; note: Uint8Array }[] = [];
  for (const n of names.filter((x) => x.endsWith(COSIGNED_SUFFIX)).sort()) {
    const note = await readCosigned(join(dir, n));
    if (note !== undefined) out.push({ file: join(dir, n), note });
  }
  return out;
}
