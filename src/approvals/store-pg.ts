// The PostgreSQL approvals store for several gateway replicas: one append-only table of records, serialised appends, per-request version checks.
//
// Life of an append: BEGIN → pg_advisory_xact_lock(store key) (every replica's appends are serialised, so `seq`
// is assigned in commit order and a reader never skips a row committed late) → count the request's records
// (audited markers excluded) and compare with the version the writer has applied: if another replica added one
// since, ROLLBACK and throw StaleApprovalState (the service re-reads and checks its record again) → the caller's
// `beforeWrite` (the audit entry) → INSERT at seq = last + 1 → COMMIT. Only then does `append` resolve.
// INVARIANT: a record is only ever written against the request state its writer checked it on: two replicas
// deciding or using the same request cannot both succeed (no double count, no second run of a run-once approval).
// INVARIANT: append-only: the gateway role has INSERT and SELECT only, and triggers refuse UPDATE, DELETE and
// TRUNCATE even for the owner (ENABLE ALWAYS).

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
import type { ApprovalRecord } from './model.js';
import { MAX_RECORD_BYTES, StaleApprovalState, isApprovalRecord } from './store.js';
import type { AppendOptions, ApprovalStore } from './store.js';

export const DEFAULT_APPROVALS_PG_SCHEMA = 'warden_approvals';
export const DEFAULT_APPROVALS_PG_TABLE = 'records';
const PAGE = 5000;

export interface PgApprovalTables {
  /** Schema holding the table. Default `warden_approvals`. */
  readonly schema?: string;
  /** Records table. Default `records`. */
  readonly table?: string;
}

interface Names {
  readonly schema: string;
  readonly table: string;
  readonly lockKey: string;
  readonly label: string;
}

function names(t: PgApprovalTables): Names {
  const schema = t.schema ?? DEFAULT_APPROVALS_PG_SCHEMA;
  const table = t.table ?? DEFAULT_APPROVALS_PG_TABLE;
  const s = ident(schema, 'schema');
  return {
    schema: s,
    table: `${s}.${ident(table, 'table')}`,
    lockKey: advisoryLockKey(`warden-approvals:${schema}.${table}`),
    label: `${schema}.${table}`,
  };
}

export type { PgQueryable } from '../upstream/pg-pool.js';

/**
 * Creates the schema, the append-only records table and its triggers, and grants the gateway role USAGE,
 * INSERT and SELECT only. Run once by an operator with DDL rights. Idempotent.
 */
export async function installPgApprovalSchema(
  admin: PgQueryable,
  opts: PgApprovalTables & { readonly gatewayRole: string },
): Promise<void> {
  const n = names(opts);
  const role = ident(opts.gatewayRole, 'gateway role');
  const fn = `${n.schema}.warden_approvals_append_only`;
  const sql = `
BEGIN;
CREATE SCHEMA IF NOT EXISTS ${n.schema};
CREATE TABLE IF NOT EXISTS ${n.table} (
  seq bigint PRIMARY KEY CHECK (seq >= 0),
  scope text NOT NULL,
  rid text NOT NULL UNIQUE,
  request_id text NOT NULL,
  counted boolean NOT NULL,
  record text NOT NULL CHECK (length(record) <= ${MAX_RECORD_BYTES}),
  written_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS warden_approvals_by_request ON ${n.table} (scope, request_id) WHERE counted;
CREATE INDEX IF NOT EXISTS warden_approvals_by_scope ON ${n.table} (scope, seq);
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION 'warden approvals table %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$f$;
${appendOnlyTriggersSql(n.table, fn)}
REVOKE ALL ON ${n.table} FROM PUBLIC;
REVOKE ALL ON ${n.table} FROM ${role};
GRANT USAGE ON SCHEMA ${n.schema} TO ${role};
GRANT INSERT, SELECT ON ${n.table} TO ${role};
COMMIT;`;
  await runSchemaScript(admin, sql);
}

