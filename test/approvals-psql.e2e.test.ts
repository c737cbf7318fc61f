// End to end: approvals with real psql sessions and three people (bob asks, carol and dave approve) through a real gateway, admin API and audit log, plus node-postgres for parameterised (extended protocol) statements.
//
// Every case of issue 6: blocked then allowed after two distinct approvals; self-approval refused; one person in
// two groups counted once; a changed statement refused; an expired approval refused; a second run of a run-once
// approval refused; wait mode released by an approval arriving while psql waits; a JIT role granted, used and
// expired; break-glass flagged. Each is checked in the audit log, including the link from the approved
// statement's entry to its request.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { runPsql, type CommandResult } from './harness/clients.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';
import { call } from '../src/admin-api/test-support.js';
import { approvalsCommands, type ApprovalsIo } from '../src/cli/approvals.js';
import { decodeEntry, type AuditEntry } from '../src/audit/entry.js';
import { installPgApprovalSchema } from '../src/approvals/store-pg.js';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { startGateway, type Gateway } from '../src/main.js';

const POLICY_DIR = fileURLToPath(new URL('./fixtures/approvals-psql/policy', import.meta.url));
const UP_PASSWORD = 'up-secret-P6';
const PW = { bob: 'bob-pw-p1', carol: 'carol-pw-p2', dave: 'dave-pw-p3' } as const;
type Who = keyof typeof PW;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The gateway re-reads the approvals folder (what the CLI writes) at most this often on the statement path. */
const SYNC_MS = 250;

function requestIdOf(text: string): string {
  const m = /request (ar_[0-9a-f]{16})/.exec(text);
  assert.ok(m, `no request id in: ${text}`);
  return m[1] as string;
}

interface ApprovalEntryView {
  kind: string;
  requestId: string;
  actor: string;
  data: Record<string, unknown>;
}

