// Runs one bypass-corpus case end to end through the gateway and judges it: errors, rows, canary bytes, database state, session.
import pg from 'pg';
import { runPsql } from '../harness/clients.js';
import type { Canary } from './seed.js';
import type { Case, CorpusUser, Step } from './model.js';
import {
  WireClient,
  bindMsg,
  copyDataMsg,
  copyDoneMsg,
  copyFailMsg,
  dataRow,
  describeMsg,
  executeMsg,
  fieldsOf,
  parseMsg,
  queryMessage,
  syncMsg,
  type Fields,
  type Message,
} from './wire-client.js';

const STEP_TIMEOUT_MS = 10_000;
export const DEFAULT_DENY_SQLSTATES: readonly string[] = ['42501', '42601'];

/** What the client got for one case (all steps). */
export interface Observed {
  readonly errors: Fields[];
  readonly notices: Fields[];
  readonly rows: string[][];
  readonly commandTags: string[];
  /** The server asked for COPY data: a COPY FROM reached the database. */
  copyIn: boolean;
  copyOut: boolean;
  /** Every byte the client received (wire) or psql's stdout + stderr. */
  readonly received: Buffer[];
  /** The final step's outcome only (setup steps are excluded). */
  final: { errors: Fields[]; rows: number; copyIn: boolean; psqlCode?: number | null };
  /** The connection ended during the case. */
  closed: boolean;
}

export interface CorpusEnv {
  readonly gatewayPort: number;
  readonly passwords: Readonly<Record<CorpusUser, string>>;
  /** Canaries each user must never receive. */
  readonly forbidden: Readonly<Record<CorpusUser, readonly Canary[]>>;
  /** Superuser connection (direct, not through the gateway) for the state digest. */
  readonly superuser: pg.Client;
}

export interface Verdict {
  readonly ok: boolean;
  readonly problems: string[];
  readonly observed: Observed;
}

/** Byte patterns under which a canary token could reach a client: as is, upper case, reversed, hex of its ASCII. */
export function canaryPatterns(token: string): string[] {
  const hex = Buffer.from(token, 'ascii').toString('hex');
  const rev = [...token].reverse().join('');
  return [token, token.toUpperCase(), rev, hex, hex.toUpperCase()];
}

/** Every canary (with the pattern) found in the bytes; empty when none. */
export function findCanaries(received: readonly Buffer[], canaries: readonly Canary[]): string[] {
  const text = Buffer.concat(received).toString('latin1');
  const found: string[] = [];
  for (const c of canaries) {
    for (const p of canaryPatterns(c.token)) {
      if (text.includes(p)) {
        found.push(`${c.kind} canary (${p === c.token ? 'verbatim' : 'encoded'})`);
        break;
      }
    }
  }
  return found;
}

export async function stateDigest(su: pg.Client): Promise<string> {
  const r = await su.query<{ d: string }>('SELECT corpus_check.digest() AS d');
  return r.rows[0]?.d ?? '';
}

/** Names the digest sections that differ (never their contents). */
export function digestDiff(before: string, after: string): string {
  const sections = (d: string): Map<string, string> => {
    const m = new Map<string, string>();
    for (const part of d.split('\n')) {
      const eq = part.indexOf('=');
      if (eq > 0) m.set(part.slice(0, eq), part.slice(eq + 1));
    }
    return m;
  };
  const a = sections(before);
  const b = sections(after);
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names].filter((n) => a.get(n) !== b.get(n)).join(', ') || 'digest';
}

/** Per-user connections, reused across cases and replaced when a case ends or dirties a session. */
export class ConnectionPool {
  private readonly conns = new Map<CorpusUser, { client: WireClient; baseline: string }>();
  constructor(private readonly env: CorpusEnv) {}

  async get(user: CorpusUser): Promise<{ client: WireClient; baseline: string }> {
    const have = this.conns.get(user);
    if (have && !have.client.closed) return have;
    const client = await WireClient.connect(this.env.gatewayPort, user, this.env.passwords[user]);
    const baseline = await sessionIdentity(client);
    client.reset();
    const entry = { client, baseline };
    this.conns.set(user, entry);
    return entry;
  }

  drop(user: CorpusUser): void {
    this.conns.get(user)?.client.close();
    this.conns.delete(user);
  }

  closeAll(): void {
    for (const u of [...this.conns.keys()]) this.drop(u);
  }
}

/** Who the session is and how names resolve: must be the same after any case. */
export const IDENTITY_SQL =
  "SELECT 1 AS ok, current_user, session_user, current_setting('search_path'), current_setting('role')";

