// The MySQL bypass corpus: every case in cases.ts through the real policy hook with the MySQL dialect, what it allows run on a real MariaDB holding canaries.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import type { Principal, StatementHook } from '../../src/core/context.js';
import { buildGatewayConfig, type TargetConfig } from '../../src/config/gateway-config.js';
import { createVerifier } from '../../src/identity/scram.js';
import { formatNativeHash } from '../../src/identity/mysql-auth.js';
import { runMariadb } from '../harness/mariadb.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { loadPolicy } from '../../src/policy/index.js';
import { createPolicyHook, type PolicyHook } from '../../src/enforce/policy-hook.js';
import { mysqlDialect } from '../../src/enforce/mysql-dialect.js';
import { CASES } from './cases.js';
import type { Case, CorpusUser } from './model.js';
import { findCanaries, runCase, type CorpusEnv } from './runner.js';
import { DB, OTHER_DB, makeSeed, type Canary, type Seed } from './seed.js';

const POLICY_DIR = fileURLToPath(new URL('./fixtures/policy/', import.meta.url));
const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };

const PASSWORDS: Record<CorpusUser, string> = { alice: 'alice-my-c1', bob: 'bob-my-c2', svc: 'svc-my-c3' };

const PRINCIPALS: Record<CorpusUser, Principal> = {
  alice: { name: 'alice', kind: 'human', groups: ['analysts'], attributes: {} },
  bob: { name: 'bob', kind: 'human', groups: ['writers'], attributes: {} },
  svc: { name: 'svc', kind: 'service', groups: [], attributes: {} },
};

export const TARGET: TargetConfig = {
  name: DB,
  engine: 'mysql',
  host: MARIADB.host,
  port: MARIADB.port,
  database: DB,
  environment: 'test',
  tls: { mode: 'disable' },
  searchPath: [],
  logins: new Map([['root', { user: 'root' }]]),
  policy: { kind: 'folder', path: POLICY_DIR },
};

function forbiddenFor(seed: Seed): Record<CorpusUser, readonly Canary[]> {
  const all = seed.canaries;
  // bob may read every customer's name; alice and svc may not read tenant-2 names.
  return { alice: all, bob: all.filter((c) => c.kind !== 'name'), svc: all };
}

async function connect(): Promise<mysql.Connection> {
  // What Warden's upstream link is: one connection per client session, to the target's database, as the
  // target's login (root here on purpose: the hook is the only barrier, so a hole shows as a change or a leak).
  return mysql.createConnection({
    ...MARIADB,
    database: DB,
    multipleStatements: true,
    supportBigNumbers: true,
  });
}

async function seedDatabase(root: mysql.Connection, seed: Seed): Promise<void> {
  await root.query(seed.sql);
  await root.query('USE mysql');
}

