// The bypass corpus, end to end: every case in cases.ts through a real gateway with the real policy hook, against a real PostgreSQL holding canaries.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type PgInstance } from '../harness/pg.js';
import { startTestGateway, type TestGateway } from '../helpers/warden.js';
import type { StatementHook } from '../../src/core/context.js';
import { loadPolicy } from '../../src/policy/index.js';
import { createPolicyHook, type PolicyHook } from '../../src/enforce/policy-hook.js';
import { CASES } from './cases.js';
import type { Case, CorpusUser } from './model.js';
import { ConnectionPool, IDENTITY_SQL, runCase, type CorpusEnv } from './runner.js';
import { makeSeed, seedSql, type Canary, type Seed } from './seed.js';

const POLICY_DIR = fileURLToPath(new URL('./fixtures/policy/', import.meta.url));
const UP_PASSWORD = 'corpus-upstream-Q7';
const PASSWORDS: Record<CorpusUser, string> = { alice: 'alice-pw-c1', bob: 'bob-pw-c2', svc: 'svc-pw-c3' };
const USERS = [
  { name: 'alice', password: PASSWORDS.alice, kind: 'human' as const, groups: ['analysts'] },
  { name: 'bob', password: PASSWORDS.bob, kind: 'human' as const, groups: ['writers'] },
  { name: 'svc', password: PASSWORDS.svc, kind: 'service' as const },
];

function forbiddenFor(seed: Seed): Record<CorpusUser, readonly Canary[]> {
  const all = seed.canaries;
  // bob and svc: every canary but the names (bob may read every customer's name; svc reads no customer at all,
  // so names stay canaries for svc too).
  return { alice: all, bob: all.filter((c) => c.kind !== 'name'), svc: all };
}

interface Rig {
  upstream: PgInstance;
  superuser: pg.Client;
  activity: pg.Client;
  seed: Seed;
}

async function startRig(): Promise<Rig> {
  const upstream = await startPostgres({
    auth: 'scram',
    // The upstream login is a superuser on purpose: the gateway is the only barrier, so a hole shows as a change.
    users: [{ name: 'app', password: UP_PASSWORD, superuser: true }],
    databases: [{ name: 'corpus', owner: 'app' }],
    settings: { autovacuum: 'off', max_prepared_transactions: '4' },
  });
  const seed = makeSeed();
  await upstream.query(seedSql(seed, upstream.dataDir), 'corpus');
  const superuser = new pg.Client(upstream.superuserConfig('corpus'));
  await superuser.connect();
  // An idle session whose last query text holds a canary (pg_stat_activity.query).
  const activity = new pg.Client(upstream.superuserConfig('corpus'));
  await activity.connect();
  await activity.query(`SELECT '${seed.activityCanary.value}' AS activity_canary`);
  return { upstream, superuser, activity, seed };
}

async function gatewayWith(
  rig: Rig,
  hookFor: (gw: () => TestGateway) => StatementHook,
): Promise<TestGateway> {
  const holder: { gw?: TestGateway } = {};
  const hook = hookFor(() => holder.gw as TestGateway);
  holder.gw = await startTestGateway({
    targets: [{ port: rig.upstream.port, database: 'corpus', user: 'app', password: UP_PASSWORD }],
    users: USERS,
    hook,
  });
  return holder.gw;
}

