// Tests for approvals at Bind (extended protocol) in the policy hook: the Parse runs nothing, each Bind is bound to its parameters' hash and runs once; unnamed, named, re-parsed and SQL-PREPAREd names; wait mode with cancel; session end and policy swap.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BindRequest, SessionContext, StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicy } from '../policy/index.js';
import { initSqlAnalyser } from '../sql/analyze.js';
import { CatalogCache } from '../enforce/catalog-cache.js';
import { createPolicyHook } from '../enforce/policy-hook.js';
import type { HookDecision, PolicyHook } from '../enforce/policy-hook.js';
import { createApprovalService } from './service.js';
import type { ApprovalService } from './service.js';

const POLICY_DIR = new URL('../../test/fixtures/approvals/policy', import.meta.url).pathname;
const POLICY = loadPolicy(POLICY_DIR);
const TARGET: TargetConfig = {
  name: 'main',
  host: '127.0.0.1',
  port: 1,
  database: 'appdb',
  environment: 'test',
  tls: { mode: 'disable' },
  searchPath: ['public'],
  logins: new Map([['app', { user: 'app' }]]),
  policy: { kind: 'folder', path: POLICY_DIR },
};
const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);

function session(user: string, sessionId = `s-${user}`): SessionContext {
  return {
    sessionId,
    protocol: 'postgres',
    principal: { name: user, kind: 'human', groups: [], attributes: {} },
    target: 'main',
    environment: 'test',
    database: 'appdb',
    sourceAddress: '127.0.0.1',
    tls: false,
    applicationName: 'test',
    startedAt: new Date(),
  };
}

function stmt(
  s: SessionContext,
  sql: string,
  path: 'simple' | 'parse',
  statementName?: string,
): StatementRequest {
  return {
    session: s,
    sql,
    path,
    ...(statementName !== undefined ? { statementName } : {}),
    receivedAt: new Date(),
    notice: () => undefined,
    signal: new AbortController().signal,
  };
}

function bind(
  s: SessionContext,
  statementName: string,
  paramsHash: string,
  extra: Partial<Pick<BindRequest, 'notice' | 'signal'>> = {},
): BindRequest {
  return { session: s, statementName, portal: '', paramsHash, paramCount: 1, ...extra };
}

function bindOn(
  h: PolicyHook,
  r: BindRequest,
): Promise<StatementVerdict | undefined> | StatementVerdict | undefined {
  assert.ok('bind' in h && h.bind !== undefined, 'a hook with an approvals service examines Binds');
  return h.bind?.(r);
}

const decisionOf = (v: StatementVerdict | undefined): HookDecision => v?.decision as HookDecision;
const denied = (v: StatementVerdict | undefined): { sqlstate: string; message: string } => {
  assert.ok(v !== undefined && v.action === 'deny', `expected a denial, got ${JSON.stringify(v)}`);
  return v;
};
const idOf = (m: string): string => {
  const x = /request (ar_[0-9a-f]{16})/.exec(m);
  assert.ok(x, m);
  return x[1] as string;
};

