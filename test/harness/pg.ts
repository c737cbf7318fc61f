// Throwaway real PostgreSQL servers for tests: initdb once per process, copy that template, start on a free port, always clean up.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  existsSync,
  openSync,
  closeSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { realpathSync } from 'node:fs';
import pg from 'pg';
import { HarnessError } from './errors.js';
import {
  asServerUser,
  childPids,
  chownToServer,
  freePort,
  isAlive,
  makeTempRoot,
  registerCleanup,
  removeTree,
  runCommand,
  signal,
  sleep,
  sleepSync,
  spawnWatchdog,
  tailFile,
} from './sys.js';

export type PgAuth = 'scram' | 'md5' | 'trust';

export interface PgTlsOptions {
  /** PEM server certificate (copied into the data folder as server.crt). */
  readonly cert: string;
  /** PEM server key (copied as server.key, mode 0600, owned by the server user). */
  readonly key: string;
  /** PEM CA for client certificates (copied as root.crt, enables ssl_ca_file). */
  readonly ca?: string;
  /** Only TLS connections are accepted over TCP (`hostssl` lines). Default false. */
  readonly require?: boolean;
  /** Require a client certificate signed by `ca` (pg_hba `clientcert=`). */
  readonly clientCert?: 'verify-ca' | 'verify-full';
}

export interface PgUserSpec {
  readonly name: string;
  readonly password: string;
  readonly superuser?: boolean;
}

export interface PgDatabaseSpec {
  readonly name: string;
  /** Owner role; it must be one of `users` or `postgres`. */
  readonly owner?: string;
}

export interface StartPostgresOptions {
  /** Authentication for TCP connections from 127.0.0.1/32 and ::1. Default 'scram'. */
  readonly auth?: PgAuth;
  readonly tls?: PgTlsOptions;
  /** Roles created (LOGIN, with a password) after start. */
  readonly users?: readonly PgUserSpec[];
  /** Databases created after the users. */
  readonly databases?: readonly (string | PgDatabaseSpec)[];
  /** Extra postgresql.conf settings (they override the harness defaults). */
  readonly settings?: Readonly<Record<string, string>>;
  /** Give the `postgres` superuser a password, so it can also log in over TCP with scram/md5. */
  readonly superuserPassword?: string;
  /** Run initdb for this instance instead of copying the per-process template. Default false. */
  readonly fresh?: boolean;
  /** How long to wait for the server to accept connections. Default 30 s. */
  readonly startTimeoutMs?: number;
}

export interface PgInstance {
  readonly host: '127.0.0.1';
  /** TCP port (also the unix socket's port number). Stable across restarts. */
  readonly port: number;
  readonly superuser: 'postgres';
  readonly dataDir: string;
  readonly logFile: string;
  /** Folder holding the unix socket `.s.PGSQL.<port>`. */
  readonly socketDir: string;
  /** The temp folder that holds everything; removed by stop(). */
  readonly rootDir: string;
  /** Postmaster pid while running, else undefined. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** node-postgres config for the superuser over the unix socket (trust). */
  superuserConfig(database?: string): pg.ClientConfig;
  /** Run SQL as the superuser over the unix socket; returns the rows (of the last statement). */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    database?: string,
    params?: readonly unknown[],
  ): Promise<R[]>;
  /** Fast shutdown, then remove the temp folder. Idempotent. */
  stop(): Promise<void>;
  /** Crash: SIGKILL the postmaster and every backend. The data stays; startServer() runs crash recovery. */
  kill(): Promise<void>;
  /** Fast shutdown keeping the data. */
  stopServer(): Promise<void>;
  /** Start again on the same port with the same data. */
  startServer(): Promise<void>;
  /** stopServer() then startServer(). */
  restart(): Promise<void>;
  /** Freeze the server (SIGSTOP to every process): connections hang, for timeout tests. */
  pause(): void;
  /** Undo pause(). */
  resume(): void;
  /** The last lines of the server log. */
  logTail(lines?: number): string;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

// ---- binaries ----

let cachedBinDir: string | undefined;

function versionOf(dir: string): number {
  const m = /postgresql\/(\d+)/.exec(dir);
  return m?.[1] === undefined ? 0 : Number(m[1]);
}

/**
 * The folder holding `postgres` and `initdb`: $WARDEN_PG_BINDIR, else the newest
 * /usr/lib/postgresql/<major>/bin, else wherever `postgres` is on PATH.
 */
