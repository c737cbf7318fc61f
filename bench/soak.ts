// Soak benchmark: N concurrent sessions (pgbench and node-postgres, simple and prepared) held through a real `warden serve`
// with a policy and the audit log: unexpected errors, audit completeness, gateway memory over time and per idle session.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type PgInstance } from '../test/harness/pg.js';
import { initPgbench, runPgbench, type PgbenchResult } from '../test/harness/clients.js';
import { auditVerify, startServe, writeServeConfig, type Serve } from '../test/helpers/warden-serve.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry } from '../src/audit/entry.js';
import { fmt, printTable } from './lib.js';
import type { BenchOptions } from './lib.js';

const POLICY = fileURLToPath(new URL('./fixtures/soak-policy', import.meta.url));
const ORIGIN = 'soak.warden.local/audit';
const SCALE = 2; // pgbench_accounts: 200,000 rows, branches 1 and 2
const ROWS_PER_BRANCH = 100_000;

export interface SoakOptions extends BenchOptions {
  /** Concurrent client sessions (default 1,000; 200 with quick). */
  readonly sessions?: number;
  /** How long the traffic runs, in seconds (default 600; 20 with quick). */
  readonly durationSec?: number;
  /** Share of the sessions that are pgbench clients (default 0.4). */
  readonly pgbenchShare?: number;
  /** pgbench transactions per second per client (default 0.5); the rest of each client's time it is idle. */
  readonly pgbenchRatePerClient?: number;
  /** node-postgres think time between statements, in ms (default 1,000–3,000). */
  readonly thinkMs?: readonly [number, number];
  /** Keep the gateway's state folder (audit log) instead of removing it. */
  readonly keep?: boolean;
}

export interface SoakResults {
  readonly sessions: number;
  readonly pgbenchSessions: number;
  readonly nodeSessions: number;
  readonly durationSec: number;
  readonly pgbenchProcesses: number;
  readonly node: {
    readonly ok: number;
    readonly simpleOk: number;
    readonly extendedOk: number;
    readonly expectedDenials: number;
  };
  readonly pgbench: { readonly transactions: number; readonly statements: number; readonly failed: number };
  /** Errors the database itself would not have given (must be 0), and a few samples. */
  readonly unexpectedErrors: number;
  readonly errorSamples: readonly string[];
  /** Rows that the row filter should have hidden, and unmasked filler values seen (must be 0). */
  readonly policyViolations: number;
  readonly audit: {
    readonly entries: number;
    readonly statementEntries: number;
    readonly bindEntries: number;
    /** Unique simple-protocol statements a client saw succeed that have no entry (must be 0). */
    readonly missing: number;
    readonly verifyOk: boolean;
    readonly verifyOutput: string;
  };
  readonly memory: {
    readonly baselineMiB: number;
    readonly withIdleSessionsMiB: number;
    readonly perIdleSessionKiB: number;
    readonly startMiB: number;
    readonly endMiB: number;
    readonly peakMiB: number;
    /** Least-squares slope of gateway RSS over the traffic phase (after a 10 % warm-up), MiB per minute. */
    readonly slopeMiBPerMin: number;
    readonly samples: readonly (readonly [number, number])[];
  };
  /** The gateway drained and exited 0 on SIGTERM at the end. */
  readonly cleanExit: boolean;
}

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Least-squares slope of y over x. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

interface NodeStats {
  ok: number;
  simpleOk: number;
  extendedOk: number;
  denied: number;
  unexpected: number;
  violations: number;
  samples: string[];
  /** Unique simple statements a client saw succeed (each must have its audit entry). */
  seen: string[];
}