describe('approvals at Bind (policy hook)', () => {
  let dir = '';
  let svc: ApprovalService;
  let hook: PolicyHook;
  const hooks: PolicyHook[] = [];

  before(async () => {
    await initSqlAnalyser();
    dir = mkdtempSync(join(tmpdir(), 'warden-approvals-bind-'));
    svc = await createApprovalService({ dir, policy: POLICY, sweepIntervalMs: 0, syncIntervalMs: 0 });
    hook = await createPolicyHook(TARGET, POLICY, {
      approvals: svc,
      catalog: CatalogCache.forTarget(TARGET),
      approvalNoticeMs: 50,
    });
    hooks.push(hook);
  });
  after(async () => {
    for (const h of hooks) await h.close();
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets the Parse through without a request, then binds the approval to the parameters and runs it once', async () => {
    const bob = session('bob', 's-params');
    const sql = 'DELETE FROM orders';
    const before = svc.list().length;
    const parsed = await hook.check(stmt(bob, sql, 'parse', ''));
    assert.equal(parsed.action, 'allow');
    assert.equal(decisionOf(parsed).effect, 'approval');
    assert.ok(decisionOf(parsed).reasons.some((r) => r.includes('decided at each Bind')));
    assert.equal(svc.list().length, before, 'the Parse opened no request');

    const first = denied(await bindOn(hook, bind(bob, '', H1)));
    assert.equal(first.sqlstate, 'WA001');
    assert.match(first.message, /with the same parameters/);
    const id = idOf(first.message);
    assert.equal(svc.get(id)?.statement?.paramsHash, H1);
    assert.equal(svc.get(id)?.statement?.path, 'parse');
    await svc.approve(id, 'carol');

    // Other parameters: a new request.
    await hook.check(stmt(bob, sql, 'parse', ''));
    const other = denied(await bindOn(hook, bind(bob, '', H2)));
    assert.notEqual(idOf(other.message), id);

    await hook.check(stmt(bob, sql, 'parse', ''));
    const ran = await bindOn(hook, bind(bob, '', H1));
    assert.equal(ran?.action, 'allow');
    assert.ok(decisionOf(ran).rules.includes(`approval-request:${id}`));
    assert.equal(decisionOf(ran).approvalRequest, id);
    assert.equal(svc.get(id)?.status, 'used');

    // Bound again (no new Parse): the approval is used up.
    const twice = denied(await bindOn(hook, bind(bob, '', H1)));
    assert.equal(twice.sqlstate, 'WA001');
    assert.notEqual(idOf(twice.message), id);
  });

  it('a new unnamed Parse replaces the gate; an ungated Bind is not held', async () => {
    const bob = session('bob', 's-unnamed');
    await hook.check(stmt(bob, 'DELETE FROM orders', 'parse', ''));
    await hook.check(stmt(bob, 'SELECT id FROM orders WHERE id = $1', 'parse', ''));
    assert.equal(bindOn(hook, bind(bob, '', H1)), undefined);
    // A refused Parse also drops the unnamed statement (upstream gets a failing unnamed Parse instead).
    await hook.check(stmt(bob, 'DELETE FROM orders', 'parse', ''));
    const refused = await hook.check(stmt(bob, 'DROP TABLE orders', 'parse', 'x'));
    assert.equal(refused.action, 'deny');
    assert.equal(bindOn(hook, bind(bob, '', H1)), undefined);
  });

  it('a named statement keeps its gate when the name is parsed again; two gated bodies under one name are refused', async () => {
    const bob = session('bob', 's-named');
    await hook.check(stmt(bob, 'DELETE FROM orders', 'parse', 'd1'));
    // Parsing the taken name fails upstream, so the DELETE may still be what d1 runs.
    await hook.check(stmt(bob, 'SELECT 1', 'parse', 'd1'));
    const still = denied(await bindOn(hook, bind(bob, 'd1', H1)));
    assert.equal(still.sqlstate, 'WA001');
    assert.equal(svc.get(idOf(still.message))?.statement?.sql, 'DELETE FROM orders');

    await hook.check(stmt(bob, 'DELETE FROM orders', 'parse', 'd2'));
    await hook.check(stmt(bob, 'TRUNCATE orders', 'parse', 'd2'));
    const ambiguous = denied(await bindOn(hook, bind(bob, 'd2', H1)));
    assert.equal(ambiguous.sqlstate, 'WA001');
    assert.match(ambiguous.message, /approval:ambiguous-statement.*new name/);
  });

  it('a name prepared by an approved SQL PREPARE is gated at Bind too', async () => {
    const bob = session('bob', 's-prepare');
    const prep = 'PREPARE p1 AS DELETE FROM orders';
    const asked = denied(await hook.check(stmt(bob, prep, 'simple')));
    const id = idOf(asked.message);
    await svc.approve(id, 'carol');
    assert.equal((await hook.check(stmt(bob, prep, 'simple'))).action, 'allow');
    // The approval was for preparing it: executing it through a protocol Bind needs its own approval.
    const viaBind = denied(await bindOn(hook, bind(bob, 'p1', H1)));
    assert.equal(viaBind.sqlstate, 'WA001');
    assert.notEqual(idOf(viaBind.message), id);
    assert.equal(svc.get(idOf(viaBind.message))?.statement?.sql, prep);
  });

  it('wait mode at Bind: notices while held, released by approval; a cancel ends the wait', async () => {
    const bob = session('bob', 's-wait');
    const sql = 'UPDATE orders SET amount = 0';
    await hook.check(stmt(bob, sql, 'parse', 'w'));
    const notices: string[] = [];
    const held = bindOn(hook, bind(bob, 'w', H1, { notice: (m) => void notices.push(m) }));
    assert.ok(held instanceof Promise);
    for (let i = 0; i < 100 && notices.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const id = idOf(notices[0] ?? '');
    assert.equal(svc.get(id)?.statement?.mode, 'wait');
    await new Promise((r) => setTimeout(r, 120));
    assert.ok(notices.length >= 2, JSON.stringify(notices));
    await svc.approve(id, 'carol');
    const v = await held;
    assert.equal(v?.action, 'allow');
    assert.equal(decisionOf(v).approvalRequest, id);

    const abort = new AbortController();
    const cancelled = bindOn(hook, bind(bob, 'w', H2, { signal: abort.signal, notice: () => undefined }));
    setTimeout(() => abort.abort(), 50);
    const c = denied(await cancelled);
    assert.equal(c.sqlstate, '57014');
  });

  it('without an approvals service the hook has no bind (sessions forward Binds unexamined)', async () => {
    const plain = await createPolicyHook(TARGET, POLICY, { catalog: CatalogCache.forTarget(TARGET) });
    hooks.push(plain);
    assert.equal(typeof plain.bind, 'undefined');
    // ...and the Parse of a statement that needs approval is refused outright.
    const v = denied(await plain.check(stmt(session('bob', 's-plain'), 'DELETE FROM orders', 'parse', '')));
    assert.equal(v.sqlstate, 'WA001');
  });

  it('the gates end with the session and survive a policy swap', async () => {
    const bob = session('bob', 's-end');
    await hook.check(stmt(bob, 'DELETE FROM orders', 'parse', 'e'));
    const next = await createPolicyHook(TARGET, POLICY, {
      approvals: svc,
      catalog: CatalogCache.forTarget(TARGET),
    });
    hooks.push(next);
    next.inheritSessions(hook);
    assert.equal(denied(await bindOn(next, bind(bob, 'e', H1))).sqlstate, 'WA001');
    hook.sessionClosed('s-end');
    assert.equal(bindOn(hook, bind(bob, 'e', H1)), undefined);
  });
});
