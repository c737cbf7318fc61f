// Test helper: runs `warden serve` as its own process (real signals, real exit code, its own memory), and pg clients bound to a source address.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createVerifier } from '../../src/identity/scram.js';

export const CLI = join(process.cwd(), 'src/cli/main.ts');

export interface Serve {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything the process printed so far. */
  output(): string;
  /** Resident set size of the gateway process in bytes (Linux /proc). */
  rss(): number;
  /** SIGKILL if still running; waits for the exit. */
  kill(): Promise<void>;
}

/** Starts `warden serve --config <file>` and waits for its "warden listening" line. */
export async function startServe(config: string, env: NodeJS.ProcessEnv = {}): Promise<Serve> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<number>((resolve, reject) => {
    lines.on('line', (l) => {
      text += l + '\n';
      try {
        const m = JSON.parse(l) as { msg?: string; port?: number };
        if (m.msg === 'warden listening' && typeof m.port === 'number') resolve(m.port);
      } catch {
        // not a log line
      }
    });
    void exited.then((e) => reject(new Error(`warden serve exited early (${e.code ?? e.signal}): ${text}`)));
  });
  return {
    child,
    port,
    exited,
    output: () => text,
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return Number(m?.[1] ?? 0) * 1024;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface ServeConfigOptions {
  readonly dir: string;
  readonly upstreamPort: number;
  readonly database: string;
  readonly upstreamUser: string;
  readonly upstreamPassword: string;
  readonly users: readonly {
    name: string;
    password: string;
    kind?: 'human' | 'service';
    attributes?: Record<string, string>;
  }[];
  readonly limits?: Record<string, number>;
  readonly audit?: { dir: string; origin: string; checkpoint_interval_ms?: number };
  /** A policy folder; default allow_all. */
  readonly policyFolder?: string;
}

/** Writes a gateway configuration (YAML is a superset of JSON) for one target `main`; returns its path. */
export function writeServeConfig(o: ServeConfigOptions): string {
  writeFileSync(join(o.dir, 'upstream.pw'), o.upstreamPassword + '\n', { mode: 0o600 });
  const file = join(o.dir, 'warden.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      ...(o.limits !== undefined ? { limits: o.limits } : {}),
      state_dir: o.dir,
      ...(o.audit !== undefined ? { audit: o.audit } : {}),
      users: o.users.map((u) => ({
        name: u.name,
        kind: u.kind ?? 'human',
        ...(u.attributes !== undefined ? { attributes: u.attributes } : {}),
        scram_verifier: createVerifier(u.password),
        logins: { main: 'app' },
      })),
      targets: [
        {
          name: 'main',
          host: '127.0.0.1',
          port: o.upstreamPort,
          database: o.database,
          environment: 'test',
          logins: { app: { user: o.upstreamUser, password_file: join(o.dir, 'upstream.pw') } },
          policy: o.policyFolder !== undefined ? { folder: o.policyFolder } : 'allow_all',
        },
      ],
    }),
  );
  return file;
}

/** A node-postgres client through Warden; `localAddress` picks the source address (e.g. 127.0.0.2). */
export function wardenClient(port: number, user: string, password: string, localAddress?: string): pg.Client {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user,
    password,
    database: 'main',
    ...(localAddress !== undefined
      ? {
          stream: () => {
            const s = new net.Socket();
            const connect = s.connect.bind(s) as (o: net.TcpNetConnectOpts) => net.Socket;
            // node-postgres calls connect(port, host): add the source address.
            (s as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (p, h) =>
              connect({ port: p, host: h, localAddress });
            return s;
          },
        }
      : {}),
  });
  c.on('error', () => undefined);
  return c;
}

/** `warden audit verify --dir <dir> --origin <origin>`: exit status and output. */
export function auditVerify(dir: string, origin: string): { status: number | null; out: string } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', CLI, 'audit', 'verify', '--dir', dir, '--origin', origin],
    { encoding: 'utf8' },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
