// Benchmark: mysqlslap and a mysql2 prepared-statement load through Warden's MySQL front end, side by side with direct MariaDB.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { formatNativeHash } from '../src/identity/mysql-auth.js';
import { startGateway } from '../src/main.js';
import type { Gateway } from '../src/main.js';
import { MARIADB_HOST, MARIADB_PORT, mariadbRoot, runMariadb } from '../test/harness/mariadb.js';
import { registerCleanup, runCommand } from '../test/harness/sys.js';
import { fmt, fmtRatio, median, ratio } from './lib.js';
import type { BenchOptions, Table } from './lib.js';

/**
 * `warden`: the MySQL front end with the allow_all hook; `policy`: every statement decided by
 * bench/fixtures/mysql-policy; `enforced`: the same policy plus the write-ahead audit log.
 */
export type MysqlEndpoint = 'direct' | 'warden' | 'policy' | 'enforced';
export const MYSQL_ENDPOINTS: readonly MysqlEndpoint[] = ['direct', 'warden', 'policy', 'enforced'];

/** The policy of the `policy` and `enforced` endpoints; it names the database below. */
const BENCH_POLICY = fileURLToPath(new URL('./fixtures/mysql-policy', import.meta.url));
/** Fixed, because the policy names it (a MySQL database is a policy schema). */
export const MYSQL_BENCH_DB = 'warden_bench';
/** Enough accounts that fresh literals rarely repeat within the dialect's 5,000-text analysis cache. */
const ACCOUNTS = 100_000;
/** Distinct statements per mysqlslap query file (each client cycles through them). */
const MIX = 100;

/**
 * select-only and read-write run through mysqlslap (text protocol, a cycled mix of 100 or 300 texts); `fresh` is a
 * mysql2 `query` point select with a random id inlined (nearly every text new to Warden, as an application that
 * inlines values sends them); `prepared` is a mysql2 `execute` point select (binary protocol, bound id).
 */
export type MysqlWorkload = 'select-only' | 'read-write' | 'fresh' | 'prepared';

export interface MysqlConfig {
  readonly workload: MysqlWorkload;
  readonly clients: number;
}

export interface MysqlRun {
  readonly round: number;
  /** Statements per second (mysqlslap: every statement of the mix counts as one query). */
  readonly qps: number | null;
  readonly queries: number | null;
  readonly seconds: number | null;
  readonly error?: string;
}

export interface MysqlRow extends MysqlConfig {
  readonly runs: Readonly<Record<MysqlEndpoint, readonly MysqlRun[]>>;
  readonly qps: Readonly<Record<MysqlEndpoint, number | null>>;
}

export interface MysqlResults {
  readonly server: string;
  readonly rounds: number;
  readonly rows: readonly MysqlRow[];
  readonly failures: number;
}

/** What mysqlslap prints for one concurrency level. */
export interface MysqlslapBlock {
  readonly avgSec: number;
  readonly minSec: number;
  readonly maxSec: number;
  readonly clients: number;
  readonly queriesPerClient: number;
}

/**
 * Parses mysqlslap's report (one `Benchmark` block per concurrency level). Throws when a block lacks a field
 * or has a value that is not a number, so a changed format fails loudly rather than reporting nonsense.
 */
export function parseMysqlslap(out: string): MysqlslapBlock[] {
  const blocks = out.split(/^Benchmark\s*$/m).slice(1);
  return blocks.map((b, i) => {
    const field = (label: string): number => {
      const m = new RegExp(`^\\s*${label}:\\s*([0-9]+(?:\\.[0-9]+)?)\\b`, 'm').exec(b);
      if (m === null) throw new Error(`mysqlslap block ${i + 1}: no "${label}"`);
      return Number(m[1]);
    };
    return {
      avgSec: field('Average number of seconds to run all queries'),
      minSec: field('Minimum number of seconds to run all queries'),
      maxSec: field('Maximum number of seconds to run all queries'),
      clients: field('Number of clients running queries'),
      queriesPerClient: field('Average number of queries per client'),
    };
  });
}

/** Queries per second of a block: every client ran its queries within the average time. */
export function mysqlslapQps(b: MysqlslapBlock): number | null {
  return b.avgSec > 0 ? (b.clients * b.queriesPerClient) / b.avgSec : null;
}

