// Tests for the evaluator on plain requests: every rule kind and condition, default deny, and multi-statement denial.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Operation, RelationAccess, RequestContext, StatementSummary } from '../core/access.js';
import type { Principal } from '../core/context.js';
import { APPEND_ONLY_FORBIDDEN, DecisionCache, decisionCacheKey, evaluate } from './evaluate.js';
import type { EvaluateRequest } from './evaluate.js';
import { loadPolicy, loadPolicyFromString } from './load.js';
import type { Decision, Policy } from './model.js';

const DEMO = loadPolicy(new URL('../../test/fixtures/policy/demo', import.meta.url).pathname);

const ctx = (over: Partial<RequestContext> = {}): RequestContext => ({
  target: 'default',
  environment: 'development',
  sourceAddress: '127.0.0.1',
  at: new Date('2024-01-15T12:00:00Z'),
  ...over,
});

const who = (name: string, over: Partial<Principal> = {}): Principal => ({
  name,
  kind: 'human',
  groups: [],
  attributes: {},
  ...over,
});

function rel(table: string, operation: Operation, columns?: string[]): RelationAccess {
  const [schema, name] = table.split('.') as [string, string];
  return columns === undefined ? { schema, name, operation } : { schema, name, operation, columns };
}

function stmt(
  kind: string,
  relations: RelationAccess[],
  extra: Partial<StatementSummary> = {},
): StatementSummary {
  return { kind, text: '', relations, functions: [], settings: [], ...extra };
}

const KIND_OF: Record<string, string> = {
  select: 'SelectStmt',
  insert: 'InsertStmt',
  update: 'UpdateStmt',
  delete: 'DeleteStmt',
  truncate: 'TruncateStmt',
  merge: 'MergeStmt',
  create: 'CreateStmt',
  alter: 'AlterTableStmt',
  drop: 'DropStmt',
  copy_to: 'CopyStmt',
  copy_from: 'CopyStmt',
  execute: 'CallStmt',
};
const one = (table: string, op: Operation, columns?: string[]): StatementSummary =>
  stmt(
    KIND_OF[op] ?? 'SelectStmt',
    [rel(table, op, columns)],
    op === 'update' || op === 'delete' ? { hasWhere: true } : {},
  );

function decide(
  policy: Policy,
  principal: Principal,
  statements: StatementSummary[],
  over: Partial<EvaluateRequest> = {},
  c: Partial<RequestContext> = {},
): Decision {
  return evaluate(policy, { principal, statements, context: ctx(c), ...over });
}

const alice = who('alice', { groups: ['analysts'] });
const bob = who('bob');

// ---- default deny and grants ----

void test('default deny: no grant, unknown user, and the 42501 message names rule and reason', () => {
  const d = decide(DEMO, alice, [one('public.orders', 'update', ['amount'])]);
  assert.equal(d.effect, 'deny');
  assert.equal(d.denied?.rule, 'default-deny');
  assert.equal(
    d.message,
    'denied by default-deny: no grant allows update on public.orders (columns amount) for alice',
  );
  assert.equal(decide(DEMO, who('mallory'), [one('public.orders', 'select')]).effect, 'deny');
  assert.equal(decide(DEMO, alice, []).effect, 'deny');
});

void test('a grant allows, naming the rule; roles come from policy groups and from the principal groups', () => {
  const d = decide(DEMO, who('alice'), [one('public.orders', 'select', ['id', 'amount'])]);
  assert.equal(d.effect, 'allow');
  assert.deepEqual(d.rules, ['role:analyst/grant:1']);
  // An unknown user in a known group gets the group's roles.
  assert.equal(
    decide(DEMO, who('zed', { groups: ['approvers'] }), [one('public.ledger', 'select')]).effect,
    'allow',
  );
  assert.equal(
    decide(DEMO, who('zed', { groups: ['nope'] }), [one('public.ledger', 'select')]).effect,
    'deny',
  );
});

const COLS = loadPolicyFromString(`
version: 1
users:
  - { name: u, roles: [narrow, wide_rows] }
  - { name: v, roles: [narrow] }
roles:
  - name: narrow
    grants:
      - { schema: s, table: t, columns: [a, b], operations: [select] }
      - { schema: s, table: t, columns: [c], operations: [select] }
  - name: wide_rows
    grants:
      - { schema: s, table: t, columns: [d], operations: [select] }
    row_filters:
      - { table: s.t, where: "owner = {{ principal.name }}" }
  - name: star
    grants:
      - { schema: s, table: "*", operations: [select, ddl], target: prod, database: db1 }
`);