describe('bypass corpus', () => {
  let rig: Rig;
  let gw: TestGateway;
  let policyHook: PolicyHook | undefined;
  let env: CorpusEnv;
  let pool: ConnectionPool;

  before(async () => {
    rig = await startRig();
    const policy = loadPolicy(POLICY_DIR);
    let pending: Promise<PolicyHook> | undefined;
    // The hook needs the resolved target (its upstream login), which exists once the gateway config is built.
    gw = await gatewayWith(rig, (getGw) => ({
      async check(req) {
        pending ??= createPolicyHook(getGw().config.targets.get('main') as never, policy);
        policyHook = await pending;
        return policyHook.check(req);
      },
      outcome(o) {
        policyHook?.outcome?.(o);
      },
    }));
    env = {
      gatewayPort: gw.port,
      passwords: PASSWORDS,
      forbidden: forbiddenFor(rig.seed),
      superuser: rig.superuser,
    };
    pool = new ConnectionPool(env);
  });

  after(async () => {
    pool?.closeAll();
    await policyHook?.close();
    await gw?.stop();
    await rig?.activity.end();
    await rig?.superuser.end();
    await rig?.upstream.stop();
  });

  describe('runner self-check (trivial hooks prove the runner can fail)', () => {
    const denyCase: Case = {
      id: 'self-001',
      category: 'self',
      user: 'alice',
      via: 'simple',
      sql: 'SELECT pg_advisory_lock(4242)',
      expect: 'deny',
    };
    const allowCase: Case = {
      id: 'self-002',
      category: 'self',
      user: 'alice',
      via: 'simple',
      sql: 'SELECT id FROM orders',
      expect: 'allow',
    };
    const maskedCase: Case = {
      id: 'self-003',
      category: 'self',
      user: 'alice',
      via: 'extended',
      sql: 'SELECT ssn FROM customers',
      expect: 'masked',
    };

    it('with a deny-all hook: deny cases pass, allow cases fail', async () => {
      // Deny-all, except the runner's own session-identity follow-up query.
      const g = await gatewayWith(rig, () => ({
        check: (req) =>
          req.sql === IDENTITY_SQL
            ? { action: 'allow' }
            : { action: 'deny', sqlstate: '42501', message: 'denied by corpus self-check' },
      }));
      const e2 = { ...env, gatewayPort: g.port };
      const p = new ConnectionPool(e2);
      try {
        const d = await runCase(e2, p, denyCase);
        assert.ok(d.ok, d.problems.join('; '));
        const m = await runCase(e2, p, maskedCase);
        assert.equal(m.ok, false);
        assert.ok(m.problems.some((x) => /expected success, got 42501/.test(x)));
        const a = await runCase(e2, p, allowCase);
        assert.equal(a.ok, false);
        assert.ok(a.problems.some((x) => /expected success, got 42501/.test(x)));
      } finally {
        p.closeAll();
        await g.stop();
      }
    });

    it('with an allow-all hook: state changes, canaries and missing denials are all caught', async () => {
      const g = await gatewayWith(rig, () => ({ check: () => ({ action: 'allow' }) }));
      const e2 = { ...env, gatewayPort: g.port };
      const p = new ConnectionPool(e2);
      try {
        const d = await runCase(e2, p, denyCase);
        assert.equal(d.ok, false);
        assert.ok(d.problems.some((x) => /expected a denial/.test(x)));
        assert.ok(
          d.problems.some((x) => /state changed: .*advisory/.test(x)),
          d.problems.join('; '),
        );
        const m = await runCase(e2, p, maskedCase);
        assert.equal(m.ok, false);
        assert.ok(
          m.problems.some((x) => /received ssn canary/.test(x)),
          m.problems.join('; '),
        );
        const a = await runCase(e2, p, allowCase);
        assert.ok(a.ok, a.problems.join('; '));
      } finally {
        p.closeAll();
        await g.stop();
      }
    });
  });

  const categories = [...new Set(CASES.map((c) => c.category))];
  for (const category of categories) {
    describe(category, () => {
      for (const c of CASES.filter((x) => x.category === category)) {
        const sql = (typeof c.sql === 'string' ? c.sql : c.sql.join(' ⏎ ')).replace(/\s+/g, ' ');
        it(`${c.id} [${c.user}/${c.via}/${c.expect}] ${sql.slice(0, 140)}`, async () => {
          const v = await runCase(env, pool, c);
          assert.ok(v.ok, `${c.id}: ${v.problems.join('; ')}`);
        });
      }
    });
  }
});
