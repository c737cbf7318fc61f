// `warden demo`: an embedded PostgreSQL (PGlite over its socket server) with sample data, sample users, and Warden in front.

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import YAML from 'yaml';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { createVerifier } from '../identity/scram.js';
import { loadGatewayConfig } from '../config/gateway-config.js';
import { reloadOnSighup, startGateway, type Gateway } from '../main.js';
import { DEMO_DATA_SQL, DEMO_SCHEMA_SQL, DEMO_USERS } from './sample-data.js';
import { addTokenToFile } from '../admin-api/token-file.js';
import type { ApiRole } from '../admin-api/roles.js';

/**
 * The demo policy shipped in the package (`demo/policy`): two levels up from this module both as
 * src/demo/demo.ts (tsx) and as dist/demo/demo.js (built).
 */
export const DEMO_POLICY_DIR = fileURLToPath(new URL('../../demo/policy', import.meta.url));

/**
 * The signed demo bundle shipped in the package (`demo/bundle`): `root.json` (k = 2 of three approvers) and
 * `bundle.json` (version 1 of `demo/policy`, approved by two). Signed with the TEST-ONLY keys of
 * test/fixtures/bundle/keys: a demo, never a production configuration.
 */
export const DEMO_BUNDLE_DIR = fileURLToPath(new URL('../../demo/bundle', import.meta.url));

/** The demo's audit log origin (also the name of its signing key). */
export const DEMO_AUDIT_ORIGIN = 'demo.warden.local/audit';

/** The admin API's default demo port, and the API roles of the sample users (one token each). */
export const DEMO_API_PORT = 18432;
export const DEMO_API_ROLES: Readonly<Record<string, readonly ApiRole[]>> = {
  alice: ['viewer', 'auditor'],
  bob: ['viewer'],
  carol: ['approver'],
};
const API_TOKENS_FILE = 'api-tokens.yaml';

export interface DemoOptions {
  readonly dir?: string;
  readonly port?: number;
  readonly host?: string;
  /** The admin API's port: default 18432, or 0 (a free port) when `port` is 0. */
  readonly apiPort?: number;
  readonly log?: (line: string) => void;
}