export function pgBinDir(): string {
  if (cachedBinDir !== undefined) return cachedBinDir;
  const candidates: string[] = [];
  const fromEnv = process.env['WARDEN_PG_BINDIR'];
  if (fromEnv !== undefined && fromEnv !== '') candidates.push(fromEnv);
  if (existsSync('/usr/lib/postgresql')) {
    const dirs = readdirSync('/usr/lib/postgresql')
      .map((v) => join('/usr/lib/postgresql', v, 'bin'))
      .sort((a, b) => versionOf(b) - versionOf(a));
    candidates.push(...dirs);
  }
  for (const p of (process.env['PATH'] ?? '').split(delimiter)) {
    if (p !== '' && existsSync(join(p, 'postgres')))
      candidates.push(dirname(realpathSync(join(p, 'postgres'))));
  }
  for (const dir of candidates) {
    if (existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb'))) {
      cachedBinDir = dir;
      return dir;
    }
  }
  throw new HarnessError(
    'PG_NOT_INSTALLED',
    `no postgres + initdb found (looked in: ${candidates.join(', ') || 'nothing'})`,
  );
}

// ---- initdb and the per-process template ----

async function initdb(dataDir: string): Promise<void> {
  const r = await runCommand(
    join(pgBinDir(), 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ],
    { asServer: true, cwd: dirname(dataDir), timeoutMs: 120_000, env: { ...process.env, LC_ALL: 'C' } },
  );
  if (r.code !== 0) {
    throw new HarnessError('PG_INITDB_FAILED', `initdb exited with ${r.code ?? r.signal}`, {
      detail: `${r.stdout}\n${r.stderr}`.trim(),
    });
  }
  // INVARIANT: every instance's own settings live in warden.conf, rewritten per instance, read last.
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    "\n# Warden test harness\ninclude_if_exists = 'warden.conf'\n",
  );
}

let templatePromise: Promise<string> | undefined;

/**
 * The data folder of a cluster initdb'ed once per process, to copy with `cp -a` (much faster than
 * initdb). Removed when the process exits.
 */
export function pgTemplate(): Promise<string> {
  templatePromise ??= (async () => {
    const root = makeTempRoot('warden-pg-template-');
    const endWatchdog = spawnWatchdog(join(root, 'no-pid-file'), 'TERM', root);
    registerCleanup(() => {
      endWatchdog();
      removeTree(root);
    });
    const dataDir = join(root, 'data');
    await initdb(dataDir);
    return dataDir;
  })();
  return templatePromise;
}

// ---- configuration ----

function quoteConf(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function hbaMethod(auth: PgAuth): string {
  return auth === 'scram' ? 'scram-sha-256' : auth;
}

/** @see https://www.postgresql.org/docs/15/auth-pg-hba-conf.html */
function hbaConf(auth: PgAuth, tls: PgTlsOptions | undefined): string {
  const kind = tls?.require === true ? 'hostssl' : 'host';
  const cc = tls?.clientCert === undefined ? '' : ` clientcert=${tls.clientCert}`;
  const m = hbaMethod(auth);
  return [
    '# Written by the Warden test harness.',
    'local all all trust',
    `${kind} all all 127.0.0.1/32 ${m}${cc}`,
    `${kind} all all ::1/128 ${m}${cc}`,
    '',
  ].join('\n');
}

function wardenConf(
  port: number,
  socketDir: string,
  auth: PgAuth,
  tls: PgTlsOptions | undefined,
  extra: Readonly<Record<string, string>>,
): string {
  const s: Record<string, string> = {
    listen_addresses: '127.0.0.1,::1',
    port: String(port),
    unix_socket_directories: socketDir,
    max_connections: '200',
    shared_buffers: '32MB',
    fsync: 'off',
    full_page_writes: 'off',
    wal_level: 'minimal',
    max_wal_senders: '0',
    password_encryption: auth === 'md5' ? 'md5' : 'scram-sha-256',
    logging_collector: 'off',
    log_destination: 'stderr',
    log_line_prefix: '%m [%p] %q%u@%d ',
    timezone: 'UTC',
    log_timezone: 'UTC',
  };
  if (tls !== undefined) {
    s['ssl'] = 'on';
    s['ssl_cert_file'] = 'server.crt';
    s['ssl_key_file'] = 'server.key';
    if (tls.ca !== undefined) s['ssl_ca_file'] = 'root.crt';
  }
  for (const [k, v] of Object.entries(extra)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(k))
      throw new HarnessError('INVALID_OPTION', `bad setting name: ${k}`);
    s[k] = v;
  }
  return (
    '# Written by the Warden test harness for this instance.\n' +
    Object.entries(s)
      .map(([k, v]) => `${k} = ${quoteConf(v)}`)
      .join('\n') +
    '\n'
  );
}

// ---- live instances, stopped at exit ----

function isPortConflict(log: string): boolean {
  return /could not bind IPv4 address|Address already in use|could not create any TCP\/IP sockets|another postmaster/i.test(
    log,
  );
}

class Instance implements PgInstance {
  readonly host = '127.0.0.1' as const;
  readonly superuser = 'postgres' as const;
  readonly dataDir: string;
  readonly logFile: string;
  readonly socketDir: string;
  readonly rootDir: string;
  port = 0;
  private child: ChildProcess | undefined;
  private paused = false;
  private stopped = false;
  private unregister: (() => void) | undefined;
  private endWatchdog: (() => void) | undefined;

