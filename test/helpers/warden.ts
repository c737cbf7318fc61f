// Test helper: starts a Warden gateway in-process in front of a given upstream, with users made from plain passwords.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import pg from 'pg';
import { buildGatewayConfig, type GatewayConfig } from '../../src/config/gateway-config.js';
import { createVerifier } from '../../src/identity/scram.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/main.js';
import type { StatementHook } from '../../src/core/context.js';

export interface TestUser {
  readonly name: string;
  readonly password: string;
  readonly kind?: 'human' | 'service';
  readonly groups?: string[];
  /** Targets this user may use; default: every target. */
  readonly targets?: string[];
  /** `client_cert` as written in YAML (a TLS client certificate as a second factor). */
  readonly client_cert?: { required: boolean; subject_cn?: string; fingerprint_sha256?: string };
}

export interface TestTarget {
  readonly name?: string;
  readonly host?: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password?: string;
  readonly tls?: {
    mode: 'disable' | 'require' | 'verify-ca' | 'verify-full';
    ca_file?: string;
    server_name?: string;
  };
  /** Enforce the policy in this folder instead of allowing everything. */
  readonly policyFolder?: string;
  /** Run from a signed bundle: the pinned root file, the bundle file, and (optionally) the state file. */
  readonly bundle?: { root: string; path: string; state_file?: string };
}

export interface TestGatewayOptions {
  readonly targets: TestTarget[];
  readonly users: TestUser[];
  readonly hook?: StatementHook;
  readonly tls?: { cert_file: string; key_file: string; required?: boolean; client_ca_file?: string };
  readonly limits?: { max_message_bytes?: number; startup_timeout_ms?: number; max_connections?: number };
  readonly gatewayOptions?: GatewayOptions;
  /** Use this folder for state (and leave it in place at stop) instead of a fresh temporary one. */
  readonly dir?: string;
  /** An audit log section, as written in YAML (relative paths resolve against the state folder). */
  readonly audit?: { dir: string; origin: string; checkpoint_interval_ms?: number };
  /** An `admin_api` section, as written in YAML (relative paths resolve against the state folder). */
  readonly adminApi?: Record<string, unknown>;
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly config: GatewayConfig;
  readonly port: number;
  readonly dir: string;
  /** node-postgres client config for a user through Warden. */
  clientConfig(user: string, password: string, database?: string): pg.ClientConfig;
  connect(user: string, password: string, database?: string): Promise<pg.Client>;
  stop(): Promise<void>;
}

const verifierCache = new Map<string, string>();
function verifier(password: string): string {
  let v = verifierCache.get(password);
  if (v === undefined) {
    v = createVerifier(password);
    verifierCache.set(password, v);
  }
  return v;
}

export async function startTestGateway(o: TestGatewayOptions): Promise<TestGateway> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'warden-gw-'));
  const targets = o.targets.map((t, i) => {
    const name = t.name ?? (i === 0 ? 'main' : `t${i}`);
    const login: Record<string, string> = { user: t.user };
    if (t.password !== undefined) {
      const f = join(dir, `${name}.pw`);
      writeFileSync(f, t.password + '\n', { mode: 0o600 });
      login['password_file'] = f;
    }
    return {
      name,
      host: t.host ?? '127.0.0.1',
      port: t.port,
      database: t.database,
      environment: 'test',
      ...(t.tls ? { tls: t.tls } : {}),
      logins: { app: login },
      policy:
        t.bundle !== undefined
          ? { bundle: t.bundle }
          : t.policyFolder === undefined
            ? 'allow_all'
            : { folder: t.policyFolder },
    };
  });
  const raw = {
    listen: { host: '127.0.0.1', port: 0 },
    state_dir: dir,
    ...(o.tls ? { tls: o.tls } : {}),
    ...(o.limits ? { limits: o.limits } : {}),
    ...(o.audit ? { audit: o.audit } : {}),
    ...(o.adminApi ? { admin_api: o.adminApi } : {}),
    users: o.users.map((u) => ({
      name: u.name,
      kind: u.kind ?? 'human',
      groups: u.groups ?? [],
      scram_verifier: verifier(u.password),
      ...(u.client_cert !== undefined ? { client_cert: u.client_cert } : {}),
      logins: Object.fromEntries(
        targets.filter((t) => !u.targets || u.targets.includes(t.name)).map((t) => [t.name, 'app']),
      ),
    })),
    targets,
  };
  const config = buildGatewayConfig(raw, dir);
  const hook = o.hook;
  let gateway: Gateway;
  try {
    gateway = await startGateway(config, {
      ...(o.gatewayOptions ?? {}),
      ...(hook ? { hookFor: () => hook } : {}),
    });
  } catch (e) {
    if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const port = gateway.pg.port;
  const clientConfig = (user: string, password: string, database = 'main'): pg.ClientConfig => ({
    host: '127.0.0.1',
    port,
    user,
    password,
    database,
    connectionTimeoutMillis: 10_000,
  });
  return {
    gateway,
    config,
    port,
    dir,
    clientConfig,
    async connect(user, password, database) {
      const c = new pg.Client(clientConfig(user, password, database));
      await c.connect();
      return c;
    },
    async stop() {
      await gateway.close(500);
      if (o.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Opens a raw TCP connection and collects everything the peer sends. */
export function rawConnect(
  port: number,
): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port });
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', reject);
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed }));
  });
}