/** One node-postgres client's loop: mixed simple, extended and prepared statements, a transaction, and a denial. */
async function nodeClient(
  c: pg.Client,
  id: number,
  until: number,
  think: readonly [number, number],
  st: NodeStats,
): Promise<void> {
  let seq = 0;
  const fail = (what: string, e: unknown): void => {
    st.unexpected++;
    if (st.samples.length < 10) st.samples.push(`${what}: ${String(e)}`);
  };
  // Spread the first statements over the think time, so that the sessions do not all start at once.
  await sleep(Math.random() * think[1]);
  while (Date.now() < until) {
    const aid = 1 + Math.floor(Math.random() * ROWS_PER_BRANCH); // branch 1: the teller's own
    const r = Math.random();
    const tag = `${id}${String(++seq).padStart(6, '0')}`;
    try {
      if (r < 0.35) {
        const sql = `SELECT abalance, filler, ${tag} AS tag FROM pgbench_accounts WHERE aid = ${aid}`;
        const res = await c.query(sql);
        if (res.rows.length !== 1 || res.rows[0]?.filler !== '***') st.violations++;
        st.seen.push(sql);
        st.simpleOk++;
      } else if (r < 0.4) {
        // Another branch's account: the row filter hides it.
        const sql = `SELECT abalance, ${tag} AS tag FROM pgbench_accounts WHERE aid = ${aid + ROWS_PER_BRANCH}`;
        const res = await c.query(sql);
        if (res.rows.length !== 0) st.violations++;
        st.seen.push(sql);
        st.simpleOk++;
      } else if (r < 0.65) {
        const res = await c.query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', [aid]);
        if (res.rows.length !== 1) st.violations++;
        st.extendedOk++;
      } else if (r < 0.85) {
        await c.query({
          name: 'soak_upd',
          text: 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2',
          values: [1, aid],
        });
        st.extendedOk++;
      } else if (r < 0.95) {
        const stmts = [
          'BEGIN',
          `UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid = ${aid} AND ${tag} > 0`,
          `SELECT abalance, ${tag} AS tag FROM pgbench_accounts WHERE aid = ${aid}`,
          'COMMIT',
        ];
        for (const s of stmts) {
          await c.query(s);
          if (s !== 'BEGIN' && s !== 'COMMIT') st.seen.push(s);
          st.simpleOk++;
        }
      } else {
        try {
          await c.query(`DELETE FROM pgbench_accounts WHERE aid = ${aid}`);
          st.violations++; // a delete must never be allowed
        } catch (e) {
          if ((e as { code?: string }).code === '42501') st.denied++;
          else fail('delete', e);
        }
        continue;
      }
      st.ok++;
    } catch (e) {
      fail('statement', e);
      // A failed transaction must not leave the session in an aborted state.
      await c.query('ROLLBACK').catch(() => undefined);
    }
    await sleep(think[0] + Math.random() * (think[1] - think[0]));
  }
}

