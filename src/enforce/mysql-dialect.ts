// The MySQL/MariaDB dialect of the policy hook: analysis by src/sql-mysql, MySQL mask expressions, column lists from information_schema over mysql2.
// @see https://mariadb.com/kb/en/information-schema-columns-table/
//
// The database of a MySQL target plays the part of a PostgreSQL schema: `app.customers` in a policy is table
// `customers` of database `app`. Unqualified names resolve against the target's database.
// INVARIANT: as for PostgreSQL, a column list that cannot be read is an error (the hook denies), never a guess.

import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import type { StatementVerdict } from '../core/context.js';
import { WardenError } from '../core/errors.js';
import type { TargetConfig } from '../config/gateway-config.js';
import type { TableProtection } from '../sql/rewrite.js';
import type { Policy } from '../policy/index.js';
import { analyzeMysql, wardenShowName } from '../sql-mysql/analyze.js';
import type { MysqlAnalysis } from '../sql-mysql/analyze.js';
import { MysqlShapes } from '../sql-mysql/fast-path.js';
import { mysqlLiteral, mysqlMaskSql, rewriteMysql } from '../sql-mysql/rewrite.js';
import type { MysqlTableProtection } from '../sql-mysql/rewrite.js';
import { CatalogCache } from './catalog-cache.js';
import type { CatalogCacheOptions, ColumnFetcher } from './catalog-cache.js';
import type { DialectAnalysis, DialectAnalyzeOptions, DialectPolicyVersion, SqlDialect } from './dialect.js';

const ANALYSIS_CACHE_MAX = 5000;
const ANALYSIS_CACHE_MAX_SQL = 16_384;

const COLUMNS_SQL =
  'SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ' +
  'ORDER BY ORDINAL_POSITION';

