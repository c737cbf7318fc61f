// Tests for the approvals service: quorum and self-approval, statement binding and single use, denial, expiry, JIT roles, break-glass, audit events, the file store and the webhook.

import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Principal } from '../core/context.js';
import { loadPolicy } from '../policy/index.js';
import type { ApprovalRequirement } from '../policy/index.js';
import { ApprovalError, createApprovalService } from './service.js';
import type { ApprovalAuditEvent, ApprovalService, ApprovalServiceOptions } from './service.js';
import { APPROVALS_FILE, FileApprovalStore } from './store.js';

const POLICY = loadPolicy(new URL('../../test/fixtures/approvals/policy', import.meta.url).pathname);
const T0 = Date.parse('2024-03-01T10:00:00Z');

function principal(name: string): Principal {
  return { name, kind: 'human', groups: [], attributes: {} };
}

function requirement(rule: string): ApprovalRequirement {
  const a = POLICY.approvals.find((x) => x.id === rule);
  assert.ok(a, rule);
  return { rule: a.id, mode: a.mode, approvers: a.approvers, ttlSeconds: a.ttlSeconds };
}

function stmt(user: string, sql: string, over: { target?: string; database?: string; params?: string } = {}) {
  return {
    principal: principal(user),
    target: over.target ?? 'main',
    environment: 'test',
    database: over.database ?? 'appdb',
    sessionId: 's1',
    sql,
    path: 'simple',
    paramsHash: over.params ?? null,
  };
}

interface Harness {
  svc: ApprovalService;
  events: ApprovalAuditEvent[];
  clock: { t: number };
  dir: string;
  alerts: string[];
}