/** Runs the soak; everything it starts is stopped, and its folders removed, also on failure. */
export async function runSoak(o: SoakOptions): Promise<SoakResults> {
  const sessions = o.sessions ?? (o.quick ? 200 : 1000);
  const durationSec = o.durationSec ?? (o.quick ? 20 : 600);
  const pgbenchSessions = Math.round(sessions * (o.pgbenchShare ?? 0.4));
  const nodeSessions = sessions - pgbenchSessions;
  const think = o.thinkMs ?? [1000, 3000];
  const rate = o.pgbenchRatePerClient ?? 0.5;
  const upPw = `up-${randomBytes(12).toString('hex')}`;
  const benchPw = `bench-${randomBytes(12).toString('hex')}`;
  const webPw = `web-${randomBytes(12).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'warden-soak-'));
  let upstream: PgInstance | undefined;
  let gw: Serve | undefined;
  const clients: pg.Client[] = [];
  try {
    o.log(`soak: PostgreSQL with max_connections ${sessions + 100}`);
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'bench', password: upPw }],
      databases: [{ name: 'bench', owner: 'bench' }],
      settings: { max_connections: String(sessions + 100), shared_buffers: '128MB' },
    });
    const init = await initPgbench({
      host: '127.0.0.1',
      port: upstream.port,
      user: 'bench',
      password: upPw,
      database: 'bench',
      scale: SCALE,
    });
    if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const auditDir = join(dir, 'audit');
    const config = writeServeConfig({
      dir,
      upstreamPort: upstream.port,
      database: 'bench',
      upstreamUser: 'bench',
      upstreamPassword: upPw,
      users: [
        { name: 'bench', password: benchPw, kind: 'service' },
        { name: 'webapp', password: webPw, kind: 'service', attributes: { branch: '1' } },
      ],
      limits: { max_connections: sessions + 50, drain_timeout_ms: 10_000 },
      audit: { dir: auditDir, origin: ORIGIN, checkpoint_interval_ms: 5000 },
      policyFolder: POLICY,
    });
    o.log('soak: starting warden serve (policy + audit)');
    gw = await startServe(config);
    const serve = gw;
    const samples: [number, number][] = [];
    const t0 = Date.now();
    const sampler = setInterval(() => {
      try {
        samples.push([(Date.now() - t0) / 1000, serve.rss() / MiB]);
      } catch {
        // the process is gone
      }
    }, 2000);
    const connect = async (): Promise<pg.Client> => {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: serve.port,
        user: 'webapp',
        password: webPw,
        database: 'main',
      });
      c.on('error', () => undefined);
      await c.connect();
      clients.push(c);
      return c;
    };
    try {
      // Warm the gateway up (policy loaded, analyser and audit paths touched) before the baseline.
      const warm = await connect();
      await warm.query('SELECT abalance FROM pgbench_accounts WHERE aid = 1');
      await sleep(1500);
      // RSS moves with garbage collection by more than an idle session costs, so: the median of a few samples at
      // each of five steps of idle sessions, and the least-squares slope of RSS over the number of sessions.
      const settled = async (): Promise<number> => {
        await sleep(1000);
        const xs: number[] = [];
        for (let k = 0; k < 5; k++) {
          xs.push(serve.rss() / MiB);
          await sleep(200);
        }
        return xs.sort((a, b) => a - b)[2] as number;
      };
      const steps: [number, number][] = [[1, await settled()]];
      const baseline = steps[0]?.[1] ?? 0;
      o.log(`soak: opening ${nodeSessions} node-postgres sessions (idle), in four steps`);
      for (let step = 1; step <= 4; step++) {
        const target = Math.round((nodeSessions * step) / 4);
        while (clients.length < target) {
          await Promise.all(Array.from({ length: Math.min(50, target - clients.length) }, () => connect()));
        }
        steps.push([clients.length, await settled()]);
      }
      const withIdle = steps[steps.length - 1]?.[1] ?? baseline;
      const perIdleKiB = slope(steps) * 1024;
      o.log(
        `soak: RSS ${baseline.toFixed(1)} MiB → ${withIdle.toFixed(1)} MiB with ${nodeSessions} idle sessions (${perIdleKiB.toFixed(0)} KiB each)`,
      );

      const trafficStart = (Date.now() - t0) / 1000;
      const until = Date.now() + durationSec * 1000;
      const st: NodeStats = {
        ok: 0,
        simpleOk: 0,
        extendedOk: 0,
        denied: 0,
        unexpected: 0,
        violations: 0,
        samples: [],
        seen: [],
      };
      // At least two processes: pgbench TPC-B-like over the simple protocol, and select-only with prepared statements.
      const procs = Math.min(pgbenchSessions, Math.max(2, Math.ceil(pgbenchSessions / 100)));
      o.log(
        `soak: ${durationSec} s of traffic: ${pgbenchSessions} pgbench clients in ${procs} process(es) + ${nodeSessions} node-postgres`,
      );
      const pgbenchRuns: Promise<PgbenchResult & { kind: string; clients: number }>[] = [];
      for (let p = 0; p < procs && pgbenchSessions > 0; p++) {
        const n = Math.floor(pgbenchSessions / procs) + (p < pgbenchSessions % procs ? 1 : 0);
        const kind = p % 2 === 0 ? 'tpcb-like' : 'select-only';
        const protocol = p % 2 === 0 ? 'simple' : 'prepared';
        pgbenchRuns.push(
          runPgbench({
            host: '127.0.0.1',
            port: serve.port,
            user: 'bench',
            password: benchPw,
            database: 'main',
            clients: n,
            jobs: 1,
            durationSec,
            builtin: kind,
            protocol,
            noVacuum: true,
            args: ['-R', String(Math.max(1, Math.round(n * rate)))],
          }).then((r) => ({ ...r, kind, clients: n })),
        );
      }
      const loops = clients.map((c, i) => nodeClient(c, i + 1, until, think, st));
      const progress = setInterval(() => {
        const last = samples[samples.length - 1];
        o.log(
          `soak: ${Math.round((until - Date.now()) / 1000)} s left, node ok ${st.ok}, unexpected ${st.unexpected}, RSS ${last?.[1].toFixed(1) ?? '?'} MiB`,
        );
      }, 30_000);
      const pgr = await Promise.all(pgbenchRuns);
      await Promise.all(loops);
      clearInterval(progress);
      const trafficEnd = (Date.now() - t0) / 1000;

      let pgTx = 0;
      let pgStmts = 0;
      let pgFailed = 0;
      let unexpected = st.unexpected;
      const samplesOut = [...st.samples];
      for (const r of pgr) {
        const tx = r.transactions ?? 0;
        pgTx += tx;
        // tpcb-like: BEGIN, 3 UPDATEs, SELECT, INSERT, END; select-only: one SELECT.
        pgStmts += tx * (r.kind === 'tpcb-like' ? 7 : 1);
        pgFailed += r.failed ?? 0;
        const aborted = /client \d+ aborted|error/i.test(r.stderr);
        if (r.code !== 0 || aborted || (r.failed ?? 0) > 0) {
          unexpected += Math.max(1, r.failed ?? 0);
          samplesOut.push(
            `pgbench ${r.kind} exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
          );
        }
      }
      for (const c of clients) await c.end().catch(() => undefined);
      clients.length = 0;
      await sleep(1000);
      clearInterval(sampler);
      const endMiB = serve.rss() / MiB;

      o.log('soak: SIGTERM (drain), then reading and verifying the audit log');
      serve.child.kill('SIGTERM');
      const exit = await serve.exited;
      const snap = await LogSnapshot.open(auditDir);
      const texts = new Set<string>();
      let statementEntries = 0;
      let bindEntries = 0;
      for (let i = 0; i < snap.size; i++) {
        const e = decodeEntry(await snap.read(i));
        if (e.kind === 'statement') {
          statementEntries++;
          texts.add(e.text);
        } else if (e.kind === 'statement.bind') bindEntries++;
      }
      const missing = st.seen.filter((s) => !texts.has(s)).length;
      const v = auditVerify(auditDir, ORIGIN);
      const traffic = samples.filter(
        ([t]) => t >= trafficStart + (trafficEnd - trafficStart) * 0.1 && t <= trafficEnd,
      );
      return {
        sessions,
        pgbenchSessions,
        nodeSessions,
        durationSec,
        pgbenchProcesses: pgr.length,
        node: { ok: st.ok, simpleOk: st.simpleOk, extendedOk: st.extendedOk, expectedDenials: st.denied },
        pgbench: { transactions: pgTx, statements: pgStmts, failed: pgFailed },
        unexpectedErrors: unexpected,
        errorSamples: samplesOut.slice(0, 10),
        policyViolations: st.violations,
        audit: {
          entries: snap.size,
          statementEntries,
          bindEntries,
          missing,
          verifyOk: v.status === 0,
          verifyOutput: v.out.trim().split('\n').slice(-2).join(' | '),
        },
        memory: {
          baselineMiB: baseline,
          withIdleSessionsMiB: withIdle,
          perIdleSessionKiB: perIdleKiB,
          startMiB: traffic[0]?.[1] ?? withIdle,
          endMiB,
          peakMiB: Math.max(...samples.map(([, m]) => m)),
          slopeMiBPerMin: slope(traffic) * 60,
          samples,
        },
        cleanExit: exit.code === 0,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    for (const c of clients) await c.end().catch(() => undefined);
    await gw?.kill();
    await upstream?.stop();
    if (o.keep !== true) rmSync(dir, { recursive: true, force: true });
  }
}

