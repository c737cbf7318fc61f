// node-postgres helpers shared by Warden's own PostgreSQL stores (audit, approvals): the pool, quoted names, schema scripts.

import { createHash } from 'node:crypto';
import pg from 'pg';
import { WardenError } from '../core/errors.js';

/** What an operator's client must offer (a pg.Client or a pg.Pool). */
export interface PgQueryable {
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
}

const IDENT = /^[a-z_][a-z0-9_]{0,50}$/;

/** Quotes a validated lower-case identifier (schema, table, role); anything else is a configuration error. */
export function quoteStoreIdent(name: string, what: string): string {
  if (!IDENT.test(name))
    throw new WardenError('CONFIG_INVALID', `${what} "${name}" must match ${IDENT.source}`);
  return `"${name}"`;
}

/** A transaction-scoped advisory lock key (a bigint, as text) derived from a store's name. */
export function advisoryLockKey(name: string): string {
  return createHash('sha256').update(name).digest().readBigInt64BE(0).toString();
}

/**
 * A store's pool: small, with connect / query / idle timeouts; `connection` (which may set `Client`, e.g.
 * GuardedPgClient, and the held password) overrides the defaults. A connection the server closes, idle or
 * checked out, never crashes the process: its queries reject, and that is how a failure reaches the caller.
 */
export function openStorePool(connection: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool({
    max: 3,
    connectionTimeoutMillis: 5000,
    query_timeout: 15_000,
    idleTimeoutMillis: 10_000,
    ...connection,
  });
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Runs an install script (its own BEGIN … COMMIT); on failure rolls back and rethrows. */
export async function runSchemaScript(admin: PgQueryable, sql: string): Promise<void> {
  try {
    await admin.query(sql);
  } catch (e) {
    await admin.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/**
 * The triggers that keep a store table append-only: UPDATE/DELETE (per row, `fn(rowArg)`) and TRUNCATE refused by
 * `fn`, enabled ALWAYS so that `session_replication_role = replica` does not skip them. Part of an install script.
 */
export function appendOnlyTriggersSql(table: string, fn: string, rowArg = ''): string {
  return `DROP TRIGGER IF EXISTS warden_append_only_rows ON ${table};
CREATE TRIGGER warden_append_only_rows BEFORE UPDATE OR DELETE ON ${table}
  FOR EACH ROW EXECUTE FUNCTION ${fn}(${rowArg});
DROP TRIGGER IF EXISTS warden_append_only_truncate ON ${table};
CREATE TRIGGER warden_append_only_truncate BEFORE TRUNCATE ON ${table}
  FOR EACH STATEMENT EXECUTE FUNCTION ${fn}();
ALTER TABLE ${table} ENABLE ALWAYS TRIGGER warden_append_only_rows;
ALTER TABLE ${table} ENABLE ALWAYS TRIGGER warden_append_only_truncate;`;
}
