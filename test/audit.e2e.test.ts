// End to end: the audit log on the statement path — entries for sessions and statements, fail closed on store failure, kill -9.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { runPsql } from './harness/clients.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { AuditLog, loadOrCreateLogKey } from '../src/audit/log.js';
import { AuditRecorder } from '../src/audit/recorder.js';
import { FileAuditStore, defaultIo } from '../src/audit/store-file.js';
import type { StoreIo } from '../src/audit/store-file.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry } from '../src/audit/entry.js';
import type { AuditEntry } from '../src/audit/entry.js';
import { verifyLog } from '../src/audit/verify.js';
import { parseSignerKey } from '../src/audit/note.js';

const UP_PASSWORD = 'up-audit-pw-3';
const ALICE = 'alice-audit-pw';
const ORIGIN = 'audit.e2e/log';

/** Disk I/O that fails on demand (the store's failure injection hook). */
class FlakyIo implements StoreIo {
  failing = false;
  async write(...a: Parameters<StoreIo['write']>): Promise<void> {
    if (this.failing) throw new Error('ENOSPC: injected');
    await defaultIo.write(...a);
  }
  async datasync(...a: Parameters<StoreIo['datasync']>): Promise<void> {
    if (this.failing) throw new Error('EIO: injected');
    await defaultIo.datasync(...a);
  }
}