export function printSoak(r: SoakResults): void {
  printTable({
    title: `Soak: ${r.sessions} sessions (${r.pgbenchSessions} pgbench in ${r.pgbenchProcesses} process(es), ${r.nodeSessions} node-postgres) for ${r.durationSec} s through warden serve with policy and audit`,
    columns: ['measure', 'value'],
    rows: [
      [
        'node-postgres operations ok (statements: simple / extended)',
        `${r.node.ok} (${r.node.simpleOk} / ${r.node.extendedOk})`,
      ],
      ['expected denials (42501)', fmt(r.node.expectedDenials)],
      ['pgbench transactions (statements)', `${r.pgbench.transactions} (${r.pgbench.statements})`],
      ['unexpected errors (must be 0)', fmt(r.unexpectedErrors)],
      ['row filter / mask violations (must be 0)', fmt(r.policyViolations)],
      [
        'audit entries (statement / bind)',
        `${r.audit.entries} (${r.audit.statementEntries} / ${r.audit.bindEntries})`,
      ],
      ['acknowledged statements without an entry (must be 0)', fmt(r.audit.missing)],
      ['warden audit verify', r.audit.verifyOk ? 'OK' : `FAIL ${r.audit.verifyOutput}`],
      [
        'gateway RSS baseline → with idle sessions (MiB)',
        `${fmt(r.memory.baselineMiB, 1)} → ${fmt(r.memory.withIdleSessionsMiB, 1)}`,
      ],
      ['memory per idle session (KiB)', fmt(r.memory.perIdleSessionKiB, 0)],
      [
        'gateway RSS traffic start → end, peak (MiB)',
        `${fmt(r.memory.startMiB, 1)} → ${fmt(r.memory.endMiB, 1)}, ${fmt(r.memory.peakMiB, 1)}`,
      ],
      ['gateway RSS slope under traffic (MiB/min)', fmt(r.memory.slopeMiBPerMin, 2)],
      ['SIGTERM drain, exit 0', r.cleanExit ? 'yes' : 'no'],
    ],
    notes: [
      `Memory per idle session: slope of gateway RSS (median of 5 samples) over 1, ¼, ½, ¾ and all ${r.nodeSessions} idle sessions.`,
    ],
  });
  for (const s of r.errorSamples) process.stdout.write(`  error: ${s}\n`);
}
