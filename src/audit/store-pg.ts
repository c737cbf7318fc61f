// The PostgreSQL audit store for multi-replica deployments: append-only tables (privileges + ALWAYS triggers), group commit, gap-free indexes.
//
// Life of an entry: append() queues the bytes -> the flush loop takes the queued entries (up to MAX_BATCH_ROWS /
// MAX_BATCH_BYTES) -> BEGIN; pg_advisory_xact_lock(log key); read the rows other replicas committed since our
// last look (catch-up); one multi-row INSERT (unnest of three arrays) at idx = size, size+1, ...; COMMIT -> only
// then the leaf hashes join the in-memory tree and each append resolves with its index.
//
// Index assignment: every batch of every replica takes the same transaction-scoped advisory lock, so batches are
// serialised and each one starts right after the last committed row (no sequence, so no gaps on rollback). The
// primary key on idx is the backstop: a race that the lock somehow missed fails the batch instead of forking.
// Throughput: one lock round trip, one catch-up query, one INSERT and one COMMIT (one WAL flush) per batch, not
// per entry; with concurrent sessions batches grow, so the cost per entry falls as load rises (measured here:
// thousands of entries per second on a laptop; a single session is bound by commit latency, ~1-3 ms locally).
//
// Redaction: the only UPDATE the trigger lets through sets a payload to NULL and keeps idx and leaf_hash; only
// the table owner may run it (the gateway role has no UPDATE privilege). Verification then uses the kept hash and
// requires an `audit.redaction` entry naming that index, so an unlogged redaction is detected.
import { GroupCommit } from './group-commit.js';
import { tmpdir } from 'node:os';
import pg from 'pg';
import { WardenError } from '../core/errors.js';
import {
  advisoryLockKey,
  appendOnlyTriggersSql,
  openStorePool,
  quoteStoreIdent as ident,
  runSchemaScript,
  type PgQueryable,
} from '../upstream/pg-pool.js';
import { MerkleTree, leafHash } from './merkle.js';
import { AuditCorruptionError, checkpointSizeOf } from './store-file.js';
import type { AuditStore } from './store-file.js';
import { MAX_RECORD_PAYLOAD } from './records.js';

export const DEFAULT_PG_SCHEMA = 'warden_audit';
export const DEFAULT_PG_TABLE = 'entries';
const MAX_BATCH_ROWS = 2000;
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
const PAGE = 5000;

export interface PgAuditTables {
  /** Schema holding the tables. Default `warden_audit`. */
  readonly schema?: string;
  /** Entries table; checkpoints live in `<table>_checkpoints`. Default `entries`. */
  readonly table?: string;
}

interface Names {
  readonly schema: string;
  readonly entries: string;
  readonly checkpoints: string;
  /** Advisory lock key shared by every replica writing this log. */
  readonly lockKey: string;
  readonly label: string;
  readonly rawSchema: string;
  readonly rawTable: string;
}

function names(t: PgAuditTables): Names {
  const schema = t.schema ?? DEFAULT_PG_SCHEMA;
  const table = t.table ?? DEFAULT_PG_TABLE;
  const s = ident(schema, 'schema');
  return {
    schema: s,
    entries: `${s}.${ident(table, 'table')}`,
    checkpoints: `${s}.${ident(`${table}_checkpoints`, 'table')}`,
    lockKey: advisoryLockKey(`warden-audit:${schema}.${table}`),
    label: `${schema}.${table}`,
    rawSchema: schema,
    rawTable: table,
  };
}

export type { PgQueryable } from '../upstream/pg-pool.js';

/**
 * Creates the schema, the two append-only tables, their triggers (ENABLED ALWAYS, so that
 * `session_replication_role = replica` does not skip them) and the gateway role's grants (USAGE, INSERT,
 * SELECT only). Run once by an operator with DDL rights; the caller owns the tables. Idempotent.
 */