async function readAll(dir: string): Promise<AuditEntry[]> {
  const snap = await LogSnapshot.open(dir);
  const out: AuditEntry[] = [];
  for (let i = 0; i < snap.size; i++) out.push(decodeEntry(await snap.read(i)));
  return out;
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('audit on the statement path (end to end)', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let auditDir: string;
  let log: AuditLog;
  let recorder: AuditRecorder;
  let verifierKey: string;
  const io = new FlakyIo();
  const errors: string[] = [];
  const target = (): { port: number; database: string; user: string; password: string } => ({
    port: upstream.port,
    database: 'appdb',
    user: 'app',
    password: UP_PASSWORD,
  });

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(
      'CREATE TABLE t (id int primary key, note text); ALTER TABLE t OWNER TO app; ' +
        'CREATE TABLE kill_t (id int primary key); ALTER TABLE kill_t OWNER TO app',
      'appdb',
    );
    auditDir = mkdtempSync(join(tmpdir(), 'warden-audit-e2e-'));
    const store = await FileAuditStore.open(auditDir, { io });
    const signer = await loadOrCreateLogKey(join(auditDir, 'log.key'), ORIGIN);
    verifierKey = signer.verifierKey;
    log = await AuditLog.open(store, { origin: ORIGIN, signer, checkpointIntervalMs: 50 });
    recorder = new AuditRecorder(log, {
      recoverIntervalMs: 50,
      onError: (kind, e) => errors.push(`${kind}: ${(e as Error).message}`),
    });
    const inner = {
      check: (req: { sql: string }) =>
        /forbidden/i.test(req.sql)
          ? {
              action: 'deny' as const,
              sqlstate: '42501',
              message: 'denied by rule no-forbidden',
              decision: { effect: 'deny', rules: ['no-forbidden'], reasons: ['forbidden is off limits'] },
            }
          : {
              action: 'allow' as const,
              decision: { effect: 'allow', rules: ['allow-all'], reasons: [] },
            },
    };
    gw = await startTestGateway({
      targets: [target()],
      users: [{ name: 'alice', password: ALICE }],
      hook: recorder.wrapHook(inner, { policyVersion: () => 42 }),
      gatewayOptions: { events: recorder.sessionEvents() },
    });
  });

  after(async () => {
    await gw?.stop();
    await log?.close();
    await upstream?.stop();
    if (auditDir !== undefined) rmSync(auditDir, { recursive: true, force: true });
  });

  it('records sessions, authentication, statements with decisions, and linked outcomes; the log verifies', async () => {
    const c = await gw.connect('alice', ALICE);
    await c.query("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    const r = await c.query('SELECT note FROM t WHERE id = $1', [2]);
    assert.deepEqual(r.rows, [{ note: 'two' }]);
    await assert.rejects(c.query('SELECT * FROM forbidden'), { code: '42501' });
    await c.end();
    const p = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      args: ['-At', '-c', 'SELECT count(*) FROM t'],
    });
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout.trim(), '2');
    const bad = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'alice',
      password: 'wrong-password',
      database: 'main',
      args: ['-c', 'SELECT 1'],
    });
    assert.notEqual(bad.code, 0);

    const es = await until('two closed sessions and the auth failure', async () => {
      await recorder.flush();
      const all = await readAll(auditDir);
      const closes = all.filter((e) => e.kind === 'session.close').length;
      return closes >= 2 && all.some((e) => e.kind === 'auth.failure') ? all : undefined;
    });
    const stmt = (text: string): AuditEntry | undefined =>
      es.find((e) => e.kind === 'statement' && e.text === text);
    const insert = stmt("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    const select = stmt('SELECT note FROM t WHERE id = $1');
    const denied = stmt('SELECT * FROM forbidden');
    const viaPsql = stmt('SELECT count(*) FROM t');
    assert.ok(
      insert?.kind === 'statement' && select?.kind === 'statement' && denied?.kind === 'statement' && viaPsql,
    );
    assert.deepEqual(
      [insert.path, insert.principal.name, insert.target, insert.policyVersion],
      ['simple', 'alice', 'main', 42],
    );
    assert.deepEqual(insert.decision, { effect: 'allow', rules: ['allow-all'], reasons: [] });
    assert.equal(select.path, 'parse');
    assert.equal(select.paramsHash, null, 'parameters are recorded per Bind, not at Parse');
    const bind = es.find((e) => e.kind === 'statement.bind' && e.statementId === select.id);
    assert.ok(
      bind?.kind === 'statement.bind',
      'the Bind of the parameterised query is recorded, linked to its Parse',
    );
    assert.match(bind.paramsHash, /^[0-9a-f]{64}$/);
    assert.ok(es.indexOf(select) < es.indexOf(bind));
    assert.deepEqual(denied.decision, {
      effect: 'deny',
      rules: ['no-forbidden'],
      reasons: ['forbidden is off limits'],
    });
    const outcomeOf = (id: string): AuditEntry | undefined =>
      es.find((e) => e.kind === 'statement.outcome' && e.statementId === id);
    const o1 = outcomeOf(insert.id);
    assert.ok(o1?.kind === 'statement.outcome');
    assert.deepEqual([o1.rows, o1.sqlstate, o1.tags], [2, null, ['INSERT 0 2']]);
    assert.ok(outcomeOf(select.id), 'the extended-protocol statement has its outcome');
    assert.equal(outcomeOf(denied.id), undefined, 'a denied statement did not run, so it has no outcome');
    assert.ok(es.indexOf(insert) < es.indexOf(o1), 'the statement entry precedes its outcome');
    const opens = es.filter((e) => e.kind === 'session.open');
    assert.equal(opens.length, 2);
    assert.equal(es.filter((e) => e.kind === 'auth.success').length, 2);
    const open = opens[0];
    assert.ok(open?.kind === 'session.open');
    assert.deepEqual(
      [open.principal.name, open.target, open.sourceAddress, open.tls],
      ['alice', 'main', '127.0.0.1', false],
    );
    assert.ok(es.indexOf(open) < es.indexOf(insert));
    const fail = es.find((e) => e.kind === 'auth.failure');
    assert.ok(fail?.kind === 'auth.failure');
    assert.equal(fail.user, 'alice');
    assert.ok(
      !JSON.stringify(es).includes('wrong-password') && !JSON.stringify(es).includes(ALICE),
      'no password is logged',
    );

    await log.checkpoint();
    const v = await verifyLog(auditDir, { origin: ORIGIN, verifierKeys: [verifierKey], strictEntries: true });
    assert.equal(v.ok, true, JSON.stringify(v.firstError));
    assert.equal(v.size, log.size);
  });

  it('refuses statements with 58030 while the store cannot write, runs none of them, and resumes after recovery', async () => {
    const c = await gw.connect('alice', ALICE);
    try {
      io.failing = true;
      await assert.rejects(c.query("INSERT INTO t VALUES (100, 'unrecorded')"), (e: pg.DatabaseError) => {
        assert.equal(e.code, '58030');
        assert.match(e.message, /the audit log could not record the statement, so it did not run/);
        return true;
      });
      await assert.rejects(c.query('INSERT INTO t VALUES ($1, $2)', [101, 'unrecorded']), { code: '58030' });
      const p = await runPsql({
        host: '127.0.0.1',
        port: gw.port,
        user: 'alice',
        password: ALICE,
        database: 'main',
        args: ['-c', "INSERT INTO t VALUES (102, 'unrecorded')"],
      });
      assert.notEqual(p.code, 0);
      assert.match(p.stderr, /audit log could not record/);
      const rows = await upstream.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM t WHERE id >= 100',
        'appdb',
      );
      assert.equal(rows[0]?.n, 0, 'no refused statement reached the database');
      assert.ok(recorder.stats.statementFailures >= 3);

      // The disk is healthy again: the next statement (after the retry interval) recovers the store.
      io.failing = false;
      await new Promise((r) => setTimeout(r, 80));
      await c.query("INSERT INTO t VALUES (103, 'recorded')");
      const after = await upstream.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM t WHERE id >= 100',
        'appdb',
      );
      assert.equal(after[0]?.n, 1);
      assert.ok(recorder.stats.recoveries >= 1);
    } finally {
      io.failing = false;
      await c.end();
    }
    await recorder.flush();
    await log.checkpoint();
    const es = await readAll(auditDir);
    const texts = es.flatMap((e) => (e.kind === 'statement' ? [e.text] : []));
    assert.ok(texts.includes("INSERT INTO t VALUES (103, 'recorded')"));
    assert.ok(!texts.some((t) => t.includes('unrecorded')), 'refused statements left no partial entries');
    const v = await verifyLog(auditDir, { origin: ORIGIN, verifierKeys: [verifierKey], strictEntries: true });
    assert.equal(v.ok, true, JSON.stringify(v.firstError));
  });

  it('kill -9 of the gateway mid-stream: every statement a client saw succeed, and every row in the table, is in the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-audit-kill-'));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'test/fixtures/audit/gateway-child.ts',
        JSON.stringify({
          auditDir: dir,
          origin: 'kill.test/log',
          upstream: target(),
          users: [{ name: 'alice', password: ALICE }],
        }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let stateDir: string | undefined;
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`gateway child exited early (${code})`)));
      });
      const ready = JSON.parse(line) as { port: number; stateDir: string };
      stateDir = ready.stateDir;
      const succeeded: string[] = [];
      const clients = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const c = new pg.Client({
            host: '127.0.0.1',
            port: ready.port,
            user: 'alice',
            password: ALICE,
            database: 'main',
          });
          c.on('error', () => undefined);
          await c.connect();
          return c;
        }),
      );
      let stop = false;
      const streams = clients.map(async (c, k) => {
        for (let i = 0; !stop; i++) {
          const sql = `INSERT INTO kill_t VALUES (${k * 1_000_000 + i})`;
          try {
            await c.query(sql);
            succeeded.push(sql);
          } catch {
            return;
          }
        }
      });
      await until(
        'some acknowledged inserts',
        () => Promise.resolve(succeeded.length >= 150 ? true : undefined),
        20_000,
      );
      child.kill('SIGKILL');
      await exited;
      stop = true;
      await Promise.all(streams);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));

      const es = await readAll(dir);
      const recorded = new Set(es.flatMap((e) => (e.kind === 'statement' ? [e.text] : [])));
      const missing = succeeded.filter((s) => !recorded.has(s));
      assert.deepEqual(missing, [], 'every acknowledged statement has its entry');
      const rows = await upstream.query<{ id: number }>('SELECT id FROM kill_t', 'appdb');
      const unrecorded = rows.filter((r) => !recorded.has(`INSERT INTO kill_t VALUES (${r.id})`));
      assert.deepEqual(unrecorded, [], 'nothing ran unrecorded (write-ahead)');
      assert.ok(rows.length >= succeeded.length);
      const key = parseSignerKey(readFileSync(join(dir, 'log.key'), 'utf8').trim());
      const v = await verifyLog(dir, {
        origin: 'kill.test/log',
        verifierKeys: [key.verifierKey],
        strictEntries: true,
      });
      assert.equal(v.ok, true, JSON.stringify(v.firstError));
      assert.ok(v.checkpointsChecked >= 1, 'periodic checkpoints were signed while the stream ran');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
      if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