/** The configurations: both mysqlslap mixes at 1, 8 and 32 clients, mysql2 fresh literals at 8, prepared at 1 and 8. */
export function mysqlConfigurations(): MysqlConfig[] {
  const out: MysqlConfig[] = [];
  for (const workload of ['select-only', 'read-write'] as const) {
    for (const clients of [1, 8, 32]) out.push({ workload, clients });
  }
  out.push({ workload: 'fresh', clients: 8 });
  for (const clients of [1, 8]) out.push({ workload: 'prepared', clients });
  return out;
}

/** Endpoint order of a round, rotated so that none always runs first. */
export function mysqlRoundOrder(round: number, endpoints: readonly MysqlEndpoint[]): MysqlEndpoint[] {
  const k = round % endpoints.length;
  return [...endpoints.slice(k), ...endpoints.slice(0, k)];
}

/** A deterministic pseudo-random account id sequence (same statements for every endpoint). */
function ids(n: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push(1 + (x % ACCOUNTS));
  }
  return out;
}

/** The mysqlslap query mixes (`;`-delimited): fresh literals as an application with inlined values sends them. */
export function queryMix(workload: 'select-only' | 'read-write'): string {
  const lines: string[] = [];
  for (const [i, id] of ids(MIX, 7).entries()) {
    lines.push(`SELECT balance FROM bench_accounts WHERE id = ${id}`);
    if (workload === 'read-write') {
      const delta = (i % 9) - 4;
      lines.push(`UPDATE bench_accounts SET balance = balance + ${delta} WHERE id = ${id}`);
      lines.push(`INSERT INTO bench_history (aid, delta) VALUES (${id}, ${delta})`);
    }
  }
  return lines.join(';\n') + ';\n';
}

interface Endpoint {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The database name the client asks for: the MariaDB database directly, the target name through Warden. */
  readonly database: string;
}

function tail(text: string, lines = 4): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

/** The mysql2 load, in its own process (as mysqlslap is) so that it does not share the gateway's event loop. */
const MYSQL2_SCRIPT = `
import mysql from 'mysql2/promise';
const o = JSON.parse(process.env.WARDEN_BENCH_MYSQL2);
const conns = await Promise.all(Array.from({ length: o.clients }, () => mysql.createConnection({
  host: o.host, port: o.port, user: o.user, password: o.password, database: o.database })));
const sql = 'SELECT balance FROM bench_accounts WHERE id = ?';
const run = o.fresh
  ? (c, id) => c.query('SELECT balance FROM bench_accounts WHERE id = ' + id)
  : (c, id) => c.execute(sql, [id]);
for (const c of conns) await run(c, 1);
let queries = 0;
const t0 = process.hrtime.bigint();
const end = Date.now() + o.durationSec * 1000;
await Promise.all(conns.map(async (c, k) => {
  let x = 2463534242 + k * 7919;
  while (Date.now() < end) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const id = 1 + (x % ${ACCOUNTS});
    const [rows] = await run(c, id);
    if (rows.length !== 1) throw new Error('expected one row for id ' + id);
    queries++;
  }
}));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
await Promise.all(conns.map((c) => c.end()));
process.stdout.write(JSON.stringify({ queries, seconds }) + '\\n');
`;

async function runMysql2(
  ep: Endpoint,
  clients: number,
  durationSec: number,
  fresh: boolean,
): Promise<MysqlRun & { round: -1 }> {
  const env = {
    ...process.env,
    WARDEN_BENCH_MYSQL2: JSON.stringify({ host: MARIADB_HOST, ...ep, clients, durationSec, fresh }),
  };
  const r = await runCommand(process.execPath, ['--input-type=module', '-e', MYSQL2_SCRIPT], {
    env,
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    timeoutMs: (durationSec + 60) * 1000,
  });
  if (r.code !== 0) {
    return {
      round: -1,
      qps: null,
      queries: null,
      seconds: null,
      error: `exit ${r.code ?? r.signal}: ${tail(r.stderr)}`,
    };
  }
  const j = JSON.parse(r.stdout.trim()) as { queries: number; seconds: number };
  return { round: -1, qps: j.queries / j.seconds, queries: j.queries, seconds: j.seconds };
}