const open: ApprovalService[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function harness(over: Partial<ApprovalServiceOptions> & { dir?: string } = {}): Promise<Harness> {
  const dir = over.dir ?? mkdtempSync(join(tmpdir(), 'warden-approvals-'));
  if (over.dir === undefined) dirs.push(dir);
  const events: ApprovalAuditEvent[] = [];
  const clock = { t: T0 };
  const alerts: string[] = [];
  const svc = await createApprovalService({
    dir,
    policy: POLICY,
    events: {
      record: (e) => {
        events.push(e);
        return Promise.resolve();
      },
    },
    now: () => new Date(clock.t),
    sweepIntervalMs: 0,
    syncIntervalMs: 0,
    alert: (l) => alerts.push(l),
    ...over,
  });
  open.push(svc);
  return { svc, events, clock, dir, alerts };
}

const DELETE_ALL = 'DELETE FROM orders';

async function refused(p: Promise<unknown>, reason: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ApprovalError, String(e));
    assert.equal(e.reason, reason, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

void describe('statement approvals', () => {
  it('refuses self-approval even from a requester in the approver group, and non-approvers', async () => {
    const { svc } = await harness();
    const { request, created } = await svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: ['statement 1 matches approval rule bulk-delete'],
    });
    assert.equal(created, true);
    assert.match(request.id, /^ar_[0-9a-f]{16}$/);
    assert.equal(request.status, 'pending');
    await refused(svc.approve(request.id, 'bob'), 'forbidden', /cannot decide/);
    // Even an authenticated principal claiming the group does not help the requester.
    await refused(svc.approve(request.id, { ...principal('bob'), groups: ['approvers'] }), 'forbidden');
    await refused(svc.approve(request.id, 'alice'), 'forbidden', /not in an approver group/);
    assert.equal(svc.get(request.id)?.status, 'pending');
    // Re-asking for the identical statement while pending returns the same request.
    const again = await svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: [],
    });
    assert.equal(again.created, false);
    assert.equal(again.request.id, request.id);
    const approved = await svc.approve(request.id, 'carol', 'month-end cleanup');
    assert.equal(approved.status, 'approved');
    assert.equal(approved.votes[0]?.reason, 'month-end cleanup');
    await refused(svc.approve(request.id, 'dave'), 'conflict');
  });

  it('binds the approval to principal, target, database, exact text and parameters, and runs it once', async () => {
    const { svc, events } = await harness();
    const { request } = await svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: [],
    });
    await svc.approve(request.id, 'carol');
    assert.equal(await svc.claim(stmt('bob', DELETE_ALL + ' ')), undefined);
    assert.equal(await svc.claim(stmt('bob', 'delete from orders')), undefined);
    assert.equal(await svc.claim(stmt('alice', DELETE_ALL)), undefined);
    assert.equal(await svc.claim(stmt('carol', DELETE_ALL)), undefined);
    assert.equal(await svc.claim(stmt('bob', DELETE_ALL, { target: 'other' })), undefined);
    assert.equal(await svc.claim(stmt('bob', DELETE_ALL, { database: 'otherdb' })), undefined);
    assert.equal(await svc.claim(stmt('bob', DELETE_ALL, { params: 'ab'.repeat(32) })), undefined);
    const used = await svc.claim(stmt('bob', DELETE_ALL));
    assert.equal(used?.id, request.id);
    assert.equal(used.status, 'used');
    assert.equal(await svc.claim(stmt('bob', DELETE_ALL)), undefined);
    assert.deepEqual(
      events.map((e) => e.kind),
      ['approval.request', 'approval.approve', 'approval.use'],
    );
    assert.equal(events[0]?.data['sql'], DELETE_ALL);
    assert.equal(events[2]?.actor, 'bob');
  });

  it('needs distinct people for a two-group rule, and honours uses', async () => {
    const { svc } = await harness();
    const { request } = await svc.requestStatement({
      ...stmt('bob', 'TRUNCATE orders'),
      requirement: requirement('approval:truncate'),
      reasons: [],
    });
    const afterCarol = await svc.approve(request.id, 'carol');
    assert.equal(afterCarol.status, 'pending', 'carol is in both groups but counts once');
    assert.deepEqual(svc.missing(request.id), [{ group: 'security', count: 1 }]);
    assert.equal((await svc.approve(request.id, 'dave')).status, 'approved');
    assert.equal((await svc.claim(stmt('bob', 'TRUNCATE orders')))?.usesLeft, 1);
    assert.equal((await svc.claim(stmt('bob', 'TRUNCATE orders')))?.usesLeft, 0);
    assert.equal(await svc.claim(stmt('bob', 'TRUNCATE orders')), undefined);
  });

  it('ends a request on one denial', async () => {
    const { svc, events } = await harness();
    const { request } = await svc.requestStatement({
      ...stmt('bob', 'TRUNCATE orders'),
      requirement: requirement('approval:truncate'),
      reasons: [],
    });
    await svc.approve(request.id, 'carol');
    const denied = await svc.deny(request.id, 'dave', 'not during business hours');
    assert.equal(denied.status, 'denied');
    assert.equal(denied.closedBy, 'dave');
    await refused(svc.approve(request.id, 'alice'), 'conflict');
    assert.equal(await svc.claim(stmt('bob', 'TRUNCATE orders')), undefined);
    assert.equal(events.at(-1)?.kind, 'approval.deny');
    // A new request for the same statement can be made afterwards.
    const next = await svc.requestStatement({
      ...stmt('bob', 'TRUNCATE orders'),
      requirement: requirement('approval:truncate'),
      reasons: [],
    });
    assert.notEqual(next.request.id, request.id);
  });

  it('expires pending requests and unused approvals', async () => {
    const { svc, clock, events } = await harness();
    const { request } = await svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: [],
    });
    clock.t += 10 * 60 * 1000; // ttl 10m
    await refused(svc.approve(request.id, 'carol'), 'conflict', /expired/);
    assert.equal(svc.get(request.id)?.status, 'expired');
    assert.equal(events.at(-1)?.kind, 'approval.expire');

    const second = await svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: [],
    });
    await svc.approve(second.request.id, 'carol');
    clock.t += 10 * 60 * 1000 - 1;
    clock.t += 1;
    assert.equal(await svc.claim(stmt('bob', DELETE_ALL)), undefined, 'validity is the rule ttl');
    await svc.sync(true);
    assert.equal(svc.get(second.request.id)?.status, 'expired');
  });

  it('waits for a decision, waking on approval and telling the waiter meanwhile', async () => {
    const { svc } = await harness({ now: () => new Date() });
    const { request } = await svc.requestStatement({
      ...stmt('bob', 'UPDATE orders SET amount = 0'),
      requirement: requirement('approval:wide-update'),
      reasons: [],
    });
    let ticks = 0;
    const waiting = svc.waitForDecision(request.id, { intervalMs: 20, onWaiting: () => ticks++ });
    await new Promise((r) => setTimeout(r, 90));
    await svc.approve(request.id, 'carol');
    const final = await waiting;
    assert.equal(final.status, 'approved');
    assert.ok(ticks >= 2, `ticks ${ticks}`);
    const ac = new AbortController();
    const other = await svc.requestStatement({
      ...stmt('bob', 'UPDATE orders SET amount = 1'),
      requirement: requirement('approval:wide-update'),
      reasons: [],
    });
    const w2 = svc.waitForDecision(other.request.id, { intervalMs: 1000, signal: ac.signal });
    ac.abort(new Error('client canceled'));
    await assert.rejects(w2, /client canceled/);
  });
});

