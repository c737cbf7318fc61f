// Command line of `npm run bench`: which suites to run and whether to keep runs short.

export const SUITES = ['pgbench', 'mysql', 'analysis', 'hook', 'audit'] as const;
/** Suites that run only when named (long). */
export const EXTRA_SUITES = ['soak'] as const;
export type Suite = (typeof SUITES)[number] | (typeof EXTRA_SUITES)[number];

export const USAGE = `usage: npm run bench [-- [${[...SUITES, ...EXTRA_SUITES].join('|')} ...] [--quick]]

  pgbench    TPS and latency: direct vs pgbouncer vs Warden (needs postgres, pgbench; pgbouncer optional)
  mysql      statements/s through the MySQL front end vs direct MariaDB (mysqlslap, mysql2 execute;
             needs the shared MariaDB on 127.0.0.1:3306 with root over the socket, and mysqlslap)
  analysis   SQL analysis and policy decision time, cold and cached (µs)
  hook       policy hook statements/s with pgbench-like literals, literal fast path off and on
  audit      durable audit append throughput and verifyLog speed
  soak       1,000 sessions (pgbench + node-postgres) for 10 min through warden serve with policy and audit:
             unexpected errors, audit completeness, RSS slope, memory per idle session (only when named;
             --quick: 200 sessions for 20 s; SOAK_SESSIONS and SOAK_SECONDS override)
  --quick    short runs (3 s pgbench runs, one round; fewer iterations)

With no suite named, all of them run except soak. Results: bench/results/latest.json.`;

export interface CliArgs {
  /** Suites in the order given (each once); all of them when none is named. */
  readonly suites: readonly Suite[];
  readonly quick: boolean;
}

/** Parses the command line; 'help' for -h/--help; throws with a message for anything unknown. */
export function parseArgs(argv: readonly string[]): CliArgs | 'help' {
  const suites: Suite[] = [];
  let quick = false;
  for (const a of argv) {
    if (a === '--quick') quick = true;
    else if (a === '--help' || a === '-h') return 'help';
    else if ((SUITES as readonly string[]).includes(a) || (EXTRA_SUITES as readonly string[]).includes(a)) {
      if (!suites.includes(a as Suite)) suites.push(a as Suite);
    } else throw new Error(`unknown argument: ${a}`);
  }
  return { suites: suites.length === 0 ? [...SUITES] : suites, quick };
}
