// Tests for the PostgreSQL approvals store against a private PostgreSQL: restart survival, two replicas deciding and using one request, scopes, append-only table.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startPostgres, type PgInstance } from '../../test/harness/pg.js';
import type { Principal } from '../core/context.js';
import { loadPolicy } from '../policy/index.js';
import type { ApprovalRequirement } from '../policy/index.js';
import { ApprovalError, createApprovalService } from './service.js';
import type { ApprovalAuditEvent, ApprovalService } from './service.js';
import { PgApprovalStore, installPgApprovalSchema } from './store-pg.js';

const POLICY = loadPolicy(new URL('../../test/fixtures/approvals/policy', import.meta.url).pathname);
const GW_PASSWORD = 'gw-approvals-pw-3';

const principal = (name: string): Principal => ({ name, kind: 'human', groups: [], attributes: {} });

function requirement(rule: string): ApprovalRequirement {
  const a = POLICY.approvals.find((x) => x.id === rule);
  assert.ok(a, rule);
  return { rule: a.id, mode: a.mode, approvers: a.approvers, ttlSeconds: a.ttlSeconds };
}

const stmt = (user: string, sql: string, sessionId = 's1') => ({
  principal: principal(user),
  target: 'main',
  environment: 'test',
  database: 'appdb',
  sessionId,
  sql,
  path: 'simple' as const,
  paramsHash: null,
});