async function sessionIdentity(c: WireClient): Promise<string> {
  return JSON.stringify(await c.simple(IDENTITY_SQL));
}

function stepSqls(s: Step): readonly string[] {
  return typeof s.sql === 'string' ? [s.sql] : s.sql;
}

function collect(obs: Observed, msgs: readonly Message[], final: boolean): void {
  for (const m of msgs) {
    switch (m.type) {
      case 'E': {
        const f = fieldsOf(m.body);
        obs.errors.push(f);
        if (final) obs.final.errors.push(f);
        break;
      }
      case 'N':
        obs.notices.push(fieldsOf(m.body));
        break;
      case 'D':
        obs.rows.push(dataRow(m.body));
        if (final) obs.final.rows++;
        break;
      case 'C':
        obs.commandTags.push(m.body.toString('utf8', 0, Math.max(0, m.body.length - 1)));
        break;
      case 'G':
      case 'W':
        obs.copyIn = true;
        if (final) obs.final.copyIn = true;
        break;
      case 'H':
        obs.copyOut = true;
        break;
      default:
    }
  }
}

let statementSeq = 0;

async function runWireStep(c: WireClient, s: Step, obs: Observed, final: boolean): Promise<void> {
  const sqls = stepSqls(s);
  const params = s.params ?? [];
  // A fresh default name per step: a statement an earlier case left prepared on the reused connection cannot clash.
  const name = s.name ?? `corpus_s${++statementSeq}`;
  let readys = 1;
  switch (s.via) {
    case 'simple':
      c.send(...sqls.map((q) => queryMessage(q)));
      readys = sqls.length;
      break;
    case 'extended':
      for (const q of sqls)
        c.send(parseMsg('', q), bindMsg('', params), describeMsg('P', ''), executeMsg(), syncMsg());
      readys = sqls.length;
      break;
    case 'named':
      for (const q of sqls) {
        c.send(
          parseMsg(name, q),
          syncMsg(),
          bindMsg(name, params),
          describeMsg('P', ''),
          executeMsg(),
          syncMsg(),
        );
      }
      readys = 2 * sqls.length;
      break;
    case 'describe':
      for (const q of sqls) c.send(parseMsg(name, q), describeMsg('S', name), syncMsg());
      readys = sqls.length;
      break;
    case 'pipeline':
      c.send(...sqls.flatMap((q) => [parseMsg('', q), bindMsg('', params), executeMsg()]), syncMsg());
      break;
    case 'psql':
      throw new Error('psql steps do not run on a wire connection');
  }
  try {
    collect(obs, await c.until(readys, STEP_TIMEOUT_MS), final);
  } catch (e) {
    obs.closed = c.closed;
    if (!c.closed) throw e;
  }
}

async function runPsqlStep(
  env: CorpusEnv,
  user: CorpusUser,
  s: Step,
  obs: Observed,
  final: boolean,
): Promise<void> {
  const args = ['-v', 'VERBOSITY=verbose', ...stepSqls(s).flatMap((q) => ['-c', q])];
  const r = await runPsql({
    host: '127.0.0.1',
    port: env.gatewayPort,
    user,
    password: env.passwords[user],
    database: 'main',
    args,
    timeoutMs: 20_000,
  });
  obs.received.push(Buffer.from(r.stdout, 'utf8'), Buffer.from(r.stderr, 'utf8'));
  // psql with VERBOSITY=verbose prints "ERROR:  42501: message".
  for (const m of r.stderr.matchAll(/^(?:psql:[^\n]*?)?ERROR:\s+([0-9A-Z]{5}): (.*)$/gm)) {
    const f: Fields = { code: m[1] ?? '', message: m[2] ?? '', all: new Map() };
    obs.errors.push(f);
    if (final) obs.final.errors.push(f);
  }
  if (r.code !== 0 && obs.errors.length === 0) {
    const f: Fields = { code: 'psql', message: r.stderr.slice(0, 300), all: new Map() };
    obs.errors.push(f);
    if (final) obs.final.errors.push(f);
  }
  const rows = r.stdout.split('\n').filter((l) => /^\(\d+ rows?\)$/.test(l.trim()));
  for (const l of rows) {
    const n = Number(/\d+/.exec(l)?.[0] ?? 0);
    if (final) obs.final.rows += n;
  }
  if (final) obs.final.psqlCode = r.code;
}

