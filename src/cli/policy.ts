// `warden policy check | explain | test | who-can`: validate a policy folder, explain one decision, run policy tests, print a table's access matrix.

import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { StatementSummary } from '../core/access.js';
import type { Principal, StatementRequest } from '../core/context.js';
import { WardenError, isWardenError } from '../core/errors.js';
import { loadGatewayConfig } from '../config/gateway-config.js';
import type { TargetConfig } from '../config/gateway-config.js';
import {
  PolicyError,
  formatProblem,
  loadPolicy,
  loadPolicyTests,
  policyFilesIn,
  runPolicyTests,
  whoCan,
} from '../policy/index.js';
import type { Policy } from '../policy/index.js';
import { analyzeCached, initSqlAnalyser } from '../sql/analyze.js';
import { CatalogCache } from '../enforce/catalog-cache.js';
import { createPolicyHook } from '../enforce/policy-hook.js';
import type { HookDecision } from '../enforce/policy-hook.js';

/** Where a command writes: standard output and standard error by default, a buffer in tests. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: Io = {
  out: (l) => console.log(l),
  err: (l) => console.error(l),
};

function usageError(message: string): WardenError {
  return new WardenError('CONFIG_INVALID', message);
}

function describeError(e: unknown): string {
  return isWardenError(e) ? e.message : e instanceof Error ? e.message : String(e);
}

/** `warden policy check [FOLDER]`: exit 0 when the policy loads, 1 with every problem as `file:line:col: message`. */
export function policyCheck(argv: string[], io: Io = consoleIo): Promise<number> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: {} });
  const folder = positionals[0] ?? '.';
  let files: string[];
  try {
    files = policyFilesIn(folder);
  } catch (e) {
    io.err(`${folder}: cannot read the policy folder: ${describeError(e)}`);
    return Promise.resolve(1);
  }
  try {
    const p = loadPolicy(files);
    io.out(
      `ok: ${files.length} file(s), ${p.users.size} user(s), ${p.groups.size} group(s), ${p.roles.size} role(s)`,
    );
    return Promise.resolve(0);
  } catch (e) {
    if (e instanceof PolicyError) {
      for (const p of e.problems) io.err(formatProblem(p));
      io.err(`${e.problems.length} problem(s)`);
    } else io.err(describeError(e));
    return Promise.resolve(1);
  }
}

/** Parses `schema.table=a,b,c` options into a column lookup. */
export function parseColumnsOptions(specs: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of specs) {
    const eq = s.indexOf('=');
    const table = s.slice(0, eq);
    if (eq <= 0 || !table.includes('.')) throw usageError(`--columns ${s}: expected schema.table=a,b,c`);
    const cols = s
      .slice(eq + 1)
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '');
    if (cols.length === 0) throw usageError(`--columns ${s}: no columns`);
    out.set(table, cols);
  }
  return out;
}

function principalFor(policy: Policy, name: string): Principal {
  const u = policy.users.get(name);
  return { name, kind: u?.kind ?? 'human', groups: u?.groups ?? [], attributes: u?.attributes ?? {} };
}

export interface ExplainResult {
  readonly action: 'allow' | 'deny';
  readonly sqlstate?: string;
  readonly message?: string;
  readonly sql: string;
  readonly decision: HookDecision;
}

/**
 * Decides one SQL string exactly as the gateway's hook would (same analyser, evaluator and rewriter) and returns
 * the verdict. Column lists come from `columns` or, with a gateway config, from the target's upstream.
 */