async function runSlap(
  ep: Endpoint,
  clients: number,
  queryFile: string,
  totalQueries: number,
): Promise<MysqlRun & { round: -1 }> {
  const r = await runCommand(
    'mysqlslap',
    [
      '--no-defaults',
      `--host=${MARIADB_HOST}`,
      `--port=${ep.port}`,
      `--user=${ep.user}`,
      `--password=${ep.password}`,
      '--skip-ssl',
      `--create-schema=${ep.database}`,
      '--no-drop',
      `--query=${queryFile}`,
      '--delimiter=;',
      `--concurrency=${clients}`,
      `--number-of-queries=${totalQueries}`,
      '--iterations=1',
    ],
    { timeoutMs: 300_000 },
  );
  const fail = (why: string): MysqlRun & { round: -1 } => ({
    round: -1,
    qps: null,
    queries: null,
    seconds: null,
    error: `${why}: ${tail(r.stderr || r.stdout)}`,
  });
  if (r.code !== 0) return fail(`exit ${r.code ?? r.signal}`);
  let blocks: MysqlslapBlock[];
  try {
    blocks = parseMysqlslap(r.stdout);
  } catch (e) {
    return fail(String(e));
  }
  const b = blocks[0];
  if (blocks.length !== 1 || b === undefined)
    return fail(`expected one mysqlslap block, got ${blocks.length}`);
  return {
    round: -1,
    qps: mysqlslapQps(b),
    queries: b.clients * b.queriesPerClient,
    seconds: b.avgSec,
  };
}

/** A mysqlslap statement count near `target`, a multiple of the clients, within [100 per client, 2,000,000]. */
export function slapCount(target: number, clients: number): number {
  const n = Math.min(2_000_000, Math.max(100 * clients, Math.round(target)));
  return Math.ceil(n / clients) * clients;
}

function medianQps(runs: readonly MysqlRun[]): number | null {
  const xs = runs.filter((r) => r.error === undefined && r.qps !== null).map((r) => r.qps as number);
  return xs.length === 0 ? null : median(xs);
}

export interface MysqlBenchOptions extends BenchOptions {
  /** Override the rounds per endpoint (default 2, 1 with quick). */
  readonly rounds?: number;
}