  constructor(
    rootDir: string,
    private readonly startTimeoutMs: number,
  ) {
    this.rootDir = rootDir;
    this.dataDir = join(rootDir, 'data');
    this.logFile = join(rootDir, 'postgres.log');
    this.socketDir = rootDir;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Registered for process exit: synchronous, best effort. */
  track(): void {
    this.unregister = registerCleanup(() => this.stopSync());
    this.endWatchdog = spawnWatchdog(join(this.dataDir, 'postmaster.pid'), 'QUIT', this.rootDir);
  }

  superuserConfig(database = 'postgres'): pg.ClientConfig {
    return {
      host: this.socketDir,
      port: this.port,
      user: 'postgres',
      database,
      connectionTimeoutMillis: 10_000,
    };
  }

  async query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    database?: string,
    params?: readonly unknown[],
  ): Promise<R[]> {
    const client = new pg.Client(this.superuserConfig(database));
    client.on('error', () => {
      // A lost connection also rejects the pending query; nothing more to report.
    });
    await client.connect();
    try {
      const res: unknown =
        params === undefined ? await client.query(sql) : await client.query(sql, [...params]);
      const last = Array.isArray(res)
        ? (res[res.length - 1] as pg.QueryResult | undefined)
        : (res as pg.QueryResult);
      return (last?.rows ?? []) as R[];
    } finally {
      await client.end();
    }
  }

  logTail(lines = 30): string {
    return tailFile(this.logFile, lines);
  }

  /** Spawn the postmaster and wait until it accepts a connection. */
  async startServer(): Promise<void> {
    if (this.stopped)
      throw new HarnessError('PG_NOT_RUNNING', 'this instance was stopped and its folder removed');
    if (this.running) return;
    const logFd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(join(pgBinDir(), 'postgres'), ['-D', this.dataDir], {
        ...asServerUser(),
        cwd: this.rootDir,
        stdio: ['ignore', logFd, logFd],
        detached: true,
        env: { ...process.env, LC_ALL: 'C' },
      });
    } finally {
      closeSync(logFd);
    }
    this.child = child;
    this.paused = false;
    child.on('error', () => {
      // Reported through exitCode/the readiness loop below.
    });
    // INVARIANT: an instance never keeps the process alive on its own; the exit handler stops it.
    child.unref();
    await this.waitReady(child);
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new HarnessError(
          'PG_START_FAILED',
          `postgres exited during startup (${child.exitCode ?? child.signalCode})`,
          {
            detail: this.logTail(),
          },
        );
      }
      const client = new pg.Client({ ...this.superuserConfig(), connectionTimeoutMillis: 2_000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        return;
      } catch (e) {
        lastError = e;
        await client.end().catch(() => {});
      }
      await sleep(50);
    }
    throw new HarnessError(
      'PG_START_TIMEOUT',
      `postgres did not accept connections within ${this.startTimeoutMs} ms`,
      {
        cause: lastError,
        detail: this.logTail(),
      },
    );
  }

  /**
   * SIGINT = fast shutdown, then SIGQUIT = immediate shutdown, then SIGKILL.
   * @see https://www.postgresql.org/docs/15/server-shutdown.html
   */
  async stopServer(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running || child.pid === undefined) return;
    if (this.paused) this.resume();
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.ref();
    try {
      signal(child.pid, 'SIGINT'); // fast shutdown
      if (await within(exited, STOP_TIMEOUT_MS)) return;
      signal(child.pid, 'SIGQUIT'); // immediate shutdown
      if (await within(exited, 5_000)) return;
      this.killAll(child.pid);
      await exited;
    } finally {
      child.unref();
    }
  }

  async restart(): Promise<void> {
    await this.stopServer();
    await this.startServer();
  }

  /** SIGKILL the postmaster and its children; wait until none is left. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.running || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.ref();
    try {
      const others = this.killAll(child.pid);
      await exited;
      const deadline = Date.now() + 10_000;
      while (others.some(isAlive) && Date.now() < deadline) await sleep(20);
    } finally {
      child.unref();
      this.paused = false;
    }
  }

  /** Freeze the postmaster (so it cannot fork), then SIGKILL its children and itself. */
  private killAll(pid: number): number[] {
    signal(pid, 'SIGSTOP');
    const kids = childPids(pid);
    for (const k of kids) signal(k, 'SIGKILL');
    signal(pid, 'SIGKILL');
    return kids;
  }

  pause(): void {
    const pid = this.pid;
    if (pid === undefined)
      throw new HarnessError('PG_NOT_RUNNING', 'cannot pause a server that is not running');
    signal(pid, 'SIGSTOP');
    for (const k of childPids(pid)) signal(k, 'SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    const pid = this.pid;
    if (pid === undefined || !this.paused) return;
    for (const k of childPids(pid)) signal(k, 'SIGCONT');
    signal(pid, 'SIGCONT');
    this.paused = false;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.stopServer();
    } finally {
      this.stopped = true;
      this.unregister?.();
      this.endWatchdog?.();
      removeTree(this.rootDir);
    }
  }

  /** The exit-handler path: no event loop, so poll /proc synchronously. */
  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.endWatchdog?.();
    const pid = this.pid;
    if (pid !== undefined) {
      if (this.paused) this.resume();
      signal(pid, 'SIGINT');
      const deadline = Date.now() + 10_000;
      while (isAlive(pid) && Date.now() < deadline) sleepSync(20);
      if (isAlive(pid)) this.killAll(pid);
    }
    removeTree(this.rootDir);
  }
}

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), t]);
  } finally {
    clearTimeout(timer);
  }
}

