// Benchmark: pgbench TPS and latency through Warden, side by side with a direct connection and pgbouncer, alternating.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import { startPostgres } from '../test/harness/pg.js';
import type { PgInstance } from '../test/harness/pg.js';
import { startPgbouncer } from '../test/harness/pgbouncer.js';
import type { PgbouncerInstance } from '../test/harness/pgbouncer.js';
import { initPgbench, runPgbench } from '../test/harness/clients.js';
import { registerCleanup } from '../test/harness/sys.js';
import type { ClientTarget } from '../test/harness/clients.js';
import { startTestGateway } from '../test/helpers/warden.js';
import type { TestGateway } from '../test/helpers/warden.js';
import type { StatementHook } from '../src/core/context.js';
import { fmt, fmtRatio, median, ratio } from './lib.js';
import type { BenchOptions, Table } from './lib.js';

/**
 * `warden`: the bare statement path (allow_all hook, or the hook given); `policy`: every statement decided by a
 * realistic policy; `enforced`: the same policy plus the write-ahead audit log.
 */
export type Endpoint = 'direct' | 'pgbouncer' | 'warden' | 'policy' | 'enforced';
export const ENDPOINTS: readonly Endpoint[] = ['direct', 'pgbouncer', 'warden', 'policy', 'enforced'];

/** The policy the `enforced` endpoint decides every statement with. */
const BENCH_POLICY = fileURLToPath(new URL('./fixtures/pgbench-policy', import.meta.url));

export type Workload = 'select-only' | 'tpcb-like';
export type Protocol = 'simple' | 'prepared';

export interface PgbenchConfig {
  readonly workload: Workload;
  readonly protocol: Protocol;
  readonly clients: number;
  readonly jobs: number;
}

export interface PgbenchRun {
  readonly round: number;
  readonly tps: number | null;
  readonly latencyAvgMs: number | null;
  readonly transactions: number | null;
  readonly failed: number | null;
  /** Set when pgbench failed: its exit status and the end of its output. */
  readonly error?: string;
}

export interface PgbenchRow extends PgbenchConfig {
  readonly runs: Readonly<Record<Endpoint, readonly PgbenchRun[]>>;
  /** Medians over the rounds that succeeded (null if none did, or the endpoint was skipped). */
  readonly tps: Readonly<Record<Endpoint, number | null>>;
  readonly latencyMs: Readonly<Record<Endpoint, number | null>>;
}

export interface PgbenchResults {
  readonly scale: number;
  readonly durationSec: number;
  readonly rounds: number;
  /** What the bare Warden endpoint's statement hook was ('allow_all' unless a hook was given). */
  readonly hook: string;
  readonly pgbouncer: 'session pool' | 'not installed';
  readonly rows: readonly PgbenchRow[];
  readonly failures: number;
}

export interface PgbenchBenchOptions extends BenchOptions {
  /** Statement hook of the bare Warden endpoint; default: allow_all (the hook path runs all the same). */
  readonly hook?: StatementHook;
  /** A short name for the hook, printed with the results. */
  readonly hookName?: string;
  /** Override the run length in seconds (default 10, 3 with quick). */
  readonly durationSec?: number;
  /** Override the rounds per endpoint (default 2, 1 with quick). */
  readonly rounds?: number;
}

const DB = 'bench';
const USER = 'bench';
const SCALE = 5;

/** The configurations measured: both workloads at 1, 8 and 32 clients, plus the extended protocol once. */
export function configurations(): PgbenchConfig[] {
  const out: PgbenchConfig[] = [];
  for (const workload of ['select-only', 'tpcb-like'] as const) {
    for (const clients of [1, 8, 32]) {
      out.push({ workload, protocol: 'simple', clients, jobs: Math.min(clients, 2) });
    }
  }
  out.push({ workload: 'select-only', protocol: 'prepared', clients: 8, jobs: 2 });
  return out;
}

/** The endpoint order in a round: rotated each round so no endpoint always runs first (or right after a write-heavy run). */
export function roundOrder(round: number, endpoints: readonly Endpoint[]): Endpoint[] {
  const k = round % endpoints.length;
  return [...endpoints.slice(k), ...endpoints.slice(0, k)];
}

function medianOf(runs: readonly PgbenchRun[], pick: (r: PgbenchRun) => number | null): number | null {
  const xs = runs
    .filter((r) => r.error === undefined)
    .map(pick)
    .filter((x): x is number => x !== null);
  return xs.length === 0 ? null : median(xs);
}

function tail(text: string, lines = 5): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