export async function explainStatement(o: {
  policy: Policy;
  user: string;
  sql: string;
  from?: string;
  at?: Date;
  target?: TargetConfig;
  targetName?: string;
  environment?: string;
  columns?: ReadonlyMap<string, readonly string[]>;
}): Promise<ExplainResult> {
  const target: TargetConfig = o.target ?? {
    name: o.targetName ?? 'default',
    host: '127.0.0.1',
    port: 5432,
    database: 'postgres',
    environment: o.environment ?? 'development',
    tls: { mode: 'disable' },
    searchPath: ['public'],
    logins: new Map(),
    policy: { kind: 'allow_all' },
  };
  const cols = o.columns ?? new Map<string, readonly string[]>();
  const catalog =
    o.target !== undefined && o.columns === undefined
      ? CatalogCache.forTarget(target)
      : new CatalogCache(target.name, (s, t) => Promise.resolve(cols.get(`${s}.${t}`) ?? []));
  const at = o.at ?? new Date();
  const hook = await createPolicyHook(target, o.policy, { catalog, now: () => at });
  try {
    const req: StatementRequest = {
      session: {
        sessionId: 'explain',
        protocol: 'postgres',
        principal: principalFor(o.policy, o.user),
        target: target.name,
        environment: o.environment ?? target.environment,
        database: target.database,
        sourceAddress: o.from ?? '127.0.0.1',
        tls: false,
        applicationName: 'warden policy explain',
        startedAt: at,
      },
      sql: o.sql,
      path: 'simple',
      receivedAt: at,
      notice: () => undefined,
      signal: new AbortController().signal,
    };
    const v = await hook.check(req);
    const decision = v.decision as HookDecision;
    if (v.action === 'allow') return { action: 'allow', sql: v.sql ?? o.sql, decision };
    return { action: 'deny', sqlstate: v.sqlstate, message: v.message, sql: o.sql, decision };
  } finally {
    await hook.close();
  }
}

/** Renders an explanation for people. */
export function formatExplain(r: ExplainResult): string[] {
  const d = r.decision;
  const lines = [`decision: ${d.effect}`];
  if (r.action === 'deny') lines.push(`sqlstate: ${r.sqlstate ?? ''}`, `message: ${r.message ?? ''}`);
  lines.push(`rules: ${d.rules.join(', ')}`);
  if (d.reasons.length > 0) lines.push('reasons:', ...d.reasons.map((x) => `  - ${x}`));
  for (const [t, p] of Object.entries(d.protections)) {
    for (const [c, m] of Object.entries(p.masks)) lines.push(`mask ${t}.${c}: ${m}`);
    if (p.rowFilter !== undefined) lines.push(`row filter ${t}: ${p.rowFilter}`);
  }
  if (r.action === 'allow') lines.push(d.rewritten ? `rewritten sql: ${r.sql}` : 'sql: forwarded unchanged');
  return lines;
}

/** `warden policy explain --policy FOLDER --user U --sql "..." [...]`. Exit 0 for allow, 1 otherwise. */
export async function policyExplain(argv: string[], io: Io = consoleIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      policy: { type: 'string' },
      user: { type: 'string' },
      sql: { type: 'string' },
      from: { type: 'string' },
      at: { type: 'string' },
      target: { type: 'string' },
      environment: { type: 'string' },
      columns: { type: 'string', multiple: true },
      config: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (values.policy === undefined || values.user === undefined || values.sql === undefined) {
    io.err('usage: warden policy explain --policy FOLDER --user U --sql "..." [--from ADDR] [--at TIME]');
    io.err('       [--target T] [--environment E] [--columns schema.table=a,b,c]... [--config warden.yaml]');
    return 2;
  }
  const at = values.at === undefined ? new Date() : new Date(values.at);
  if (Number.isNaN(at.getTime())) {
    io.err(`--at ${values.at}: not a date and time`);
    return 2;
  }
  let target: TargetConfig | undefined;
  if (values.config !== undefined) {
    const config = loadGatewayConfig(values.config);
    target =
      values.target === undefined ? config.targets.values().next().value : config.targets.get(values.target);
    if (target === undefined) {
      io.err(`no target ${values.target ?? ''} in ${values.config}`);
      return 2;
    }
  }
  const r = await explainStatement({
    policy: loadPolicy(values.policy),
    user: values.user,
    sql: values.sql,
    at,
    ...(values.from !== undefined ? { from: values.from } : {}),
    ...(values.target !== undefined ? { targetName: values.target } : {}),
    ...(values.environment !== undefined ? { environment: values.environment } : {}),
    ...(target !== undefined ? { target } : {}),
    ...(values.columns !== undefined ? { columns: parseColumnsOptions(values.columns) } : {}),
  });
  if (values.json === true) io.out(JSON.stringify(r, null, 2));
  else for (const l of formatExplain(r)) io.out(l);
  return r.action === 'allow' ? 0 : 1;
}