export async function runMysqlBench(o: MysqlBenchOptions): Promise<MysqlResults> {
  const rounds = o.rounds ?? (o.quick ? 1 : 2);
  // mysqlslap runs a fixed number of statements, not for a time: a short probe on each endpoint sizes the measured
  // run to about `slapSec` seconds there (endpoints differ by more than 30 times at one client with the audit log).
  const slapSec = o.quick ? 2 : 5;
  const probeQueries = (clients: number): number => Math.max(5_000, 200 * clients);
  const prepSec = o.quick ? 3 : 8;
  // Random per run; never printed.
  const upstreamUser = `wbench_${randomBytes(4).toString('hex')}`;
  const upstreamPassword = `up-${randomBytes(12).toString('hex')}`;
  const wardenPassword = `wd-${randomBytes(12).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-mysql-'));
  const unregister = registerCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const gateways: Gateway[] = [];
  let created = false;
  const hosts = ['127.0.0.1', 'localhost'];
  try {
    const server = (await mariadbRoot('SELECT VERSION()')).trim();
    o.log(`mysql: creating database ${MYSQL_BENCH_DB} (${ACCOUNTS} accounts) on ${server}`);
    created = true;
    await mariadbRoot(
      [
        `DROP DATABASE IF EXISTS \`${MYSQL_BENCH_DB}\`;`,
        `CREATE DATABASE \`${MYSQL_BENCH_DB}\`;`,
        ...hosts.map((h) => `CREATE USER '${upstreamUser}'@'${h}' IDENTIFIED BY '${upstreamPassword}';`),
        ...hosts.map((h) => `GRANT ALL ON \`${MYSQL_BENCH_DB}\`.* TO '${upstreamUser}'@'${h}';`),
        `USE \`${MYSQL_BENCH_DB}\`;`,
        'CREATE TABLE bench_accounts (id INT PRIMARY KEY, balance INT NOT NULL, filler CHAR(84) NOT NULL) ENGINE=InnoDB;',
        `INSERT INTO bench_accounts SELECT seq, 0, REPEAT('x', 84) FROM seq_1_to_${ACCOUNTS};`,
        'CREATE TABLE bench_history (id BIGINT AUTO_INCREMENT PRIMARY KEY, aid INT NOT NULL, delta INT NOT NULL, ' +
          'at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;',
      ].join('\n'),
    );
    const files = {
      'select-only': join(dir, 'select-only.sql'),
      'read-write': join(dir, 'read-write.sql'),
    } as const;
    writeFileSync(files['select-only'], queryMix('select-only'));
    writeFileSync(files['read-write'], queryMix('read-write'));
    writeFileSync(join(dir, 'up.pw'), upstreamPassword, { mode: 0o600 });

    const startOne = async (name: string, policy: boolean, audit: boolean): Promise<number> => {
      o.log(`mysql: starting Warden (${name})`);
      const cfg = buildGatewayConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          mysql_listen: { host: '127.0.0.1', port: 0 },
          limits: { max_connections: 200 },
          state_dir: join(dir, `state-${name}`),
          ...(audit
            ? {
                audit: {
                  dir: join(dir, `audit-${name}`),
                  origin: 'bench.warden.local/mysql',
                  checkpoint_interval_ms: 1000,
                },
              }
            : {}),
          users: [
            {
              name: 'bench',
              kind: 'service',
              scram_verifier: createVerifier(wardenPassword),
              // mysqlslap (libmariadb) would send its password in clear to a caching_sha2 full authentication on
              // a plaintext connection, which Warden refuses: the native hash lets it log in without TLS, as directly.
              mysql_native_hash: formatNativeHash(wardenPassword),
              logins: { [MYSQL_BENCH_DB]: 'app' },
            },
          ],
          targets: [
            {
              name: MYSQL_BENCH_DB,
              engine: 'mysql',
              host: MARIADB_HOST,
              port: MARIADB_PORT,
              database: MYSQL_BENCH_DB,
              environment: 'test',
              logins: { app: { user: upstreamUser, password_file: join(dir, 'up.pw') } },
              policy: policy ? { folder: BENCH_POLICY } : 'allow_all',
            },
          ],
        },
        dir,
      );
      const gw = await startGateway(cfg, { log: () => undefined });
      gateways.push(gw);
      if (gw.mysql === undefined) throw new Error('the gateway started no MySQL listener');
      return gw.mysql.port;
    };

    const direct: Endpoint = {
      port: MARIADB_PORT,
      user: upstreamUser,
      password: upstreamPassword,
      database: MYSQL_BENCH_DB,
    };
    const via = (port: number): Endpoint => ({
      port,
      user: 'bench',
      password: wardenPassword,
      database: MYSQL_BENCH_DB,
    });
    const targets: Record<MysqlEndpoint, Endpoint> = {
      direct,
      warden: via(await startOne('allow_all', false, false)),
      policy: via(await startOne('policy', true, false)),
      enforced: via(await startOne('policy+audit', true, true)),
    };

    // The policy endpoints must really decide: a statement the policy does not grant is refused, naming a rule.
    for (const ep of ['policy', 'enforced'] as const) {
      const t = targets[ep];
      const d = await runMariadb({ ...t, sql: 'DELETE FROM bench_accounts WHERE id = 1' });
      if (d.code === 0 || !/denied by /.test(d.stderr)) {
        throw new Error(
          `${ep}: an ungranted DELETE was not denied by the policy: ${tail(d.stderr || d.stdout)}`,
        );
      }
    }

    const rows: MysqlRow[] = [];
    let failures = 0;
    for (const [ci, cfg] of mysqlConfigurations().entries()) {
      const runs: Record<MysqlEndpoint, MysqlRun[]> = { direct: [], warden: [], policy: [], enforced: [] };
      for (let round = 0; round < rounds; round++) {
        // INVARIANT: within a round every endpoint runs the same configuration back to back (rotating who goes
        // first), so drift on this shared machine hits them alike.
        for (const ep of mysqlRoundOrder(round + ci, MYSQL_ENDPOINTS)) {
          const t = targets[ep];
          let r: MysqlRun & { round: -1 };
          if (cfg.workload === 'prepared' || cfg.workload === 'fresh') {
            const how = cfg.workload === 'prepared' ? 'execute' : 'query, fresh literals';
            o.log(
              `mysql: mysql2 ${how}, ${cfg.clients} connection(s), ${prepSec} s → ${ep} (round ${round + 1}/${rounds})`,
            );
            r = await runMysql2(t, cfg.clients, prepSec, cfg.workload === 'fresh');
          } else {
            const file = files[cfg.workload];
            // mysqlslap prints milliseconds: a probe too fast to time (0.000 s) is retried ten times longer.
            let probe = await runSlap(t, cfg.clients, file, probeQueries(cfg.clients));
            for (let k = 10; probe.qps === null && probe.error === undefined && k <= 100; k *= 10) {
              probe = await runSlap(t, cfg.clients, file, probeQueries(cfg.clients) * k);
            }
            r = probe;
            if (probe.qps !== null) {
              const n = slapCount(probe.qps * slapSec, cfg.clients);
              o.log(
                `mysql: mysqlslap ${cfg.workload} -c ${cfg.clients}, ${n} statements → ${ep} ` +
                  `(round ${round + 1}/${rounds})`,
              );
              r = await runSlap(t, cfg.clients, file, n);
            }
          }
          if (r.error === undefined && r.qps === null)
            r = { ...r, error: 'the run was too short to time (0.000 s)' };
          if (r.error !== undefined) {
            failures++;
            o.log(`mysql: FAILED on ${ep}: ${r.error}`);
          }
          runs[ep].push({ ...r, round });
        }
      }
      rows.push({
        ...cfg,
        runs,
        qps: {
          direct: medianQps(runs.direct),
          warden: medianQps(runs.warden),
          policy: medianQps(runs.policy),
          enforced: medianQps(runs.enforced),
        },
      });
    }
    return { server, rounds, rows, failures };
  } finally {
    for (const gw of gateways) {
      await gw.close(500).catch((e: unknown) => o.log(`mysql: stopping Warden failed: ${String(e)}`));
    }
    if (created) {
      await mariadbRoot(
        [
          `DROP DATABASE IF EXISTS \`${MYSQL_BENCH_DB}\`;`,
          ...hosts.map((h) => `DROP USER IF EXISTS '${upstreamUser}'@'${h}';`),
        ].join('\n'),
      ).catch((e: unknown) => o.log(`mysql: dropping the bench database failed: ${String(e)}`));
    }
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}