export interface Demo {
  readonly gateway: Gateway;
  readonly dir: string;
  readonly port: number;
  readonly passwords: Readonly<Record<string, string>>;
  /** The admin API's bound port and its base URL. */
  readonly apiPort: number;
  readonly apiUrl: string;
  /** Admin API bearer tokens of the sample users (stored in the demo folder, mode 0600, like the passwords). */
  readonly apiTokens: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

interface DemoState {
  readonly passwords: Record<string, string>;
  apiTokens?: Record<string, string>;
}

/** Creates the demo's state on first run; later runs reuse it (same passwords, same data). */
function loadOrCreateState(dir: string): DemoState {
  const file = join(dir, 'credentials.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as DemoState;
  const passwords: Record<string, string> = {};
  for (const u of DEMO_USERS) passwords[u.name] = `${u.name}-${randomBytes(6).toString('hex')}`;
  const state: DemoState = { passwords };
  writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  return state;
}

/**
 * One admin API token per sample user, made once: the hashes go to the token file the gateway reads, the tokens
 * themselves to credentials.json (0600) so that every run can print them. A demo folder from before the API
 * (or with its token file gone) gets a fresh set.
 */
function ensureApiTokens(dir: string, state: DemoState): Record<string, string> {
  const tokensFile = join(dir, API_TOKENS_FILE);
  if (state.apiTokens !== undefined && existsSync(tokensFile)) return state.apiTokens;
  rmSync(tokensFile, { force: true });
  const tokens: Record<string, string> = {};
  for (const [user, roles] of Object.entries(DEMO_API_ROLES))
    tokens[user] = addTokenToFile(tokensFile, { user, roles }).token;
  state.apiTokens = tokens;
  writeFileSync(join(dir, 'credentials.json'), JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  return tokens;
}

function writeConfig(
  dir: string,
  state: DemoState,
  upstreamPort: number,
  host: string,
  port: number,
  apiPort: number,
): string {
  const file = join(dir, 'warden.yaml');
  // Verifiers are kept across runs so the file is stable; only the embedded server's port may change.
  let verifiers: Record<string, string> = {};
  if (existsSync(file)) {
    const old = YAML.parse(readFileSync(file, 'utf8')) as {
      users?: { name: string; scram_verifier: string }[];
    };
    verifiers = Object.fromEntries((old.users ?? []).map((u) => [u.name, u.scram_verifier]));
  }
  const config = {
    listen: { host, port },
    state_dir: '.',
    audit: { dir: 'audit', origin: DEMO_AUDIT_ORIGIN, checkpoint_interval_ms: 5000 },
    admin_api: { listen: { host, port: apiPort }, tokens_file: API_TOKENS_FILE },
    users: DEMO_USERS.map((u) => ({
      name: u.name,
      kind: u.kind,
      groups: [...u.groups],
      attributes: { tenant: '1' },
      scram_verifier: verifiers[u.name] ?? createVerifier(state.passwords[u.name] as string),
      logins: { demo: 'app' },
    })),
    targets: [
      {
        name: 'demo',
        host: '127.0.0.1',
        port: upstreamPort,
        database: 'postgres',
        environment: 'demo',
        logins: { app: { user: 'postgres' } },
        // The demo runs from the signed bundle: the pinned root stays in the package, the running bundle is a
        // copy in the demo folder (an activation replaces it there), its state beside it.
        policy: {
          bundle: {
            root: join(DEMO_BUNDLE_DIR, 'root.json'),
            path: 'bundle.json',
            state_file: 'bundle-state.json',
          },
        },
      },
    ],
  };
  writeFileSync(file, `# Warden demo configuration (generated; edit freely).\n${YAML.stringify(config)}`, {
    mode: 0o600,
  });
  chmodSync(file, 0o600);
  return file;
}

export async function startDemo(opts: DemoOptions = {}): Promise<Demo> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const dir = resolve(opts.dir ?? '.warden-demo');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const state = loadOrCreateState(dir);
  const apiTokens = ensureApiTokens(dir, state);
  const db = await PGlite.create({ dataDir: join(dir, 'pgdata') });
  await db.exec(DEMO_SCHEMA_SQL);
  await db.exec(DEMO_DATA_SQL);
  const socketServer = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 64 });
  await socketServer.start();
  const upstreamPort = Number(/:(\d+)$/.exec(socketServer.getServerConn())?.[1] ?? NaN);
  if (!Number.isInteger(upstreamPort)) throw new Error('cannot determine the embedded database port');
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 15432;
  // First run: the shipped signed bundle becomes the running one; later runs keep whatever was activated.
  const running = join(dir, 'bundle.json');
  if (!existsSync(running)) copyFileSync(join(DEMO_BUNDLE_DIR, 'bundle.json'), running);
  const apiPort = opts.apiPort ?? (port === 0 ? 0 : DEMO_API_PORT);
  const configFile = writeConfig(dir, state, upstreamPort, host, port, apiPort);
  const config = loadGatewayConfig(configFile);
  let gateway: Gateway;
  try {
    gateway = await startGateway(config);
  } catch (e) {
    await socketServer.stop();
    await db.close();
    throw e;
  }
  // SIGHUP re-reads the demo's bundle.json (what `warden bundle activate --config <dir>/warden.yaml` triggers).
  const stopReload = reloadOnSighup(gateway, config.stateDir);
  const p = gateway.pg.port;
  log(`Warden demo is running (state in ${dir}).`);
  log(`Embedded PostgreSQL (PGlite) on 127.0.0.1:${upstreamPort}; Warden on ${host}:${p}.`);
  for (const r of gateway.policies()) {
    if (r.bundle === undefined) continue;
    log(
      `Policy: signed bundle version ${r.bundle.version} (${r.hash.slice(0, 16)}…), author ${r.bundle.author}, ` +
        `approved by ${r.bundle.approvers.join(', ')} (TEST-ONLY sample keys). Try: SHOW warden.policy_version`,
    );
  }
  log('Connect through Warden as one of the sample users:');
  for (const u of DEMO_USERS) {
    log(`  ${u.name.padEnd(6)} (${u.about})`);
    log(`    psql "postgresql://${u.name}:${state.passwords[u.name]}@${host}:${p}/demo"`);
  }
  const boundApiPort = gateway.adminApi?.port ?? apiPort;
  const apiUrl = `http://${host}:${boundApiPort}`;
  log(`Web console: ${apiUrl}/ (sign in by pasting one of the tokens below)`);
  log(`Admin API on ${apiUrl} (OpenAPI at ${apiUrl}/api/openapi.json). Bearer tokens of the sample users:`);
  for (const [user, roles] of Object.entries(DEMO_API_ROLES)) {
    log(`  ${user.padEnd(6)} (${roles.join(', ')})`);
    log(`    curl -H "Authorization: Bearer ${apiTokens[user]}" ${apiUrl}/api/sessions`);
  }
  log('Press Ctrl-C to stop.');
  return {
    gateway,
    dir,
    port: p,
    passwords: state.passwords,
    apiPort: boundApiPort,
    apiUrl,
    apiTokens,
    async stop() {
      stopReload();
      await gateway.close(2000);
      await socketServer.stop();
      await db.close();
    },
  };
}