describe('PgApprovalStore', () => {
  let inst: PgInstance;
  const open: ApprovalService[] = [];
  const conn = (): pg.PoolConfig => ({
    host: '127.0.0.1',
    port: inst.port,
    user: 'warden_gw',
    password: GW_PASSWORD,
    database: 'approvalsdb',
  });
  /** A replica: its own service, its own connection pool, its own audit sink. */
  const replica = async (
    schema: string,
    events: ApprovalAuditEvent[] = [],
    scope = 'main',
  ): Promise<ApprovalService> => {
    const svc = await createApprovalService({
      store: await PgApprovalStore.open({ connection: conn(), schema, scope }),
      policy: POLICY,
      events: {
        record: (e) => {
          events.push(e);
          return Promise.resolve();
        },
      },
      sweepIntervalMs: 0,
      syncIntervalMs: 0,
    });
    open.push(svc);
    return svc;
  };
  const install = async (schema: string): Promise<void> => {
    const admin = new pg.Client(inst.superuserConfig('approvalsdb'));
    await admin.connect();
    try {
      await installPgApprovalSchema(admin, { schema, gatewayRole: 'warden_gw' });
    } finally {
      await admin.end();
    }
  };

  before(async () => {
    inst = await startPostgres({
      auth: 'scram',
      users: [{ name: 'warden_gw', password: GW_PASSWORD }],
      databases: ['approvalsdb'],
    });
  });

  after(async () => {
    for (const s of open) await s.close().catch(() => undefined);
    await inst?.stop();
  });

  it('refuses to open a table that was not installed', async () => {
    await assert.rejects(
      PgApprovalStore.open({ connection: conn(), schema: 'missing' }),
      /installPgApprovalSchema/,
    );
  });

  it('keeps requests across a restart: created, service closed, reopened, approved, used once', async () => {
    await install('restart');
    const first = await replica('restart');
    const { request } = await first.requestStatement({
      ...stmt('bob', 'DELETE FROM orders'),
      requirement: requirement('approval:bulk-delete'),
      reasons: ['bulk delete'],
    });
    await first.close();

    const events: ApprovalAuditEvent[] = [];
    const second = await replica('restart', events);
    assert.equal(second.get(request.id)?.status, 'pending');
    assert.equal(second.get(request.id)?.statement?.sql, 'DELETE FROM orders');
    await assert.rejects(
      second.approve(request.id, 'bob'),
      (e: unknown) => e instanceof ApprovalError && e.reason === 'forbidden',
    );
    await second.approve(request.id, 'carol', 'ok');
    assert.equal((await second.claim(stmt('bob', 'DELETE FROM orders')))?.id, request.id);
    assert.equal(await second.claim(stmt('bob', 'DELETE FROM orders')), undefined, 'run once');
    assert.deepEqual(
      events.map((e) => e.kind),
      ['approval.approve', 'approval.use'],
    );

    // A third start replays everything: used, nothing left.
    await second.close();
    const third = await replica('restart');
    assert.equal(third.get(request.id)?.status, 'used');
    assert.equal(third.get(request.id)?.usesLeft, 0);
  });

  it('two replicas on one table: votes count once, a run-once approval runs on one replica only', async () => {
    await install('rep');
    const ev1: ApprovalAuditEvent[] = [];
    const ev2: ApprovalAuditEvent[] = [];
    const r1 = await replica('rep', ev1);
    const r2 = await replica('rep', ev2);
    // TRUNCATE needs one of approvers and one of security; carol is in both, dave in security.
    const { request } = await r1.requestStatement({
      ...stmt('bob', 'TRUNCATE orders'),
      requirement: requirement('approval:truncate'),
      reasons: ['truncate'],
    });
    await r2.sync(true);
    assert.equal(r2.get(request.id)?.status, 'pending');

    // carol votes on both replicas at once: exactly one vote is stored.
    const both = await Promise.allSettled([r1.approve(request.id, 'carol'), r2.approve(request.id, 'carol')]);
    assert.equal(both.filter((x) => x.status === 'fulfilled').length, 1, JSON.stringify(both));
    const refused = both.find((x) => x.status === 'rejected');
    assert.ok(refused?.status === 'rejected' && refused.reason instanceof ApprovalError);
    assert.match((refused.reason as Error).message, /already decided/);
    await r1.sync(true);
    await r2.sync(true);
    // One person in two groups fills one slot: still pending on both replicas.
    assert.equal(r1.get(request.id)?.status, 'pending');
    assert.equal(r2.get(request.id)?.votes.length, 1);

    // dave (security) approves on replica 2 while carol's vote was made on whichever replica.
    const approved = await r2.approve(request.id, 'dave');
    assert.equal(approved.status, 'approved');
    await r1.sync(true);
    assert.equal(r1.get(request.id)?.status, 'approved');
    // `uses: 2` for truncate: four concurrent claims (two per replica) → exactly two succeed.
    const claims = await Promise.all([
      r1.claim(stmt('bob', 'TRUNCATE orders', 'a')),
      r2.claim(stmt('bob', 'TRUNCATE orders', 'b')),
      r1.claim(stmt('bob', 'TRUNCATE orders', 'c')),
      r2.claim(stmt('bob', 'TRUNCATE orders', 'd')),
    ]);
    assert.equal(claims.filter((c) => c !== undefined).length, 2, JSON.stringify(claims.map((c) => c?.id)));
    await r1.sync(true);
    await r2.sync(true);
    assert.equal(r1.get(request.id)?.status, 'used');
    assert.equal(r2.get(request.id)?.status, 'used');
    // Each change was audited once, by the replica that made it.
    const uses = [...ev1, ...ev2].filter((e) => e.kind === 'approval.use' && e.requestId === request.id);
    assert.equal(uses.length, 2);
    const approves = [...ev1, ...ev2].filter(
      (e) => e.kind === 'approval.approve' && e.requestId === request.id,
    );
    assert.deepEqual(approves.map((e) => e.actor).sort(), ['carol', 'dave']);
  });

  it('a run-once approval used concurrently from two replicas runs exactly once', async () => {
    await install('once');
    const r1 = await replica('once');
    const r2 = await replica('once');
    for (let round = 0; round < 5; round++) {
      const sql = `DELETE FROM orders -- round ${round}`;
      const { request } = await r1.requestStatement({
        ...stmt('bob', sql),
        requirement: requirement('approval:bulk-delete'),
        reasons: ['bulk delete'],
      });
      await r2.approve(request.id, 'carol');
      await r1.sync(true);
      const got = await Promise.all([r1.claim(stmt('bob', sql)), r2.claim(stmt('bob', sql))]);
      assert.equal(got.filter((g) => g !== undefined).length, 1, `round ${round}`);
    }
  });

  it('a statement held on one replica is released by an approval made on another', async () => {
    await install('held');
    const r1 = await replica('held');
    const r2 = await replica('held');
    const { request } = await r1.requestStatement({
      ...stmt('bob', 'UPDATE orders SET amount = 0'),
      requirement: requirement('approval:wide-update'),
      reasons: ['wide update'],
    });
    const notices: string[] = [];
    const started = performance.now();
    const waiting = r1.waitForDecision(request.id, {
      intervalMs: 5000,
      onWaiting: (r) => notices.push(r.id),
    });
    await new Promise((r) => setTimeout(r, 300));
    await r2.sync(true);
    await r2.approve(request.id, 'carol');
    const decided = await waiting;
    assert.equal(decided.status, 'approved');
    // Read from the shared table within the one-second poll, long before the 5 s notice interval.
    assert.ok(performance.now() - started < 3000, `took ${performance.now() - started} ms`);
    assert.deepEqual(notices, []);
    assert.equal((await r1.claim(stmt('bob', 'UPDATE orders SET amount = 0')))?.id, request.id);
  });

  it('scopes keep targets apart in one table; the table is append-only for the gateway role', async () => {
    await install('scoped');
    const main = await replica('scoped', [], 'main');
    const other = await replica('scoped', [], 'other');
    const { request } = await main.requestStatement({
      ...stmt('bob', 'DELETE FROM orders'),
      requirement: requirement('approval:bulk-delete'),
      reasons: ['x'],
    });
    await other.sync(true);
    assert.equal(other.get(request.id), undefined);
    assert.equal(other.list().length, 0);

    const gw = new pg.Client(conn());
    await gw.connect();
    try {
      await assert.rejects(gw.query('UPDATE scoped.records SET record = record'), /permission denied/);
      await assert.rejects(gw.query('DELETE FROM scoped.records'), /permission denied/);
    } finally {
      await gw.end();
    }
    const su = new pg.Client(inst.superuserConfig('approvalsdb'));
    await su.connect();
    try {
      await assert.rejects(su.query('DELETE FROM scoped.records'), /append-only/);
      await assert.rejects(su.query('TRUNCATE scoped.records'), /append-only/);
    } finally {
      await su.end();
    }
  });
});