void test('columns: union within a role, never pieced across roles; "all columns" needs an unrestricted grant', () => {
  assert.equal(decide(COLS, who('v'), [one('s.t', 'select', ['a', 'c'])]).effect, 'allow');
  const d = decide(COLS, who('v'), [one('s.t', 'select', ['a', 'd'])]);
  assert.equal(d.effect, 'deny');
  assert.match(d.message ?? '', /columns not granted: d/);
  assert.equal(decide(COLS, who('v'), [one('s.t', 'select')]).effect, 'deny');
  // u holds narrow (a,b,c) and wide_rows (d): a+d needs both roles → denied.
  assert.equal(decide(COLS, who('u'), [one('s.t', 'select', ['a', 'd'])]).effect, 'deny');
  assert.equal(decide(COLS, who('u'), [one('s.t', 'select', ['d'])]).effect, 'allow');
});

void test('table "*", target and database matching, ddl alias', () => {
  const p = who('x');
  const r = { extraRoles: ['star'], database: 'db1' };
  assert.equal(decide(COLS, p, [one('s.any', 'select')], r, { target: 'prod' }).effect, 'allow');
  assert.equal(decide(COLS, p, [one('s.any', 'select')], r, { target: 'staging' }).effect, 'deny');
  assert.equal(
    decide(COLS, p, [one('s.any', 'select')], { extraRoles: ['star'] }, { target: 'prod' }).effect,
    'deny',
  );
  assert.equal(decide(COLS, p, [one('other.any', 'select')], r, { target: 'prod' }).effect, 'deny');
  for (const op of ['create', 'alter', 'drop'] as const) {
    assert.equal(decide(COLS, p, [one('s.any', op)], r, { target: 'prod' }).effect, 'allow', op);
  }
  assert.equal(decide(COLS, p, [one('s.any', 'truncate')], r, { target: 'prod' }).effect, 'deny');
  // Unknown just-in-time roles are ignored.
  assert.equal(
    decide(COLS, p, [one('s.any', 'select')], { extraRoles: ['ghost'], database: 'db1' }, { target: 'prod' })
      .effect,
    'deny',
  );
});

// ---- append-only ----

const LEDGER = loadPolicyFromString(`
version: 1
users: [{ name: root, roles: [all] }]
roles:
  - name: all
    grants:
      - schema: public
        table: ledger
        operations: [select, insert, update, delete, truncate, merge, create, alter, drop, copy_to, copy_from]
append_only: [public.ledger]
`);

void test('append-only: every forbidden operation is denied even with an explicit grant; insert and select pass', () => {
  const root = who('root');
  for (const op of APPEND_ONLY_FORBIDDEN) {
    const d = decide(LEDGER, root, [one('public.ledger', op)]);
    assert.equal(d.effect, 'deny', op);
    assert.equal(d.denied?.rule, 'append_only:public.ledger', op);
  }
  for (const op of ['update', 'delete', 'truncate', 'merge', 'alter', 'drop'] as const)
    assert.ok(APPEND_ONLY_FORBIDDEN.has(op));
  assert.equal(decide(LEDGER, root, [one('public.ledger', 'insert')]).effect, 'allow');
  assert.equal(decide(LEDGER, root, [one('public.ledger', 'select')]).effect, 'allow');
  assert.equal(decide(LEDGER, root, [one('public.ledger', 'copy_from')]).effect, 'allow');
  // INSERT ... ON CONFLICT DO UPDATE: the analyser reports insert + update.
  const upsert = stmt('InsertStmt', [
    rel('public.ledger', 'insert'),
    rel('public.ledger', 'update', ['amount']),
  ]);
  assert.equal(decide(LEDGER, root, [upsert]).denied?.rule, 'append_only:public.ledger');
});

// ---- multi-statement, unsupported, kinds ----

void test('one denied statement denies the whole string, naming its index', () => {
  const d = decide(DEMO, bob, [
    one('public.orders', 'select'),
    one('public.ledger', 'delete'),
    one('public.orders', 'select'),
  ]);
  assert.equal(d.effect, 'deny');
  assert.equal(d.denied?.statement, 1);
  assert.equal(d.protections.size, 0);
});