export async function installPgAuditSchema(
  admin: PgQueryable,
  opts: PgAuditTables & { readonly gatewayRole: string },
): Promise<void> {
  const n = names(opts);
  const role = ident(opts.gatewayRole, 'gateway role');
  const fn = `${n.schema}.warden_audit_append_only`;
  const sql = `
BEGIN;
CREATE SCHEMA IF NOT EXISTS ${n.schema};
CREATE TABLE IF NOT EXISTS ${n.entries} (
  idx bigint PRIMARY KEY CHECK (idx >= 0),
  payload bytea CHECK (payload IS NULL OR length(payload) <= ${MAX_RECORD_PAYLOAD}),
  leaf_hash bytea NOT NULL CHECK (length(leaf_hash) = 32),
  written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${n.checkpoints} (
  seq bigint PRIMARY KEY CHECK (seq >= 0),
  size bigint NOT NULL CHECK (size >= 0),
  note bytea NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  -- INVARIANT: the only change ever allowed is a redaction: payload to NULL, idx and leaf hash unchanged.
  IF TG_OP = 'UPDATE' AND TG_ARGV[0] = 'redactable' THEN
    IF OLD.payload IS NOT NULL AND NEW.payload IS NULL AND NEW.idx = OLD.idx
       AND NEW.leaf_hash = OLD.leaf_hash AND NEW.written_at = OLD.written_at THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'warden audit table %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$f$;
${appendOnlyTriggersSql(n.entries, fn, "'redactable'")}
${appendOnlyTriggersSql(n.checkpoints, fn)}
REVOKE ALL ON ${n.entries}, ${n.checkpoints} FROM PUBLIC;
REVOKE ALL ON ${n.entries}, ${n.checkpoints} FROM ${role};
GRANT USAGE ON SCHEMA ${n.schema} TO ${role};
GRANT INSERT, SELECT ON ${n.entries}, ${n.checkpoints} TO ${role};
COMMIT;`;
  await runSchemaScript(admin, sql);
}

export interface PgAuditStoreOptions extends PgAuditTables {
  /** node-postgres connection settings (the gateway's INSERT-only role). */
  readonly connection: pg.PoolConfig;
}

interface Row {
  i: string;
  payload: Buffer | null;
  leaf_hash: Buffer;
}

const unavailable = (what: string, cause: unknown): WardenError =>
  cause instanceof WardenError
    ? cause
    : new WardenError('AUDIT_UNAVAILABLE', `the PostgreSQL audit store could not ${what}`, { cause });

/** Checks one stored row against its index and its leaf hash; returns the leaf hash to put in the tree. */
function checkRow(row: Row, expected: number, label: string): Uint8Array {
  const idx = Number(row.i);
  if (idx !== expected)
    throw new AuditCorruptionError(label, expected, expected, `row ${idx} found, ${expected} expected`);
  if (row.leaf_hash.length !== 32)
    throw new AuditCorruptionError(label, idx, idx, 'leaf hash is not 32 bytes');
  if (row.payload !== null && !Buffer.from(leafHash(row.payload)).equals(row.leaf_hash)) {
    throw new AuditCorruptionError(label, idx, idx, 'payload does not match its leaf hash');
  }
  return Uint8Array.from(row.leaf_hash);
}