void describe('just-in-time roles and break-glass', () => {
  it('activates a requested role after approval, until it expires', async () => {
    const { svc, clock } = await harness();
    const r = await svc.requestRole('erin', { role: 'reader', durationSeconds: 3600, reason: 'incident 42' });
    assert.equal(r.status, 'pending');
    assert.deepEqual(svc.activeRoles('erin'), []);
    await refused(svc.approve(r.id, 'erin'), 'forbidden');
    const ok = await svc.approve(r.id, 'carol');
    assert.equal(ok.status, 'active');
    assert.deepEqual(svc.activeRoles('erin'), ['reader']);
    assert.deepEqual(svc.activeRoles('bob'), []);
    clock.t += 3600 * 1000;
    assert.deepEqual(svc.activeRoles('erin'), []);
  });

  it('revokes an active role (requester or approver, nobody else)', async () => {
    const { svc, events } = await harness();
    const r = await svc.requestRole('erin', { role: 'reader', durationSeconds: 600, reason: 'debugging' });
    await svc.approve(r.id, 'carol');
    await refused(svc.revoke(r.id, 'alice'), 'forbidden');
    const revoked = await svc.revoke(r.id, 'bob', 'done');
    assert.equal(revoked.status, 'revoked');
    assert.deepEqual(svc.activeRoles('erin'), []);
    assert.equal(events.at(-1)?.kind, 'approval.revoke');
  });

  it('checks who may request, the duration, the reason and the quorum', async () => {
    const { svc } = await harness();
    await refused(
      svc.requestRole('alice', { role: 'reader', durationSeconds: 60, reason: 'x' }),
      'forbidden',
    );
    await refused(svc.requestRole('erin', { role: 'reader', durationSeconds: 7201, reason: 'x' }), 'invalid');
    await refused(svc.requestRole('erin', { role: 'reader', durationSeconds: 60, reason: '  ' }), 'invalid');
    await refused(svc.requestRole('erin', { role: 'writer', durationSeconds: 60, reason: 'x' }), 'invalid');
    const dba = await svc.requestRole('bob', { role: 'dba', durationSeconds: 60, reason: 'migration' });
    assert.equal((await svc.approve(dba.id, 'carol')).status, 'pending');
    assert.equal((await svc.approve(dba.id, 'dave')).status, 'active');
    assert.deepEqual(svc.activeRoles('bob'), ['dba']);
  });

  it('break-glass activates alone, loudly, and needs a review by someone else', async () => {
    const { svc, events, alerts } = await harness();
    await refused(
      svc.requestRole('bob', { role: 'dba', durationSeconds: 60, reason: 'x', breakGlass: true }),
      'forbidden',
      /no break-glass/,
    );
    await refused(
      svc.requestRole('erin', { role: 'reader', durationSeconds: 60, reason: '', breakGlass: true }),
      'invalid',
    );
    const r = await svc.requestRole('erin', {
      role: 'reader',
      durationSeconds: 900,
      reason: 'prod down',
      breakGlass: true,
    });
    assert.equal(r.status, 'active');
    assert.deepEqual(svc.activeRoles('erin'), ['reader']);
    assert.equal(alerts.length, 1);
    const line = JSON.parse(alerts[0] as string) as Record<string, unknown>;
    assert.equal(line['msg'], 'BREAK-GLASS access activated');
    assert.equal(line['requestId'], r.id);
    assert.equal(line['reason'], 'prod down');
    assert.equal(events.at(-1)?.kind, 'approval.break-glass');
    await refused(svc.review(r.id, 'erin'), 'forbidden');
    await refused(svc.review(r.id, 'dave'), 'forbidden');
    const reviewed = await svc.review(r.id, 'carol', 'justified');
    assert.equal(reviewed.review?.by, 'carol');
    await refused(svc.review(r.id, 'bob'), 'conflict');
    assert.equal(events.at(-1)?.kind, 'approval.review');
  });
});