void test('unsupported summaries, unknown kinds and DDL without objects are denied', () => {
  const u = decide(DEMO, bob, [stmt('SelectStmt', [], { unsupported: 'writable CTE' })]);
  assert.equal(u.denied?.rule, 'unsupported');
  assert.match(u.message ?? '', /writable CTE/);
  assert.equal(decide(DEMO, bob, [stmt('CreateRoleStmt', [])]).denied?.rule, 'statement-kind');
  assert.equal(decide(DEMO, bob, [stmt('AlterSystemStmt', [])]).effect, 'deny');
  assert.equal(decide(DEMO, bob, [stmt('DropStmt', [])]).denied?.rule, 'unsupported');
  assert.equal(decide(DEMO, bob, [stmt('SelectStmt', [rel('public.orders', 'utility')])]).effect, 'deny');
});

void test('utility statements pass; NOTIFY needs a notify grant', () => {
  for (const k of [
    'TransactionStmt',
    'VariableShowStmt',
    'ListenStmt',
    'UnlistenStmt',
    'DiscardStmt',
    'DeallocateStmt',
    'FetchStmt',
    'ClosePortalStmt',
  ]) {
    assert.equal(decide(DEMO, bob, [stmt(k, [])]).effect, 'allow', k);
  }
  assert.equal(decide(DEMO, bob, [stmt('NotifyStmt', [])]).effect, 'deny');
  const p = loadPolicyFromString(
    'version: 1\nusers: [{ name: n, roles: [r] }]\nroles: [{ name: r, grants: [{ operations: [notify], target: t1 }] }]\n',
  );
  assert.equal(decide(p, who('n'), [stmt('NotifyStmt', [])], {}, { target: 't1' }).effect, 'allow');
  assert.equal(decide(p, who('n'), [stmt('NotifyStmt', [])], {}, { target: 't2' }).effect, 'deny');
  // A cursor's query is decided as a select.
  assert.equal(
    decide(DEMO, bob, [stmt('DeclareCursorStmt', [rel('public.ledger', 'select')])]).effect,
    'allow',
  );
  assert.equal(
    decide(DEMO, alice, [stmt('DeclareCursorStmt', [rel('public.ledger', 'select')])]).effect,
    'deny',
  );
});

// ---- conditions ----

const COND = loadPolicyFromString(`
version: 1
users:
  - { name: h, kind: human, roles: [office, night, net, env, humans] }
roles:
  - name: office
    grants:
      - schema: s
        table: office
        operations: [select]
        when: { time: { days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00", tz: Europe/Paris } }
  - name: night
    grants:
      - schema: s
        table: night
        operations: [select]
        when: { time: [{ days: [fri], from: "22:00", to: "06:00", tz: America/New_York }] }
  - name: net
    grants:
      - schema: s
        table: net
        operations: [select]
        when: { sources: ["10.0.0.0/8", "2001:db8::/32", "::ffff:192.168.1.0/120"] }
  - name: env
    grants:
      - { schema: s, table: env, operations: [select], when: { environments: [staging] } }
  - name: humans
    grants:
      - { schema: s, table: kind, operations: [select], when: { principal_kind: human } }
`);

const at = (iso: string) => ({ at: new Date(iso) });
const h = who('h');
const allowedAt = (table: string, iso: string): boolean =>
  decide(COND, h, [one(table, 'select')], {}, at(iso)).effect === 'allow';

void test('time window in Europe/Paris follows DST: 08:00 local is 07:00Z in winter and 06:00Z in summer', () => {
  assert.equal(allowedAt('s.office', '2024-01-15T06:59:00Z'), false); // Mon 07:59 CET
  assert.equal(allowedAt('s.office', '2024-01-15T07:00:00Z'), true); // Mon 08:00 CET
  assert.equal(allowedAt('s.office', '2024-01-15T16:59:00Z'), true); // Mon 17:59 CET
  assert.equal(allowedAt('s.office', '2024-01-15T17:00:00Z'), false); // Mon 18:00 CET (exclusive)
  assert.equal(allowedAt('s.office', '2024-07-15T06:00:00Z'), true); // Mon 08:00 CEST
  assert.equal(allowedAt('s.office', '2024-07-15T05:59:00Z'), false); // Mon 07:59 CEST
  assert.equal(allowedAt('s.office', '2024-01-13T12:00:00Z'), false); // Saturday
  // Around the spring-forward Monday after 2024-03-31 and the fall-back switch.
  assert.equal(allowedAt('s.office', '2024-04-01T06:00:00Z'), true);
  assert.equal(allowedAt('s.office', '2024-10-28T06:30:00Z'), false); // 07:30 CET
  assert.equal(allowedAt('s.office', '2024-10-28T07:00:00Z'), true);
});

