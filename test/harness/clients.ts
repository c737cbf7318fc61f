// Real PostgreSQL client programs (psql, pgbench) run as child processes, with a clean libpq environment and a timeout.
import { HarnessError } from './errors.js';
import { runCommand, type CommandResult } from './sys.js';

export type { CommandResult } from './sys.js';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/** Where and as whom a client connects. */
export interface ClientTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** Passed as PGPASSWORD (never on the command line, where `ps` would show it). */
  readonly password?: string;
  readonly sslmode?: SslMode;
  readonly sslrootcert?: string;
  readonly sslcert?: string;
  readonly sslkey?: string;
  /** Extra environment variables, applied last. */
  readonly env?: Readonly<Record<string, string>>;
  /** libpq connect timeout in seconds (PGCONNECT_TIMEOUT). Default 10. */
  readonly connectTimeoutSec?: number;
  /** Kill the client after this long. Default 60 s. */
  readonly timeoutMs?: number;
}

export interface PsqlOptions extends ClientTarget {
  /** Extra arguments, e.g. ['-c', 'SELECT 1'] or ['-At', '-f', file]. */
  readonly args?: readonly string[];
  /** Text written to psql's standard input. */
  readonly input?: string;
}

/**
 * The libpq environment for a client: inherited PG* variables are dropped so a developer's
 * settings (PGHOST, PGSERVICE, ~/.pgpass via PGPASSFILE...) cannot leak into a test.
 */
export function clientEnv(t: ClientTarget): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env['PGCONNECT_TIMEOUT'] = String(t.connectTimeoutSec ?? 10);
  env['PGAPPNAME'] = 'warden-test';
  // With no password given, make sure none comes from a password file either.
  env['PGPASSFILE'] = '/nonexistent/warden-test/.pgpass';
  if (t.password !== undefined) env['PGPASSWORD'] = t.password;
  if (t.sslmode !== undefined) env['PGSSLMODE'] = t.sslmode;
  if (t.sslrootcert !== undefined) env['PGSSLROOTCERT'] = t.sslrootcert;
  if (t.sslcert !== undefined) env['PGSSLCERT'] = t.sslcert;
  if (t.sslkey !== undefined) env['PGSSLKEY'] = t.sslkey;
  Object.assign(env, t.env ?? {});
  return env;
}

function connArgs(t: ClientTarget): string[] {
  return ['-h', t.host, '-p', String(t.port), '-U', t.user];
}

/**
 * Run the real `psql` with `-X -q -v ON_ERROR_STOP=1 -w` (no psqlrc, quiet, stop at the first
 * error, never prompt for a password). A non-zero `code` means psql failed.
 */
export function runPsql(o: PsqlOptions): Promise<CommandResult> {
  const args = [
    '-X',
    '-q',
    '-v',
    'ON_ERROR_STOP=1',
    '-w',
    ...connArgs(o),
    '-d',
    o.database,
    ...(o.args ?? []),
  ];
  return runCommand('psql', args, {
    env: clientEnv(o),
    timeoutMs: o.timeoutMs ?? 60_000,
    ...(o.input === undefined ? {} : { input: o.input }),
  });
}

export interface PgbenchStats {
  /** Transactions per second, without initial connection time (null if not reported). */
  readonly tps: number | null;
  readonly latencyAvgMs: number | null;
  readonly latencyStddevMs: number | null;
  readonly initialConnectionMs: number | null;
  /** Transactions actually processed. */
  readonly transactions: number | null;
  /** Failed transactions (pgbench 15+; null when not reported). */
  readonly failed: number | null;
}

function num(text: string, re: RegExp): number | null {
  const m = re.exec(text);
  return m?.[1] === undefined ? null : Number(m[1]);
}

/**
 * Parse the summary pgbench prints. Handles pgbench 14+ ("tps = N (without initial connection
 * time)") and older ("tps = N (excluding connections establishing)").
 * @see https://www.postgresql.org/docs/current/pgbench.html#id-1.9.4.11.9.7
 */