describe('mysql bypass corpus', () => {
  let root: mysql.Connection;
  let seed: Seed;
  let hook: PolicyHook;
  let env: CorpusEnv;

  before(async () => {
    root = await mysql.createConnection({ ...MARIADB, multipleStatements: true });
    seed = makeSeed();
    await seedDatabase(root, seed);
    hook = await createPolicyHook(TARGET, loadPolicy(POLICY_DIR), {
      dialect: mysqlDialect(TARGET),
      version: { label: 'corpus', hash: 'c0ffee' },
    });
    env = { hook, root, connect, principals: PRINCIPALS, forbidden: forbiddenFor(seed) };
  });

  after(async () => {
    await hook?.close();
    await root?.query(`DROP DATABASE IF EXISTS ${DB}; DROP DATABASE IF EXISTS ${OTHER_DB}`);
    await root?.end();
  });

  it('has at least 120 cases with unique ids', () => {
    assert.ok(CASES.length >= 120, `only ${CASES.length} cases`);
    assert.equal(new Set(CASES.map((c) => c.id)).size, CASES.length);
  });

  it('self-check: the runner catches holes (allow-all) and over-blocking (deny-all)', async () => {
    const allowAll: StatementHook = { check: () => ({ action: 'allow' }) };
    const denyAll: StatementHook = {
      check: () => ({ action: 'deny', sqlstate: '42501', message: 'denied by self-check' }),
    };
    const byId = (id: string): Case => CASES.find((c) => c.id === id) as Case;
    const leak = CASES.find((c) => c.sql === 'SELECT `value` FROM `secrets`') as Case;
    const write = CASES.find((c) => c.sql === 'DELETE FROM ledger' && c.category === 'append-only') as Case;
    const mask = CASES.find((c) => c.sql === 'SELECT ssn FROM customers' && c.expect === 'masked') as Case;
    const work = byId('allowed-work-002');
    const open = { ...env, hook: allowAll };
    const leaked = await runCase(leak, open);
    assert.ok(
      leaked.problems.some((p) => p.startsWith('canary leaked')),
      leaked.problems.join('; '),
    );
    const unmasked = await runCase(mask, open);
    assert.ok(
      unmasked.problems.some((p) => p.startsWith('canary leaked')),
      unmasked.problems.join('; '),
    );
    const wrote = await runCase(write, open);
    assert.ok(wrote.problems.includes('database state changed'), wrote.problems.join('; '));
    const blocked = await runCase(work, { ...env, hook: denyAll });
    assert.ok(
      !blocked.ok && blocked.problems.some((p) => p.includes('hook denied')),
      blocked.problems.join('; '),
    );
    // The allow-all run changed the database: seed it again (fresh canaries) for the real cases.
    seed = makeSeed();
    await seedDatabase(root, seed);
    env = { ...env, forbidden: forbiddenFor(seed) };
  });

  for (const category of [...new Set(CASES.map((c) => c.category))]) {
    describe(category, () => {
      for (const c of CASES.filter((x) => x.category === category)) {
        it(`${c.id} [${c.user}, ${c.expect}${c.via === 'query' ? '' : `, ${c.via}`}] ${JSON.stringify(c.sql).slice(0, 120)}`, async () => {
          const j = await runCase(c, env);
          assert.ok(j.ok, j.problems.join('; '));
        });
      }
    });
  }
});

/** The gateway configuration of the corpus: the three users, one MySQL target with the corpus policy folder. */
function configFor(stateDir: string): ReturnType<typeof buildGatewayConfig> {
  const users = (Object.keys(PRINCIPALS) as CorpusUser[]).map((u) => ({
    name: u,
    kind: PRINCIPALS[u].kind,
    groups: [...PRINCIPALS[u].groups],
    scram_verifier: createVerifier(PASSWORDS[u]),
    mysql_native_hash: formatNativeHash(PASSWORDS[u]),
    logins: { [DB]: 'root' },
  }));
  return buildGatewayConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      mysql_listen: { host: '127.0.0.1', port: 0 },
      state_dir: stateDir,
      users,
      targets: [
        {
          name: DB,
          engine: 'mysql',
          host: MARIADB.host,
          port: MARIADB.port,
          database: DB,
          environment: 'test',
          logins: { root: { user: 'root' } },
          policy: { folder: POLICY_DIR },
        },
      ],
    },
    stateDir,
  );
}

/** Connects a corpus user to a gateway's MySQL front end (multi-statements on). */
function viaGateway(g: Gateway): (user: CorpusUser) => Promise<mysql.Connection> {
  const port = (g.mysql as NonNullable<Gateway['mysql']>).port;
  return (user) =>
    mysql.createConnection({
      host: '127.0.0.1',
      port,
      user,
      password: PASSWORDS[user],
      database: DB,
      multipleStatements: true,
      supportBigNumbers: true,
    });
}