void test('a window crossing midnight belongs to its start day (fri 22:00 - sat 06:00, New York)', () => {
  assert.equal(allowedAt('s.night', '2024-01-20T03:30:00Z'), true); // Fri 22:30 EST
  assert.equal(allowedAt('s.night', '2024-01-20T10:59:00Z'), true); // Sat 05:59 EST
  assert.equal(allowedAt('s.night', '2024-01-20T11:00:00Z'), false); // Sat 06:00 EST
  assert.equal(allowedAt('s.night', '2024-01-20T02:59:00Z'), false); // Fri 21:59 EST
  assert.equal(allowedAt('s.night', '2024-01-21T03:30:00Z'), false); // Sat 22:30 EST
  assert.equal(allowedAt('s.night', '2024-01-19T08:00:00Z'), false); // Fri 03:00 EST (Thursday not a start day)
});

void test('source ranges: IPv4, IPv6, IPv4-mapped addresses and ranges; garbage addresses never match', () => {
  const from = (a: string) => decide(COND, h, [one('s.net', 'select')], {}, { sourceAddress: a }).effect;
  assert.equal(from('10.20.30.40'), 'allow');
  assert.equal(from('::ffff:10.20.30.40'), 'allow');
  assert.equal(from('::FFFF:a14:1e28'), 'allow');
  assert.equal(from('11.0.0.1'), 'deny');
  assert.equal(from('2001:db8:1::5'), 'allow');
  assert.equal(from('2001:db9::5'), 'deny');
  assert.equal(from('fe80::1%eth0'), 'deny');
  assert.equal(from('192.168.1.77'), 'allow');
  assert.equal(from('192.168.2.77'), 'deny');
  assert.equal(from('not-an-address'), 'deny');
  assert.equal(from(''), 'deny');
});

void test('environments and principal kind', () => {
  assert.equal(decide(COND, h, [one('s.env', 'select')], {}, { environment: 'staging' }).effect, 'allow');
  assert.equal(decide(COND, h, [one('s.env', 'select')], {}, { environment: 'production' }).effect, 'deny');
  assert.equal(decide(COND, h, [one('s.kind', 'select')]).effect, 'allow');
  // The policy says human; an authenticator claiming service is a conflict: no kind condition holds.
  assert.equal(decide(COND, who('h', { kind: 'service' }), [one('s.kind', 'select')]).effect, 'deny');
  const svc = decide(DEMO, who('svc_reporting', { kind: 'service' }), [one('public.orders', 'select')]);
  assert.equal(svc.effect, 'allow');
  assert.equal(
    decide(
      DEMO,
      who('svc_reporting', { kind: 'service' }),
      [one('public.orders', 'select')],
      {},
      { sourceAddress: '::1' },
    ).effect,
    'allow',
  );
  assert.equal(
    decide(
      DEMO,
      who('svc_reporting', { kind: 'service' }),
      [one('public.orders', 'select')],
      {},
      { sourceAddress: '10.0.0.1' },
    ).effect,
    'deny',
  );
});

// ---- row filters ----

const FILTERS = loadPolicyFromString(`
version: 1
users:
  - { name: t1, roles: [tenant], attributes: { tenant: "42" } }
  - { name: t2, roles: [tenant, region], attributes: { tenant: "42", region: "eu" } }
  - { name: t3, roles: [tenant, admin], attributes: { tenant: "42" } }
  - { name: t4, roles: [tenant] }
  - { name: t5, roles: [region] }
roles:
  - name: tenant
    grants: [{ schema: s, table: t, operations: [select, update] }]
    row_filters: [{ table: s.t, where: "tenant_id = {{ user.tenant | int }}" }]
  - name: region
    grants: [{ schema: s, table: t, operations: [select] }]
    row_filters: [{ table: s.t, where: "region = {{ user.region }}" }]
  - name: admin
    grants: [{ schema: s, table: t, operations: [select] }]
`);

