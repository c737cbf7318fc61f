// Benchmark entry (`npm run bench [-- pgbench|mysql|analysis|hook|audit|soak ...] [--quick]`): runs the suites, prints tables, writes bench/results/latest.json.
import { cpus, loadavg, totalmem } from 'node:os';
import { printAnalysis, runAnalysisBench } from './analysis.js';
import type { AnalysisResults } from './analysis.js';
import { printAudit, runAuditBench } from './audit.js';
import type { AuditResults } from './audit.js';
import { printHook, runHookBench } from './hook.js';
import type { HookResults } from './hook.js';
import { pgbenchTable, runPgbenchBench } from './pgbench.js';
import { mysqlTable, runMysqlBench } from './mysql.js';
import type { MysqlResults } from './mysql.js';
import { printSoak, runSoak } from './soak.js';
import type { SoakResults } from './soak.js';
import type { PgbenchResults } from './pgbench.js';
import { printTable, writeResults } from './lib.js';
import type { BenchOptions } from './lib.js';
import { USAGE, parseArgs } from './args.js';
import type { CliArgs, Suite } from './args.js';

interface Results {
  startedAt: string;
  finishedAt?: string;
  quick: boolean;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; platform: string };
  /** 1-minute load average at the start and end: the machine is shared, so say how busy it was. */
  loadAverage: { start: number; end?: number };
  pgbench?: PgbenchResults;
  mysql?: MysqlResults;
  analysis?: AnalysisResults;
  hook?: HookResults;
  audit?: AuditResults;
  soak?: SoakResults;
  errors: { suite: Suite; message: string }[];
}

async function main(): Promise<number> {
  let args: CliArgs | 'help';
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const opts: BenchOptions = {
    quick: args.quick,
    log: (line) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`),
  };
  const cpuList = cpus();
  const results: Results = {
    startedAt: new Date().toISOString(),
    quick: args.quick,
    machine: {
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
    loadAverage: { start: loadavg()[0] ?? 0 },
    errors: [],
  };
  process.stdout.write(
    `Warden benchmarks${args.quick ? ' (quick)' : ''}: ${args.suites.join(', ')} on ` +
      `${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}, ` +
      `load average ${results.loadAverage.start.toFixed(2)}\n`,
  );

  for (const suite of args.suites) {
    try {
      switch (suite) {
        case 'pgbench': {
          const r = await runPgbenchBench(opts);
          results.pgbench = r;
          printTable(pgbenchTable(r));
          if (r.failures > 0) results.errors.push({ suite, message: `${r.failures} pgbench run(s) failed` });
          break;
        }
        case 'mysql': {
          const r = await runMysqlBench(opts);
          results.mysql = r;
          printTable(mysqlTable(r));
          if (r.failures > 0) results.errors.push({ suite, message: `${r.failures} mysql run(s) failed` });
          break;
        }
        case 'analysis': {
          const r = await runAnalysisBench(opts);
          results.analysis = r;
          printAnalysis(r);
          break;
        }
        case 'hook': {
          const r = await runHookBench(opts);
          results.hook = r;
          printHook(r);
          break;
        }
        case 'audit': {
          const r = await runAuditBench(opts);
          results.audit = r;
          printAudit(r);
          break;
        }
        case 'soak': {
          const env = process.env;
          const r = await runSoak({
            ...opts,
            ...(env['SOAK_SESSIONS'] !== undefined ? { sessions: Number(env['SOAK_SESSIONS']) } : {}),
            ...(env['SOAK_SECONDS'] !== undefined ? { durationSec: Number(env['SOAK_SECONDS']) } : {}),
          });
          results.soak = r;
          printSoak(r);
          const bad = [
            r.unexpectedErrors > 0 ? `${r.unexpectedErrors} unexpected error(s)` : '',
            r.policyViolations > 0 ? `${r.policyViolations} policy violation(s)` : '',
            r.audit.missing > 0 ? `${r.audit.missing} acknowledged statement(s) without an audit entry` : '',
            r.audit.verifyOk ? '' : 'audit verify failed',
            r.cleanExit ? '' : 'no clean exit on SIGTERM',
          ].filter((x) => x !== '');
          if (bad.length > 0) results.errors.push({ suite, message: bad.join('; ') });
          break;
        }
      }
    } catch (e) {
      const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
      results.errors.push({ suite, message });
      process.stderr.write(`\n${suite} benchmark FAILED: ${message}\n`);
    }
  }
  results.finishedAt = new Date().toISOString();
  results.loadAverage.end = loadavg()[0] ?? 0;
  process.stdout.write(`\nLoad average at the end: ${results.loadAverage.end.toFixed(2)}\n`);
  const path = writeResults('latest.json', results);
  process.stdout.write(`\nResults written to ${path}\n`);
  return results.errors.length === 0 ? 0 : 1;
}

process.exitCode = await main();
