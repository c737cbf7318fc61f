// End to end: statement approvals through a real gateway to a private PostgreSQL: WA001 with a request id, approval by another person, a single run, and a held (wait-mode) statement that proceeds once approved.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { createPolicyHook, type PolicyHook } from '../src/enforce/policy-hook.js';
import { createApprovalService, ApprovalError, type ApprovalService } from '../src/approvals/index.js';
import type { ApprovalAuditEvent } from '../src/approvals/index.js';
import { loadPolicy } from '../src/policy/index.js';
import type { StatementHook } from '../src/core/context.js';

const POLICY_DIR = fileURLToPath(new URL('./fixtures/approvals/policy', import.meta.url));
const UP_PASSWORD = 'up-secret-A1';
const PW = { alice: 'alice-pw-1', bob: 'bob-pw-2', carol: 'carol-pw-3' } as const;

function requestIdOf(message: string): string {
  const m = /request (ar_[0-9a-f]{16})/.exec(message);
  assert.ok(m, `no request id in: ${message}`);
  return m[1] as string;
}

describe('approvals end to end', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let svc: ApprovalService;
  let hook: Promise<PolicyHook> | undefined;
  let dir: string;
  const events: ApprovalAuditEvent[] = [];
  const clients: pg.Client[] = [];
  const connect = async (who: keyof typeof PW): Promise<pg.Client> => {
    const c = await gw.connect(who, PW[who]);
    clients.push(c);
    return c;
  };
  const count = async (): Promise<number> =>
    Number((await upstream.query('SELECT count(*) AS n FROM public.orders', 'appdb'))[0]?.['n']);
  const reseed = async (): Promise<void> => {
    await upstream.query('INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g', 'appdb');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-approvals-e2e-'));
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query('SET ROLE app; CREATE TABLE public.orders (id int, amount int)', 'appdb');
    await reseed();
    const policy = loadPolicy(POLICY_DIR);
    svc = await createApprovalService({
      dir,
      policy,
      events: {
        record: (e) => {
          events.push(e);
          return Promise.resolve();
        },
      },
    });
    gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: UP_PASSWORD }],
      users: (Object.keys(PW) as (keyof typeof PW)[]).map((name) => ({ name, password: PW[name] })),
      gatewayOptions: {
        // The policy hook with the approvals service, built once for the target the gateway hands over.
        hookFor: (t): StatementHook => ({
          check: async (req) => {
            hook ??= createPolicyHook(t, policy, { approvals: svc, approvalNoticeMs: 100 });
            return (await hook).check(req);
          },
        }),
      },
    });
  });

  after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await gw?.stop();
    await (await hook)?.close();
    await svc?.close();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses with WA001 naming the request; runs once after another person approves', async () => {
    const bob = await connect('bob');
    const err = await bob.query('DELETE FROM orders').then(
      () => assert.fail('the delete ran without approval'),
      (e: { code?: string; message: string }) => e,
    );
    assert.equal(err.code, 'WA001', err.message);
    assert.match(err.message, /warden approvals approve ar_/);
    const id = requestIdOf(err.message);
    assert.equal(await count(), 5);
    assert.equal(svc.get(id)?.requester, 'bob');

    // bob is in the approvers group, yet cannot approve his own request.
    await assert.rejects(
      svc.approve(id, 'bob'),
      (e: unknown) => e instanceof ApprovalError && e.reason === 'forbidden',
    );
    // Re-running before approval: same request, still refused.
    const again = await bob.query('DELETE FROM orders').catch((e: Error) => e);
    assert.ok(again instanceof Error);
    assert.equal(requestIdOf(again.message), id);

    await svc.approve(id, 'carol', 'cleanup approved');
    // A different statement text is not covered by the approval.
    const other = await bob.query('DELETE  FROM orders').catch((e: { code?: string }) => e);
    assert.equal((other as { code?: string }).code, 'WA001');
    assert.equal(await count(), 5);

    const ran = await bob.query('DELETE FROM orders');
    assert.equal(ran.rowCount, 5);
    assert.equal(await count(), 0);
    await reseed();

    const second = await bob.query('DELETE FROM orders').catch((e: { code?: string; message: string }) => e);
    assert.equal((second as { code?: string }).code, 'WA001');
    assert.notEqual(requestIdOf((second as Error).message), id);
    assert.equal(await count(), 5);
    const kinds = events.filter((e) => e.requestId === id).map((e) => e.kind);
    assert.deepEqual(kinds, ['approval.request', 'approval.approve', 'approval.use']);
  });

  it('holds a wait-mode statement with notices until carol approves, then runs it', async () => {
    const bob = await connect('bob');
    const notices: string[] = [];
    let resolveFirst: (id: string) => void = () => undefined;
    const firstNotice = new Promise<string>((r) => (resolveFirst = r));
    bob.on('notice', (n: { message?: string | undefined }) => {
      const m = n.message ?? '';
      notices.push(m);
      if (/waiting for approval of request/.test(m)) resolveFirst(requestIdOf(m));
    });
    const running = bob.query('UPDATE orders SET amount = 0');
    const id = await firstNotice;
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(svc.get(id)?.status, 'pending');
    assert.equal(
      Number(
        (await upstream.query('SELECT count(*) AS n FROM public.orders WHERE amount = 0', 'appdb'))[0]?.['n'],
      ),
      0,
    );
    await svc.approve(id, 'carol');
    const r = await running;
    assert.equal(r.rowCount, 5);
    assert.ok(notices.filter((n) => n.includes(id)).length >= 2, JSON.stringify(notices));
  });

  it('refuses a held statement that an approver denies', async () => {
    const bob = await connect('bob');
    let resolveFirst: (id: string) => void = () => undefined;
    const firstNotice = new Promise<string>((r) => (resolveFirst = r));
    bob.on('notice', (n: { message?: string | undefined }) => {
      if (/waiting for approval/.test(n.message ?? '')) resolveFirst(requestIdOf(n.message ?? ''));
    });
    const running = bob
      .query('UPDATE orders SET amount = 1')
      .catch((e: { code?: string; message: string }) => e);
    const id = await firstNotice;
    await svc.deny(id, 'carol', 'not today');
    const err = (await running) as { code?: string; message: string };
    assert.equal(err.code, '42501');
    assert.match(err.message, /denied by carol: not today/);
  });
});