export async function runPgbenchBench(o: PgbenchBenchOptions): Promise<PgbenchResults> {
  const durationSec = o.durationSec ?? (o.quick ? 3 : 10);
  const rounds = o.rounds ?? (o.quick ? 1 : 2);
  // Random per run; never printed.
  const upstreamPassword = `up-${randomBytes(12).toString('hex')}`;
  const wardenPassword = `wd-${randomBytes(12).toString('hex')}`;
  let pgi: PgInstance | undefined;
  let bouncer: PgbouncerInstance | null = null;
  let gw: TestGateway | undefined;
  let enforced: TestGateway | undefined;
  let withPolicy: TestGateway | undefined;
  let unregister = (): void => undefined;
  try {
    o.log('pgbench: starting PostgreSQL');
    pgi = await startPostgres({
      auth: 'scram',
      users: [{ name: USER, password: upstreamPassword }],
      databases: [{ name: DB, owner: USER }],
    });
    const direct: ClientTarget = {
      host: '127.0.0.1',
      port: pgi.port,
      user: USER,
      password: upstreamPassword,
      database: DB,
    };
    o.log(`pgbench: initialising pgbench tables at scale ${SCALE}`);
    const init = await initPgbench({ ...direct, scale: SCALE });
    if (init.code !== 0) throw new Error(`pgbench -i failed: ${tail(init.stderr)}`);

    o.log('pgbench: starting pgbouncer (session pool)');
    bouncer = await startPgbouncer({
      upstreamHost: '127.0.0.1',
      upstreamPort: pgi.port,
      database: DB,
      user: USER,
      password: upstreamPassword,
      poolMode: 'session',
      // Enough server connections for every client: session pooling must not queue clients.
      poolSize: 40,
    });
    if (bouncer === null) o.log('pgbench: pgbouncer is not installed; its columns are skipped');

    o.log('pgbench: starting Warden in-process');
    gw = await startTestGateway({
      targets: [
        {
          name: DB,
          port: pgi.port,
          database: DB,
          user: USER,
          password: upstreamPassword,
        },
      ],
      users: [{ name: USER, password: wardenPassword, kind: 'service' }],
      ...(o.hook === undefined ? {} : { hook: o.hook }),
    });
    o.log('pgbench: starting Warden with the pgbench policy');
    withPolicy = await startTestGateway({
      targets: [
        {
          name: DB,
          port: pgi.port,
          database: DB,
          user: USER,
          password: upstreamPassword,
          policyFolder: BENCH_POLICY,
        },
      ],
      users: [{ name: USER, password: wardenPassword, kind: 'service' }],
    });
    o.log('pgbench: starting Warden with the pgbench policy and the audit log');
    enforced = await startTestGateway({
      targets: [
        {
          name: DB,
          port: pgi.port,
          database: DB,
          user: USER,
          password: upstreamPassword,
          policyFolder: BENCH_POLICY,
        },
      ],
      users: [{ name: USER, password: wardenPassword, kind: 'service' }],
      audit: { dir: 'audit', origin: 'bench.warden.local/audit', checkpoint_interval_ms: 1000 },
    });
    // PostgreSQL and pgbouncer clean up after themselves at exit; the gateways' state folders need this.
    const dirs = [gw.dir, withPolicy.dir, enforced.dir];
    unregister = registerCleanup(() => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    const targets: Partial<Record<Endpoint, ClientTarget>> = {
      direct,
      warden: { ...direct, port: gw.port, password: wardenPassword },
      policy: { ...direct, port: withPolicy.port, password: wardenPassword },
      enforced: { ...direct, port: enforced.port, password: wardenPassword },
    };
    if (bouncer !== null) targets.pgbouncer = { ...direct, port: bouncer.port };
    const endpoints = ENDPOINTS.filter((e) => targets[e] !== undefined);

    const rows: PgbenchRow[] = [];
    let failures = 0;
    const configs = configurations();
    for (const [ci, cfg] of configs.entries()) {
      const runs: Record<Endpoint, PgbenchRun[]> = {
        direct: [],
        pgbouncer: [],
        warden: [],
        policy: [],
        enforced: [],
      };
      for (let round = 0; round < rounds; round++) {
        // INVARIANT: within a round every endpoint runs the same configuration back to back, so drift on this
        // shared machine hits all three alike; rotating the order keeps any one of them from always going first.
        for (const ep of roundOrder(round + ci, endpoints)) {
          const t = targets[ep] as ClientTarget;
          o.log(
            `pgbench: ${cfg.workload} -M ${cfg.protocol} -c ${cfg.clients} -j ${cfg.jobs} -T ${durationSec} ` +
              `→ ${ep} (round ${round + 1}/${rounds})`,
          );
          const r = await runPgbench({
            ...t,
            builtin: cfg.workload,
            protocol: cfg.protocol,
            clients: cfg.clients,
            jobs: cfg.jobs,
            durationSec,
          });
          const ok = r.code === 0 && r.tps !== null;
          if (!ok) failures++;
          runs[ep].push({
            round,
            tps: r.tps,
            latencyAvgMs: r.latencyAvgMs,
            transactions: r.transactions,
            failed: r.failed,
            ...(ok ? {} : { error: `exit ${r.code ?? r.signal}: ${tail(r.stderr || r.stdout)}` }),
          });
          if (!ok) o.log(`pgbench: FAILED on ${ep}: ${tail(r.stderr || r.stdout)}`);
        }
      }
      const pick = (f: (r: PgbenchRun) => number | null): Record<Endpoint, number | null> => ({
        direct: medianOf(runs.direct, f),
        pgbouncer: medianOf(runs.pgbouncer, f),
        warden: medianOf(runs.warden, f),
        policy: medianOf(runs.policy, f),
        enforced: medianOf(runs.enforced, f),
      });
      rows.push({ ...cfg, runs, tps: pick((r) => r.tps), latencyMs: pick((r) => r.latencyAvgMs) });
    }
    return {
      scale: SCALE,
      durationSec,
      rounds,
      hook: o.hookName ?? (o.hook === undefined ? 'allow_all' : 'custom'),
      pgbouncer: bouncer === null ? 'not installed' : 'session pool',
      rows,
      failures,
    };
  } finally {
    // Each stop is independent: one failing must not leave the others running.
    await gw?.stop().catch((e: unknown) => o.log(`pgbench: stopping Warden failed: ${String(e)}`));
    await withPolicy
      ?.stop()
      .catch((e: unknown) => o.log(`pgbench: stopping Warden (policy) failed: ${String(e)}`));
    await enforced
      ?.stop()
      .catch((e: unknown) => o.log(`pgbench: stopping Warden (enforced) failed: ${String(e)}`));
    await bouncer?.stop().catch((e: unknown) => o.log(`pgbench: stopping pgbouncer failed: ${String(e)}`));
    await pgi?.stop().catch((e: unknown) => o.log(`pgbench: stopping PostgreSQL failed: ${String(e)}`));
    unregister();
  }
}

export function pgbenchTable(r: PgbenchResults): Table {
  return {
    title:
      `pgbench, scale ${r.scale}, -T ${r.durationSec} s, median of ${r.rounds} alternating round(s); ` +
      `bare Warden hook: ${r.hook}; +policy: bench/fixtures/pgbench-policy; +audit: write-ahead file store; ` +
      `pgbouncer: ${r.pgbouncer}`,
    columns: [
      'workload',
      'clients',
      'TPS direct',
      'TPS pgbouncer',
      'TPS Warden',
      'Warden/direct',
      'Warden/pgbouncer',
      'TPS +policy',
      'policy/pgbouncer',
      'TPS +policy+audit',
      'enforced/pgbouncer',
      'lat direct ms',
      'lat pgbouncer ms',
      'lat Warden ms',
      'lat policy ms',
      'lat enforced ms',
    ],
    rows: r.rows.map((x) => [
      x.protocol === 'simple' ? x.workload : `${x.workload} (-M ${x.protocol})`,
      String(x.clients),
      fmt(x.tps.direct),
      fmt(x.tps.pgbouncer),
      fmt(x.tps.warden),
      fmtRatio(ratio(x.tps.warden, x.tps.direct)),
      fmtRatio(ratio(x.tps.warden, x.tps.pgbouncer)),
      fmt(x.tps.policy),
      fmtRatio(ratio(x.tps.policy, x.tps.pgbouncer)),
      fmt(x.tps.enforced),
      fmtRatio(ratio(x.tps.enforced, x.tps.pgbouncer)),
      fmt(x.latencyMs.direct, 3),
      fmt(x.latencyMs.pgbouncer, 3),
      fmt(x.latencyMs.warden, 3),
      fmt(x.latencyMs.policy, 3),
      fmt(x.latencyMs.enforced, 3),
    ]),
    notes: [
      '',
      'All three endpoints share one 127.0.0.1 PostgreSQL (SCRAM), pgbench and Warden on the same machine; ' +
        'compare ratios, not absolute TPS.',
      ...(r.failures > 0 ? [`${r.failures} pgbench run(s) FAILED; see bench/results/latest.json.`] : []),
    ],
  };
}
