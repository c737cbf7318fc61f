// Runs one MySQL corpus case: every step goes to the statement hook first; what it allows (rewritten) runs on MariaDB; the case is judged on canaries, rows and the state digest.
import { Readable } from 'node:stream';
import type mysql from 'mysql2/promise';
import type { Principal, SessionContext, StatementHook, StatementVerdict } from '../../src/core/context.js';
import type { Case, CorpusUser, Step } from './model.js';
import { DB, stateDigest, type Canary } from './seed.js';

export const DENY_SQLSTATES: readonly string[] = ['42501', '42601'];

export interface CorpusEnv {
  readonly hook: StatementHook;
  /** Root connection for the digest (never used by cases). */
  readonly root: mysql.Connection;
  /** A fresh connection for one case (what the gateway's upstream link would be). */
  connect(): Promise<mysql.Connection>;
  readonly principals: Record<CorpusUser, Principal>;
  readonly forbidden: Record<CorpusUser, readonly Canary[]>;
  /**
   * Through the real gateway instead: a mysql2 connection to Warden's MySQL front end as the user (the hook is
   * then the gateway's own; `hook` is unused). LOAD DATA LOCAL is never honoured by the front end.
   */
  readonly gateway?: (user: CorpusUser) => Promise<mysql.Connection>;
}

export interface Observed {
  /** Verdict of the case's own step (through the gateway: derived from Warden's ERR packet). */
  verdict?: StatementVerdict;
  /** Session state before and after the case (through the gateway). */
  stateBefore?: string;
  stateAfter?: string;
  /** Error MariaDB answered for the case's own step. */
  error?: string;
  rows: number;
  /** Everything received (setup included): rows, errors, warnings, as text. */
  received: string[];
  digestBefore?: string;
  digestAfter?: string;
}

export interface Judgement {
  readonly ok: boolean;
  readonly problems: readonly string[];
  readonly observed: Observed;
}

let sessionSeq = 0;

function session(user: Principal): SessionContext {
  sessionSeq++;
  return {
    sessionId: `mysql-corpus-${process.pid}-${sessionSeq}`,
    protocol: 'mysql',
    principal: user,
    target: DB,
    environment: 'test',
    database: DB,
    sourceAddress: '127.0.0.1',
    tls: false,
    applicationName: 'mysql-corpus',
    startedAt: new Date(),
  };
}

/** Text forms of a value, so bytes and hex both get searched. */
function textOf(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x !== null && typeof x === 'object' && (x as { type?: string }).type === 'Buffer') {
      const b = Buffer.from((x as { data: number[] }).data);
      return `${b.toString('utf8')} ${b.toString('hex')}`;
    }
    return x;
  });
}

/** Every spelling of a token a leak could take: verbatim, upper case, reversed, hex of either case. */
export function canaryPatterns(token: string): string[] {
  const up = token.toUpperCase();
  const rev = [...token].reverse().join('');
  return [token, up, rev, Buffer.from(token).toString('hex'), Buffer.from(up).toString('hex')].map((x) =>
    x.toLowerCase(),
  );
}

export function findCanaries(received: readonly string[], canaries: readonly Canary[]): string[] {
  const all = received.join('\n').toLowerCase();
  const found: string[] = [];
  for (const c of canaries)
    if (canaryPatterns(c.token).some((p) => all.includes(p))) found.push(`${c.kind}:${c.token}`);
  return found;
}

function countRows(result: unknown): number {
  if (!Array.isArray(result)) return 0;
  // A multi-statement answer is an array of per-statement results; a single SELECT is an array of rows.
  if (
    result.length > 0 &&
    result.every((r) => Array.isArray(r) || (r !== null && typeof r === 'object' && 'affectedRows' in r))
  ) {
    if (result.some((r) => Array.isArray(r)))
      return result.reduce<number>((n, r) => n + (Array.isArray(r) ? r.length : 0), 0);
  }
  return result.length;
}

async function execute(
  conn: mysql.Connection,
  step: Step,
  sql: string,
  localData: string | undefined,
): Promise<unknown> {
  if (step.via === 'prepare') {
    const [rows] = await conn.execute(sql, (step.params ?? []) as (string | number | null)[]);
    return rows;
  }
  const [rows] = await conn.query({
    sql,
    ...(step.via === 'local'
      ? { infileStreamFactory: () => Readable.from([Buffer.from(localData ?? '')]) }
      : {}),
  });
  return rows;
}

/** Runs one step through the hook and, if allowed, on MariaDB. */
async function runStep(
  env: CorpusEnv,
  conn: mysql.Connection,
  ctx: SessionContext,
  step: Step,
  obs: Observed,
  main: boolean,
  localData?: string,
): Promise<void> {
  const verdict = await env.hook.check({
    session: ctx,
    sql: step.sql,
    path: step.via === 'prepare' ? 'mysql-prepare' : 'mysql-query',
    receivedAt: new Date(),
    notice: () => undefined,
    signal: new AbortController().signal,
  });
  if (main) obs.verdict = verdict;
  if (verdict.action === 'deny') {
    obs.received.push(verdict.message);
    return;
  }
  try {
    const result = await execute(conn, step, verdict.sql ?? step.sql, localData);
    obs.received.push(textOf(result));
    if (main) obs.rows = countRows(result);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    obs.received.push(msg);
    if (main) obs.error = msg;
  }
  // The warnings of what ran are one more channel a client can read.
  const w = await env.hook.check({
    session: ctx,
    sql: 'SHOW WARNINGS',
    path: 'mysql-query',
    receivedAt: new Date(),
    notice: () => undefined,
    signal: new AbortController().signal,
  });
  if (w.action === 'allow') {
    const [rows] = await conn.query(w.sql ?? 'SHOW WARNINGS');
    obs.received.push(textOf(rows));
  }
}