/** mysql2 TLS options for the target's upstream TLS mode. */
function mysqlSsl(target: TargetConfig): mysql.SslOptions | undefined {
  const t = target.tls;
  if (t.mode === 'disable') return undefined;
  if (t.mode === 'require') return { rejectUnauthorized: false };
  const ca = t.caFile === undefined ? undefined : readFileSync(t.caFile);
  return { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
}

/** Column lists read from information_schema as the target's first login, over one pooled connection. */
export function mysqlColumnFetcher(target: TargetConfig): {
  fetch: ColumnFetcher;
  close: () => Promise<void>;
} {
  const first = target.logins.values().next();
  if (first.done === true)
    throw new WardenError('CONFIG_INVALID', `target "${target.name}" has no upstream login`);
  const login = first.value;
  const ssl = mysqlSsl(target);
  const pool = mysql.createPool({
    host: target.host,
    port: target.port,
    database: target.database,
    user: login.user,
    ...(login.password !== undefined ? { password: login.password } : {}),
    ...(ssl !== undefined ? { ssl } : {}),
    connectionLimit: 1,
    connectTimeout: 5000,
    idleTimeout: 10_000,
    maxIdle: 1,
  });
  return {
    async fetch(schema, table) {
      try {
        const [rows] = await pool.query(COLUMNS_SQL, [schema, table]);
        return (rows as { name: string }[]).map((r) => String(r.name).toLowerCase());
      } catch (e) {
        // mysql2 errors name the server and the account, never the password.
        throw new WardenError(
          'UPSTREAM_UNAVAILABLE',
          `cannot read the columns of ${schema}.${table} from target ${target.name}`,
          {
            cause: e,
            detail: e instanceof Error ? e.message : String(e),
          },
        );
      }
    },
    close: () => pool.end(),
  };
}

/** The MySQL masks of a table, from the policy's mask specs (the decision names which columns stay masked). */
function mysqlProtection(key: string, p: TableProtection, policy: Policy): MysqlTableProtection {
  const specs = policy.masks.get(key) ?? [];
  const masks = new Map<string, string>();
  for (const column of p.masks.keys()) {
    const m = specs.find((x) => x.column === column);
    if (m === undefined)
      throw new WardenError('INSUFFICIENT_PRIVILEGE', `no mask definition for ${key}.${column}`);
    if (!p.columns.includes(column.toLowerCase()))
      throw new WardenError('CONFIG_INVALID', `mask for unknown column ${key}.${column}`);
    masks.set(column.toLowerCase(), mysqlMaskSql(m.spec, column.toLowerCase()));
  }
  return {
    columns: p.columns.map((c) => c.toLowerCase()),
    masks,
    ...(p.rowFilter === undefined ? {} : { rowFilter: p.rowFilter }),
  };
}

/** Why a server's global sql_mode / init_connect makes it read SQL differently from the pre-lexer, if it does. */
export function sqlModeProblem(mode: string, initConnect: string): string | undefined {
  const modes = mode.toUpperCase().split(',');
  const bad = ['ANSI_QUOTES', 'NO_BACKSLASH_ESCAPES', 'ANSI'].filter((m) => modes.includes(m));
  if (bad.length > 0) return `the server's sql_mode has ${bad.join(', ')}`;
  if (/sql_mode/i.test(initConnect)) return "the server's init_connect sets sql_mode";
  return undefined;
}

export interface MysqlDialectOptions {
  /** Column cache options (tests pass `fetch`). */
  readonly catalog?: CatalogCacheOptions;
  /** Check the server's global sql_mode at init (default true when the target names a server). */
  readonly checkSqlMode?: boolean;
  /**
   * Statements that differ only in plain literals share one analysis and decision key (src/sql-mysql/fast-path.ts);
   * default true.
   */
  readonly fastPath?: boolean;
}

class MysqlDialect implements SqlDialect {
  readonly name = 'mysql' as const;
  private readonly cache = new Map<string, MysqlAnalysis>();
  private readonly shapes = new MysqlShapes((sql) => this.full(sql));

  constructor(
    private readonly database: string,
    private readonly opts: MysqlDialectOptions,
    private readonly target: Partial<TargetConfig>,
  ) {}

  /**
   * Best effort: refuses a target whose server reads SQL differently from the pre-lexer (global sql_mode with
   * ANSI_QUOTES or NO_BACKSLASH_ESCAPES, or an init_connect that may set it). An unreachable server is not an
   * error here (the gateway starts; its statements fail upstream until it is back).
   */
  async init(): Promise<void> {
    const t = this.target;
    if (
      this.opts.checkSqlMode === false ||
      t.host === undefined ||
      t.logins === undefined ||
      t.port === undefined ||
      t.tls === undefined
    )
      return;
    const first = t.logins.values().next();
    if (first.done === true) return;
    const ssl = mysqlSsl(t as TargetConfig);
    let conn: mysql.Connection | undefined;
    let row: { mode?: string | null; init?: string | null } | undefined;
    try {
      conn = await mysql.createConnection({
        host: t.host,
        port: t.port,
        user: first.value.user,
        ...(first.value.password !== undefined ? { password: first.value.password } : {}),
        ...(ssl !== undefined ? { ssl } : {}),
        connectTimeout: 3000,
      });
      const [rows] = await conn.query('SELECT @@GLOBAL.sql_mode AS mode, @@GLOBAL.init_connect AS init');
      row = (rows as { mode?: string | null; init?: string | null }[])[0];
    } catch {
      return;
    } finally {
      await conn?.end().catch(() => undefined);
    }
    const problem = sqlModeProblem(row?.mode ?? '', row?.init ?? '');
    if (problem !== undefined) {
      throw new WardenError(
        'CONFIG_INVALID',
        `target "${t.name ?? this.database}": ${problem}, so it would read quotes differently from Warden's ` +
          'analyser; remove it from the server configuration',
      );
    }
  }

  /** The full analysis (lexed statements and trees) of a text, cached by text. */
  full(sql: string): MysqlAnalysis {
    const hit = this.cache.get(sql);
    if (hit !== undefined) {
      this.cache.delete(sql);
      this.cache.set(sql, hit);
      return hit;
    }
    const a = analyzeMysql(sql, { database: this.database });
    if (sql.length <= ANALYSIS_CACHE_MAX_SQL) {
      this.cache.set(sql, a);
      if (this.cache.size > ANALYSIS_CACHE_MAX) {
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
    }
    return a;
  }

  analyze(sql: string, opts: DialectAnalyzeOptions = {}): DialectAnalysis {
    if (this.opts.fastPath === false || opts.fastPath === false) return this.own(this.full(sql), `mt${sql}`);
    const r = this.shapes.lookup(sql, this.database);
    // A shared summary is the template's (checked: no denial, no error), with this text; masks and row filters
    // are still rewritten from the text's own parse (rewrite()).
    if (r.shared) return { analysis: { statements: [r.summary] }, key: `m${r.key}` };
    return this.own(r.analysis, `m${r.key}`);
  }

  /** A text's own analysis as the hook reads it. */
  private own(a: MysqlAnalysis, key: string): DialectAnalysis {
    const statements = a.statements.map((s) => s.summary);
    return {
      analysis: a.error !== undefined ? { statements, error: a.error } : { statements },
      key,
      ...(a.denied !== undefined ? { denied: a.denied } : {}),
    };
  }

  answerShow(sql: string, version: DialectPolicyVersion | undefined): StatementVerdict | undefined {
    if (version === undefined) return undefined;
    const name = wardenShowName(sql);
    if (name === undefined) return undefined;
    const value = name === 'warden.policy_version' ? `${version.label} ${version.hash}` : version.hash;
    const rule = `warden:show-${name.slice('warden.'.length).replace('_', '-')}`;
    return {
      action: 'allow',
      // The shape of SHOW VARIABLES: Variable_name, Value.
      sql: `SELECT ${mysqlLiteral(name)} AS Variable_name, ${mysqlLiteral(value)} AS Value`,
      decision: {
        effect: 'allow',
        rules: [rule],
        reasons: ['the running policy version is visible to every session'],
        protections: {},
        rewritten: true,
        cached: false,
      },
    };
  }

  rewrite(sql: string, protections: ReadonlyMap<string, TableProtection>, policy: Policy): Promise<string> {
    const mine = new Map<string, MysqlTableProtection>();
    for (const [k, p] of protections) mine.set(k, mysqlProtection(k, p, policy));
    const out = rewriteMysql(this.full(sql), mine, this.database);
    return Promise.resolve(out ?? sql);
  }

  catalog(target: TargetConfig): CatalogCache {
    const o = this.opts.catalog ?? {};
    if (o.fetch !== undefined) return new CatalogCache(target.name, o.fetch, o);
    const up = mysqlColumnFetcher(target);
    return new CatalogCache(target.name, up.fetch, { ...o, close: up.close });
  }
}

/** The dialect of a MySQL/MariaDB target (its database resolves unqualified names). */
export function mysqlDialect(
  target: Pick<TargetConfig, 'database'> & Partial<TargetConfig>,
  opts: MysqlDialectOptions = {},
): SqlDialect & {
  full(sql: string): MysqlAnalysis;
} {
  return new MysqlDialect(target.database.toLowerCase(), opts, target);
}
