// Tests for the policy hook without a database: verdicts, SQLSTATEs, caching (and its limits), prepared statements, fail closed.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Principal, StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicy, loadPolicyFromString } from '../policy/index.js';
import type { Policy } from '../policy/index.js';
import { initSqlAnalyser } from '../sql/analyze.js';
import { CatalogCache } from './catalog-cache.js';
import { createPolicyHook, createPolicyHookFromFolder } from './policy-hook.js';
import type { HookDecision, PolicyHook, PolicyHookOptions } from './policy-hook.js';

const DEMO_DIR = new URL('../../demo/policy', import.meta.url).pathname;
const DEMO = loadPolicy(DEMO_DIR);
const COLUMNS: Record<string, string[]> = {
  'public.customers': ['id', 'name', 'email', 'ssn', 'tenant_id'],
  'public.orders': ['id', 'customer_id', 'amount', 'created_at'],
  'public.ledger': ['id', 'account', 'amount', 'created_at'],
};

const TARGET: TargetConfig = {
  name: 'demo',
  host: '127.0.0.1',
  port: 1,
  database: 'postgres',
  environment: 'demo',
  tls: { mode: 'disable' },
  searchPath: ['public'],
  logins: new Map([['app', { user: 'app' }]]),
  policy: { kind: 'folder', path: DEMO_DIR },
};

function fakeCatalog(): { catalog: CatalogCache; fetches: string[] } {
  const fetches: string[] = [];
  const catalog = new CatalogCache('demo', (s, t) => {
    fetches.push(`${s}.${t}`);
    return Promise.resolve(COLUMNS[`${s}.${t}`] ?? []);
  });
  return { catalog, fetches };
}

function principal(name: string): Principal {
  return { name, kind: 'human', groups: [], attributes: {} };
}

let seq = 0;
function request(
  user: string,
  sql: string,
  over: { session?: string; path?: 'simple' | 'parse'; name?: string; at?: Date; from?: string } = {},
): StatementRequest {
  const at = over.at ?? new Date('2024-01-15T12:00:00Z');
  return {
    session: {
      sessionId: over.session ?? `s${++seq}`,
      protocol: 'postgres',
      principal: principal(user),
      target: 'demo',
      environment: 'demo',
      database: 'postgres',
      sourceAddress: over.from ?? '127.0.0.1',
      tls: false,
      applicationName: 'test',
      startedAt: at,
    },
    sql,
    path: over.path ?? 'simple',
    ...(over.name !== undefined ? { statementName: over.name } : {}),
    receivedAt: at,
    notice: () => undefined,
    signal: new AbortController().signal,
  };
}

function decision(v: StatementVerdict): HookDecision {
  return v.decision as HookDecision;
}

async function hookFor(policy: Policy = DEMO, opts: PolicyHookOptions = {}): Promise<PolicyHook> {
  return createPolicyHook(TARGET, policy, { catalog: fakeCatalog().catalog, ...opts });
}

before(async () => {
  await initSqlAnalyser();
});