/** Warden's denials carry its message; a MariaDB error of the same SQLSTATE does not. */
function wardenDenial(e: unknown): StatementVerdict | undefined {
  const err = e as { sqlState?: string; message?: string; errno?: number };
  const msg = err.message ?? '';
  if (/^denied by |could not be parsed|approval required/.test(msg)) {
    // The front end's mapping (src/wire/mysql/errors.ts): 42501 → 1142, 42601 → 1064, both with SQLSTATE 42000.
    const sqlstate = err.errno === 1142 ? '42501' : err.errno === 1064 ? '42601' : (err.sqlState ?? '?');
    return { action: 'deny', sqlstate, message: msg };
  }
  return undefined;
}

/** One step through the gateway: Warden decides, and a denial comes back as an ERR packet. */
async function gatewayStep(conn: mysql.Connection, step: Step, obs: Observed, main: boolean): Promise<void> {
  try {
    const result = await execute(conn, step, step.sql, undefined);
    obs.received.push(textOf(result));
    if (main) {
      obs.rows = countRows(result);
      obs.verdict = { action: 'allow' };
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    obs.received.push(msg);
    const denied = wardenDenial(e);
    if (main) {
      if (denied !== undefined) obs.verdict = denied;
      else {
        obs.verdict = { action: 'allow' };
        obs.error = msg;
      }
    }
  }
  try {
    const [rows] = await conn.query('SHOW WARNINGS');
    obs.received.push(textOf(rows));
  } catch (e) {
    obs.received.push(e instanceof Error ? e.message : String(e));
  }
}

const SESSION_STATE_SQL =
  'SELECT @@session.sql_mode AS m, @@character_set_client AS c, DATABASE() AS d, 1 AS one';

export async function runCase(c: Case, env: CorpusEnv): Promise<Judgement> {
  if (env.gateway !== undefined) return runCaseViaGateway(c, env, env.gateway);
  const conn = await env.connect();
  const obs: Observed = { rows: 0, received: [] };
  try {
    const ctx = session(env.principals[c.user]);
    for (const s of c.setup ?? []) await runStep(env, conn, ctx, s, obs, false);
    const judgeState = c.expect === 'deny' || c.expect === 'safe';
    if (judgeState) obs.digestBefore = await stateDigest(env.root);
    await runStep(env, conn, ctx, c, obs, true, c.localData);
    if (judgeState) obs.digestAfter = await stateDigest(env.root);
    env.hook.sessionClosed?.(ctx.sessionId);
  } finally {
    await conn.end().catch(() => undefined);
  }
  return judge(c, env, obs);
}

async function runCaseViaGateway(
  c: Case,
  env: CorpusEnv,
  connect: (user: CorpusUser) => Promise<mysql.Connection>,
): Promise<Judgement> {
  const conn = await connect(c.user);
  const obs: Observed = { rows: 0, received: [] };
  try {
    obs.stateBefore = textOf((await conn.query(SESSION_STATE_SQL))[0]);
    for (const s of c.setup ?? []) await gatewayStep(conn, s, obs, false);
    const judgeState = c.expect === 'deny' || c.expect === 'safe';
    if (judgeState) obs.digestBefore = await stateDigest(env.root);
    await gatewayStep(conn, c, obs, true);
    if (judgeState) obs.digestAfter = await stateDigest(env.root);
    // The session survives a denial and is still the same session (database, sql_mode, character set).
    try {
      if (c.expect === 'deny') obs.stateAfter = textOf((await conn.query(SESSION_STATE_SQL))[0]);
    } catch (e) {
      obs.stateAfter = `follow-up failed: ${e instanceof Error ? e.message : String(e)}`;
    }
  } finally {
    await conn.end().catch(() => undefined);
  }
  return judge(c, env, obs);
}

function judge(c: Case, env: CorpusEnv, obs: Observed): Judgement {
  const problems: string[] = [];
  if (obs.stateAfter !== undefined && obs.stateAfter !== obs.stateBefore) {
    problems.push(`session state changed: ${obs.stateBefore ?? ''} -> ${obs.stateAfter}`);
  }
  const v = obs.verdict;
  const leaks = findCanaries(obs.received, env.forbidden[c.user]);
  if (leaks.length > 0) problems.push(`canary leaked: ${leaks.join(', ')}`);
  if (obs.digestBefore !== undefined && obs.digestBefore !== obs.digestAfter) {
    problems.push('database state changed');
  }
  if (c.expect === 'deny') {
    if (v?.action !== 'deny')
      problems.push(`expected a denial, the hook allowed it${obs.error ? ` (MariaDB: ${obs.error})` : ''}`);
    else if (!DENY_SQLSTATES.includes(v.sqlstate)) problems.push(`denied with SQLSTATE ${v.sqlstate}`);
  } else if (c.expect === 'allow' || c.expect === 'masked') {
    if (v?.action !== 'allow')
      problems.push(`expected it to run, the hook denied it: ${v?.action === 'deny' ? v.message : '?'}`);
    else if (obs.error !== undefined) problems.push(`MariaDB refused the allowed SQL: ${obs.error}`);
  }
  const min = c.rows?.min ?? (c.expect === 'masked' ? 1 : undefined);
  const max = c.rows?.max;
  if (v?.action === 'allow' && obs.error === undefined) {
    if (min !== undefined && obs.rows < min) problems.push(`expected at least ${min} rows, got ${obs.rows}`);
    if (max !== undefined && obs.rows > max) problems.push(`expected at most ${max} rows, got ${obs.rows}`);
  }
  return { ok: problems.length === 0, problems, observed: obs };
}