const filterOf = (d: Decision): string | undefined => d.protections.get('s.t')?.rowFilter;

void test('row filters: one role, OR across roles, unfiltered role wins, AND across accesses', () => {
  const one1 = decide(FILTERS, who('t1'), [one('s.t', 'select')]);
  assert.equal(filterOf(one1), '(tenant_id = 42)');
  assert.ok(one1.rules.includes('role:tenant/row_filter:s.t'));
  assert.equal(
    filterOf(decide(FILTERS, who('t2'), [one('s.t', 'select')])),
    "(region = 'eu') OR (tenant_id = 42)",
  );
  assert.equal(decide(FILTERS, who('t3'), [one('s.t', 'select')]).protections.get('s.t'), undefined);
  // Update is granted only by 'tenant': the update is filtered by tenant, the read by region OR tenant.
  const upd = decide(FILTERS, who('t2'), [
    stmt('UpdateStmt', [rel('s.t', 'update'), rel('s.t', 'select')], { hasWhere: true }),
  ]);
  assert.equal(filterOf(upd), "((tenant_id = 42)) AND ((region = 'eu') OR (tenant_id = 42))");
});

void test('row filters: a missing attribute denies, and so does a non-integer for | int', () => {
  const d = decide(FILTERS, who('t4'), [one('s.t', 'select')]);
  assert.equal(d.effect, 'deny');
  assert.equal(d.denied?.rule, 'role:tenant/row_filter:s.t');
  assert.match(d.message ?? '', /user\.tenant is missing/);
  const bad = decide(FILTERS, who('t1', { attributes: {} }), [one('s.t', 'select')]);
  assert.equal(bad.effect, 'allow'); // policy attributes win over the principal's
  const p = loadPolicyFromString(`
version: 1
roles:
  - name: tenant
    grants: [{ schema: s, table: t, operations: [select] }]
    row_filters: [{ table: s.t, where: "tenant_id = {{ user.tenant | int }}" }]
`);
  const inj = decide(p, who('x', { attributes: { tenant: '1 OR 1=1' } }), [one('s.t', 'select')], {
    extraRoles: ['tenant'],
  });
  assert.equal(inj.effect, 'deny');
  assert.match(inj.message ?? '', /not an integer/);
});

void test('row filters: injection attempts in attribute values stay inside one literal', () => {
  const d = decide(FILTERS, who('t5', { attributes: { region: "' OR 1=1 --" } }), [one('s.t', 'select')]);
  assert.equal(d.effect, 'allow');
  assert.equal(filterOf(d), "(region = ''' OR 1=1 --')");
  const b = decide(FILTERS, who('t5', { attributes: { region: "x\\' OR 1=1 --" } }), [one('s.t', 'select')]);
  assert.equal(filterOf(b), "(region = E'x\\\\'' OR 1=1 --')");
  const nul = decide(FILTERS, who('t5', { attributes: { region: 'a\u0000b' } }), [one('s.t', 'select')]);
  assert.equal(nul.effect, 'deny');
});

// ---- masks ----

void test('masks apply unless the principal holds an exempt role (also just in time)', () => {
  const d = decide(DEMO, alice, [one('public.customers', 'select', ['id', 'ssn', 'email'])]);
  assert.equal(d.effect, 'allow');
  const prot = d.protections.get('public.customers');
  assert.ok(prot !== undefined);
  assert.match(prot.masks.get('ssn') ?? '', /right\(\("ssn"\)::text, 4\)/);
  assert.equal(prot.masks.get('email'), `encode(sha256(convert_to(("email")::text, 'UTF8')), 'hex')`);
  assert.equal(prot.rowFilter, '(tenant_id = 42)');
  assert.ok(d.rules.includes('mask:public.customers.ssn'));
  const bobD = decide(DEMO, bob, [one('public.customers', 'select', ['name', 'ssn'])]);
  assert.equal(bobD.protections.get('public.customers')?.masks.size, 2);
  assert.equal(bobD.protections.get('public.customers')?.rowFilter, undefined);
  const dpo = decide(DEMO, alice, [one('public.customers', 'select', ['ssn'])], { extraRoles: ['dpo'] });
  assert.equal(dpo.protections.get('public.customers'), undefined); // dpo: unmasked and unfiltered
  assert.equal(decide(DEMO, bob, [one('public.orders', 'select')]).protections.size, 0);
});