void describe('policy hook verdicts', () => {
  it('allows a granted read and forwards it unchanged when nothing is protected', async () => {
    const h = await hookFor();
    const v = await h.check(request('alice', 'SELECT id, amount FROM orders'));
    assert.equal(v.action, 'allow');
    assert.equal(v.action === 'allow' && v.sql, undefined);
    assert.deepEqual(decision(v).rules, ['role:analyst/grant:1']);
    assert.equal(decision(v).rewritten, false);
  });

  it('rewrites masked and filtered reads, with the decision as plain JSON data', async () => {
    const h = await hookFor();
    const v = await h.check(request('alice', 'SELECT c FROM customers c'));
    assert.equal(v.action, 'allow');
    const sql = v.action === 'allow' ? (v.sql ?? '') : '';
    assert.match(sql, /FROM public\.customers WHERE tenant_id = 1/);
    assert.match(sql, /repeat\('\*'/);
    const d = decision(v);
    assert.equal(d.rewritten, true);
    assert.deepEqual(JSON.parse(JSON.stringify(d)), d);
    assert.equal(d.protections['public.customers']?.rowFilter, '(tenant_id = 1)');
    assert.ok(d.rules.includes('mask:public.customers.ssn'));
  });

  it('denies with 42501 and a message naming the rule', async () => {
    const h = await hookFor();
    const v = await h.check(request('bob', 'UPDATE ledger SET amount = 0 WHERE id = 1'));
    assert.equal(v.action, 'deny');
    assert.equal(v.action === 'deny' && v.sqlstate, '42501');
    assert.match(v.action === 'deny' ? v.message : '', /^denied by append_only:public\.ledger: /);
    assert.equal(decision(v).denied?.rule, 'append_only:public.ledger');
  });

  it('denies unparsable SQL with 42601, saying it could not be parsed', async () => {
    const h = await hookFor();
    const v = await h.check(request('alice', 'SELEC 1'));
    assert.equal(v.action === 'deny' && v.sqlstate, '42601');
    assert.match(v.action === 'deny' ? v.message : '', /could not be parsed/);
    assert.deepEqual(decision(v).rules, ['parse-error']);
  });

  it('refuses statements that need approval with WA001, naming the rule', async () => {
    const h = await hookFor();
    const v = await h.check(request('bob', 'UPDATE orders SET amount = 0'));
    assert.equal(v.action === 'deny' && v.sqlstate, 'WA001');
    assert.match(v.action === 'deny' ? v.message : '', /approval:bulk-change/);
    assert.equal(decision(v).effect, 'approval');
  });

  it('fails closed when a column list cannot be fetched', async () => {
    const broken = new CatalogCache('demo', () => Promise.reject(new Error('upstream down')));
    const h = await hookFor(DEMO, { catalog: broken });
    const v = await h.check(request('alice', 'SELECT ssn FROM customers'));
    assert.equal(v.action === 'deny' && v.sqlstate, '42501');
    assert.deepEqual(decision(v).rules, ['catalog-unavailable']);
    // Tables without protections need no column list.
    assert.equal((await h.check(request('alice', 'SELECT * FROM orders'))).action, 'allow');
  });

  it('turns a rewrite refusal into a denial naming the reason', async () => {
    const policy = loadPolicyFromString(`
version: 1
users: [{ name: ed, roles: [editor] }]
roles:
  - name: editor
    grants: [{ schema: public, table: customers, operations: [select, update] }]
masks: [{ table: public.customers, column: ssn, mask: redact }]
`);
    const h = await hookFor(policy);
    // An UPDATE whose WHERE reads the masked column of its own target could probe the raw value: refused.
    const v = await h.check(request('ed', "UPDATE customers SET name = 'x' WHERE ssn = '123-45-6789'"));
    assert.equal(v.action === 'deny' && v.sqlstate, '42501');
    assert.match(v.action === 'deny' ? v.message : '', /^denied by rewrite: /);
    assert.equal(
      (await h.check(request('ed', "UPDATE customers SET name = 'x' WHERE id = 1"))).action,
      'allow',
    );
  });

  it('turns an exception into a denial', async () => {
    const h = await hookFor(DEMO, {
      now: () => {
        throw new Error('clock broke');
      },
    });
    const v = await h.check(request('alice', 'SELECT 1'));
    assert.equal(v.action === 'deny' && v.sqlstate, '42501');
    assert.deepEqual(decision(v).rules, ['internal-error']);
  });

  it('loads a folder policy', async () => {
    const h = await createPolicyHookFromFolder(TARGET, { catalog: fakeCatalog().catalog });
    assert.equal(h.policy.users.has('alice'), true);
    await assert.rejects(
      createPolicyHookFromFolder({ ...TARGET, policy: { kind: 'allow_all' } }),
      /no policy folder/,
    );
  });
});

void describe('policy hook caching', () => {
  it('serves a repeated statement from the decision cache, per principal', async () => {
    const h = await hookFor();
    assert.equal(decision(await h.check(request('alice', 'SELECT * FROM orders'))).cached, false);
    assert.equal(decision(await h.check(request('alice', 'SELECT * FROM orders'))).cached, true);
    const carol = await h.check(request('carol', 'SELECT * FROM orders'));
    assert.equal(decision(carol).cached, false);
    const bob = await h.check(request('carol', 'SELECT name FROM customers'));
    assert.equal(bob.action, 'deny');
  });

  it('never serves a time-window allow outside the window', async () => {
    const policy = loadPolicyFromString(`
version: 1
users: [{ name: dana, roles: [day] }]
roles:
  - name: day
    grants:
      - schema: public
        table: orders
        operations: [select]
        when: { time: { from: "08:00", to: "18:00", tz: UTC }, sources: ["10.0.0.0/8"] }
`);
    const h = await hookFor(policy);
    const sql = 'SELECT * FROM orders';
    const noon = new Date('2024-01-15T12:00:00Z');
    const night = new Date('2024-01-15T20:00:00Z');
    assert.equal((await h.check(request('dana', sql, { at: noon, from: '10.1.1.1' }))).action, 'allow');
    assert.equal((await h.check(request('dana', sql, { at: night, from: '10.1.1.1' }))).action, 'deny');
    assert.equal((await h.check(request('dana', sql, { at: noon, from: '192.0.2.1' }))).action, 'deny');
    assert.equal((await h.check(request('dana', sql, { at: noon, from: '10.1.1.1' }))).action, 'allow');
  });

  it('gives the same verdict from the cache as a fresh hook (property)', async () => {
    const cachedHook = await hookFor();
    const sqls = [
      'SELECT * FROM orders',
      'SELECT ssn FROM customers',
      'SELECT email FROM customers',
      'UPDATE ledger SET amount = 0 WHERE id = 1',
      "INSERT INTO ledger (account, amount) VALUES ('a', 1)",
      'UPDATE orders SET amount = 1 WHERE id = 100',
      'SET ROLE postgres',
      'SELECT 1; DELETE FROM orders WHERE id = 1',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('alice', 'bob', 'carol', 'mallory'),
        fc.constantFrom(...sqls),
        async (user, sql) => {
          const fresh = await hookFor();
          const a = await cachedHook.check(request(user, sql));
          const b = await fresh.check(request(user, sql));
          assert.equal(a.action, b.action);
          assert.equal(a.action === 'allow' ? a.sql : a.message, b.action === 'allow' ? b.sql : b.message);
          assert.deepEqual(decision(a).rules, decision(b).rules);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('drops column lists after an allowed DDL', async () => {
    const policy = loadPolicyFromString(`
version: 1
users: [{ name: dba, roles: [owner] }]
roles:
  - name: owner
    grants: [{ schema: public, table: "*", operations: [select, ddl] }]
masks: [{ table: public.customers, column: ssn, mask: redact }]
`);
    const { catalog, fetches } = fakeCatalog();
    const h = await hookFor(policy, { catalog });
    await h.check(request('dba', 'SELECT ssn FROM customers'));
    await h.check(request('dba', 'SELECT ssn FROM customers'));
    assert.equal(fetches.length, 1);
    const ddl = await h.check(request('dba', 'ALTER TABLE customers ADD COLUMN note text'));
    assert.equal(ddl.action, 'allow');
    assert.equal(catalog.size, 0);
    await h.check(request('dba', 'SELECT ssn FROM customers'));
    assert.equal(fetches.length, 2);
    h.outcome?.({ request: request('dba', 'x'), verdict: ddl, commandTags: [], rows: 0, durationMs: 1 });
    assert.equal(catalog.size, 0);
  });
});

void describe('policy hook prepared statements', () => {
  it('decides EXECUTE by what this session prepared, and forgets DEALLOCATEd names', async () => {
    const h = await hookFor();
    const s = { session: 'sess-1' };
    assert.equal((await h.check(request('bob', 'EXECUTE p', s))).action, 'deny');
    assert.equal((await h.check(request('bob', 'PREPARE p AS SELECT * FROM orders', s))).action, 'allow');
    const ok = await h.check(request('bob', 'EXECUTE p', s));
    assert.equal(ok.action, 'allow');
    assert.ok(decision(ok).rules.includes('role:writer/grant:0'));
    assert.equal((await h.check(request('bob', 'EXECUTE p', { session: 'other' }))).action, 'deny');
    assert.equal((await h.check(request('bob', 'DEALLOCATE p', s))).action, 'allow');
    assert.deepEqual(decision(await h.check(request('bob', 'EXECUTE p', s))).rules, ['prepared:unknown']);
  });

  it('does not remember a denied PREPARE, and resolves names prepared earlier in the same string', async () => {
    const h = await hookFor();
    const s = { session: 'sess-2' };
    assert.equal((await h.check(request('bob', 'PREPARE q AS DELETE FROM ledger', s))).action, 'deny');
    assert.deepEqual(decision(await h.check(request('bob', 'EXECUTE q', s))).rules, ['prepared:unknown']);
    const both = await h.check(request('bob', 'PREPARE r AS SELECT * FROM ledger; EXECUTE r', s));
    assert.equal(both.action, 'allow');
    assert.equal((await h.check(request('bob', 'EXECUTE r', s))).action, 'allow');
    // DISCARD ALL would also reset the pinned search_path: denied.
    assert.equal((await h.check(request('bob', 'DISCARD ALL', s))).action, 'deny');
    assert.equal((await h.check(request('bob', 'DEALLOCATE ALL', s))).action, 'allow');
    assert.equal((await h.check(request('bob', 'EXECUTE r', s))).action, 'deny');
  });

  it('registers named extended-protocol statements for SQL EXECUTE', async () => {
    const h = await hookFor();
    const s = { session: 'sess-3', path: 'parse' as const, name: 'stmt1' };
    assert.equal((await h.check(request('alice', 'SELECT * FROM orders WHERE id = $1', s))).action, 'allow');
    assert.equal(
      (await h.check(request('alice', 'EXECUTE stmt1(1)', { session: 'sess-3' }))).action,
      'allow',
    );
  });

  it('re-decides EXECUTE at execution time (a time window that closed denies it)', async () => {
    const policy = loadPolicyFromString(`
version: 1
users: [{ name: dana, roles: [day] }]
roles:
  - name: day
    grants:
      - { schema: public, table: orders, operations: [select], when: { time: { from: "08:00", to: "18:00", tz: UTC } } }
`);
    const h = await hookFor(policy);
    const noon = { session: 'sess-4', at: new Date('2024-01-15T12:00:00Z') };
    const night = { session: 'sess-4', at: new Date('2024-01-15T20:00:00Z') };
    assert.equal((await h.check(request('dana', 'PREPARE t AS SELECT * FROM orders', noon))).action, 'allow');
    assert.equal((await h.check(request('dana', 'EXECUTE t', noon))).action, 'allow');
    assert.equal((await h.check(request('dana', 'EXECUTE t', night))).action, 'deny');
  });

  it('forgets closed sessions and bounds the number tracked', async () => {
    const h = await hookFor(DEMO, { maxSessions: 2 });
    for (const id of ['a', 'b', 'c'])
      await h.check(request('bob', 'PREPARE p AS SELECT * FROM orders', { session: id }));
    assert.equal(h.trackedSessions, 2);
    assert.equal((await h.check(request('bob', 'EXECUTE p', { session: 'a' }))).action, 'deny');
    h.sessionClosed('c');
    assert.equal(h.trackedSessions, 1);
    assert.equal((await h.check(request('bob', 'EXECUTE p', { session: 'c' }))).action, 'deny');
  });
});