function sqlstateOk(c: Case, code: string): boolean {
  return (c.sqlstate ?? DEFAULT_DENY_SQLSTATES).includes(code);
}

/** Runs one case and judges it. Never throws for a case failure: the problems say what went wrong. */
export async function runCase(env: CorpusEnv, pool: ConnectionPool, c: Case): Promise<Verdict> {
  const obs: Observed = {
    errors: [],
    notices: [],
    rows: [],
    commandTags: [],
    copyIn: false,
    copyOut: false,
    received: [],
    final: { errors: [], rows: 0, copyIn: false },
    closed: false,
  };
  const problems: string[] = [];
  const checksState = c.expect !== 'allow';
  const before = checksState ? await stateDigest(env.superuser) : '';
  const usesWire = c.via !== 'psql' || (c.setup ?? []).some((s) => s.via !== 'psql');
  const conn = usesWire ? await pool.get(c.user) : undefined;
  let dirty = false;
  try {
    if (conn) {
      conn.client.reset();
      conn.client.onCopyIn = () =>
        c.copyData !== undefined
          ? [copyDataMsg(c.copyData), copyDoneMsg()]
          : [copyFailMsg('corpus: the case sends no COPY data')];
    }
    const steps: [Step, boolean][] = [...(c.setup ?? []).map((s): [Step, boolean] => [s, false]), [c, true]];
    for (const [s, final] of steps) {
      if (s.via === 'psql') await runPsqlStep(env, c.user, s, obs, final);
      else if (conn) await runWireStep(conn.client, s, obs, final);
    }
  } catch (e) {
    problems.push(`the case did not complete: ${(e as Error).message}`);
    dirty = true;
  } finally {
    if (conn) obs.received.push(conn.client.raw());
  }

  const canaries = findCanaries(obs.received, env.forbidden[c.user]);
  if (canaries.length > 0) problems.push(`the client received ${canaries.join(', ')}`);

  const firstError = obs.final.errors[0];
  const denied = firstError !== undefined && sqlstateOk(c, firstError.code);
  const describeErr = (): string =>
    firstError ? `${firstError.code} ${firstError.message}` : 'no error (the statement ran)';
  const rowsMin = c.rows?.min ?? (c.expect === 'masked' ? 1 : undefined);
  const rowsMax = c.rows?.max;
  const checkRows = (): void => {
    const n = obs.final.rows;
    if (rowsMin !== undefined && n < rowsMin) problems.push(`expected at least ${rowsMin} rows, got ${n}`);
    if (rowsMax !== undefined && n > rowsMax) problems.push(`expected at most ${rowsMax} rows, got ${n}`);
  };
  switch (c.expect) {
    case 'deny':
      if (!denied)
        problems.push(
          `expected a denial (${(c.sqlstate ?? DEFAULT_DENY_SQLSTATES).join('/')}), got ${describeErr()}`,
        );
      if (obs.final.copyIn) problems.push('the server entered COPY FROM: the statement reached the database');
      break;
    case 'allow':
    case 'masked':
      if (firstError) problems.push(`expected success, got ${describeErr()}`);
      checkRows();
      break;
    case 'safe':
      if (firstError && !denied) problems.push(`expected success or a denial, got ${describeErr()}`);
      if (!firstError) checkRows();
      break;
  }

  if (checksState) {
    const after = await stateDigest(env.superuser);
    if (after.split('\n')[0] !== before.split('\n')[0]) {
      problems.push(`database state changed: ${digestDiff(before, after)}`);
    }
  }

  if (conn) {
    if (obs.closed || conn.client.closed) {
      if (!c.endsSession) problems.push('the gateway closed the session');
      pool.drop(c.user);
    } else if (c.expect !== 'allow' && !c.endsSession) {
      try {
        const now = await sessionIdentity(conn.client);
        if (now !== conn.baseline) {
          problems.push(`session identity changed: ${conn.baseline} -> ${now}`);
          dirty = true;
        }
      } catch (e) {
        problems.push(`session not usable afterwards: ${(e as Error).message}`);
        dirty = true;
      }
      // The follow-up's bytes are searched too (a notice queued by the attack could arrive now).
      const late = findCanaries([conn.client.raw()], env.forbidden[c.user]);
      if (late.length > 0 && canaries.length === 0)
        problems.push(`the client received ${late.join(', ')} late`);
    }
    if (dirty || problems.length > 0 || c.endsSession || conn.client.lastStatus !== 'I') pool.drop(c.user);
  }
  return { ok: problems.length === 0, problems, observed: obs };
}
