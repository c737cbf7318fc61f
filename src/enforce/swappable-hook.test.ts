// Tests for the swappable hook and the policy hook's version answers: one statement is decided by one generation, outcomes go back to it, SHOW warden.policy_version.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StatementHook, StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicyFromString } from '../policy/index.js';
import { initSqlAnalyser } from '../sql/analyze.js';
import { CatalogCache } from './catalog-cache.js';
import { createPolicyHook } from './policy-hook.js';
import type { HookDecision } from './policy-hook.js';
import { SwappableHook } from './swappable-hook.js';

const TARGET: TargetConfig = {
  name: 't',
  host: '127.0.0.1',
  port: 1,
  database: 'db',
  environment: 'test',
  tls: { mode: 'disable' },
  searchPath: ['public'],
  logins: new Map([['app', { user: 'app' }]]),
  policy: { kind: 'allow_all' },
};

let seq = 0;
function request(sql: string, session = `s${++seq}`): StatementRequest {
  return {
    session: {
      sessionId: session,
      protocol: 'postgres',
      principal: { name: 'alice', kind: 'human', groups: ['readers'], attributes: {} },
      target: 't',
      database: 'db',
      environment: 'test',
      sourceAddress: '127.0.0.1',
      tls: false,
      applicationName: 'test',
      startedAt: new Date('2024-01-15T12:00:00Z'),
    },
    sql,
    path: 'simple',
    receivedAt: new Date('2024-01-15T12:00:00Z'),
    notice: () => undefined,
    signal: new AbortController().signal,
  };
}

/** A hook that names itself in every verdict, optionally answering after a delay. */
function named(name: string, delayMs = 0, outcomes: string[] = []): StatementHook {
  return {
    check: (): StatementVerdict | Promise<StatementVerdict> => {
      const v: StatementVerdict = { action: 'allow', decision: { by: name } };
      return delayMs === 0 ? v : new Promise((r) => setTimeout(() => r(v), delayMs));
    },
    outcome: () => outcomes.push(name),
  };
}

const by = (v: StatementVerdict): string => (v.decision as { by: string }).by;

describe('SwappableHook', () => {
  it('a check that started before a swap is decided and followed up by the old generation; later ones by the new', async () => {
    const outcomes: string[] = [];
    const h = new SwappableHook({ hook: named('v1', 20, outcomes), info: 1 });
    const early = h.check(request('SELECT 1'));
    const prev = h.swap({ hook: named('v2', 0, outcomes), info: 2 });
    assert.equal(prev.info, 1);
    assert.equal(h.current.info, 2);
    assert.equal(h.generation, 1);
    const late = await h.check(request('SELECT 1'));
    const earlyV = await early;
    assert.equal(by(earlyV), 'v1');
    assert.equal(by(late), 'v2');
    const base = { request: request('x'), commandTags: [], rows: 0, durationMs: 0 };
    h.outcome({ ...base, verdict: earlyV });
    h.outcome({ ...base, verdict: late });
    assert.deepEqual(outcomes, ['v1', 'v2']);
  });

  it('property: with swaps interleaved at random, each statement sees exactly the generation current when it started', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant('swap' as const), fc.integer({ min: 0, max: 3 })), {
          minLength: 1,
          maxLength: 30,
        }),
        async (ops) => {
          let gen = 0;
          const h = new SwappableHook({ hook: named('g0', 1), info: 0 });
          const pending: Promise<void>[] = [];
          for (const op of ops) {
            if (op === 'swap') {
              gen++;
              h.swap({ hook: named(`g${gen}`, gen % 2), info: gen });
            } else {
              const expected = `g${gen}`;
              const v = h.check(request('SELECT 1'));
              pending.push(Promise.resolve(v).then((verdict) => assert.equal(by(verdict), expected)));
              if (op > 1) await new Promise((r) => setTimeout(r, 0));
            }
          }
          await Promise.all(pending);
        },
      ),
      { numRuns: 30 },
    );
  });

  it('forwards session ends to the current generation', () => {
    const closed: string[] = [];
    const h = new SwappableHook<number>({
      hook: { check: () => ({ action: 'allow' }), sessionClosed: (id) => closed.push(`a:${id}`) },
      info: 1,
    });
    h.sessionClosed('s1');
    h.swap({
      hook: { check: () => ({ action: 'allow' }), sessionClosed: (id) => closed.push(`b:${id}`) },
      info: 2,
    });
    h.sessionClosed('s2');
    assert.deepEqual(closed, ['a:s1', 'b:s2']);
  });

  // Regression: the swappable hook dropped Binds, so bundle targets recorded no parameter hashes.
  it('forwards Binds to the current generation', async () => {
    const seen: string[] = [];
    const gen = (name: string) => ({
      hook: {
        check: () => ({ action: 'allow' as const }),
        bind: (r: { paramsHash: string }) => {
          seen.push(`${name}:${r.paramsHash}`);
          return name === 'b' ? { action: 'deny' as const, sqlstate: '58030', message: 'no' } : undefined;
        },
      },
      info: 0,
    });
    const h = new SwappableHook<number>(gen('a'));
    const req = { paramsHash: 'h1' } as unknown as Parameters<typeof h.bind>[0];
    assert.equal(await h.bind(req), undefined);
    h.swap(gen('b'));
    assert.equal((await h.bind({ ...req, paramsHash: 'h2' }))?.action, 'deny');
    assert.deepEqual(seen, ['a:h1', 'b:h2']);
  });
});