export function mysqlTable(r: MysqlResults): Table {
  const name = (c: MysqlConfig): string =>
    c.workload === 'prepared'
      ? 'prepared select (mysql2 execute)'
      : c.workload === 'fresh'
        ? 'select, fresh literals (mysql2 query)'
        : `${c.workload} (mysqlslap)`;
  return {
    title:
      `MySQL front end, ${r.server}, median of ${r.rounds} alternating round(s); statements/s; ` +
      `Warden: allow_all; +policy: bench/fixtures/mysql-policy; +audit: write-ahead file store`,
    columns: [
      'workload',
      'clients',
      'direct',
      'Warden',
      'Warden/direct',
      '+policy',
      'policy/direct',
      '+policy+audit',
      'enforced/direct',
    ],
    rows: r.rows.map((x) => [
      name(x),
      String(x.clients),
      fmt(x.qps.direct),
      fmt(x.qps.warden),
      fmtRatio(ratio(x.qps.warden, x.qps.direct)),
      fmt(x.qps.policy),
      fmtRatio(ratio(x.qps.policy, x.qps.direct)),
      fmt(x.qps.enforced),
      fmtRatio(ratio(x.qps.enforced, x.qps.direct)),
    ]),
    notes: [
      '',
      'One shared MariaDB on 127.0.0.1, the clients and Warden (in-process) on the same machine; compare ratios. ' +
        'read-write = SELECT, UPDATE, INSERT per account (each statement counted), autocommit. The mysqlslap mixes ' +
        'cycle through 100 (300) texts, so analyses are cached after the first pass; fresh literals are not.',
      ...(r.failures > 0 ? [`${r.failures} run(s) FAILED; see bench/results/latest.json.`] : []),
    ],
  };
}