// ---- catalogs, functions, settings ----

void test('system catalogs: the readable list passes, secrets and query text never, writes never', () => {
  for (const c of ['pg_class', 'pg_namespace', 'pg_attribute', 'pg_type', 'pg_roles', 'pg_settings']) {
    const d = decide(DEMO, alice, [one(`pg_catalog.${c}`, 'select')]);
    assert.equal(d.effect, 'allow', c);
    assert.deepEqual(d.rules, [`catalog:pg_catalog.${c}`]);
  }
  for (const c of [
    'pg_authid',
    'pg_shadow',
    'pg_statistic',
    'pg_stats',
    'pg_user_mapping',
    'pg_largeobject',
    'pg_stat_activity',
    'pg_unknown',
  ]) {
    const d = decide(DEMO, alice, [one(`pg_catalog.${c}`, 'select')]);
    assert.equal(d.effect, 'deny', c);
    assert.equal(d.denied?.rule, `catalog:pg_catalog.${c}`);
  }
  assert.equal(decide(DEMO, alice, [one('information_schema.columns', 'select')]).effect, 'allow');
  assert.equal(decide(DEMO, alice, [one('pg_catalog.pg_class', 'update')]).effect, 'deny');
  assert.equal(decide(DEMO, who('nobody'), [one('pg_catalog.pg_class', 'select')]).effect, 'deny');
});

const FN = loadPolicyFromString(`
version: 1
users: [{ name: f, roles: [fn] }]
roles:
  - name: fn
    grants:
      - { operations: [execute], functions: [pg_catalog.pg_sleep, app.*] }
      - { operations: [execute], functions: [ops.reindex], when: { environments: [staging] } }
`);

void test('functions: safe built-ins pass; dangerous and unknown ones need an explicit grant', () => {
  const call = (schema: string, name: string): StatementSummary =>
    stmt('SelectStmt', [], { functions: [{ schema, name }] });
  for (const name of [
    'lower',
    'format_type',
    'pg_get_expr',
    'pg_table_is_visible',
    'array_to_string',
    'current_setting',
    'version',
    'count',
  ]) {
    assert.equal(decide(DEMO, alice, [call('pg_catalog', name)]).effect, 'allow', name);
  }
  for (const name of [
    'pg_read_file',
    'pg_ls_dir',
    'lo_import',
    'lo_export',
    'set_config',
    'pg_terminate_backend',
    'pg_cancel_backend',
    'pg_reload_conf',
    'pg_sleep',
    'pg_advisory_lock',
    'no_such_fn',
  ]) {
    const d = decide(DEMO, alice, [call('pg_catalog', name)]);
    assert.equal(d.effect, 'deny', name);
    assert.equal(d.denied?.rule, `function:pg_catalog.${name}`);
  }
  assert.match(decide(DEMO, alice, [call('pg_catalog', 'pg_read_file')]).message ?? '', /reads server files/);
  assert.equal(decide(DEMO, alice, [call('public', 'dblink')]).effect, 'deny');
  assert.equal(decide(DEMO, alice, [call('public', 'lower')]).effect, 'deny');
  assert.equal(decide(FN, who('f'), [call('pg_catalog', 'pg_sleep')]).effect, 'allow');
  assert.equal(decide(FN, who('f'), [call('app', 'anything')]).effect, 'allow');
  assert.equal(decide(FN, who('f'), [call('ops', 'reindex')]).effect, 'deny');
  assert.equal(
    decide(FN, who('f'), [call('ops', 'reindex')], {}, { environment: 'staging' }).effect,
    'allow',
  );
  // CALL reported as an execute access on a relation-like name.
  assert.equal(decide(FN, who('f'), [stmt('CallStmt', [rel('app.proc', 'execute')])]).effect, 'allow');
  assert.equal(decide(DEMO, alice, [stmt('CallStmt', [rel('app.proc', 'execute')])]).effect, 'deny');
});