const POLICY_V1 = `
version: 1
roles:
  - name: reader
    grants:
      - { schema: public, table: a, operations: [select] }
groups:
  - { name: readers, roles: [reader] }
`;
const POLICY_V2 = `${POLICY_V1.replace('operations: [select] }', 'operations: [select] }\n      - { schema: public, table: b, operations: [select] }')}`;

describe('policy hook: version answers and session hand-over', () => {
  before(() => initSqlAnalyser());
  const catalog = () => new CatalogCache('t', () => Promise.resolve(['id']));

  it('answers exactly SHOW warden.policy_version / warden.policy_hash with a constant SELECT, whatever the policy', async () => {
    const hook = await createPolicyHook(TARGET, loadPolicyFromString(POLICY_V1), {
      catalog: catalog(),
      version: { label: '7', hash: 'ab'.repeat(32) },
    });
    const v = await hook.check(request('SHOW warden.policy_version'));
    assert.equal(v.action, 'allow');
    assert.equal(
      v.action === 'allow' ? v.sql : undefined,
      `SELECT '7 ${'ab'.repeat(32)}'::text AS "warden.policy_version"`,
    );
    assert.deepEqual((v.decision as HookDecision).rules, ['warden:show-policy-version']);
    const q = await hook.check(request('show "warden.policy_hash";'));
    assert.equal(
      q.action === 'allow' ? q.sql : undefined,
      `SELECT '${'ab'.repeat(32)}'::text AS "warden.policy_hash"`,
    );
    // Anything else is decided by the policy, and forwarded unchanged if allowed.
    const answered = (v: StatementVerdict): boolean =>
      v.action === 'allow' && v.sql !== undefined && v.sql.includes('warden.policy');
    for (const sql of ['SHOW search_path', 'SHOW warden.policy_version; SELECT 1', 'SHOW warden.other']) {
      const d = await hook.check(request(sql));
      assert.equal(answered(d), false, sql);
      assert.equal(
        (d.decision as HookDecision).rules.some((r) => r.startsWith('warden:show')),
        false,
        sql,
      );
    }
    const plain = await createPolicyHook(TARGET, loadPolicyFromString(POLICY_V1), { catalog: catalog() });
    assert.equal(answered(await plain.check(request('SHOW warden.policy_version'))), false);
  });

  it('a new hook decides EXECUTE of statements prepared under the old one, under the new policy', async () => {
    const v1 = await createPolicyHook(TARGET, loadPolicyFromString(POLICY_V1), { catalog: catalog() });
    const v2 = await createPolicyHook(TARGET, loadPolicyFromString(POLICY_V2), { catalog: catalog() });
    const s = 'prep-session';
    // Under v1, preparing a read of b is denied; a read of a is allowed and remembered.
    assert.equal((await v1.check(request('PREPARE pa AS SELECT id FROM public.a', s))).action, 'allow');
    assert.equal((await v1.check(request('EXECUTE pa', s))).action, 'allow');
    assert.equal((await v2.check(request('EXECUTE pa', s))).action, 'deny', 'unknown before hand-over');
    v2.inheritSessions(v1);
    assert.equal(v2.trackedSessions, 1);
    assert.equal((await v2.check(request('EXECUTE pa', s))).action, 'allow');
    assert.equal((await v2.check(request('SELECT id FROM public.b', s))).action, 'allow');
    assert.equal((await v1.check(request('SELECT id FROM public.b', s))).action, 'deny');
  });
});