/** The analyser as policy tests use it: a parse error becomes a statement the policy must deny. */
export function analyseForTests(searchPath: readonly string[]): (sql: string) => StatementSummary[] {
  return (sql) => {
    const a = analyzeCached(sql, { searchPath });
    if (a.error !== undefined) {
      return [
        {
          kind: 'ParseError',
          text: sql,
          relations: [],
          functions: [],
          settings: [],
          unsupported: `parse error: ${a.error}`,
        },
      ];
    }
    return [...a.statements];
  };
}

/** `warden policy test FILE... [--policy FOLDER]`: the policy defaults to each file's folder. Exit 1 on failure. */
export async function policyTest(argv: string[], io: Io = consoleIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { policy: { type: 'string' }, 'search-path': { type: 'string' } },
  });
  if (positionals.length === 0) {
    io.err('usage: warden policy test FILE... [--policy FOLDER] [--search-path public,...]');
    return 2;
  }
  await initSqlAnalyser();
  const analyze = analyseForTests((values['search-path'] ?? 'public').split(','));
  let failed = 0;
  let total = 0;
  for (const file of positionals) {
    const folder = values.policy ?? dirname(resolve(file));
    let policy: Policy;
    try {
      policy = loadPolicy(folder);
    } catch (e) {
      if (e instanceof PolicyError) for (const p of e.problems) io.err(formatProblem(p));
      else io.err(`${folder}: ${describeError(e)}`);
      failed++;
      continue;
    }
    const results = await runPolicyTests(policy, loadPolicyTests(file), { analyze });
    for (const r of results) {
      total++;
      if (!r.passed) failed++;
      io.out(`${r.passed ? 'ok  ' : 'FAIL'} ${file}: ${r.name}${r.passed ? '' : ` — ${r.message}`}`);
    }
  }
  io.out(`${total - failed} of ${total} case(s) passed`);
  return failed === 0 ? 0 : 1;
}

/** `warden policy who-can --policy FOLDER --table schema.table`: one line per (principal, grant). */
export function policyWhoCan(argv: string[], io: Io = consoleIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { policy: { type: 'string' }, table: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (values.policy === undefined || values.table === undefined || !values.table.includes('.')) {
    io.err('usage: warden policy who-can --policy FOLDER --table schema.table [--json]');
    return Promise.resolve(2);
  }
  const policy = loadPolicy(values.policy);
  const rows = whoCan(policy, values.table);
  if (values.json === true) {
    io.out(JSON.stringify(rows, null, 2));
    return Promise.resolve(0);
  }
  if (policy.appendOnly.has(values.table)) io.out(`${values.table} is append-only`);
  if (rows.length === 0) io.out(`nobody can access ${values.table}`);
  for (const r of rows) {
    const parts = [
      `${r.principal} (${r.role}, ${r.grant})`,
      `target ${r.target}`,
      r.operations.join(','),
      `columns ${r.columns === '*' ? '*' : r.columns.join(',')}`,
    ];
    const masks = Object.entries(r.masks).map(([c, m]) => `${c}=${m}`);
    if (masks.length > 0) parts.push(`masks ${masks.join(', ')}`);
    if (r.rowFilter !== undefined) parts.push(`rows where ${r.rowFilter}`);
    if (r.conditions.length > 0) parts.push(`when ${r.conditions.join('; ')}`);
    io.out(parts.join(' | '));
  }
  return Promise.resolve(0);
}

/** The `warden policy <sub>` commands, for src/cli/main.ts to mount. */
export const policyCommands: Record<string, { about: string; run(argv: string[]): Promise<number> }> = {
  check: {
    about: 'validate a policy folder: warden policy check [FOLDER] (problems as file:line:col: message)',
    run: (argv) => policyCheck(argv),
  },
  explain: {
    about:
      'explain one decision: warden policy explain --policy FOLDER --user U --sql "..." [--from --at --target --environment --columns s.t=a,b --config]',
    run: (argv) => policyExplain(argv),
  },
  test: {
    about: 'run YAML policy tests: warden policy test FILE... [--policy FOLDER]',
    run: (argv) => policyTest(argv),
  },
  'who-can': {
    about: "print a table's access matrix: warden policy who-can --policy FOLDER --table schema.table",
    run: (argv) => policyWhoCan(argv),
  },
};