export function parsePgbenchOutput(text: string): PgbenchStats {
  const tps =
    num(text, /^tps = ([\d.]+) \(without initial connection time\)/m) ??
    num(text, /^tps = ([\d.]+) \(excluding connections establishing\)/m) ??
    num(text, /^tps = ([\d.]+)/m);
  return {
    tps,
    latencyAvgMs: num(text, /^latency average = ([\d.]+) ms/m),
    latencyStddevMs: num(text, /^latency stddev = ([\d.]+) ms/m),
    initialConnectionMs: num(text, /^initial connection time = ([\d.]+) ms/m),
    transactions: num(text, /^number of transactions actually processed: (\d+)/m),
    failed: num(text, /^number of failed transactions: (\d+)/m),
  };
}

export interface PgbenchOptions extends ClientTarget {
  /** Concurrent clients (-c). Default 1. */
  readonly clients?: number;
  /** Threads (-j). Default 1. */
  readonly jobs?: number;
  /** Transactions per client (-t); exclusive with durationSec. */
  readonly transactions?: number;
  /** Run time in seconds (-T). */
  readonly durationSec?: number;
  /** Built-in script (-b). */
  readonly builtin?: 'tpcb-like' | 'simple-update' | 'select-only';
  /** Custom script files (-f); implies the caller passes -n if the pgbench tables do not exist. */
  readonly scripts?: readonly string[];
  /** Query protocol (-M). */
  readonly protocol?: 'simple' | 'extended' | 'prepared';
  /** Skip the VACUUM before the run (-n). */
  readonly noVacuum?: boolean;
  /** Any other arguments, placed before the database name. */
  readonly args?: readonly string[];
}

export interface PgbenchResult extends CommandResult, PgbenchStats {}

function positiveInt(name: string, v: number | undefined): string[] {
  if (v === undefined) return [];
  if (!Number.isInteger(v) || v <= 0)
    throw new HarnessError('INVALID_OPTION', `${name} must be a positive integer`);
  return [String(v)];
}

/** Run a pgbench benchmark and parse its summary. `code !== 0` or `tps === null` means it failed. */
export async function runPgbench(o: PgbenchOptions): Promise<PgbenchResult> {
  if (o.transactions !== undefined && o.durationSec !== undefined) {
    throw new HarnessError('INVALID_OPTION', 'give transactions or durationSec, not both');
  }
  const args = [...connArgs(o)];
  const c = positiveInt('clients', o.clients);
  if (c.length > 0) args.push('-c', ...c);
  const j = positiveInt('jobs', o.jobs);
  if (j.length > 0) args.push('-j', ...j);
  const t = positiveInt('transactions', o.transactions);
  if (t.length > 0) args.push('-t', ...t);
  const d = positiveInt('durationSec', o.durationSec);
  if (d.length > 0) args.push('-T', ...d);
  if (o.builtin !== undefined) args.push('-b', o.builtin);
  for (const f of o.scripts ?? []) args.push('-f', f);
  if (o.protocol !== undefined) args.push('-M', o.protocol);
  if (o.noVacuum === true) args.push('-n');
  args.push(...(o.args ?? []), o.database);
  const r = await runCommand('pgbench', args, {
    env: clientEnv(o),
    timeoutMs: o.timeoutMs ?? ((o.durationSec ?? 0) + 60) * 1000,
  });
  return { ...r, ...parsePgbenchOutput(r.stdout) };
}

/** `pgbench -i` (create and fill the pgbench tables) at the given scale (default 1). */
export function initPgbench(
  o: ClientTarget & { readonly scale?: number; readonly args?: readonly string[] },
): Promise<CommandResult> {
  const args = [
    '-i',
    '-q',
    '-s',
    ...positiveInt('scale', o.scale ?? 1),
    ...connArgs(o),
    ...(o.args ?? []),
    o.database,
  ];
  return runCommand('pgbench', args, { env: clientEnv(o), timeoutMs: o.timeoutMs ?? 300_000 });
}
