// A throwaway pgbouncer in front of a PostgreSQL server, for benchmarks that compare Warden with a plain pooler.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { HarnessError } from './errors.js';
import {
  asServerUser,
  chownToServer,
  freePort,
  isAlive,
  makeTempRoot,
  registerCleanup,
  removeTree,
  signal,
  sleep,
  sleepSync,
  spawnWatchdog,
  tailFile,
} from './sys.js';

export interface PgbouncerOptions {
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  /** Database name, the same on pgbouncer and upstream. */
  readonly database: string;
  /** The one user allowed in; pgbouncer logs in upstream as this user too. */
  readonly user: string;
  /** Client and upstream password (SCRAM towards clients). Without it, clients are trusted. */
  readonly password?: string;
  /** Default 'session'. */
  readonly poolMode?: 'session' | 'transaction';
  /** Server connections per user/database pair. Default 20. */
  readonly poolSize?: number;
  /** Default 30 s. */
  readonly startTimeoutMs?: number;
}

export interface PgbouncerInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly rootDir: string;
  readonly logFile: string;
  readonly pid: number | undefined;
  /** Immediate shutdown (SIGTERM), then remove the temp folder. Idempotent. */
  stop(): Promise<void>;
}

/** The pgbouncer executable: $WARDEN_PGBOUNCER, else /usr/sbin/pgbouncer; null if absent. */
export function pgbouncerPath(): string | null {
  const fromEnv = process.env['WARDEN_PGBOUNCER'];
  for (const p of [fromEnv, '/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) {
    if (p !== undefined && p !== '' && existsSync(p)) return p;
  }
  return null;
}

/** pgbouncer's quoting for ini connect strings and the auth file: double the quote character. */
function quoted(v: string, q: '"' | "'"): string {
  if (/[\0\n\r]/.test(v)) throw new HarnessError('INVALID_OPTION', 'names and passwords must be single-line');
  return `${q}${v.split(q).join(q + q)}${q}`;
}

function ident(v: string, what: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(v))
    throw new HarnessError('INVALID_OPTION', `unsupported ${what} for pgbouncer: ${v}`);
  return v;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * @see https://www.pgbouncer.org/config.html
 * Start pgbouncer on a free port of 127.0.0.1 in front of `upstreamHost:upstreamPort`.
 * Returns null when pgbouncer is not installed (callers skip their benchmark).
 */
export async function startPgbouncer(opts: PgbouncerOptions): Promise<PgbouncerInstance | null> {
  const exe = pgbouncerPath();
  if (exe === null) return null;
  const db = ident(opts.database, 'database name');
  const root = makeTempRoot('warden-pgbouncer-');
  const logFile = join(root, 'pgbouncer.log');
  const pidFile = join(root, 'pgbouncer.pid');
  const endWatchdog = spawnWatchdog(pidFile, 'TERM', root);
  let child: ChildProcess | undefined;
  let stopped = false;

  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    endWatchdog();
    const pid = child?.pid;
    if (pid !== undefined && isAlive(pid)) {
      signal(pid, 'SIGTERM');
      const deadline = Date.now() + 5_000;
      while (isAlive(pid) && Date.now() < deadline) sleepSync(20);
      if (isAlive(pid)) signal(pid, 'SIGKILL');
    }
    removeTree(root);
  };
  const unregister = registerCleanup(stopSync);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    const c = child;
    if (c?.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      c.ref();
      signal(c.pid, 'SIGTERM');
      if (!(await waitExit(c, 5_000))) {
        signal(c.pid, 'SIGKILL');
        await waitExit(c, 5_000);
      }
    }
    unregister();
    stopSync();
  };

  try {
    const userlist = join(root, 'userlist.txt');
    writeFileSync(userlist, `${quoted(opts.user, '"')} ${quoted(opts.password ?? '', '"')}\n`, {
      mode: 0o600,
    });
    chownToServer(userlist);
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const ini = [
        '; Written by the Warden test harness.',
        '[databases]',
        `${db} = host=${quoted(opts.upstreamHost, "'")} port=${opts.upstreamPort} dbname=${db}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        `auth_type = ${opts.password === undefined ? 'trust' : 'scram-sha-256'}`,
        `auth_file = ${userlist}`,
        `pool_mode = ${opts.poolMode ?? 'session'}`,
        'max_client_conn = 1000',
        `default_pool_size = ${opts.poolSize ?? 20}`,
        `pidfile = ${pidFile}`,
        'ignore_startup_parameters = extra_float_digits,options',
        'server_login_retry = 1',
        '',
      ].join('\n');
      const iniFile = join(root, 'pgbouncer.ini');
      writeFileSync(iniFile, ini);
      chownToServer(iniFile);
      const logFd = openSync(logFile, 'a');
      try {
        child = spawn(exe, [iniFile], { ...asServerUser(), cwd: root, stdio: ['ignore', logFd, logFd] });
      } finally {
        closeSync(logFd);
      }
      child.on('error', () => {
        // Seen as an exit in the loop below.
      });
      child.unref();
      let ready = false;
      while (Date.now() < deadline) {
        if (child.exitCode !== null || child.signalCode !== null) break;
        if (await accepts(port)) {
          ready = true;
          break;
        }
        await sleep(50);
      }
      if (ready) {
        const c = child;
        return {
          host: '127.0.0.1',
          port,
          database: db,
          user: opts.user,
          rootDir: root,
          logFile,
          get pid() {
            return c.exitCode === null && c.signalCode === null ? c.pid : undefined;
          },
          stop,
        };
      }
      const log = tailFile(logFile);
      const exited = child.exitCode !== null || child.signalCode !== null;
      if (exited && attempt < 5 && Date.now() < deadline && /Address already in use/i.test(log)) continue;
      throw new HarnessError(
        'PGBOUNCER_START_FAILED',
        exited ? 'pgbouncer exited during startup' : 'pgbouncer did not listen in time',
        {
          detail: log,
        },
      );
    }
  } catch (e) {
    await stop();
    throw e;
  }
}