void describe('durable store', () => {
  it('replays state at start: a used approval stays used', async () => {
    const h = await harness();
    const { request } = await h.svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: [],
    });
    await h.svc.approve(request.id, 'carol');
    assert.ok(await h.svc.claim(stmt('bob', DELETE_ALL)));
    await h.svc.close();
    const again = await harness({ dir: h.dir });
    assert.equal(again.svc.get(request.id)?.status, 'used');
    assert.equal(await again.svc.claim(stmt('bob', DELETE_ALL)), undefined);
    assert.equal(again.events.length, 0, 'records audited by their writer are not audited again');
  });

  it('audits records another process wrote, once, and skips a torn line', async () => {
    const gw = await harness();
    const { request } = await gw.svc.requestStatement({
      ...stmt('bob', DELETE_ALL),
      requirement: requirement('approval:bulk-delete'),
      reasons: [],
    });
    // The CLI: same folder, no audit log of its own.
    const cli = await createApprovalService({
      dir: gw.dir,
      policy: POLICY,
      sweepIntervalMs: 0,
      now: () => new Date(gw.clock.t),
    });
    open.push(cli);
    await cli.approve(request.id, 'carol');
    await gw.svc.sync(true);
    assert.equal(gw.svc.get(request.id)?.status, 'approved');
    const foreign = gw.events.filter((e) => e.data['via'] === 'store');
    assert.deepEqual(
      foreign.map((e) => [e.kind, e.actor]),
      [['approval.approve', 'carol']],
    );
    appendFileSync(join(gw.dir, APPROVALS_FILE), '{"v":1,"rid":"torn');
    await gw.svc.close();
    const restarted = await harness({ dir: gw.dir });
    assert.equal(restarted.svc.get(request.id)?.status, 'approved');
    assert.equal(restarted.events.length, 0);
    // The next append ends the torn line first, so the new record stays readable.
    const later = await restarted.svc.requestStatement({
      ...stmt('bob', 'TRUNCATE orders'),
      requirement: requirement('approval:truncate'),
      reasons: [],
    });
    const store = new FileApprovalStore(gw.dir, () => undefined);
    const all = await store.readNew();
    assert.equal(store.skipped, 1);
    assert.ok(all.some((r) => r.type === 'audited'));
    assert.ok(all.some((r) => r.requestId === later.request.id && r.type === 'created'));
    await store.close();
  });

  it('refuses the change when the audit sink fails', async () => {
    const { svc } = await harness({ events: { record: () => Promise.reject(new Error('disk full')) } });
    await assert.rejects(
      svc.requestStatement({
        ...stmt('bob', DELETE_ALL),
        requirement: requirement('approval:bulk-delete'),
        reasons: [],
      }),
      /disk full/,
    );
    assert.equal(svc.list().length, 0);
  });
});

void describe('webhook', () => {
  it('posts Slack-compatible { text } for new requests and decisions', async () => {
    const bodies: string[] = [];
    const server = http.createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        bodies.push(b);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const { svc } = await harness({ webhookUrl: url });
      const { request } = await svc.requestStatement({
        ...stmt('bob', DELETE_ALL),
        requirement: requirement('approval:bulk-delete'),
        reasons: [],
      });
      await svc.approve(request.id, 'carol');
      await svc.close();
      const texts = bodies.map((b) => (JSON.parse(b) as { text: string }).text);
      assert.equal(texts.length, 2);
      assert.match(
        texts[0] ?? '',
        new RegExp(`bob requests approval ${request.id} .*warden approvals approve ${request.id}`),
      );
      assert.match(texts[1] ?? '', /was approved/);
    } finally {
      server.close();
    }
  });
});
