// Tests for the audit recorder: write-ahead statement entries, fail-closed refusals, outcome links and session events.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionContext, StatementHook, StatementRequest, StatementVerdict } from '../core/context.js';
import { WardenError } from '../core/errors.js';
import { AuditLog } from './log.js';
import { FileAuditStore, defaultIo } from './store-file.js';
import type { StoreIo } from './store-file.js';
import { generateSignerKey, parseSignerKey } from './note.js';
import { decodeEntry } from './entry.js';
import type { AuditEntry } from './entry.js';
import { AUDIT_REFUSAL_MESSAGE, AuditRecorder, auditStatementId, decisionRecord } from './recorder.js';

const ORIGIN = 'recorder.test/log';

/** Disk I/O that can be made to fail, or held until released. */
class FlakyIo implements StoreIo {
  failing = false;
  gate: Promise<void> | undefined;
  async write(...a: Parameters<StoreIo['write']>): Promise<void> {
    if (this.failing) throw new Error('EIO: injected write failure');
    await defaultIo.write(...a);
  }
  async datasync(...a: Parameters<StoreIo['datasync']>): Promise<void> {
    if (this.gate !== undefined) await this.gate;
    if (this.failing) throw new Error('EIO: injected fsync failure');
    await defaultIo.datasync(...a);
  }
}

const session: SessionContext = {
  sessionId: 'sess-1',
  protocol: 'postgres',
  principal: { name: 'alice', kind: 'human', groups: ['dba'], attributes: { tenant: '7' } },
  target: 'main',
  environment: 'test',
  database: 'appdb',
  sourceAddress: '127.0.0.1',
  tls: false,
  applicationName: 'psql',
  startedAt: new Date(),
};

function request(sql: string, path: StatementRequest['path'] = 'simple'): StatementRequest {
  return {
    session,
    sql,
    path,
    receivedAt: new Date(),
    notice: () => undefined,
    signal: new AbortController().signal,
  };
}

async function entries(store: FileAuditStore): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let i = 0; i < store.size; i++) out.push(decodeEntry(await store.read(i)));
  return out;
}