export interface PgApprovalStoreOptions extends PgApprovalTables {
  /** node-postgres connection settings (the gateway's INSERT/SELECT role). */
  readonly connection: pg.PoolConfig;
  /**
   * Whose records these are (the gateway uses the target's name): one table holds several services' records,
   * and each reads and versions only its own scope. Default ''.
   */
  readonly scope?: string;
  readonly onWarning?: (message: string) => void;
}

const unavailable = (what: string, cause: unknown): WardenError =>
  cause instanceof WardenError
    ? cause
    : new WardenError('INTERNAL', `the PostgreSQL approvals store could not ${what}`, { cause });

export class PgApprovalStore implements ApprovalStore {
  /** The last `seq` returned by readNew. */
  private cursor = -1;
  private closed = false;
  /** Rows skipped as unreadable (tests, operators). */
  skipped = 0;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly n: Names,
    private readonly scope: string,
    private readonly onWarning: (message: string) => void,
  ) {}

  /** Connects and checks that the table is there (installPgApprovalSchema creates it). */
  static async open(opts: PgApprovalStoreOptions): Promise<PgApprovalStore> {
    const n = names(opts);
    const pool = openStorePool(opts.connection);
    try {
      await pool.query(`SELECT 1 FROM ${n.table} LIMIT 0`);
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw unavailable(`open ${n.label} (run installPgApprovalSchema first)`, e);
    }
    return new PgApprovalStore(pool, n, opts.scope ?? '', opts.onWarning ?? defaultWarning);
  }

  async append(record: ApprovalRecord, opts: AppendOptions = {}): Promise<void> {
    if (this.closed) throw new WardenError('INTERNAL', 'the approvals store is closed');
    const text = JSON.stringify(record);
    if (Buffer.byteLength(text, 'utf8') > MAX_RECORD_BYTES)
      throw new WardenError('INTERNAL', 'approval record exceeds the size limit');
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
      const counted = record.type !== 'audited';
      if (opts.version !== undefined) {
        const r = await c.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM ${this.n.table} WHERE scope = $1 AND request_id = $2 AND counted`,
          [this.scope, record.requestId],
        );
        const stored = Number(r.rows[0]?.n ?? '0');
        if (stored !== opts.version) {
          await c.query('ROLLBACK');
          ok = true;
          throw new StaleApprovalState(record.requestId, opts.version, stored);
        }
      }
      // The audit entry is durable before the record is: if it cannot be made, nothing changes.
      await opts.beforeWrite?.();
      await c.query(
        `INSERT INTO ${this.n.table} (seq, scope, rid, request_id, counted, record)
         SELECT coalesce(max(seq), -1) + 1, $1, $2, $3, $4, $5 FROM ${this.n.table}`,
        [this.scope, record.rid, record.requestId, counted, text],
      );
      await c.query('COMMIT');
      ok = true;
    } catch (e) {
      if (e instanceof StaleApprovalState) throw e;
      if (!ok) await c.query('ROLLBACK').catch(() => undefined);
      throw unavailable('record the change', e);
    } finally {
      c.release(!ok);
    }
  }

  async readNew(): Promise<ApprovalRecord[]> {
    const out: ApprovalRecord[] = [];
    for (;;) {
      let r: pg.QueryResult<{ s: string; record: string }>;
      try {
        r = await this.pool.query(
          `SELECT seq::text AS s, record FROM ${this.n.table} WHERE scope = $1 AND seq > $2 ORDER BY seq LIMIT ${PAGE}`,
          [this.scope, this.cursor],
        );
      } catch (e) {
        throw unavailable('read', e);
      }
      for (const row of r.rows) {
        this.cursor = Number(row.s);
        let parsed: unknown;
        try {
          parsed = JSON.parse(row.record);
        } catch {
          parsed = undefined;
        }
        if (!isApprovalRecord(parsed)) {
          this.skipped++;
          this.onWarning(`skipped an invalid approval record at seq ${row.s} in ${this.n.label}`);
          continue;
        }
        out.push(parsed);
      }
      if (r.rows.length < PAGE) return out;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }
}

function defaultWarning(message: string): void {
  process.stderr.write(`${JSON.stringify({ level: 'warn', msg: message, component: 'approvals' })}\n`);
}