describe('approvals with psql, three people, the admin API and the audit log', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let dir: string;
  let api: number;
  let approvalsDir: string;
  const tokens: Record<Who, string> = { bob: '', carol: '', dave: '' };
  const clients: pg.Client[] = [];

  /** psql as a user through Warden; VERBOSITY=verbose so errors show their SQLSTATE. */
  const psql = (who: Who, sql: string, timeoutMs = 30_000): Promise<CommandResult> =>
    runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: who,
      password: PW[who],
      database: 'main',
      timeoutMs,
      args: ['-v', 'VERBOSITY=verbose', '-At', '-c', sql],
    });
  const rows = async (sql: string): Promise<Record<string, unknown>[]> => upstream.query(sql, 'appdb');
  const countOf = async (table: string): Promise<number> =>
    Number((await rows(`SELECT count(*) AS n FROM public.${table}`))[0]?.['n']);
  const decide = (who: Who, id: string, verb: 'approve' | 'deny', reason?: string) =>
    call(api, 'POST', `/api/approvals/${id}/${verb}`, {
      token: tokens[who],
      body: { reason: reason ?? `${verb} by ${who}` },
    });
  const show = async (id: string): Promise<Record<string, unknown>> =>
    (await call(api, 'GET', `/api/approvals/${id}`, { token: tokens.carol })).json as Record<string, unknown>;
  /** `warden approvals ...` on the gateway's approvals folder (the offline/admin path), in process. */
  const cli = async (sub: string, args: string[]): Promise<{ code: number; out: string }> => {
    const out: string[] = [];
    const io: ApprovalsIo = { out: (t) => void out.push(t), err: (t) => void out.push(`ERR ${t}`) };
    const cmd = approvalsCommands[sub] as { run(a: string[], io: ApprovalsIo): Promise<number> };
    const code = await cmd.run([...args, '--dir', approvalsDir, '--policy', POLICY_DIR], io);
    return { code, out: out.join('\n') };
  };
  const audit = async (): Promise<AuditEntry[]> => {
    const log = gw.gateway.audit;
    assert.ok(log, 'the gateway has an audit log');
    const out: AuditEntry[] = [];
    for (let i = 0; i < log.size; i++) out.push(decodeEntry(await log.store.read(i)));
    return out;
  };
  const approvalEntries = async (id: string): Promise<ApprovalEntryView[]> =>
    (await audit())
      .filter((e) => e.kind.startsWith('approval.'))
      .map((e) => e as unknown as ApprovalEntryView)
      .filter((e) => e.requestId === id);
  /** Statement entries naming a request among their decision's rules (the link of an approved run). */
  const linkedStatements = async (id: string) =>
    (await audit()).filter(
      (e) =>
        e.kind === 'statement' &&
        (e as unknown as { decision: { rules: string[] } }).decision.rules.includes(`approval-request:${id}`),
    ) as unknown as { text: string; path: string; decision: { effect: string; rules: string[] } }[];
  const connect = async (who: Who): Promise<pg.Client> => {
    const c = await gw.connect(who, PW[who]);
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  /** The pending request bob opened for this exact text (polled: the client is waiting meanwhile). */
  const pendingFor = async (sql: string): Promise<string> => {
    for (let i = 0; i < 200; i++) {
      const r = await call(api, 'GET', '/api/approvals?state=pending', { token: tokens.carol });
      const hit = (r.json.approvals as { id: string; statement?: { sql?: string }; sql?: string }[]).find(
        (a) => (a.statement?.sql ?? a.sql) === sql,
      );
      if (hit !== undefined) return hit.id;
      await sleep(50);
    }
    return assert.fail(`no pending request for ${sql}`);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-approvals-psql-'));
    const tokenFile = join(dir, 'api-tokens.yaml');
    for (const who of Object.keys(PW) as Who[])
      tokens[who] = addTokenToFile(tokenFile, { user: who, roles: ['approver'] }).token;
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(
      `SET ROLE app;
       CREATE TABLE public.orders (id int, amount int);
       CREATE TABLE public.archive (id int PRIMARY KEY, note text);
       CREATE TABLE public.items (id int PRIMARY KEY, n int);
       CREATE TABLE public.ledger (id int PRIMARY KEY, amount int);
       INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g;
       INSERT INTO public.archive SELECT g, 'n' || g FROM generate_series(1, 5) g;
       INSERT INTO public.items SELECT g, 0 FROM generate_series(1, 3) g;
       INSERT INTO public.ledger VALUES (1, 100), (2, 200);`,
      'appdb',
    );
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
      users: (Object.keys(PW) as Who[]).map((name) => ({ name, password: PW[name] })),
      dir,
      audit: { dir: 'audit', origin: 'e2e.warden.test/approvals-psql', checkpoint_interval_ms: 60_000 },
      adminApi: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: tokenFile },
      gatewayOptions: { log: () => undefined },
    });
    assert.ok(gw.gateway.adminApi);
    api = gw.gateway.adminApi.port;
    approvalsDir = join(dir, 'approvals', 'main');
  });

  after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await gw?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('blocks until two distinct people approve; self-approval refused; one person in two groups counts once; runs once', async () => {
    const first = await psql('bob', 'TRUNCATE orders');
    assert.equal(first.code, 1, first.stderr);
    assert.match(first.stderr, /ERROR: {2}WA001: approval required by approval:truncate/);
    const id = requestIdOf(first.stderr);
    assert.equal(await countOf('orders'), 5);

    // bob holds the approvers group, yet cannot approve (or deny) his own request.
    const self = await decide('bob', id, 'approve', 'mine');
    assert.equal(self.status, 403, self.text);
    assert.equal((await decide('bob', id, 'deny')).status, 403);
    // carol is in approvers and security: her one approval fills one slot, not two.
    const byCarol = await decide('carol', id, 'approve', 'maintenance window');
    assert.equal(byCarol.status, 200, byCarol.text);
    assert.equal(byCarol.json.state, 'pending');
    const again = await decide('carol', id, 'approve');
    assert.equal(again.status, 409, again.text);
    const stillBlocked = await psql('bob', 'TRUNCATE orders');
    assert.equal(stillBlocked.code, 1);
    assert.equal(requestIdOf(stillBlocked.stderr), id, 'the same pending request, not a new one');
    assert.equal(await countOf('orders'), 5);

    const byDave = await decide('dave', id, 'approve', 'second pair of eyes');
    assert.equal(byDave.status, 200, byDave.text);
    assert.equal(byDave.json.state, 'approved');
    const ran = await psql('bob', 'TRUNCATE orders');
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(await countOf('orders'), 0);

    // Run once: the same statement again is a new request.
    await rows('INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g');
    const second = await psql('bob', 'TRUNCATE orders');
    assert.equal(second.code, 1);
    assert.match(second.stderr, /WA001/);
    assert.notEqual(requestIdOf(second.stderr), id);
    assert.equal(await countOf('orders'), 5);

    const trail = await approvalEntries(id);
    assert.deepEqual(
      trail.map((e) => [e.kind, e.actor]),
      [
        ['approval.request', 'bob'],
        ['approval.approve', 'carol'],
        ['approval.approve', 'dave'],
        ['approval.use', 'bob'],
      ],
    );
    assert.equal(trail[0]?.data['sql'], 'TRUNCATE orders');
    assert.equal(trail[1]?.data['reason'], 'maintenance window');
    assert.equal(trail[1]?.data['status'], 'pending');
    assert.equal(trail[2]?.data['status'], 'approved');
    const linked = await linkedStatements(id);
    // Two refusals (effect approval) and the one run (effect allow), each naming the request.
    assert.deepEqual(
      linked.map((s) => s.decision.effect),
      ['approval', 'approval', 'allow'],
    );
    assert.ok(linked.every((s) => s.text === 'TRUNCATE orders' && s.path === 'simple'));
  });

  it('refuses a changed statement after approval, runs the approved one once, refuses a second run', async () => {
    const blocked = await psql('bob', 'DELETE FROM orders');
    assert.match(blocked.stderr, /WA001/);
    const id = requestIdOf(blocked.stderr);
    assert.equal((await decide('carol', id, 'approve')).status, 200);

    for (const changed of [
      'delete from orders',
      'DELETE FROM orders WHERE id = id',
      'DELETE FROM public.orders',
    ]) {
      const r = await psql('bob', changed);
      assert.equal(r.code, 1, changed);
      assert.match(r.stderr, /WA001/, changed);
      assert.notEqual(requestIdOf(r.stderr), id, changed);
    }
    // Another person cannot run bob's approved statement either.
    const carolTries = await psql('carol', 'DELETE FROM orders');
    assert.equal(carolTries.code, 1);
    assert.equal(await countOf('orders'), 5);

    const ran = await psql('bob', 'DELETE FROM orders');
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(await countOf('orders'), 0);
    await rows('INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g');
    const twice = await psql('bob', 'DELETE FROM orders');
    assert.equal(twice.code, 1);
    assert.notEqual(requestIdOf(twice.stderr), id);
    assert.equal(await countOf('orders'), 5);

    const kinds = (await approvalEntries(id)).map((e) => e.kind);
    assert.deepEqual(kinds, ['approval.request', 'approval.approve', 'approval.use']);
    assert.equal((await linkedStatements(id)).filter((s) => s.decision.effect === 'allow').length, 1);
  });

  it('refuses an expired approval (valid two seconds) and records the expiry', async () => {
    const blocked = await psql('bob', 'DELETE FROM items WHERE id = 1');
    assert.match(blocked.stderr, /WA001: approval required by approval:items-delete/);
    const id = requestIdOf(blocked.stderr);
    const ok = await decide('carol', id, 'approve');
    assert.equal(ok.status, 200, ok.text);
    await sleep(2300);
    const late = await psql('bob', 'DELETE FROM items WHERE id = 1');
    assert.equal(late.code, 1);
    assert.match(late.stderr, /WA001/);
    assert.notEqual(requestIdOf(late.stderr), id);
    assert.equal(await countOf('items'), 3);
    assert.equal((await show(id)).state, 'expired');
    const kinds = (await approvalEntries(id)).map((e) => e.kind);
    assert.deepEqual(kinds, ['approval.request', 'approval.approve', 'approval.expire']);
    assert.equal((await linkedStatements(id)).filter((s) => s.decision.effect === 'allow').length, 0);
  });

  it('wait mode: psql is held with notices until carol approves while it waits', async () => {
    const sql = 'UPDATE orders SET amount = 0';
    const started = Date.now();
    const running = psql('bob', sql);
    let done = false;
    void running.then(() => (done = true));
    const id = await pendingFor(sql);
    await sleep(400);
    assert.equal(done, false, 'psql is still waiting');
    assert.equal(
      Number((await rows('SELECT count(*) AS n FROM public.orders WHERE amount = 0'))[0]?.['n']),
      0,
    );
    assert.equal((await decide('carol', id, 'approve', 'go ahead')).status, 200);
    const r = await running;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`NOTICE: {2}00000: waiting for approval of request ${id}`));
    assert.ok(Date.now() - started >= 400);
    assert.equal(
      Number((await rows('SELECT count(*) AS n FROM public.orders WHERE amount = 0'))[0]?.['n']),
      5,
    );
    const trail = await approvalEntries(id);
    assert.deepEqual(
      trail.map((e) => e.kind),
      ['approval.request', 'approval.approve', 'approval.use'],
    );
    assert.equal(trail[0]?.data['mode'], 'wait');
    const linked = await linkedStatements(id);
    assert.deepEqual(
      linked.map((s) => s.decision.effect),
      ['allow'],
    );
  });

  it('extended protocol: approvals bind to the parameters; other parameters refused; each approval runs once', async () => {
    const bob = await connect('bob');
    const del = 'DELETE FROM archive WHERE id = $1';
    const refused = async (p: Promise<unknown>): Promise<{ code?: string; message: string }> =>
      p.then(
        () => assert.fail('ran without approval'),
        (e: { code?: string; message: string }) => e,
      );
    const e1 = await refused(bob.query(del, [1]));
    assert.equal(e1.code, 'WA001', e1.message);
    assert.match(e1.message, /with the same parameters/);
    const id = requestIdOf(e1.message);
    const created = (await approvalEntries(id))[0];
    assert.equal(created?.kind, 'approval.request');
    assert.equal(created.data['sql'], del);
    assert.match(
      String(created.data['paramsHash']),
      /^[0-9a-f]{64}$/,
      'the request is bound to the parameters',
    );
    assert.equal(await countOf('archive'), 5, 'the Parse ran nothing');
    assert.equal((await decide('carol', id, 'approve')).status, 200);

    // Other parameters: not covered (a new request).
    const e2 = await refused(bob.query(del, [2]));
    assert.equal(e2.code, 'WA001');
    assert.notEqual(requestIdOf(e2.message), id);
    assert.equal(await countOf('archive'), 5);
    // The approved parameters: runs once.
    assert.equal((await bob.query(del, [1])).rowCount, 1);
    const e3 = await refused(bob.query(del, [1]));
    assert.equal(e3.code, 'WA001');
    assert.notEqual(requestIdOf(e3.message), id);

    // A named statement, parsed once and bound several times: each Bind is decided on its own.
    const named = (v: number) => ({ name: 'archive_del', text: del, values: [v] });
    const e4 = await refused(bob.query(named(3)));
    const id4 = requestIdOf(e4.message);
    assert.equal((await decide('carol', id4, 'approve')).status, 200);
    const e5 = await refused(bob.query(named(4)));
    assert.notEqual(requestIdOf(e5.message), id4);
    assert.equal((await bob.query(named(3))).rowCount, 1);
    const e6 = await refused(bob.query(named(3)));
    assert.equal(e6.code, 'WA001');
    assert.deepEqual(
      (await rows('SELECT id FROM public.archive ORDER BY id')).map((r) => r['id']),
      [2, 4, 5],
    );

    // The trail: the use names the parameters' hash, and the session's Bind entry with that hash follows it.
    const all = await audit();
    const use = all.find(
      (e) => e.kind === 'approval.use' && (e as unknown as ApprovalEntryView).requestId === id4,
    ) as unknown as ApprovalEntryView & { index?: number };
    assert.ok(use);
    assert.equal(use.data['statementName'], 'archive_del');
    const at = all.indexOf(use as unknown as AuditEntry);
    const bind = all
      .slice(at + 1)
      .find(
        (e) =>
          e.kind === 'statement.bind' && (e as { paramsHash: string }).paramsHash === use.data['paramsHash'],
      );
    assert.ok(bind, 'the Bind entry with the approved parameters follows the use');
    assert.equal((bind as { statementName: string }).statementName, 'archive_del');
    // ...and names the request it ran under; the refused Binds of that statement name none.
    assert.ok(bind.kind === 'statement.bind');
    assert.equal(bind.approvalRequestId, id4, 'the Bind entry names its approval request');
    const refusedBinds = all.filter(
      (e) => e.kind === 'statement.bind' && e.statementName === 'archive_del' && e !== bind,
    );
    assert.equal(refusedBinds.length, 3, 'three refused Binds of archive_del');
    assert.ok(refusedBinds.every((e) => !Object.hasOwn(e, 'approvalRequestId')));
    const parse = all.find((e) => e.id === (bind as { statementId: string | null }).statementId) as
      { text: string; decision: { effect: string; rules: string[] } } | undefined;
    assert.equal(parse?.text, del);
    assert.equal(parse?.decision.effect, 'approval');
    assert.ok(parse?.decision.rules.includes('approval:archive-delete'));
  });

  it('extended protocol in wait mode: the Bind is held with notices until approved', async () => {
    const bob = await connect('bob');
    const notices: string[] = [];
    bob.on('notice', (n: { message?: string | undefined }) => void notices.push(n.message ?? ''));
    const sql = 'UPDATE items SET n = $1 WHERE id = $2';
    const running = bob.query(sql, [7, 2]);
    const id = await pendingFor(sql);
    await sleep(200);
    assert.equal(Number((await rows('SELECT n FROM public.items WHERE id = 2'))[0]?.['n']), 0);
    assert.equal((await decide('carol', id, 'approve')).status, 200);
    assert.equal((await running).rowCount, 1);
    assert.equal(Number((await rows('SELECT n FROM public.items WHERE id = 2'))[0]?.['n']), 7);
    assert.ok(
      notices.some((n) => n.includes(`waiting for approval of request ${id}`)),
      JSON.stringify(notices),
    );
  });

  it('JIT role: requested with warden approvals, approved by carol, used in a session, then expired', async () => {
    const before = await psql('bob', 'SELECT amount FROM ledger WHERE id = 1');
    assert.equal(before.code, 1);
    assert.match(before.stderr, /42501/);
    const asked = await cli('request', [
      '--as',
      'bob',
      '--role',
      'ledger_reader',
      '--for',
      '3s',
      '--reason',
      'quarterly audit',
      '--json',
    ]);
    assert.equal(asked.code, 0, asked.out);
    const id = requestIdOf(`request ${/ar_[0-9a-f]{16}/.exec(asked.out)?.[0] ?? ''}`);
    const ok = await decide('carol', id, 'approve', 'fine for the audit');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.state, 'active');
    const granted = await psql('bob', 'SELECT amount FROM ledger WHERE id = 1');
    assert.equal(granted.code, 0, granted.stderr);
    assert.equal(granted.stdout.trim(), '100');
    await sleep(3200);
    const expired = await psql('bob', 'SELECT amount FROM ledger WHERE id = 1');
    assert.equal(expired.code, 1);
    assert.match(expired.stderr, /42501/);
    const trail = await approvalEntries(id);
    assert.deepEqual(
      trail.map((e) => [e.kind, e.actor]),
      [
        ['approval.request', 'bob'],
        ['approval.approve', 'carol'],
        ['approval.expire', 'warden'],
      ],
    );
    assert.equal(trail[0]?.data['role'], 'ledger_reader');
    assert.equal(trail[0]?.data['via'], 'store', 'written by the CLI, audited by the gateway');
    // The statement that used the role names it.
    const used = (await audit()).filter(
      (e) =>
        e.kind === 'statement' && (e as { text: string }).text === 'SELECT amount FROM ledger WHERE id = 1',
    ) as unknown as { decision: { effect: string } }[];
    assert.deepEqual(
      used.map((s) => s.decision.effect),
      ['deny', 'allow', 'deny'],
    );
  });

  it('break-glass: bob takes emergency access alone, it is flagged, and carol reviews it afterwards', async () => {
    const denied = await psql('bob', 'UPDATE ledger SET amount = 0 WHERE id = 2');
    assert.equal(denied.code, 1);
    const taken = await cli('request', [
      '--as',
      'bob',
      '--role',
      'ledger_fixer',
      '--for',
      '60s',
      '--reason',
      'payments stuck, fixing ledger row 2',
      '--break-glass',
    ]);
    assert.equal(taken.code, 0, taken.out);
    const id = requestIdOf(`request ${/ar_[0-9a-f]{16}/.exec(taken.out)?.[0] ?? ''}`);
    await sleep(SYNC_MS);
    const fixed = await psql('bob', 'UPDATE ledger SET amount = 0 WHERE id = 2');
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.equal(Number((await rows('SELECT amount FROM public.ledger WHERE id = 2'))[0]?.['amount']), 0);
    // A break-glass without the mandatory reason is refused.
    await assert.rejects(
      cli('request', [
        '--as',
        'bob',
        '--role',
        'ledger_fixer',
        '--for',
        '60s',
        '--reason',
        ' ',
        '--break-glass',
      ]),
      /a reason is required/,
    );

    const listed = await cli('list', ['--as', 'carol', '--status', 'active']);
    assert.match(listed.out, new RegExp(`${id} {2}active {2}role`));
    assert.match(listed.out, /role ledger_fixer for 60s \(BREAK-GLASS\)/);
    assert.match(listed.out, /NOT YET REVIEWED/);
    // bob cannot review his own break-glass; carol can.
    await assert.rejects(cli('review', [id, '--as', 'bob']), /the requester never reviews/);
    const reviewed = await cli('review', [id, '--as', 'carol', '--reason', 'checked the fix']);
    assert.equal(reviewed.code, 0, reviewed.out);
    // The gateway audits what the CLI wrote on its next sync (the next statement).
    await sleep(SYNC_MS);
    await psql('bob', 'SELECT 1');
    const trail = await approvalEntries(id);
    assert.deepEqual(
      trail.map((e) => [e.kind, e.actor]),
      [
        ['approval.break-glass', 'bob'],
        ['approval.review', 'carol'],
      ],
    );
    assert.equal(trail[0]?.data['breakGlass'], true);
    assert.equal(trail[0]?.data['reason'], 'payments stuck, fixing ledger row 2');
    assert.equal(trail[0]?.data['status'], 'active');
  });
});

