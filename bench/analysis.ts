// Benchmark: per-statement SQL analysis and policy decision time (µs), cold and cached, with the demo policy.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Principal } from '../src/core/context.js';
import type { StatementSummary } from '../src/core/access.js';
import { analyze, analyzeCached, clearAnalysisCache, initSqlAnalyser } from '../src/sql/analyze.js';
import type { AnalyzeOptions } from '../src/sql/analyze.js';
import { DecisionCache, decisionCacheKey, evaluate, loadPolicy } from '../src/policy/index.js';
import type { Decision, EvaluateRequest, Policy } from '../src/policy/index.js';
import { fmt, microsEach, microsPerCall, printTable } from './lib.js';
import type { BenchOptions, Table } from './lib.js';

/** The demo policy used by the policy tests (public.customers, public.orders, public.ledger). */
const DEMO_POLICY_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'test',
  'fixtures',
  'policy',
  'demo',
);

/** A cached decision should cost less than this (analysis cache hit + decision cache hit). */
export const CACHED_DECISION_TARGET_US = 20;

interface Case {
  readonly name: string;
  readonly user: string;
  readonly sql: string;
}

/** Realistic statements: what applications, psql and reporting tools send. */
export const CASES: readonly Case[] = [
  {
    name: 'point select (pgbench -S)',
    user: 'alice',
    sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;',
  },
  {
    name: 'join, filter, order',
    user: 'alice',
    sql:
      'SELECT o.id, o.amount, o.created_at, c.name, c.email FROM public.orders o ' +
      'JOIN public.customers c ON c.id = o.customer_id ' +
      "WHERE o.created_at > now() - interval '7 days' AND o.amount > 100 " +
      'ORDER BY o.amount DESC LIMIT 50',
  },
  {
    name: 'insert with parameters',
    user: 'bob',
    sql: 'INSERT INTO ledger (account, amount, note) VALUES ($1, $2, $3)',
  },
  {
    name: 'psql \\d (catalog query)',
    user: 'alice',
    // The query psql 15 sends for `\d` (as shown by `psql -E`).
    sql: [
      'SELECT n.nspname as "Schema",',
      '  c.relname as "Name",',
      "  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' " +
        "WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' " +
        "WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\",",
      '  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"',
      'FROM pg_catalog.pg_class c',
      '     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace',
      '     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam',
      "WHERE c.relkind IN ('r','p','v','m','S','f','')",
      "      AND n.nspname <> 'pg_catalog'",
      "      AND n.nspname !~ '^pg_toast'",
      "      AND n.nspname <> 'information_schema'",
      '  AND pg_catalog.pg_table_is_visible(c.oid)',
      'ORDER BY 1,2;',
    ].join('\n'),
  },
  {
    name: 'CTE with aggregate',
    user: 'alice',
    sql:
      'WITH recent AS (SELECT customer_id, sum(amount) AS total, count(*) AS n FROM orders ' +
      'WHERE created_at > $1 GROUP BY customer_id) ' +
      'SELECT c.name, r.total, r.n FROM recent r JOIN customers c ON c.id = r.customer_id ' +
      'WHERE r.n > 2 ORDER BY r.total DESC LIMIT 10',
  },
  {
    name: 'update with where',
    user: 'bob',
    sql: "UPDATE orders SET amount = amount * 1.1, status = 'repriced' WHERE id = $1 AND status = 'open'",
  },
];

export interface AnalysisRow {
  readonly name: string;
  readonly user: string;
  readonly sqlBytes: number;
  /** analyze() with an empty cache (parse + walk + cache insert). */
  readonly analyseColdUs: number;
  /** analyzeCached() hit. */
  readonly analyseCachedUs: number;
  /** evaluate() on the analysed statements, no decision cache. */
  readonly evaluateUs: number;
  /** Cold path: analyse cold + evaluate. */
  readonly decisionColdUs: number;
  /** Cached path: analyzeCached() hit + decisionCacheKey() + DecisionCache hit. */
  readonly decisionCachedUs: number;
  readonly effect: string;
}

export interface AnalysisResults {
  readonly policy: string;
  readonly targetCachedDecisionUs: number;
  readonly rows: readonly AnalysisRow[];
}

function principalOf(policy: Policy, name: string): Principal {
  const u = policy.users.get(name);
  return { name, kind: u?.kind ?? 'human', groups: u?.groups ?? [], attributes: u?.attributes ?? {} };
}

