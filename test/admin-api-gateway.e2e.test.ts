// End to end: the admin API mounted by the gateway itself (admin_api section) with its real providers, against a private PostgreSQL.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { call } from '../src/admin-api/test-support.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';
import type { ApprovalsIo } from '../src/cli/approvals.js';
import { encodeEntry, type AuditEntry } from '../src/audit/entry.js';
import { leafHash, verifyInclusion } from '../src/audit/merkle.js';
import { openCheckpoint } from '../src/audit/checkpoint.js';

const POLICY_DIR = fileURLToPath(new URL('./fixtures/approvals/policy', import.meta.url));
const UP_PASSWORD = 'up-secret-H7';
const PW = { bob: 'bob-pw-h1', carol: 'carol-pw-h2' } as const;
const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

/** The value of one sample line of the Prometheus text, 0 when absent. */
function sample(text: string, line: string): number {
  const esc = line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('admin API mounted in the gateway (real providers)', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let dir: string;
  let port: number;
  const tokens = { alice: '', carol: '', vic: '', bob: '' };
  const clients: pg.Client[] = [];
  const connect = async (who: keyof typeof PW): Promise<pg.Client> => {
    const c = await gw.connect(who, PW[who]);
    clients.push(c);
    return c;
  };
  const count = async (): Promise<number> =>
    Number((await upstream.query('SELECT count(*) AS n FROM public.orders', 'appdb'))[0]?.['n']);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-admin-gw-'));
    const tokenFile = join(dir, 'api-tokens.yaml');
    tokens.alice = addTokenToFile(tokenFile, { user: 'alice', roles: ['viewer', 'auditor'] }).token;
    tokens.carol = addTokenToFile(tokenFile, { user: 'carol', roles: ['approver'] }).token;
    tokens.vic = addTokenToFile(tokenFile, { user: 'vic', roles: ['viewer'] }).token;
    tokens.bob = addTokenToFile(tokenFile, { user: 'bob', roles: ['approver'] }).token;
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query('SET ROLE app; CREATE TABLE public.orders (id int, amount int)', 'appdb');
    await upstream.query('INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g', 'appdb');
    gw = await startTestGateway({
      targets: [
        {
          port: upstream.port,
          database: 'appdb',
          user: 'app',
          password: UP_PASSWORD,
          policyFolder: POLICY_DIR,
        },
      ],
      users: (Object.keys(PW) as (keyof typeof PW)[]).map((name) => ({ name, password: PW[name] })),
      audit: { dir: 'audit', origin: 'e2e.warden.test/admin', checkpoint_interval_ms: 60_000 },
      adminApi: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: tokenFile },
      gatewayOptions: { log: () => undefined },
    });
    assert.ok(gw.gateway.adminApi, 'the gateway started its admin API');
    port = gw.gateway.adminApi.port;
  });

  after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await gw?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is ready: upstream reachable, audit store healthy', async () => {
    const r = await call(port, 'GET', '/readyz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { ready: true, checks: { upstream: 'ok', audit_store: 'ok' } });
  });

  it('lists a live session, its statements in the audit log with a proof that verifies, and the timeline', async () => {
    const m0 = (await call(port, 'GET', '/metrics', { token: tokens.vic })).text;
    const bob = await connect('bob');
    await bob.query('SELECT count(*) FROM orders');
    const sessions = await call(port, 'GET', '/api/sessions', { token: tokens.vic });
    assert.equal(sessions.status, 200);
    const mine = (sessions.json.sessions as { user: string; id: string }[]).filter((s) => s.user === 'bob');
    assert.equal(mine.length, 1);
    const sessionId = mine[0]?.id as string;

    // A viewer may not read the audit log; an auditor may.
    assert.equal((await call(port, 'GET', '/api/audit/entries?user=bob', { token: tokens.vic })).status, 403);
    const found = await call(port, 'GET', '/api/audit/entries?user=bob&limit=100', { token: tokens.alice });
    assert.equal(found.status, 200, found.text);
    const entries = found.json.entries as { index: number; entry: AuditEntry }[];
    const stmt = entries.find(
      (e) => e.entry.kind === 'statement' && e.entry.text === 'SELECT count(*) FROM orders',
    );
    assert.ok(stmt, `no statement entry in ${found.text}`);
    assert.ok(entries.every((e) => (e.entry as { sessionId?: string }).sessionId === sessionId));
    const none = await call(port, 'GET', '/api/audit/entries?user=nobody', { token: tokens.alice });
    assert.deepEqual(none.json, { entries: [] });

    const one = await call(port, 'GET', `/api/audit/entries/${stmt.index}`, { token: tokens.alice });
    assert.equal(one.status, 200, one.text);
    const leaf = leafHash(encodeEntry(one.json.entry as AuditEntry));
    assert.deepEqual(Buffer.from(leaf), b64(one.json.leafHash));
    verifyInclusion(
      stmt.index,
      one.json.proof.size,
      leaf,
      (one.json.proof.hashes as string[]).map(b64),
      b64(one.json.proof.root),
    );
    // The proof is against a signed checkpoint of the same size and root.
    const audit = gw.gateway.audit;
    assert.ok(audit);
    const cp = openCheckpoint(Buffer.from(one.json.checkpoint as string), {
      origin: audit.origin,
      verifiers: [audit.verifier],
    }).checkpoint;
    assert.equal(cp.size, one.json.proof.size);
    assert.deepEqual(Buffer.from(cp.root), b64(one.json.proof.root));
    // A tampered proof does not verify.
    assert.throws(() =>
      verifyInclusion(
        stmt.index,
        one.json.proof.size,
        leafHash(Buffer.from('forged')),
        [],
        b64(one.json.proof.root),
      ),
    );
    assert.equal((await call(port, 'GET', '/api/audit/entries/999999', { token: tokens.alice })).status, 404);

    const tl = await call(port, 'GET', `/api/sessions/${sessionId}/timeline`, { token: tokens.alice });
    assert.equal(tl.status, 200, tl.text);
    const types = (tl.json.events as { type: string }[]).map((e) => e.type);
    assert.ok(types.includes('session.open') && types.includes('statement'), types.join(','));

    const verify = await call(port, 'GET', '/api/audit/verify', { token: tokens.alice });
    assert.equal(verify.status, 200, verify.text);
    assert.equal(verify.json.ok, true, verify.text);
    assert.ok(verify.json.size > stmt.index);

    const m1 = (await call(port, 'GET', '/metrics', { token: tokens.vic })).text;
    const allow = 'warden_statements_total{decision="allow"}';
    assert.ok(sample(m1, allow) >= sample(m0, allow) + 1, m1);
    assert.ok(sample(m1, 'warden_sessions_total{protocol="postgres"}') >= 1, m1);
    assert.ok(sample(m1, 'warden_sessions_active') >= 1, m1);
    assert.ok(sample(m1, 'warden_statement_duration_seconds_count{decision="allow"}') >= 1, m1);
  });

  it('shows the running policy (folder): no bundle, the access matrix from the compiled policy', async () => {
    const p = await call(port, 'GET', '/api/policy', { token: tokens.vic });
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.json, { running: null });
    const m = await call(port, 'GET', '/api/policy/access-matrix?table=public.orders', { token: tokens.vic });
    assert.equal(m.status, 200, m.text);
    const principals = new Set((m.json.rows as { principal: string }[]).map((r) => r.principal));
    assert.ok(principals.has('bob') && principals.has('alice'), m.text);
  });

  it('approval flow: WA001, approved by carol through the API, then the statement runs', async () => {
    const bob = await connect('bob');
    const err = await bob.query('DELETE FROM orders').then(
      () => assert.fail('the delete ran without approval'),
      (e: { code?: string; message: string }) => e,
    );
    assert.equal(err.code, 'WA001', err.message);
    const id = /request (ar_[0-9a-f]{16})/.exec(err.message)?.[1];
    assert.ok(id, err.message);
    const list = await call(port, 'GET', '/api/approvals?state=pending', { token: tokens.carol });
    assert.equal(list.status, 200, list.text);
    assert.ok((list.json.approvals as { id: string }[]).some((a) => a.id === id));
    // A viewer cannot approve; an unknown id is 404.
    const byViewer = await call(port, 'POST', `/api/approvals/${id}/approve`, {
      token: tokens.vic,
      body: { reason: 'no' },
    });
    assert.equal(byViewer.status, 403);
    const unknown = await call(port, 'POST', '/api/approvals/ar_0000000000000000/approve', {
      token: tokens.carol,
      body: { reason: 'x' },
    });
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(await count(), 5);

    const ok = await call(port, 'POST', `/api/approvals/${id}/approve`, {
      token: tokens.carol,
      body: { reason: 'cleanup approved' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.state, 'approved');
    const ran = await bob.query('DELETE FROM orders');
    assert.equal(ran.rowCount, 5);
    assert.equal(await count(), 0);
    const m = (await call(port, 'GET', '/metrics', { token: tokens.vic })).text;
    assert.ok(sample(m, 'warden_statements_total{decision="approval"}') >= 1, m);
  });

  it('warden approvals over the API: approvers act as themselves; the requester cannot approve their own request', async () => {
    const { approvalsCommands } = await import('../src/cli/approvals.js');
    const bob = await connect('bob');
    const err = await bob.query('DELETE FROM orders').then(
      () => assert.fail('the delete ran without approval'),
      (e: { code?: string; message: string }) => e,
    );
    const id = /request (ar_[0-9a-f]{16})/.exec(err.message)?.[1];
    assert.ok(id, err.message);
    const out: string[] = [];
    const io: ApprovalsIo = { out: (t) => void out.push(t), err: (t) => void out.push(`ERR ${t}`) };
    const api = ['--api', `http://127.0.0.1:${port}`];
    const run = (sub: string, args: string[]): Promise<number> =>
      (approvalsCommands[sub] as { run(a: string[], io: ApprovalsIo): Promise<number> }).run(args, io);
    assert.equal(
      await run('list', [...api, '--token', tokens.carol, '--status', 'pending']),
      0,
      out.join('\n'),
    );
    assert.ok(out.join('\n').includes(id));
    // bob holds the approver role, but it is his own request.
    assert.equal(await run('approve', [id, ...api, '--token', tokens.bob, '--reason', 'mine']), 1);
    assert.match(out.join('\n'), /ERR .*HTTP 403/);
    // --as cannot be combined with --api: the token says who acts.
    assert.equal(await run('approve', [id, ...api, '--token', tokens.carol, '--as', 'dave']), 2);
    assert.equal(
      await run('approve', [id, ...api, '--token', tokens.carol, '--reason', 'ok']),
      0,
      out.join('\n'),
    );
    assert.match(out.at(-1) ?? '', /"state": "approved"/);
    await bob.end();
  });
});