export class PgAuditStore implements AuditStore {
  /** Leaf hashes spilled to unlinked files in the temp folder (rebuilt from the table at open): flat memory. */
  readonly tree = new MerkleTree({ kind: 'spill', dir: tmpdir() });
  private readonly commits = new GroupCommit({
    maxBatchBytes: MAX_BATCH_BYTES,
    maxBatchCount: MAX_BATCH_ROWS,
    write: (batch) => this.writeBatch(batch),
    // A database that is down fails each batch on its own; service resumes as soon as it is back.
    failed: (e) => ({
      error: e instanceof AuditCorruptionError ? e : unavailable('write durably', e),
      halt: false,
    }),
  });
  private closed = false;
  private latest: Uint8Array | undefined;
  private ckptChain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly pool: pg.Pool,
    private readonly n: Names,
  ) {}

  /**
   * Connects and loads the leaf hashes of every stored entry (each one checked against its payload) and the latest
   * checkpoint. Throws AuditCorruptionError on a gap or a mismatch, AUDIT_UNAVAILABLE if the database is unreachable.
   */
  static async open(opts: PgAuditStoreOptions): Promise<PgAuditStore> {
    const n = names(opts);
    const pool = openStorePool(opts.connection);
    const store = new PgAuditStore(pool, n);
    try {
      await store.catchUp(pool);
      const r = await pool.query<{ note: Buffer }>(
        `SELECT note FROM ${n.checkpoints} ORDER BY seq DESC LIMIT 1`,
      );
      store.latest = r.rows[0] === undefined ? undefined : Uint8Array.from(r.rows[0].note);
      const floor = store.latest === undefined ? 0 : (checkpointSizeOf(store.latest) ?? Infinity);
      if (store.tree.size < floor) {
        throw new AuditCorruptionError(
          n.label,
          store.tree.size,
          store.tree.size,
          `entries end before the last signed checkpoint (size ${floor})`,
        );
      }
    } catch (e) {
      await pool.end().catch(() => undefined);
      if (e instanceof AuditCorruptionError) throw e;
      throw unavailable('open', e);
    }
    return store;
  }

  /** Appends to the tree every row committed (by any replica) after our current size. */
  private async catchUp(q: PgQueryable): Promise<void> {
    for (;;) {
      const r = (await q.query(
        `SELECT idx::text AS i, payload, leaf_hash FROM ${this.n.entries} WHERE idx >= $1 ORDER BY idx LIMIT ${PAGE}`,
        [this.tree.size],
      )) as pg.QueryResult<Row>;
      for (const row of r.rows) this.tree.append(checkRow(row, this.tree.size, this.n.label));
      if (r.rows.length < PAGE) return;
    }
  }

  get size(): number {
    return this.tree.size;
  }

  /** Catches up with entries other replicas committed (before signing a checkpoint, for example). */
  async sync(): Promise<void> {
    const c = await this.pool.connect().catch((e: unknown) => {
      throw unavailable('connect', e);
    });
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [this.n.lockKey]);
      await this.catchUp(c);
      await c.query('COMMIT');
      c.release();
    } catch (e) {
      c.release(true);
      throw unavailable('read', e);
    }
  }

  append(entry: Uint8Array): Promise<{ index: number }> {
    if (this.closed) return Promise.reject(new WardenError('AUDIT_UNAVAILABLE', 'audit store is closed'));
    if (entry.length > MAX_RECORD_PAYLOAD)
      return Promise.reject(new WardenError('AUDIT_UNAVAILABLE', 'audit entry is too large'));
    return this.commits.append(entry);
  }

  /** One transaction: lock, catch up, insert, commit. Returns the first index. Rejects if COMMIT did not succeed. */
  private async writeBatch(payloads: readonly Uint8Array[]): Promise<number> {
    const c = await this.pool.connect();
    let ok = false;
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [this.n.lockKey]);
      await this.catchUp(c);
      const first = this.tree.size;
      const leaves = payloads.map((p) => Buffer.from(leafHash(p)));
      await c.query(
        `INSERT INTO ${this.n.entries} (idx, payload, leaf_hash) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])`,
        [payloads.map((_p, i) => String(first + i)), payloads.map((p) => Buffer.from(p)), leaves],
      );
      await c.query('COMMIT');
      ok = true;
      // INVARIANT: the tree only ever holds rows whose COMMIT has returned (ours) or that we read back (others').
      for (const l of leaves) this.tree.append(l);
      return first;
    } finally {
      // A connection in an unknown state is discarded; a failed COMMIT whose rows did land is read back by the
      // next batch's catch-up, so the tree never skips an index.
      c.release(!ok);
    }
  }

  async read(index: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size)
      throw new RangeError(`no entry ${index}`);
    let r: pg.QueryResult<{ payload: Buffer | null }>;
    try {
      r = await this.pool.query(`SELECT payload FROM ${this.n.entries} WHERE idx = $1`, [index]);
    } catch (e) {
      throw unavailable('read', e);
    }
    const p = r.rows[0]?.payload;
    if (p === undefined) throw new AuditCorruptionError(this.n.label, index, index, 'row is missing');
    if (p === null) return new Uint8Array(0);
    // INVARIANT: never hand out bytes that are not the entry the tree committed to.
    if (!Buffer.from(leafHash(p)).equals(this.tree.leafHash(index)))
      throw new AuditCorruptionError(this.n.label, index, index, 'payload does not match its leaf hash');
    return Uint8Array.from(p);
  }

  /** Whether entry `index` was redacted (its payload removed, its leaf hash kept). */
  async isRedacted(index: number): Promise<boolean> {
    const r = await this.pool.query<{ n: boolean }>(
      `SELECT payload IS NULL AS n FROM ${this.n.entries} WHERE idx = $1`,
      [index],
    );
    return r.rows[0]?.n === true;
  }

  /**
   * Removes entry `index`'s payload, keeping its leaf hash. Needs a connection as the table owner: the gateway's
   * INSERT-only role has no UPDATE privilege. Use AuditLog.redact, which logs the redaction first.
   */
  async redact(index: number): Promise<void> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size)
      throw new RangeError(`no entry ${index}`);
    if (await this.isRedacted(index)) return;
    await redactPgEntry(this.pool, { schema: this.n.rawSchema, table: this.n.rawTable }, index);
  }

  /**
   * Stores a checkpoint note under the advisory lock. Refuses a note smaller than the latest stored one (another
   * replica may have signed a larger tree meanwhile): the caller signs again after `sync()`.
   */
  appendCheckpoint(note: Uint8Array): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.closed) throw new WardenError('AUDIT_UNAVAILABLE', 'audit store is closed');
      const size = checkpointSizeOf(note);
      if (size === undefined) throw new WardenError('INTERNAL', 'not a checkpoint note');
      let c: pg.PoolClient;
      try {
        c = await this.pool.connect();
      } catch (e) {
        throw unavailable('connect', e);
      }
      let ok = false;
      try {
        await c.query('BEGIN');
        await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [this.n.lockKey]);
        const last = await c.query<{ s: string; z: string; note: Buffer }>(
          `SELECT seq::text AS s, size::text AS z, note FROM ${this.n.checkpoints} ORDER BY seq DESC LIMIT 1`,
        );
        const prev = last.rows[0];
        if (prev !== undefined && Number(prev.z) > size) {
          throw new WardenError(
            'AUDIT_UNAVAILABLE',
            `a checkpoint of size ${prev.z} is already stored; refusing size ${size}`,
          );
        }
        await c.query(`INSERT INTO ${this.n.checkpoints} (seq, size, note) VALUES ($1, $2, $3)`, [
          prev === undefined ? 0 : Number(prev.s) + 1,
          size,
          Buffer.from(note),
        ]);
        await c.query('COMMIT');
        ok = true;
        this.latest = Uint8Array.from(note);
      } catch (e) {
        throw unavailable('store a checkpoint', e);
      } finally {
        c.release(!ok);
      }
    };
    const p = this.ckptChain.then(run);
    this.ckptChain = p.catch(() => undefined);
    return p;
  }

  latestCheckpoint(): Uint8Array | undefined {
    return this.latest;
  }

  async readCheckpoints(): Promise<Uint8Array[]> {
    try {
      const r = await this.pool.query<{ note: Buffer }>(
        `SELECT note FROM ${this.n.checkpoints} ORDER BY seq`,
      );
      return r.rows.map((x) => Uint8Array.from(x.note));
    } catch (e) {
      throw unavailable('read checkpoints', e);
    }
  }

  /** Waits for queued appends, then closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.commits.idle();
    await this.ckptChain;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
    this.tree.close();
  }
}

/** Reads a PG log's rows in index order from `from` (default 0), page by page (for verification and export). */
export async function* readPgEntries(
  q: PgQueryable,
  tables: PgAuditTables,
  from = 0,
): AsyncGenerator<{ index: number; payload: Buffer | null; storedLeafHash: Buffer }> {
  const n = names(tables);
  let next = from;
  for (;;) {
    const r = (await q.query(
      `SELECT idx::text AS i, payload, leaf_hash FROM ${n.entries} WHERE idx >= $1 ORDER BY idx LIMIT ${PAGE}`,
      [next],
    )) as pg.QueryResult<Row>;
    for (const row of r.rows) {
      const index = Number(row.i);
      yield { index, payload: row.payload, storedLeafHash: row.leaf_hash };
      next = index + 1;
    }
    if (r.rows.length < PAGE) return;
  }
}

/** Reads a PG log's checkpoint notes in order. */
export async function readPgCheckpoints(q: PgQueryable, tables: PgAuditTables): Promise<Uint8Array[]> {
  const n = names(tables);
  const r = (await q.query(`SELECT note FROM ${n.checkpoints} ORDER BY seq`)) as pg.QueryResult<{
    note: Buffer;
  }>;
  return r.rows.map((x) => Uint8Array.from(x.note));
}

/** The SQL an operator (table owner) runs to redact entry `index`: payload gone, leaf hash kept. */
export async function redactPgEntry(owner: PgQueryable, tables: PgAuditTables, index: number): Promise<void> {
  const n = names(tables);
  const r = await owner.query(
    `UPDATE ${n.entries} SET payload = NULL WHERE idx = $1 AND payload IS NOT NULL`,
    [index],
  );
  if (r.rowCount !== 1)
    throw new WardenError('INTERNAL', `entry ${index} does not exist or is already redacted`);
}
