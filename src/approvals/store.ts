// Approval stores: the interface the service needs, and a durable local one (JSON Lines, append-only, fsync, replayed at start).
//
// Life of a record in the file store: the service checks it against the current state, then `append` writes it
// as one line with a single O_APPEND write and fsyncs before resolving; `readNew` returns every complete line not
// returned yet (its own included; the service skips records it already applied by `rid`). Several processes on
// one machine (the gateway and `warden approvals` commands) may share one file.
// INVARIANT: `append` MUST NOT resolve until the record is durable; a caller that sees it reject must not act.
// INVARIANT: an unparsable line can only be a torn write whose append never resolved (nothing acted on it), so
// it is skipped and reported; a record is never half-applied.

import { mkdirSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { WardenError } from '../core/errors.js';
import type { ApprovalRecord } from './model.js';

/** How a record is appended: the writer's view of its request, and what must happen just before the write. */
export interface AppendOptions {
  /**
   * Records of this request (audited markers excluded) the writer has applied. A store shared by several writers
   * (PgApprovalStore) refuses the append with StaleApprovalState if it holds a different number; the writer then
   * reads the new records and checks its record again. The local stores have one writer and ignore it.
   */
  readonly version?: number;
  /** Runs after the check and before the write (the audit entry): if it rejects, nothing is written. */
  readonly beforeWrite?: () => Promise<void>;
}

/** Another writer changed the request since the writer last read it: re-read, then check the record again. */
export class StaleApprovalState extends Error {
  constructor(
    readonly requestId: string,
    readonly expected: number,
    readonly stored: number,
  ) {
    super(`approval request ${requestId} changed elsewhere (${stored} records stored, ${expected} seen)`);
    this.name = 'StaleApprovalState';
  }
}

/** Where approval records live: the local JSON Lines file, memory, or PostgreSQL (store-pg.ts) for replicas. */
export interface ApprovalStore {
  /** Durably appends one record. MUST NOT resolve before the record survives a crash. */
  append(record: ApprovalRecord, opts?: AppendOptions): Promise<void>;
  /** Records not returned by earlier calls, in store order (everything on the first call). */
  readNew(): Promise<ApprovalRecord[]>;
  close(): Promise<void>;
}

export const APPROVALS_FILE = 'approvals.jsonl';
/** A line longer than this is refused (the statement text is the only large field). */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;

/** Whether a parsed value has the shape of a record (the service's rules check the rest). */
export function isApprovalRecord(v: unknown): v is ApprovalRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    r['v'] === 1 &&
    typeof r['rid'] === 'string' &&
    typeof r['at'] === 'string' &&
    typeof r['requestId'] === 'string' &&
    typeof r['actor'] === 'string' &&
    typeof r['type'] === 'string'
  );
}

/** The JSON Lines store in `dir/approvals.jsonl` (created 0600 in a 0700 folder). */
export class FileApprovalStore implements ApprovalStore {
  readonly path: string;
  private writer: FileHandle | undefined;
  private offset = 0;
  private pending = Buffer.alloc(0);
  /** Lines skipped as torn writes (tests, operators). */
  skipped = 0;

  constructor(
    dir: string,
    private readonly onWarning: (message: string) => void = defaultWarning,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.path = join(dir, APPROVALS_FILE);
  }

  private async openWriter(): Promise<FileHandle> {
    if (this.writer !== undefined) return this.writer;
    const fh = await open(this.path, 'a', 0o600);
    // A crash mid-append may have left a line without its newline: end it, so the next record starts clean.
    const { size } = await fh.stat();
    if (size > 0) {
      const last = Buffer.alloc(1);
      const rd = await open(this.path, 'r');
      try {
        await rd.read(last, 0, 1, size - 1);
      } finally {
        await rd.close();
      }
      if (last[0] !== 0x0a) {
        await fh.write('\n');
        await fh.sync();
      }
    }
    this.writer = fh;
    return fh;
  }

  async append(record: ApprovalRecord, opts: AppendOptions = {}): Promise<void> {
    const line = Buffer.from(JSON.stringify(record) + '\n', 'utf8');
    if (line.length > MAX_RECORD_BYTES) {
      throw new WardenError('INTERNAL', `approval record of ${line.length} bytes exceeds the limit`);
    }
    await opts.beforeWrite?.();
    try {
      const fh = await this.openWriter();
      await fh.write(line);
      await fh.sync();
    } catch (e) {
      throw new WardenError('INTERNAL', `the approvals store could not record the change: ${String(e)}`, {
        cause: e,
      });
    }
  }

  async readNew(): Promise<ApprovalRecord[]> {
    let size: number;
    try {
      size = (await stat(this.path)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    if (size <= this.offset) return [];
    const fh = await open(this.path, 'r');
    let chunk: Buffer;
    try {
      chunk = Buffer.alloc(size - this.offset);
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, this.offset);
      chunk = chunk.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    this.offset += chunk.length;
    const data = Buffer.concat([this.pending, chunk]);
    const end = data.lastIndexOf(0x0a);
    // Keep an unterminated tail for the next call: another process may be mid-write.
    this.pending = Buffer.from(end < 0 ? data : data.subarray(end + 1));
    if (end < 0) return [];
    const out: ApprovalRecord[] = [];
    for (const line of data.subarray(0, end).toString('utf8').split('\n')) {
      if (line === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (!isApprovalRecord(parsed)) {
        this.skipped++;
        this.onWarning(`skipped a torn or invalid line in ${this.path}`);
        continue;
      }
      out.push(parsed);
    }
    return out;
  }

  async close(): Promise<void> {
    const w = this.writer;
    this.writer = undefined;
    await w?.close();
  }
}

/** A store in memory (tests; a gateway without an approvals folder). Not durable. */
export class MemoryApprovalStore implements ApprovalStore {
  private readonly records: ApprovalRecord[] = [];
  private read = 0;
  async append(record: ApprovalRecord, opts: AppendOptions = {}): Promise<void> {
    await opts.beforeWrite?.();
    this.records.push(structuredClone(record));
  }
  readNew(): Promise<ApprovalRecord[]> {
    const out = this.records.slice(this.read);
    this.read = this.records.length;
    return Promise.resolve(out);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function defaultWarning(message: string): void {
  process.stderr.write(`${JSON.stringify({ level: 'warn', msg: message, component: 'approvals' })}\n`);
}
