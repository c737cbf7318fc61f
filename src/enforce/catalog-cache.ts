// Column lists of upstream tables for the mask/row-filter rewriter: fetched over a small internal connection, cached per target with a TTL.
// @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
//
// INVARIANT: a column list that cannot be fetched is an error, never an empty or guessed list; the policy hook
// turns that error into a denial, so a protected table is never forwarded unmasked.

import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import pg from 'pg';
import { WardenError } from '../core/errors.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { GuardedPgClient } from '../upstream/pg-client.js';

/** Fetches the ordered column names of `schema.table` (attnum > 0, not dropped). Empty = no such table. */
export type ColumnFetcher = (schema: string, table: string) => Promise<readonly string[]>;

export interface CatalogCacheOptions {
  /** How long a fetched list is trusted. Default 30 s. */
  readonly ttlMs?: number;
  /** Monotonic-enough clock in milliseconds (tests). */
  readonly now?: () => number;
  /** Replaces the upstream query (tests, the CLI's `--columns`). */
  readonly fetch?: ColumnFetcher;
  /** Bound on cached tables. Default 5000. */
  readonly maxEntries?: number;
}

const COLUMNS_SQL = `SELECT a.attname AS name
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

/** node-postgres TLS options for the target's upstream TLS mode (the same modes the session's upstream link uses). */
export function pgSslOptions(target: TargetConfig): pg.ClientConfig['ssl'] {
  const t = target.tls;
  if (t.mode === 'disable') return false;
  if (t.mode === 'require') return { rejectUnauthorized: false };
  const ca = t.caFile === undefined ? undefined : readFileSync(t.caFile);
  const base: tls.ConnectionOptions = { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
  if (t.mode === 'verify-ca') return { ...base, checkServerIdentity: () => undefined };
  const name = t.serverName ?? target.host;
  return {
    ...base,
    servername: name,
    checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(name, cert),
  };
}

/** A fetcher that queries the target's upstream as the target's first login, over one pooled connection. */
export function upstreamColumnFetcher(target: TargetConfig): {
  fetch: ColumnFetcher;
  close: () => Promise<void>;
} {
  const first = target.logins.values().next();
  if (first.done === true)
    throw new WardenError('CONFIG_INVALID', `target "${target.name}" has no upstream login`);
  const login = first.value;
  const pool = new pg.Pool({
    // Never a cleartext password over an unencrypted connection (as the session's own upstream link).
    Client: GuardedPgClient,
    host: target.host,
    port: target.port,
    database: target.database,
    user: login.user,
    ...(login.password !== undefined ? { password: login.password } : {}),
    ssl: pgSslOptions(target),
    max: 1,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: 5_000,
    allowExitOnIdle: true,
    application_name: 'warden-catalog',
  });
  // An idle connection that dies must not crash the gateway; the next query reconnects.
  pool.on('error', () => undefined);
  return {
    async fetch(schema, table) {
      try {
        const r = await pool.query<{ name: string }>(COLUMNS_SQL, [schema, table]);
        return r.rows.map((row) => row.name);
      } catch (e) {
        // The message never holds the password: node-postgres errors name the server, not the credentials.
        throw new WardenError(
          'UPSTREAM_UNAVAILABLE',
          `cannot read the columns of ${schema}.${table} from target ${target.name}`,
          { cause: e, detail: e instanceof Error ? e.message : String(e) },
        );
      }
    },
    close: () => pool.end(),
  };
}

interface Entry {
  readonly columns: readonly string[];
  readonly expires: number;
}

/** Per-target cache of table column lists. Concurrent requests for one table share one fetch. */
export class CatalogCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<readonly string[]>>();
  /** Bumped by every invalidation: a fetch that started before one is returned but not cached. */
  private generation = 0;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly maxEntries: number;
  private readonly fetcher: ColumnFetcher;
  private readonly closer: (() => Promise<void>) | undefined;

  constructor(
    readonly targetName: string,
    fetcher: ColumnFetcher,
    opts: Omit<CatalogCacheOptions, 'fetch'> & { close?: () => Promise<void> } = {},
  ) {
    this.fetcher = fetcher;
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.maxEntries = opts.maxEntries ?? 5000;
    this.closer = opts.close;
  }

  /** A cache that reads the target's upstream (or `opts.fetch` when given). */
  static forTarget(target: TargetConfig, opts: CatalogCacheOptions = {}): CatalogCache {
    if (opts.fetch !== undefined) return new CatalogCache(target.name, opts.fetch, opts);
    const up = upstreamColumnFetcher(target);
    return new CatalogCache(target.name, up.fetch, { ...opts, close: up.close });
  }

  /**
   * The ordered column list of `schema.table`. Rejects (WardenError) when it cannot be fetched or the table has
   * no columns visible in the catalog (unknown table): callers must deny.
   */
  async columns(schema: string, table: string): Promise<readonly string[]> {
    const key = `${schema}.${table}`;
    const hit = this.entries.get(key);
    if (hit !== undefined && hit.expires > this.now()) return hit.columns;
    let p = this.inflight.get(key);
    if (p === undefined) {
      const gen = this.generation;
      const started = this.load(schema, table, key, gen).finally(() => {
        if (this.inflight.get(key) === started) this.inflight.delete(key);
      });
      p = started;
      this.inflight.set(key, p);
    }
    return p;
  }

  private async load(schema: string, table: string, key: string, gen: number): Promise<readonly string[]> {
    const cols = Object.freeze([...(await this.fetcher(schema, table))]);
    if (cols.length === 0) {
      throw new WardenError('INSUFFICIENT_PRIVILEGE', `table ${key} was not found in the upstream catalog`);
    }
    if (gen === this.generation) {
      this.entries.delete(key);
      this.entries.set(key, { columns: cols, expires: this.now() + this.ttlMs });
      if (this.entries.size > this.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done !== true) this.entries.delete(oldest.value);
      }
    }
    return cols;
  }

  /** Drops one table's entry, or every entry (after DDL whose effects are not confined to named tables). */
  invalidate(schema?: string, table?: string): void {
    this.generation++;
    if (schema === undefined || table === undefined) this.entries.clear();
    else this.entries.delete(`${schema}.${table}`);
    // In-flight fetches may predate the DDL: forget them so the next caller fetches afresh.
    this.inflight.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Closes the internal connection, if this cache opened one. */
  async close(): Promise<void> {
    await this.closer?.();
  }
}