void test('settings: harmless ones pass, role/session_authorization/search_path and unknown ones are denied', () => {
  const set = (name: string, policy: Policy = DEMO): Decision =>
    decide(policy, alice, [stmt('VariableSetStmt', [], { settings: [{ name, value: 'x' }] })]);
  for (const n of [
    'application_name',
    'statement_timeout',
    'client_encoding',
    'DateStyle',
    'extra_float_digits',
    'TimeZone',
    'IntervalStyle',
    'lock_timeout',
  ]) {
    assert.equal(set(n).effect, 'allow', n);
  }
  for (const n of [
    'role',
    'session_authorization',
    'search_path',
    'standard_conforming_strings',
    'work_mem_x',
    'log_statement',
  ]) {
    assert.equal(set(n).effect, 'deny', n);
  }
  assert.equal(set('role').denied?.rule, 'setting:role');
  const extra = loadPolicyFromString('version: 1\nsettings: { allow: [log_min_duration_statement] }\n');
  assert.equal(set('log_min_duration_statement', extra).effect, 'allow');
});

// ---- approvals ----

void test('approvals: without WHERE, environment match, mode and ttl; deny beats approval', () => {
  const upd = stmt('UpdateStmt', [rel('public.orders', 'update', ['amount'])], { hasWhere: false });
  const d = decide(DEMO, bob, [upd]);
  assert.equal(d.effect, 'approval');
  assert.deepEqual(d.approval, {
    rule: 'approval:bulk-change',
    mode: 'wait',
    approvers: [{ group: 'approvers', count: 1 }],
    ttlSeconds: 900,
  });
  // hasWhere unknown counts as "without WHERE" (fail closed).
  assert.equal(
    decide(DEMO, bob, [stmt('UpdateStmt', [rel('public.orders', 'update', ['amount'])])]).effect,
    'approval',
  );
  assert.equal(decide(DEMO, bob, [{ ...upd, hasWhere: true }]).effect, 'allow');
  assert.equal(decide(DEMO, bob, [upd, one('public.ledger', 'delete')]).effect, 'deny');
  const ddl = loadPolicyFromString(`
version: 1
users: [{ name: d, roles: [ddl] }]
groups: [{ name: approvers }]
roles: [{ name: ddl, grants: [{ schema: s, table: "*", operations: [ddl] }] }]
approvals:
  - { name: prod-ddl, match: { operations: [ddl], environments: [production] }, approvers: [{ group: approvers, count: 2 }] }
`);
  const p = decide(ddl, who('d'), [one('s.t', 'drop')], {}, { environment: 'production' });
  assert.equal(p.effect, 'approval');
  assert.equal(p.approval?.mode, 'error');
  assert.equal(p.approval?.ttlSeconds, 3600);
  assert.equal(decide(ddl, who('d'), [one('s.t', 'drop')], {}, { environment: 'staging' }).effect, 'allow');
});

// ---- robustness and caching ----

void test('malformed input is a denial, never an exception or an allow', () => {
  const broken = {
    kind: 'SelectStmt',
    text: '',
    relations: null,
    functions: [],
    settings: [],
  } as unknown as StatementSummary;
  const d = decide(DEMO, alice, [broken]);
  assert.equal(d.effect, 'deny');
  assert.equal(d.denied?.rule, 'internal-error');
});

void test('cache key: includes the minute and address only when the policy uses them', () => {
  const base = { principal: alice, context: ctx() };
  const later = {
    principal: alice,
    context: ctx({ at: new Date('2024-01-15T12:05:00Z'), sourceAddress: '10.0.0.9' }),
  };
  assert.equal(decisionCacheKey(FILTERS, base), decisionCacheKey(FILTERS, later));
  assert.notEqual(decisionCacheKey(COND, base), decisionCacheKey(COND, later));
  assert.notEqual(
    decisionCacheKey(FILTERS, base),
    decisionCacheKey(FILTERS, { ...base, principal: { ...alice, attributes: { tenant: '7' } } }),
  );
  const cache = new DecisionCache(2);
  const d = decide(DEMO, alice, [one('public.orders', 'select')]);
  cache.set('a', d);
  cache.set('b', d);
  assert.equal(cache.get('a'), d);
  cache.set('c', d);
  assert.equal(cache.get('b'), undefined); // least recently used evicted
  assert.equal(cache.size, 2);
});

void test('evaluation is fast: a typical decision takes well under a millisecond', () => {
  const s = [
    one('public.customers', 'select', ['id', 'name', 'email', 'ssn']),
    one('pg_catalog.pg_class', 'select'),
  ];
  const n = 2000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) decide(DEMO, alice, s);
  const perCall = Number(process.hrtime.bigint() - t0) / n / 1000;
  assert.ok(perCall < 500, `${perCall.toFixed(1)} µs per decision`);
});