describe('mysql bypass corpus through the gateway', () => {
  let root: mysql.Connection;
  let seed: Seed;
  let gw: Gateway;
  let dir: string;
  let env: CorpusEnv;

  before(async () => {
    root = await mysql.createConnection({ ...MARIADB, multipleStatements: true });
    seed = makeSeed();
    await seedDatabase(root, seed);
    dir = mkdtempSync(join(tmpdir(), 'warden-mysql-corpus-'));
    const cfg = configFor(join(dir, 'state'));
    gw = await startGateway(cfg, { log: () => undefined });
    const gateway = viaGateway(gw);
    const noHook: StatementHook = {
      check: () => ({ action: 'deny', sqlstate: '42501', message: 'unused' }),
    };
    env = { hook: noHook, root, connect, principals: PRINCIPALS, forbidden: forbiddenFor(seed), gateway };
  });

  it('self-check through the gateway: a gateway that allows everything is caught', async () => {
    const open = await startGateway(configFor(join(dir, 'state-open')), {
      hookFor: () => ({ check: () => ({ action: 'allow' }) }),
      log: () => undefined,
    });
    try {
      const env2 = { ...env, gateway: viaGateway(open) };
      const leak = CASES.find((c) => c.sql === 'SELECT `value` FROM `secrets`') as Case;
      const write = CASES.find((c) => c.sql === 'DELETE FROM ledger' && c.category === 'append-only') as Case;
      const leaked = await runCase(leak, env2);
      assert.ok(
        leaked.problems.some((p) => p.startsWith('canary leaked')),
        leaked.problems.join('; '),
      );
      assert.ok(
        leaked.problems.some((p) => p.startsWith('expected a denial')),
        leaked.problems.join('; '),
      );
      const wrote = await runCase(write, env2);
      assert.ok(wrote.problems.includes('database state changed'), wrote.problems.join('; '));
      const mode = CASES.find((c) => c.sql === "SET sql_mode = 'ANSI_QUOTES'") as Case;
      const changed = await runCase(mode, env2);
      assert.ok(
        changed.problems.some((p) => p.startsWith('session state changed')),
        changed.problems.join('; '),
      );
    } finally {
      await open.close(1000);
    }
    seed = makeSeed();
    await seedDatabase(root, seed);
    env = { ...env, forbidden: forbiddenFor(seed) };
  });

  it('the real mariadb client through the gateway: masked, filtered rows; denials named', async () => {
    const port = (gw.mysql as NonNullable<Gateway['mysql']>).port;
    const cli = (user: CorpusUser, sql: string) =>
      runMariadb({ port, user, password: PASSWORDS[user], database: DB, sql });
    const rows = await cli('alice', 'SELECT id, ssn FROM customers ORDER BY id');
    assert.equal(rows.code, 0, rows.stderr);
    const lines = rows.stdout.trim().split('\n');
    assert.equal(lines.length, 5, rows.stdout); // header + tenant 1 only
    assert.match(lines[1] ?? '', /^1\t\*+1000$/);
    assert.deepEqual(findCanaries([rows.stdout, rows.stderr], seed.canaries), []);
    const denied = await cli('alice', 'SELECT 1; SELECT value FROM secrets');
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /denied by default-deny: no grant allows select on wcorpus\.secrets/);
    assert.deepEqual(findCanaries([denied.stdout, denied.stderr], seed.canaries), []);
    const outfile = await cli('alice', "SELECT id FROM orders INTO OUTFILE '/tmp/wcorpus-out-cli'");
    assert.match(outfile.stderr, /denied by into-outfile/);
    const version = await cli('bob', "SHOW VARIABLES LIKE 'warden.policy_version'");
    assert.match(
      version.stdout,
      /^Variable_name\tValue\nwarden\.policy_version\tfolder sha256:[0-9a-f]{64}\n$/,
    );
  });

  after(async () => {
    await gw?.close(1000);
    await root?.query(`DROP DATABASE IF EXISTS ${DB}; DROP DATABASE IF EXISTS ${OTHER_DB}`);
    await root?.end();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  for (const category of [...new Set(CASES.map((c) => c.category))]) {
    describe(category, () => {
      for (const c of CASES.filter((x) => x.category === category)) {
        // The front end never honours LOAD DATA LOCAL: such allow cases are refused there (judged as safe).
        const viaGateway: Case = c.via === 'local' && c.expect !== 'deny' ? { ...c, expect: 'safe' } : c;
        it(`${c.id} [${c.user}, ${viaGateway.expect}${c.via === 'query' ? '' : `, ${c.via}`}] ${JSON.stringify(c.sql).slice(0, 120)}`, async () => {
          const j = await runCase(viaGateway, env);
          assert.ok(j.ok, j.problems.join('; '));
        });
      }
    });
  }
});
