// Group commit for audit stores: appends made together are written and made durable as one batch.
//
// Life of an append: `append()` queues the bytes and, unless a flush is running, schedules one for the end of the
// current tick, so entries appended together share one write and one sync. The flush loop takes as many queued
// entries as fit a batch, hands them to the store's `write`, and resolves each append with its index only after
// `write` has returned (INVARIANT: an append MUST NOT resolve before its batch is durable). Entries queued while
// a batch is being written form the next batch.

interface Pending {
  readonly payload: Uint8Array;
  readonly resolve: (v: { index: number }) => void;
  readonly reject: (e: unknown) => void;
}

export interface GroupCommitOptions {
  /** Largest batch in bytes (a single larger entry still forms a batch of its own). */
  readonly maxBatchBytes: number;
  /** Most entries in one batch. */
  readonly maxBatchCount?: number;
  /** Bytes each entry adds beyond its payload (record framing), counted against `maxBatchBytes`. */
  readonly perEntryOverhead?: number;
  /** Writes one batch durably and returns the index of its first entry; throws if it did not become durable. */
  write(batch: readonly Uint8Array[]): Promise<number>;
  /**
   * Maps a failed write to the error its appends reject with. With `halt`, the entries still queued are rejected
   * too and nothing more is written until `resume()` (a store that must be recovered first).
   */
  failed(cause: unknown): { readonly error: unknown; readonly halt: boolean };
}

export class GroupCommit {
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private halted = false;

  constructor(private readonly opts: GroupCommitOptions) {}

  append(payload: Uint8Array): Promise<{ index: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ payload, resolve, reject });
      if (!this.scheduled && this.flushing === undefined) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.start();
        });
      }
    });
  }

  /**
   * Stops writing (the store failed elsewhere, e.g. a checkpoint write): queued appends reject with `error` and
   * nothing more is written until `resume()`. A batch already being written completes or fails on its own.
   */
  halt(error: unknown): void {
    this.halted = true;
    const rest = this.queue;
    this.queue = [];
    for (const p of rest) p.reject(error);
  }

  /** Allows writing again after a halting failure (the store has recovered). */
  resume(): void {
    this.halted = false;
    this.start();
  }

  /** Resolves when nothing is queued, scheduled or being written. */
  async idle(): Promise<void> {
    while (this.flushing !== undefined || this.scheduled) {
      await this.flushing;
      await new Promise((r) => setImmediate(r));
    }
  }

  private start(): void {
    if (this.flushing !== undefined || this.halted || this.queue.length === 0) return;
    this.flushing = this.loop().finally(() => {
      this.flushing = undefined;
      this.start();
    });
  }

  private takeBatch(): Pending[] {
    const { maxBatchBytes, maxBatchCount = Infinity, perEntryOverhead = 0 } = this.opts;
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < maxBatchCount) {
      const size = (this.queue[n] as Pending).payload.length + perEntryOverhead;
      if (n > 0 && bytes + size > maxBatchBytes) break;
      bytes += size;
      n++;
    }
    const batch = this.queue.slice(0, n);
    this.queue = this.queue.slice(n);
    return batch;
  }

  private async loop(): Promise<void> {
    while (this.queue.length > 0 && !this.halted) {
      const batch = this.takeBatch();
      let first: number;
      try {
        first = await this.opts.write(batch.map((p) => p.payload));
      } catch (e) {
        const { error, halt } = this.opts.failed(e);
        let rejected = batch;
        if (halt) {
          this.halted = true;
          rejected = [...batch, ...this.queue];
          this.queue = [];
        }
        for (const p of rejected) p.reject(error);
        continue;
      }
      for (let i = 0; i < batch.length; i++) (batch[i] as Pending).resolve({ index: first + i });
    }
  }
}