describe('two gateway replicas sharing approvals in PostgreSQL (approvals.postgres)', () => {
  let upstream: PgInstance;
  let dir: string;
  const replicas: { a?: Gateway; b?: Gateway } = {};
  const tokens: Record<Who, string> = { bob: '', carol: '', dave: '' };
  const ENV = 'WARDEN_E2E_APPROVALS_PG_PW';
  const GW_PW = 'gw-approvals-pw-r2';

  /** The configuration of replica `name`: its own state folder and API, the shared approvals table. */
  const configFor = (name: string) => {
    const state = join(dir, name);
    const pw = join(dir, 'app.pw');
    return buildGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        state_dir: state,
        approvals: {
          postgres: {
            host: '127.0.0.1',
            port: upstream.port,
            database: 'wardendb',
            user: 'warden_gw',
            password_env: ENV,
          },
        },
        admin_api: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: join(dir, 'api-tokens.yaml') },
        users: (Object.keys(PW) as Who[]).map((n) => ({
          name: n,
          kind: 'human',
          scram_verifier: createVerifier(PW[n]),
          logins: { main: 'app' },
        })),
        targets: [
          {
            name: 'main',
            host: '127.0.0.1',
            port: upstream.port,
            database: 'appdb',
            environment: 'test',
            logins: { app: { user: 'app', password_file: pw } },
            policy: { folder: POLICY_DIR },
          },
        ],
      },
      state,
    );
  };
  const psqlOn = (g: Gateway, who: Who, sql: string): Promise<CommandResult> =>
    runPsql({
      host: '127.0.0.1',
      port: g.pg.port,
      user: who,
      password: PW[who],
      database: 'main',
      args: ['-v', 'VERBOSITY=verbose', '-At', '-c', sql],
    });
  const apiOf = (g: Gateway | undefined): number => {
    assert.ok(g?.adminApi);
    return g.adminApi.port;
  };
  const countOrders = async (): Promise<number> =>
    Number((await upstream.query('SELECT count(*) AS n FROM public.orders', 'appdb'))[0]?.['n']);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-approvals-replicas-'));
    for (const who of Object.keys(PW) as Who[])
      tokens[who] = addTokenToFile(join(dir, 'api-tokens.yaml'), { user: who, roles: ['approver'] }).token;
    writeFileSync(join(dir, 'app.pw'), `${UP_PASSWORD}\n`, { mode: 0o600 });
    process.env[ENV] = GW_PW;
    upstream = await startPostgres({
      auth: 'scram',
      users: [
        { name: 'app', password: UP_PASSWORD },
        { name: 'warden_gw', password: GW_PW },
      ],
      databases: [{ name: 'appdb', owner: 'app' }, 'wardendb'],
    });
    await upstream.query(
      `SET ROLE app; CREATE TABLE public.orders (id int, amount int);
       INSERT INTO public.orders SELECT g, g FROM generate_series(1, 5) g;`,
      'appdb',
    );
    const admin = new pg.Client(upstream.superuserConfig('wardendb'));
    await admin.connect();
    try {
      await installPgApprovalSchema(admin, { gatewayRole: 'warden_gw' });
    } finally {
      await admin.end();
    }
    replicas.a = await startGateway(configFor('a'), { log: () => undefined });
    replicas.b = await startGateway(configFor('b'), { log: () => undefined });
  });

  after(async () => {
    await replicas.a?.close(500);
    await replicas.b?.close(500);
    await upstream?.stop();
    delete process.env[ENV];
    rmSync(dir, { recursive: true, force: true });
  });

  it('a request made on one replica is approved on the other, runs once across both, and survives a restart', async () => {
    const a = replicas.a as Gateway;
    const b = replicas.b as Gateway;
    const blocked = await psqlOn(a, 'bob', 'DELETE FROM orders');
    assert.equal(blocked.code, 1, blocked.stderr);
    const id = requestIdOf(blocked.stderr);
    // carol approves through replica B's API: B reads the shared table first.
    const ok = await call(apiOf(b), 'POST', `/api/approvals/${id}/approve`, {
      token: tokens.carol,
      body: { reason: 'approved on the other replica' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.state, 'approved');
    // bob runs it on replica B, then tries again on A: used already, a new request.
    await sleep(SYNC_MS);
    const ran = await psqlOn(b, 'bob', 'DELETE FROM orders');
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(await countOrders(), 0);
    await upstream.query('INSERT INTO public.orders SELECT g, g FROM generate_series(1, 5) g', 'appdb');
    await sleep(SYNC_MS);
    const again = await psqlOn(a, 'bob', 'DELETE FROM orders');
    assert.equal(again.code, 1);
    assert.notEqual(requestIdOf(again.stderr), id);
    assert.equal(await countOrders(), 5);

    // Replica A restarts: the requests are still there, in their final state.
    await a.close(500);
    replicas.a = await startGateway(configFor('a'), { log: () => undefined });
    const shown = await call(apiOf(replicas.a), 'GET', `/api/approvals/${id}`, { token: tokens.carol });
    assert.equal(shown.status, 200, shown.text);
    assert.equal(shown.json.state, 'used');
    const pending = await call(apiOf(replicas.a), 'GET', '/api/approvals?state=pending', {
      token: tokens.dave,
    });
    assert.ok((pending.json.approvals as { id: string }[]).some((x) => x.id === requestIdOf(again.stderr)));
  });
});
