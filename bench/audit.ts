// Benchmark: durable audit append throughput (group commit under concurrency) and offline verification speed.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../src/audit/log.js';
import { encodeEntry, makeEntry } from '../src/audit/entry.js';
import type { AuditEntry, StatementEntry } from '../src/audit/entry.js';
import { ENTRIES_FILE } from '../src/audit/store-file.js';
import { verifyLog } from '../src/audit/verify.js';
import { registerCleanup } from '../test/harness/sys.js';
import { fmt, median, microsSince, nowNs, percentile, printTable } from './lib.js';
import type { BenchOptions, Table } from './lib.js';

const ORIGIN = 'bench.warden.local/audit';

/** Targets from the design brief. */
export const APPEND_TARGET_PER_S = 50_000;
export const VERIFY_TARGET_PER_S = 300_000;

const STATEMENTS = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
  'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2',
  'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)',
  'SELECT o.id, o.amount, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.created_at > $1 ORDER BY o.amount DESC LIMIT 50',
];

/** A statement entry as the gateway writes it before forwarding a statement (fresh id and time each call). */
export function statementEntry(i: number): StatementEntry {
  return makeEntry<StatementEntry>({
    kind: 'statement',
    sessionId: `9f1c2e7a-5b0d-4c61-8e3f-${String(100_000_000_000 + (i % 64)).slice(-12)}`,
    principal: { name: 'svc_reporting', kind: 'service', groups: ['reporting', 'readers'] },
    target: 'production-main',
    text: STATEMENTS[i % STATEMENTS.length] as string,
    paramsHash: i % 3 === 0 ? null : 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c',
    path: i % 2 === 0 ? 'parse' : 'simple',
    decision: {
      effect: 'allow',
      rules: ['role:reporting/grant:0'],
      reasons: ['role reporting grants select on public.orders'],
    },
    policyVersion: 7,
  });
}