function copyPrivate(src: string, dst: string): void {
  copyFileSync(src, dst);
  chmodSync(dst, 0o600);
  chownToServer(dst);
}

async function copyTree(src: string, dst: string): Promise<void> {
  const r = await runCommand('cp', ['-a', src, dst], { timeoutMs: 60_000 });
  if (r.code !== 0)
    throw new HarnessError('COMMAND_FAILED', `cp -a ${src} ${dst} failed`, { detail: r.stderr });
}

function escapeIdent(name: string): string {
  return pg.escapeIdentifier(name);
}

/**
 * Start a private PostgreSQL on a free port of 127.0.0.1 (and ::1), its data under a fresh temp folder.
 * The instance is stopped and its folder removed by stop(), or at process exit if a test forgot.
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgInstance> {
  const auth = opts.auth ?? 'scram';
  pgBinDir();
  const root = makeTempRoot('warden-pg-');
  const inst = new Instance(root, opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
  try {
    if (opts.fresh === true) await initdb(inst.dataDir);
    else await copyTree(await pgTemplate(), inst.dataDir);
    inst.track();
    writeFileSync(join(inst.dataDir, 'pg_hba.conf'), hbaConf(auth, opts.tls));
    chownToServer(join(inst.dataDir, 'pg_hba.conf'));
    if (opts.tls !== undefined) {
      copyPrivate(opts.tls.cert, join(inst.dataDir, 'server.crt'));
      copyPrivate(opts.tls.key, join(inst.dataDir, 'server.key'));
      if (opts.tls.ca !== undefined) copyPrivate(opts.tls.ca, join(inst.dataDir, 'root.crt'));
    }
    // Another process may grab the port between our probe and the server's bind: retry with a new one.
    for (let attempt = 1; ; attempt++) {
      inst.port = await freePort();
      const conf = join(inst.dataDir, 'warden.conf');
      writeFileSync(conf, wardenConf(inst.port, inst.socketDir, auth, opts.tls, opts.settings ?? {}));
      chownToServer(conf);
      try {
        await inst.startServer();
        break;
      } catch (e) {
        if (
          attempt < 5 &&
          e instanceof HarnessError &&
          e.code === 'PG_START_FAILED' &&
          isPortConflict(inst.logTail(10))
        ) {
          continue;
        }
        throw e;
      }
    }
    if (opts.superuserPassword !== undefined) {
      await inst.query(`ALTER ROLE postgres PASSWORD ${pg.escapeLiteral(opts.superuserPassword)}`);
    }
    for (const u of opts.users ?? []) {
      await inst.query(
        `CREATE ROLE ${escapeIdent(u.name)} LOGIN PASSWORD ${pg.escapeLiteral(u.password)}${u.superuser === true ? ' SUPERUSER' : ''}`,
      );
    }
    for (const d of opts.databases ?? []) {
      const spec = typeof d === 'string' ? { name: d } : d;
      const owner = spec.owner === undefined ? '' : ` OWNER ${escapeIdent(spec.owner)}`;
      await inst.query(`CREATE DATABASE ${escapeIdent(spec.name)}${owner}`);
    }
    return inst;
  } catch (e) {
    await inst.stop().catch(() => {});
    removeTree(root);
    throw e;
  }
}

/** Stop several instances, ignoring ones already stopped; for `after()` hooks. */
export async function stopAll(...instances: readonly (PgInstance | undefined)[]): Promise<void> {
  await Promise.all(
    instances.map(async (i) => {
      if (i !== undefined) await i.stop();
    }),
  );
}

/** The server's major version, e.g. 15 (from `postgres --version`). */
export function pgMajorVersion(): number {
  const r = spawnSync(join(pgBinDir(), 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+)(?:\.\d+)?/.exec(r.stdout ?? '');
  return m?.[1] === undefined ? 0 : Number(m[1]);
}