function effectOf(statements: readonly StatementSummary[], error: string | undefined, d: Decision): string {
  if (error !== undefined) return 'parse error (deny)';
  const unsupported = statements.find((s) => s.unsupported !== undefined);
  if (unsupported !== undefined) return `deny (unsupported)`;
  return d.effect === 'deny' ? `deny (${d.denied?.rule ?? d.rules[0] ?? '?'})` : d.effect;
}

export async function runAnalysisBench(o: BenchOptions): Promise<AnalysisResults> {
  o.log('analysis: loading the SQL parser and the demo policy');
  await initSqlAnalyser();
  const policy = loadPolicy(DEMO_POLICY_DIR);
  const opts: AnalyzeOptions = { searchPath: ['public'] };
  const samples = o.quick ? 300 : 2000;
  const batches = o.quick ? 30 : 200;
  const batch = 500;
  const rows: AnalysisRow[] = [];

  // Warm the JIT over every case first, so the first case measured does not pay for compiling the analyser.
  for (let i = 0; i < (o.quick ? 100 : 300); i++) {
    for (const c of CASES) {
      const a = analyze(c.sql, opts);
      evaluate(policy, {
        principal: principalOf(policy, c.user),
        statements: a.statements,
        context: { target: 'bench', environment: 'production', sourceAddress: '127.0.0.1', at: new Date() },
      });
    }
  }

  for (const c of CASES) {
    o.log(`analysis: ${c.name}`);
    const analysis = analyze(c.sql, opts);
    const base: Omit<EvaluateRequest, 'statements'> = {
      principal: principalOf(policy, c.user),
      context: { target: 'bench', environment: 'production', sourceAddress: '127.0.0.1', at: new Date() },
      database: 'bench',
    };
    const req: EvaluateRequest = { ...base, statements: analysis.statements };
    const decision = evaluate(policy, req);

    const analyseColdUs = microsEach(() => analyzeCached(c.sql, opts), clearAnalysisCache, { samples });
    clearAnalysisCache();
    analyzeCached(c.sql, opts);
    const analyseCachedUs = microsPerCall(() => analyzeCached(c.sql, opts), { batch, samples: batches });
    const evaluateUs = microsPerCall(() => evaluate(policy, req), { batch, samples: batches });

    // The cached path a statement hook takes for a statement it has seen: both caches hit.
    const cache = new DecisionCache();
    const prefix = (): string => `${decisionCacheKey(policy, base)}\u0000`;
    cache.set(prefix() + c.sql, decision);
    const decisionCachedUs = microsPerCall(
      () => {
        const a = analyzeCached(c.sql, opts);
        const hit = cache.get(prefix() + c.sql);
        if (hit === undefined) throw new Error('decision cache miss in the cached path');
        return a.statements.length + hit.rules.length;
      },
      { batch, samples: batches },
    );
    rows.push({
      name: c.name,
      user: c.user,
      sqlBytes: Buffer.byteLength(c.sql),
      analyseColdUs,
      analyseCachedUs,
      evaluateUs,
      decisionColdUs: analyseColdUs + evaluateUs,
      decisionCachedUs,
      effect: effectOf(analysis.statements, analysis.error, decision),
    });
  }
  clearAnalysisCache();
  return { policy: 'test/fixtures/policy/demo', targetCachedDecisionUs: CACHED_DECISION_TARGET_US, rows };
}

export function analysisTable(r: AnalysisResults): Table {
  const worst = Math.max(...r.rows.map((x) => x.decisionCachedUs));
  return {
    title: 'SQL analysis and policy decision, µs per statement (median; demo policy)',
    columns: [
      'statement',
      'user',
      'bytes',
      'analyse cold',
      'analyse cached',
      'evaluate',
      'decision cold',
      'decision cached',
      'decision',
    ],
    align: ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'left'],
    rows: r.rows.map((x) => [
      x.name,
      x.user,
      String(x.sqlBytes),
      fmt(x.analyseColdUs, 1),
      fmt(x.analyseCachedUs, 2),
      fmt(x.evaluateUs, 2),
      fmt(x.decisionColdUs, 1),
      fmt(x.decisionCachedUs, 2),
      x.effect,
    ]),
    notes: [
      '',
      'decision cold = analyse (empty cache) + evaluate; decision cached = analysis cache hit + decision cache key + hit.',
      `Target for a cached decision: < ${r.targetCachedDecisionUs} µs. Worst here: ${fmt(worst, 2)} µs ` +
        `(${worst < r.targetCachedDecisionUs ? 'met' : 'NOT met'}).`,
    ],
  };
}

export function printAnalysis(r: AnalysisResults): void {
  printTable(analysisTable(r));
}
