// Benchmark: statements/s through the policy hook with pgbench-like statements (fresh literals each time), with the literal fast path off and on.
import { fileURLToPath } from 'node:url';
import type { Principal, StatementRequest } from '../src/core/context.js';
import type { TargetConfig } from '../src/config/gateway-config.js';
import { clearAnalysisCache } from '../src/sql/analyze.js';
import { CatalogCache } from '../src/enforce/catalog-cache.js';
import { createPolicyHook } from '../src/enforce/policy-hook.js';
import type { PolicyHook } from '../src/enforce/policy-hook.js';
import { loadPolicy } from '../src/policy/index.js';
import { fmt, median, nowNs, printTable } from './lib.js';
import type { BenchOptions, Table } from './lib.js';

const BENCH_POLICY = fileURLToPath(new URL('./fixtures/pgbench-policy', import.meta.url));

const TARGET: TargetConfig = {
  name: 'bench',
  host: '127.0.0.1',
  port: 1,
  database: 'bench',
  environment: 'production',
  tls: { mode: 'disable' },
  searchPath: ['public'],
  logins: new Map([['bench', { user: 'bench' }]]),
  policy: { kind: 'folder', path: BENCH_POLICY },
};

const PRINCIPAL: Principal = { name: 'bench', kind: 'service', groups: [], attributes: {} };

/** A tiny deterministic PRNG (xorshift32), so runs are comparable. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** The statements of one pgbench TPC-B-like transaction as pgbench sends them in simple mode (literals inlined). */
export function tpcbScript(next: () => number): string[] {
  const aid = 1 + (next() % 100_000);
  const bid = 1 + (next() % 1);
  const tid = 1 + (next() % 10);
  const delta = (next() % 10_001) - 5000;
  return [
    'BEGIN;',
    `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
    `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
    `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};`,
    `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid};`,
    `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
    'END;',
  ];
}

function request(sql: string, at: Date): StatementRequest {
  return {
    session: {
      sessionId: 'bench-session',
      protocol: 'postgres',
      principal: PRINCIPAL,
      target: 'bench',
      environment: 'production',
      database: 'bench',
      sourceAddress: '127.0.0.1',
      tls: false,
      applicationName: 'pgbench',
      startedAt: at,
    },
    sql,
    path: 'simple',
    receivedAt: at,
    notice: () => undefined,
    // As the session does: the abort signal is created only if a hook asks for it.
    get signal() {
      return new AbortController().signal;
    },
  };
}

export interface HookRow {
  readonly name: string;
  /** Statements per second (median over samples). */
  readonly statementsPerSecond: number;
  /** µs per statement (median). */
  readonly microsPerStatement: number;
  /** Share of verdicts whose policy decision came from the decision cache. */
  readonly cachedShare: number;
}

export interface HookResults {
  readonly policy: string;
  readonly rows: readonly HookRow[];
  /** fast path statements/s divided by cold statements/s. */
  readonly speedup: number | null;
}

async function measure(
  name: string,
  hook: PolicyHook,
  statements: readonly string[],
  samples: number,
  perSample: number,
): Promise<HookRow> {
  const at = new Date();
  let i = 0;
  let cached = 0;
  let total = 0;
  const run = async (n: number): Promise<void> => {
    for (let k = 0; k < n; k++) {
      const sql = statements[i++ % statements.length] as string;
      const v = await hook.check(request(sql, at));
      if (v.action !== 'allow') throw new Error(`unexpected ${v.action} for ${sql}: ${v.message ?? ''}`);
      total++;
      if ((v.decision as { cached?: boolean } | undefined)?.cached === true) cached++;
    }
  };
  await run(Math.min(2000, perSample));
  cached = 0;
  total = 0;
  const us: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = nowNs();
    await run(perSample);
    us.push(Number(nowNs() - t0) / 1000 / perSample);
  }
  const m = median(us);
  return { name, statementsPerSecond: 1e6 / m, microsPerStatement: m, cachedShare: cached / total };
}

export async function runHookBench(o: BenchOptions): Promise<HookResults> {
  const policy = loadPolicy(BENCH_POLICY);
  const catalog = new CatalogCache('bench', () => Promise.resolve([]));
  const samples = o.quick ? 5 : 15;
  const perSample = o.quick ? 2000 : 5000;
  const next = rng(42);
  // Enough distinct transactions that no text repeats within a run (as with pgbench on 100 000 accounts).
  const fresh: string[] = [];
  while (fresh.length < (samples + 1) * perSample + 2000) fresh.push(...tpcbScript(next));
  const repeated = tpcbScript(rng(7));

  const rows: HookRow[] = [];
  const cases: { name: string; fastPath: boolean; statements: readonly string[] }[] = [
    { name: 'fresh literals, fast path off (cold)', fastPath: false, statements: fresh },
    { name: 'fresh literals, fast path on', fastPath: true, statements: fresh },
    { name: 'one repeated transaction (text caches hit)', fastPath: true, statements: repeated },
  ];
  for (const c of cases) {
    o.log(`hook: ${c.name}`);
    clearAnalysisCache();
    const hook = await createPolicyHook(TARGET, policy, { catalog, fastPath: c.fastPath });
    try {
      rows.push(await measure(c.name, hook, c.statements, samples, perSample));
    } finally {
      await hook.close();
    }
  }
  clearAnalysisCache();
  const cold = rows[0]?.statementsPerSecond;
  const fast = rows[1]?.statementsPerSecond;
  return {
    policy: 'bench/fixtures/pgbench-policy',
    rows,
    speedup: cold === undefined || fast === undefined ? null : fast / cold,
  };
}

export function hookTable(r: HookResults): Table {
  return {
    title: 'Policy hook, pgbench TPC-B-like statements (simple protocol, literals inlined), one session',
    columns: ['case', 'statements/s', 'µs/statement', 'decision cached'],
    align: ['left', 'right', 'right', 'right'],
    rows: r.rows.map((x) => [
      x.name,
      fmt(x.statementsPerSecond),
      fmt(x.microsPerStatement, 1),
      `${Math.round(x.cachedShare * 100)}%`,
    ]),
    notes: [
      '',
      `Policy: ${r.policy}. Fast path / cold: ${r.speedup === null ? '–' : `${r.speedup.toFixed(2)}×`}.`,
    ],
  };
}

export function printHook(r: HookResults): void {
  printTable(hookTable(r));
}
