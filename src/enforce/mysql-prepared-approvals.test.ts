// Tests for approvals of MySQL protocol prepared statements in the policy hook: COM_STMT_PREPARE runs nothing and is let through, each COM_STMT_EXECUTE is gated and bound to its parameters, and its verdict names the request.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BindRequest, SessionContext, StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicyFromString } from '../policy/index.js';
import { createApprovalService } from '../approvals/service.js';
import type { ApprovalService } from '../approvals/service.js';
import { CatalogCache } from './catalog-cache.js';
import { mysqlDialect } from './mysql-dialect.js';
import { createPolicyHook } from './policy-hook.js';
import type { HookDecision, PolicyHook } from './policy-hook.js';

// The approvals fixture policy (test/fixtures/approvals) with MySQL names: the schema is the database.
const POLICY = loadPolicyFromString(`
version: 1
users:
  - name: bob
    groups: [writers]
  - name: carol
    groups: [approvers]
groups:
  - name: writers
    roles: [writer]
  - name: approvers
roles:
  - name: writer
    grants:
      - schema: appdb
        table: orders
        operations: [select, insert, update, delete]
approvals:
  - name: bulk-delete
    match: { operations: [delete], tables: [appdb.orders], without_where: true }
    approvers: [{ group: approvers, count: 1 }]
    ttl: 10m
`);
const TARGET: TargetConfig = {
  name: 'shop',
  engine: 'mysql',
  host: '127.0.0.1',
  port: 1,
  database: 'appdb',
  environment: 'test',
  tls: { mode: 'disable' },
  searchPath: [],
  logins: new Map([['app', { user: 'app' }]]),
  policy: { kind: 'allow_all' },
};
const H1 = '1'.repeat(64);
const H2 = '2'.repeat(64);

const bob = (sessionId: string): SessionContext => ({
  sessionId,
  protocol: 'mysql',
  principal: { name: 'bob', kind: 'human', groups: [], attributes: {} },
  target: 'shop',
  environment: 'test',
  database: 'appdb',
  sourceAddress: '127.0.0.1',
  tls: false,
  applicationName: 'test',
  startedAt: new Date(),
});

const prepare = (s: SessionContext, sql: string, id: string): StatementRequest => ({
  session: s,
  sql,
  path: 'mysql-prepare',
  statementName: id,
  receivedAt: new Date(),
  notice: () => undefined,
  signal: new AbortController().signal,
});

const execute = (s: SessionContext, id: string, paramsHash: string): BindRequest => ({
  session: s,
  statementName: id,
  portal: '',
  paramsHash,
  paramCount: 0,
  notice: () => undefined,
  signal: new AbortController().signal,
});

const denied = (v: StatementVerdict | undefined): Extract<StatementVerdict, { action: 'deny' }> => {
  assert.ok(v !== undefined && v.action === 'deny', `expected a denial, got ${JSON.stringify(v)}`);
  return v;
};
const idOf = (m: string): string => {
  const x = /request (ar_[0-9a-f]{16})/.exec(m);
  assert.ok(x, m);
  return x[1] as string;
};

describe('approvals of MySQL prepared statements (policy hook, MySQL dialect)', () => {
  let dir = '';
  let svc: ApprovalService;
  let hook: PolicyHook;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-mysql-prepared-'));
    svc = await createApprovalService({ dir, policy: POLICY, sweepIntervalMs: 0, syncIntervalMs: 0 });
    hook = await createPolicyHook(TARGET, POLICY, {
      approvals: svc,
      dialect: mysqlDialect(TARGET, { checkSqlMode: false }),
      catalog: new CatalogCache('shop', () => Promise.reject(new Error('no catalog in this test'))),
    });
  });
  after(async () => {
    await hook.close();
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the prepare runs nothing and opens no request; each execute is gated, bound to its parameters, once', async () => {
    const s = bob('my-1');
    const sql = 'DELETE FROM orders';
    const before = svc.list().length;
    const prepared = await hook.check(prepare(s, sql, '1'));
    assert.equal(prepared.action, 'allow');
    const d = prepared.decision as HookDecision;
    assert.equal(d.effect, 'approval');
    assert.ok(
      d.reasons.some((r) => r.includes('decided at each execute')),
      d.reasons.join('; '),
    );
    assert.equal(svc.list().length, before, 'the prepare opened no request');

    assert.ok(hook.bind !== undefined);
    const first = denied(await hook.bind(execute(s, '1', H1)));
    assert.equal(first.sqlstate, 'WA001');
    const id = idOf(first.message);
    assert.equal(svc.get(id)?.statement?.path, 'mysql-prepare');
    assert.equal(svc.get(id)?.statement?.paramsHash, H1);
    assert.equal(svc.get(id)?.statement?.sql, sql);
    await svc.approve(id, 'carol');

    // Other parameters are not covered by that approval.
    assert.notEqual(idOf(denied(await hook.bind(execute(s, '1', H2))).message), id);
    const ran = await hook.bind(execute(s, '1', H1));
    assert.equal(ran?.action, 'allow');
    assert.equal(
      ran?.action === 'allow' ? ran.approvalRequestId : undefined,
      id,
      'the verdict names the request',
    );
    assert.equal((ran?.decision as HookDecision).approvalRequest, id);
    // Used once: a second execute needs a new approval.
    assert.notEqual(idOf(denied(await hook.bind(execute(s, '1', H1))).message), id);
  });

  it('an execute of a statement id that needs no approval, or that this session never prepared, is not held', async () => {
    const s = bob('my-2');
    assert.equal((await hook.check(prepare(s, 'SELECT id FROM orders WHERE id = ?', '1'))).action, 'allow');
    assert.equal(await hook.bind?.(execute(s, '1', H1)), undefined);
    // The gate is per session and per id (the session itself refuses ids it never handed out).
    await hook.check(prepare(s, 'DELETE FROM orders', '2'));
    assert.equal(denied(await hook.bind?.(execute(s, '2', H1))).sqlstate, 'WA001');
    assert.equal(await hook.bind?.(execute(bob('my-3'), '2', H1)), undefined);
    // Protocol statement ids are not SQL-level names: EXECUTE of the id is not the prepared DELETE.
    const { statementName: _unused, ...query } = prepare(s, 'EXECUTE `2`', '9');
    const sqlExecute = denied(await hook.check({ ...query, path: 'mysql-query' }));
    assert.match(sqlExecute.message, /prepared:unknown/);
    hook.sessionClosed('my-2');
    assert.equal(await hook.bind?.(execute(s, '2', H1)), undefined);
  });
});