export interface AppendRow {
  /** Appends kept in flight at once (concurrent sessions). */
  readonly concurrency: number;
  /** 'entry': build and encode a fresh entry per append (what the gateway does); 'bytes': pre-encoded (store only). */
  readonly input: 'entry' | 'bytes';
  readonly entries: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface VerifyRow {
  readonly mode: 'hashes and signatures' | 'strict (decode every entry)';
  readonly entries: number;
  readonly seconds: number;
  readonly perSecond: number;
}

export interface AuditResults {
  readonly entryBytes: number;
  /** Building and encoding entries alone, no I/O: the CPU ceiling of append throughput. */
  readonly encodePerSecond: number;
  readonly fileBytes: number;
  readonly append: readonly AppendRow[];
  readonly verify: readonly VerifyRow[];
  readonly targets: { readonly appendPerS: number; readonly verifyPerS: number };
}

/** Keeps `concurrency` appends in flight until `durationMs` has passed (or `limit` entries were appended). */
async function appendLoad(
  log: AuditLog,
  concurrency: number,
  durationMs: number,
  o: {
    readonly limit?: number;
    readonly latencies?: number[];
    /** What to append for the i-th call; default: a fresh statement entry (built and encoded per append). */
    readonly next?: (i: number) => AuditEntry | Uint8Array;
  } = {},
): Promise<{ entries: number; seconds: number }> {
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  const next = o.next ?? statementEntry;
  const latencies = o.latencies;
  const start = nowNs();
  const deadline = Date.now() + durationMs;
  let started = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (Date.now() < deadline && started < limit) {
      const i = started++;
      const t0 = nowNs();
      // INVARIANT (of the store): append resolves only once the entry is durable (fdatasync returned).
      await log.append(next(i));
      latencies?.push(microsSince(t0) / 1000);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { entries: done, seconds: microsSince(start) / 1e6 };
}

/** Entries built and canonically encoded per second, for `ms` milliseconds. */
function encodeRate(ms: number): number {
  const start = nowNs();
  const deadline = Date.now() + ms;
  let n = 0;
  let bytes = 0;
  while (Date.now() < deadline) {
    for (let k = 0; k < 100; k++) bytes += encodeEntry(statementEntry(n++)).length;
  }
  if (bytes === 0) throw new Error('no entry encoded');
  return n / (microsSince(start) / 1e6);
}

export async function runAuditBench(o: BenchOptions): Promise<AuditResults> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-audit-'));
  // Removed by the finally below, or at exit if the run is interrupted (Ctrl-C).
  const unregister = registerCleanup(() => rmSync(dir, { recursive: true, force: true }));
  let log: AuditLog | undefined;
  try {
    log = await AuditLog.openDir(join(dir, 'log'), { origin: ORIGIN });
    const entryBytes = encodeEntry(statementEntry(1)).length;
    const encodePerSecond = encodeRate(o.quick ? 300 : 1000);
    const levels = o.quick ? [1, 64, 1024] : [1, 16, 256, 4096];
    const seconds = o.quick ? 1 : 3;
    const append: AppendRow[] = [];
    // Pre-encoded valid entries, cycled, for the store-only row (ids repeat every 4096; the store does not care).
    const encoded = Array.from({ length: 4096 }, (_x, i) => encodeEntry(statementEntry(i)));
    const plan: { c: number; input: 'entry' | 'bytes' }[] = [
      ...levels.map((c) => ({ c, input: 'entry' as const })),
      { c: levels[levels.length - 1] as number, input: 'bytes' as const },
    ];
    for (const { c, input } of plan) {
      o.log(`audit: appending (${input}) with ${c} in flight for ${seconds} s`);
      const lat: number[] = [];
      const r = await appendLoad(log, c, seconds * 1000, {
        latencies: lat,
        ...(input === 'bytes' ? { next: (i: number) => encoded[i % encoded.length] as Uint8Array } : {}),
      });
      append.push({
        concurrency: c,
        input,
        entries: r.entries,
        seconds: r.seconds,
        perSecond: r.entries / r.seconds,
        p50Ms: percentile(lat, 50),
        p99Ms: percentile(lat, 99),
      });
    }

    await log.close();
    log = undefined;

    // Verification runs over a fresh log of exactly `total` distinct entries, so runs compare with each other.
    const total = o.quick ? 50_000 : 200_000;
    const vdir = join(dir, 'verify');
    o.log(`audit: writing a log of ${total} entries to verify`);
    log = await AuditLog.openDir(vdir, { origin: ORIGIN });
    await appendLoad(log, 4096, 10 * 60_000, { limit: total });
    await log.checkpoint();
    const verifierKey = log.verifier;
    const size = log.size;
    await log.close();
    log = undefined;
    if (size !== total) throw new Error(`the verify log holds ${size} entries, not ${total}`);
    const fileBytes = statSync(join(vdir, ENTRIES_FILE)).size;

    const verify: VerifyRow[] = [];
    const runs = o.quick ? 1 : 3;
    for (const strict of [false, true]) {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        o.log(`audit: verifying ${size} entries${strict ? ' (strict)' : ''}, run ${i + 1}/${runs}`);
        const t0 = nowNs();
        const r = await verifyLog(vdir, {
          origin: ORIGIN,
          verifierKeys: [verifierKey],
          strictEntries: strict,
        });
        times.push(microsSince(t0) / 1e6);
        if (!r.ok || r.size !== size) {
          throw new Error(`verifyLog failed on an intact log: ${r.firstError?.message ?? `size ${r.size}`}`);
        }
      }
      const s = median(times);
      verify.push({
        mode: strict ? 'strict (decode every entry)' : 'hashes and signatures',
        entries: size,
        seconds: s,
        perSecond: size / s,
      });
    }
    return {
      entryBytes,
      encodePerSecond,
      fileBytes,
      append,
      verify,
      targets: { appendPerS: APPEND_TARGET_PER_S, verifyPerS: VERIFY_TARGET_PER_S },
    };
  } finally {
    await log?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}

/** PASS or FAIL against a target, with the margin (e.g. "PASS (+21%)"). */
export function passFail(value: number, target: number): string {
  const margin = Math.round((value / target - 1) * 100);
  return `${value >= target ? 'PASS' : 'FAIL'} (${margin >= 0 ? '+' : ''}${margin}%)`;
}

export function auditAppendTable(r: AuditResults): Table {
  const best = Math.max(...r.append.filter((x) => x.input === 'entry').map((x) => x.perSecond));
  return {
    title: `Audit append, durable (fdatasync per group commit), statement entries of ${r.entryBytes} bytes`,
    columns: ['in flight', 'input', 'entries', 'seconds', 'appends/s', 'p50 ms', 'p99 ms'],
    align: ['right', 'left', 'right', 'right', 'right', 'right', 'right'],
    rows: r.append.map((x) => [
      String(x.concurrency),
      x.input === 'entry' ? 'new entry' : 'pre-encoded',
      fmt(x.entries),
      fmt(x.seconds, 2),
      fmt(x.perSecond),
      fmt(x.p50Ms, 2),
      fmt(x.p99Ms, 2),
    ]),
    notes: [
      '',
      `Durable appends (new entries): ${fmt(best)}/s, target ≥ ${fmt(r.targets.appendPerS)}/s: ` +
        `${passFail(best, r.targets.appendPerS)}.`,
      '"new entry": each append builds (makeEntry) and encodes (canonical JSON) a fresh statement entry, as the',
      `gateway does; that alone (no I/O) runs at ${fmt(r.encodePerSecond)} entries/s. "pre-encoded": the store only.`,
    ],
  };
}

export function auditVerifyTable(r: AuditResults): Table {
  const plain = r.verify.find((x) => x.mode === 'hashes and signatures');
  return {
    title: `Audit verification (verifyLog), ${fmt(r.verify[0]?.entries)} entries, ${fmt(r.fileBytes / 1048576, 1)} MiB`,
    columns: ['mode', 'seconds', 'entries/s'],
    rows: r.verify.map((x) => [x.mode, fmt(x.seconds, 2), fmt(x.perSecond)]),
    notes: [
      '',
      `Verification (hashes and signatures): ${fmt(plain?.perSecond)} entries/s, target ≥ ` +
        `${fmt(r.targets.verifyPerS)}/s: ${passFail(plain?.perSecond ?? 0, r.targets.verifyPerS)}.`,
      '`warden audit verify` runs this mode; `--strict` also decodes every entry (second row).',
    ],
  };
}

export function printAudit(r: AuditResults): void {
  printTable(auditAppendTable(r));
  printTable(auditVerifyTable(r));
  const append = Math.max(...r.append.filter((x) => x.input === 'entry').map((x) => x.perSecond));
  const verify = r.verify.find((x) => x.mode === 'hashes and signatures')?.perSecond ?? 0;
  process.stdout.write(
    `audit targets: append ${fmt(append)}/s (target ${fmt(r.targets.appendPerS)}) ` +
      `${passFail(append, r.targets.appendPerS)}; verify ${fmt(verify)}/s (target ${fmt(r.targets.verifyPerS)}) ` +
      `${passFail(verify, r.targets.verifyPerS)}\n`,
  );
}
