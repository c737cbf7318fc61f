// Process, user, port, temp-folder and cleanup helpers shared by the harness modules (Linux only: uses /proc).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  chmodSync,
  lstatSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HarnessError } from './errors.js';

/** The uid/gid that server processes (postgres, pgbouncer) run as. */
export interface ServerUser {
  readonly uid: number;
  readonly gid: number;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

let cachedServerUser: ServerUser | null | undefined;

/**
 * `initdb`, `postgres` and `pgbouncer` refuse to run as root. When we are root, they run as the
 * `postgres` system user; otherwise they run as ourselves and this returns null.
 */
export function serverUser(): ServerUser | null {
  if (cachedServerUser !== undefined) return cachedServerUser;
  if (!isRoot()) {
    cachedServerUser = null;
    return null;
  }
  const passwd = readFileSync('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === 'postgres' && f[2] !== undefined && f[3] !== undefined) {
      cachedServerUser = { uid: Number(f[2]), gid: Number(f[3]) };
      return cachedServerUser;
    }
  }
  throw new HarnessError('NO_POSTGRES_USER', 'running as root and /etc/passwd has no postgres user');
}

/** Spawn options that drop to the server user when we are root (libuv also clears supplementary groups). */
export function asServerUser(): { uid?: number; gid?: number } {
  const u = serverUser();
  return u === null ? {} : { uid: u.uid, gid: u.gid };
}

/** Give a path (recursively for folders) to the server user; a no-op when not root. */
export function chownToServer(path: string): void {
  const u = serverUser();
  if (u === null) return;
  chownSync(path, u.uid, u.gid);
  if (lstatSync(path).isDirectory()) {
    for (const name of readdirSync(path)) chownToServer(join(path, name));
  }
}

let cachedTempBase: string | undefined;

/** A base folder for temp folders that the server user can traverse (os.tmpdir(), else /tmp). */
export function tempBase(): string {
  if (cachedTempBase !== undefined) return cachedTempBase;
  let base = tmpdir();
  if (serverUser() !== null) {
    const r = spawnSync('/bin/sh', ['-c', 'test -x "$1"', 'probe', base], {
      ...asServerUser(),
      stdio: 'ignore',
    });
    if (r.status !== 0) base = '/tmp';
  }
  cachedTempBase = base;
  return base;
}

/** A fresh private folder (0700) owned by the server user. The caller removes it. */
export function makeTempRoot(prefix: string): string {
  const dir = mkdtempSync(join(tempBase(), prefix));
  chmodSync(dir, 0o700);
  chownToServer(dir);
  return dir;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread; only for the synchronous exit path, where no event loop runs. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** Last `lines` lines of a text file, or a note if it cannot be read. */
export function tailFile(path: string, lines = 30): string {
  try {
    const all = readFileSync(path, 'utf8').split('\n');
    return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
  } catch (e) {
    return `(cannot read ${path}: ${(e as Error).message})`;
  }
}

interface ProcInfo {
  readonly state: string;
  readonly ppid: number;
}

/** State and parent of a process from /proc, or undefined if it does not exist. */
export function procInfo(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may contain spaces and parentheses: fields resume after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]) };
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const info = procInfo(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

/** Live direct children of a process. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info !== undefined && info.ppid === pid && info.state !== 'Z') out.push(Number(name));
  }
  return out;
}

/** Send a signal, ignoring "no such process". */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

export interface CommandResult {
  /** Exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  readonly timeoutMs?: number;
  readonly cwd?: string;
  /** Run as the server user (postgres) when we are root. */
  readonly asServer?: boolean;
}

/** Run a command to completion, collecting its output; SIGKILLs it after `timeoutMs` (default 60 s). */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      ...(opts.asServer === true ? asServerUser() : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) signal(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {
      // The command may exit before reading its input (e.g. a connection failure): not our error.
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new HarnessError('COMMAND_FAILED', `cannot run ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({
        code,
        signal: sig,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.end(opts.input ?? '');
  });
}

type BindResult = 'ok' | 'in-use' | 'unavailable';

function tryBind(host: string, port: number): Promise<{ result: BindResult; port: number }> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      resolve({ result: e.code === 'EADDRINUSE' || e.code === 'EACCES' ? 'in-use' : 'unavailable', port });
    });
    srv.listen({ host, port, exclusive: true }, () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
      srv.close(() => resolve({ result: 'ok', port: bound }));
    });
  });
}

/**
 * A TCP port that was free on 127.0.0.1 (and on ::1 when IPv6 exists) a moment ago.
 * Another process may take it before we use it: callers retry on "address in use".
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const v4 = await tryBind('127.0.0.1', 0);
    if (v4.result !== 'ok') continue;
    const v6 = await tryBind('::1', v4.port);
    if (v6.result !== 'in-use') return v4.port;
  }
  throw new HarnessError('NO_FREE_PORT', 'no free port found on 127.0.0.1 after 50 tries');
}

// ---- cleanup at process exit ----

const cleanups = new Set<() => void>();
let handlersInstalled = false;

function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // Best effort: one failed cleanup must not stop the others.
    }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', runCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      runCleanups();
      // Re-raise so the default action (exit with the signal) happens, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/**
 * Register a synchronous cleanup that runs when the process exits (normally, on an uncaught
 * exception, or on SIGINT/SIGTERM/SIGHUP). Returns a function that unregisters it.
 */
export function registerCleanup(fn: () => void): () => void {
  installHandlers();
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

/**
 * A detached shell that outlives us: if this process dies without running its exit handlers
 * (SIGKILL, OOM), it sends `sig` to the pid written on the first line of `pidFile` and removes
 * `rootDir`. Returns a function that ends the watchdog (when we clean up ourselves).
 */
export function spawnWatchdog(pidFile: string, sig: 'QUIT' | 'TERM', rootDir: string): () => void {
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'if [ -f "$2" ]; then',
    '  pm=$(head -n1 "$2")',
    '  case "$pm" in ""|*[!0-9]*) ;; *)',
    `    kill -CONT "$pm" 2>/dev/null; kill -${sig} "$pm" 2>/dev/null`,
    '    i=0; while kill -0 "$pm" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.5; i=$((i+1)); done',
    '    kill -KILL "$pm" 2>/dev/null;;',
    '  esac',
    'fi',
    'rm -rf "$3"',
  ].join('\n');
  const child: ChildProcess = spawn(
    '/bin/sh',
    ['-c', script, 'warden-harness-watchdog', String(process.pid), pidFile, rootDir],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  child.unref();
  return () => {
    if (child.pid !== undefined && child.exitCode === null) signal(child.pid, 'SIGTERM');
  };
}

/** Remove a folder tree, ignoring a missing one. */
export function removeTree(path: string): void {
  if (existsSync(path)) rmSync(path, { recursive: true, force: true });
}