describe('AuditRecorder', () => {
  let dir: string;
  let io: FlakyIo;
  let store: FileAuditStore;
  let log: AuditLog;
  let errors: string[];
  let recorder: AuditRecorder;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-recorder-'));
    io = new FlakyIo();
    store = await FileAuditStore.open(dir, { io });
    log = await AuditLog.open(store, {
      origin: ORIGIN,
      signer: parseSignerKey(generateSignerKey(ORIGIN).skey),
    });
    errors = [];
    recorder = new AuditRecorder(log, {
      onError: (kind, e) => errors.push(`${kind}: ${(e as Error).message}`),
      recoverIntervalMs: 0,
    });
  });

  afterEach(async () => {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records an allowed statement durably before returning the verdict, keeping the decision', async () => {
    const decision = { effect: 'allow', rules: ['role:dba/grant:0'], reasons: ['dba may read'], extra: 1 };
    const inner: StatementHook = {
      check: () => ({ action: 'allow', sql: 'SELECT 1 /* rewritten */', decision }),
    };
    const hook = recorder.wrapHook(inner, { policyVersion: () => 7 });
    let release!: () => void;
    io.gate = new Promise((r) => (release = r));
    let settled = false;
    const pending = Promise.resolve(hook.check(request('SELECT 1'))).then((v) => {
      settled = true;
      return v;
    });
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(settled, false, 'the verdict waits for fdatasync');
    release();
    io.gate = undefined;
    const v = await pending;
    assert.equal(v.action, 'allow');
    assert.equal(v.decision, decision, 'the decision object is passed through unchanged');
    assert.equal(v.action === 'allow' ? v.sql : undefined, 'SELECT 1 /* rewritten */');
    assert.equal(store.size, 1, 'the entry is durable when the verdict is returned');
    const [e] = await entries(store);
    assert.ok(e?.kind === 'statement');
    assert.equal(auditStatementId(v), e.id);
    assert.equal(e.text, 'SELECT 1', 'the text as the client sent it');
    assert.equal(e.sessionId, 'sess-1');
    assert.deepEqual(e.principal, { name: 'alice', kind: 'human', groups: ['dba'] });
    assert.equal(e.target, 'main');
    assert.equal(e.path, 'simple');
    assert.equal(e.paramsHash, null);
    assert.equal(e.policyVersion, 7);
    assert.deepEqual(e.decision, { effect: 'allow', rules: ['role:dba/grant:0'], reasons: ['dba may read'] });
  });

  it('records denied statements and hook failures as the client sees them', async () => {
    const inner: StatementHook = {
      check: (req) => {
        if (req.sql.includes('boom')) throw new Error('hook crashed');
        if (req.sql.includes('coded')) throw new WardenError('SYNTAX_ERROR', 'cannot parse');
        return { action: 'deny', sqlstate: '42501', message: 'denied by rule x' };
      },
    };
    const hook = recorder.wrapHook(inner, { policyVersion: () => 'sha256:abc' });
    const a = await hook.check(request('DELETE FROM t', 'parse'));
    const b = await hook.check(request('boom'));
    const c = await hook.check(request('coded'));
    assert.deepEqual(
      [a, b, c].map((v) => (v.action === 'deny' ? v.sqlstate : 'allow')),
      ['42501', '42501', '42601'],
    );
    const es = await entries(store);
    assert.deepEqual(
      es.map((e) =>
        e.kind === 'statement' ? [e.text, e.path, e.decision.effect, e.decision.reasons[0]] : [],
      ),
      [
        ['DELETE FROM t', 'parse', 'deny', 'denied by rule x'],
        ['boom', 'simple', 'deny', 'denied: the statement could not be decided'],
        ['coded', 'simple', 'deny', 'cannot parse'],
      ],
    );
    assert.equal(es[0]?.kind === 'statement' ? es[0].policyVersion : undefined, 'sha256:abc');
  });

  it('refuses an allowed statement with 58030 when the store cannot record it, and resumes after recovery', async () => {
    const hook = recorder.wrapHook({ check: () => ({ action: 'allow' }) }, { policyVersion: () => 1 });
    io.failing = true;
    const v = await hook.check(request("INSERT INTO t VALUES ('lost')"));
    assert.equal(v.action, 'deny');
    assert.equal(v.action === 'deny' ? v.sqlstate : '', '58030');
    assert.equal(v.action === 'deny' ? v.message : '', AUDIT_REFUSAL_MESSAGE);
    assert.equal(auditStatementId(v), undefined);
    // A denied statement keeps its own answer even when it cannot be recorded.
    const denyHook = recorder.wrapHook(
      { check: () => ({ action: 'deny', sqlstate: '42501', message: 'no' }) },
      { policyVersion: () => 1 },
    );
    const d = await denyHook.check(request('DROP TABLE t'));
    assert.equal(d.action === 'deny' ? d.sqlstate : '', '42501');
    assert.equal(recorder.stats.statementFailures, 2);
    assert.equal(errors.length, 2);
    assert.equal(store.size, 0);
    // Without recovery the store stays failed even if the disk is healthy again.
    io.failing = false;
    const still = await hook.check(request('SELECT 2'));
    assert.equal(still.action === 'deny' ? still.sqlstate : '', '58030');
    // Automatic recovery on the statement path.
    const healing = new AuditRecorder(log, { onError: () => undefined, recoverIntervalMs: 1 });
    const ok = await healing
      .wrapHook({ check: () => ({ action: 'allow' }) }, { policyVersion: () => 1 })
      .check(request('SELECT 3'));
    assert.equal(ok.action, 'allow');
    assert.equal(healing.stats.recoveries, 1);
    const es = await entries(store);
    assert.deepEqual(
      es.map((e) => (e.kind === 'statement' ? e.text : e.kind)),
      ['SELECT 3'],
      'nothing of the failed batches stayed in the log',
    );
  });

  it('links outcomes to their statement, calls the inner outcome, and counts outcome failures', async () => {
    const seen: StatementVerdict[] = [];
    const hook = recorder.wrapHook(
      {
        check: () => ({ action: 'allow', decision: { effect: 'allow', rules: [], reasons: [] } }),
        outcome: (o) => seen.push(o.verdict),
      },
      { policyVersion: () => 2 },
    );
    const req = request('SELECT * FROM t');
    const v = await hook.check(req);
    hook.outcome?.({ request: req, verdict: v, commandTags: ['SELECT 3'], rows: 3, durationMs: 12.6 });
    hook.outcome?.({
      request: req,
      verdict: v,
      commandTags: [],
      rows: 0,
      sqlstate: '22012',
      durationMs: 0.2,
    });
    await recorder.flush();
    const es = await entries(store);
    const outs = es.filter((e) => e.kind === 'statement.outcome');
    assert.equal(outs.length, 2);
    const [o1, o2] = outs;
    assert.ok(o1?.kind === 'statement.outcome' && o2?.kind === 'statement.outcome');
    assert.equal(o1.statementId, es[0]?.id);
    assert.deepEqual([o1.rows, o1.sqlstate, o1.durationMs, o1.tags], [3, null, 13, ['SELECT 3']]);
    assert.deepEqual([o2.rows, o2.sqlstate, o2.durationMs], [0, '22012', 0]);
    assert.equal(seen.length, 2);
    // An outcome append that fails is counted and reported, never an unhandled rejection.
    io.failing = true;
    hook.outcome?.({ request: req, verdict: v, commandTags: [], rows: 0, durationMs: 1 });
    await recorder.flush();
    assert.equal(recorder.stats.outcomeFailures, 1);
    assert.match(errors.join('\n'), /^outcome: /m);
  });

  it('links binds to their prepare on both front ends (session + statement name, whatever the path)', async () => {
    const mysqlSession: SessionContext = { ...session, sessionId: 'sess-my', protocol: 'mysql' };
    const named = (s: SessionContext, sql: string, path: StatementRequest['path'], name: string) => ({
      ...request(sql, path),
      session: s,
      statementName: name,
    });
    const hook = recorder.wrapHook(
      {
        check: (r) =>
          r.sql.includes('forbidden')
            ? { action: 'deny', sqlstate: '42501', message: 'denied by test' }
            : { action: 'allow' },
      },
      { policyVersion: () => 1 },
    );
    const bindOf = (s: SessionContext, statementName: string, paramsHash: string) =>
      hook.bind?.({ session: s, statementName, portal: '', paramsHash, paramCount: 1 });
    // PostgreSQL: a named and the unnamed statement.
    const pNamed = auditStatementId(await hook.check(named(session, 'SELECT $1', 'parse', 'p1')));
    const pUnnamed = auditStatementId(await hook.check(named(session, 'SELECT $1 + 1', 'parse', '')));
    await bindOf(session, 'p1', 'h1');
    await bindOf(session, '', 'h2');
    // A refused Parse drops the unnamed statement upstream (a failing unnamed Parse replaces it): no stale link.
    await hook.check(named(session, 'SELECT forbidden', 'parse', 'p2'));
    await bindOf(session, '', 'h3');
    await bindOf(session, 'p1', 'h4');
    // MySQL: COM_STMT_PREPARE names the statement by the id the client will see; COM_STMT_EXECUTE binds it.
    const m1 = auditStatementId(await hook.check(named(mysqlSession, 'SELECT ?', 'mysql-prepare', '1')));
    await hook.check(named(mysqlSession, 'SELECT forbidden', 'mysql-prepare', '2'));
    await bindOf(mysqlSession, '1', 'h5');
    await bindOf(mysqlSession, '2', 'h6'); // refused prepare: nothing to link to
    // A plain query names no statement and links nothing.
    await hook.check({ ...request('SELECT 1', 'mysql-query'), session: mysqlSession });
    await bindOf(mysqlSession, '3', 'h7');
    // Another session's statement of the same name is not linked.
    await bindOf({ ...mysqlSession, sessionId: 'sess-other' }, '1', 'h8');
    const binds = (await entries(store)).filter((e) => e.kind === 'statement.bind');
    assert.ok(pNamed !== undefined && pUnnamed !== undefined && m1 !== undefined);
    assert.deepEqual(
      binds.map((b) => [b.statementName, b.paramsHash, b.statementId, b.sessionId]),
      [
        ['p1', 'h1', pNamed, 'sess-1'],
        ['', 'h2', pUnnamed, 'sess-1'],
        ['', 'h3', null, 'sess-1'],
        ['p1', 'h4', pNamed, 'sess-1'],
        ['1', 'h5', m1, 'sess-my'],
        ['2', 'h6', null, 'sess-my'],
        ['3', 'h7', null, 'sess-my'],
        ['1', 'h8', null, 'sess-other'],
      ],
    );
    // Session end forgets the links.
    hook.sessionClosed?.('sess-my');
    await bindOf(mysqlSession, '1', 'h9');
    const last = (await entries(store)).at(-1);
    assert.ok(last?.kind === 'statement.bind');
    assert.equal(last.statementId, null);
  });

  it('names the approval request a Bind ran under, and only when the Bind was allowed', async () => {
    const hook = recorder.wrapHook(
      {
        check: () => ({ action: 'allow' }),
        bind: (r): StatementVerdict | undefined => {
          if (r.paramsHash === 'approved')
            return { action: 'allow', approvalRequestId: 'ar_00000000000000aa' };
          if (r.paramsHash === 'refused')
            return {
              action: 'deny',
              sqlstate: 'WA001',
              message: 'approval required: request ar_00000000000000bb',
            };
          return undefined;
        },
      },
      { policyVersion: () => 1 },
    );
    const parse = { ...request('DELETE FROM t WHERE id = $1', 'parse'), statementName: 'd' };
    const statementId = auditStatementId(await hook.check(parse));
    const bindOf = (paramsHash: string) =>
      hook.bind?.({ session, statementName: 'd', portal: '', paramsHash, paramCount: 1 });
    const ran = await bindOf('approved');
    assert.equal(ran?.action, 'allow');
    const refused = await bindOf('refused');
    assert.equal(refused?.action, 'deny');
    assert.equal(await bindOf('plain'), undefined);
    const binds = (await entries(store)).filter((e) => e.kind === 'statement.bind');
    assert.equal(binds.length, 3);
    const [a, b, c] = binds;
    assert.ok(a?.kind === 'statement.bind' && b?.kind === 'statement.bind' && c?.kind === 'statement.bind');
    assert.equal(a.approvalRequestId, 'ar_00000000000000aa');
    assert.equal(a.statementId, statementId);
    // Absent (not null) otherwise: those entries keep the bytes they always had.
    assert.equal(Object.hasOwn(b, 'approvalRequestId'), false);
    assert.equal(Object.hasOwn(c, 'approvalRequestId'), false);
    // The refused Bind was still recorded, but a refused PostgreSQL Bind drops only the unnamed statement.
    assert.equal(c.statementId, statementId);
  });

  it('records session open, authentication success and failure, and close', async () => {
    const ev = recorder.sessionEvents();
    await ev.authenticated?.(session);
    await ev.authFailed?.({
      user: 'mallory',
      target: 'main',
      sourceAddress: '10.0.0.9',
      reason: 'unknown user',
    });
    await ev.closed?.(session, 'client terminated');
    const es = await entries(store);
    assert.deepEqual(es.map((e) => e.kind).sort(), [
      'auth.failure',
      'auth.success',
      'session.close',
      'session.open',
    ]);
    const open = es.find((e) => e.kind === 'session.open');
    assert.ok(open?.kind === 'session.open');
    assert.deepEqual(
      [open.sourceAddress, open.target, open.tls, open.applicationName, open.principal.name],
      ['127.0.0.1', 'main', false, 'psql', 'alice'],
    );
    const fail = es.find((e) => e.kind === 'auth.failure');
    assert.deepEqual(Object.keys(fail ?? {}).sort(), [
      'id',
      'kind',
      'reason',
      'sourceAddress',
      'target',
      'time',
      'user',
      'v',
    ]);
    // Event failures are counted; the promise still resolves.
    io.failing = true;
    await ev.closed?.(session, 'again');
    assert.equal(recorder.stats.eventFailures, 1);
  });
});

describe('decisionRecord', () => {
  it('takes the policy decision shape, and never records a denied verdict as an allow', () => {
    assert.deepEqual(
      decisionRecord({
        action: 'allow',
        decision: { effect: 'approval', rules: ['r1'], reasons: ['approved'] },
      }),
      { effect: 'approval', rules: ['r1'], reasons: ['approved'] },
    );
    assert.deepEqual(
      decisionRecord({
        action: 'deny',
        sqlstate: '57014',
        message: 'canceled',
        decision: { effect: 'allow', rules: ['r'], reasons: [] },
      }),
      { effect: 'deny', rules: ['r'], reasons: ['canceled'] },
    );
    assert.deepEqual(decisionRecord({ action: 'allow', decision: 'opaque' }), {
      effect: 'allow',
      rules: [],
      reasons: [],
    });
    assert.deepEqual(decisionRecord({ action: 'deny', sqlstate: '42501', message: 'm' }), {
      effect: 'deny',
      rules: [],
      reasons: ['m'],
    });
  });
});
