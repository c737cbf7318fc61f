// End to end: faults around a real `warden serve` process and its upstream: SIGTERM drain, SIGKILL restart, upstream restart.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { createVerifier } from '../src/identity/scram.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry, type AuditEntry } from '../src/audit/entry.js';

const UP = 'faults-up-pw';
const ALICE = 'faults-alice-pw';
const ORIGIN = 'faults.e2e/log';
const CLI = join(process.cwd(), 'src/cli/main.ts');

async function readAll(dir: string): Promise<AuditEntry[]> {
  const snap = await LogSnapshot.open(dir);
  const out: AuditEntry[] = [];
  for (let i = 0; i < snap.size; i++) out.push(decodeEntry(await snap.read(i)));
  return out;
}

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Serve {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly output: () => string;
}

/** Starts `warden serve` as its own process and waits for its "listening" line. */
async function startServe(config: string): Promise<Serve> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<number>((resolve, reject) => {
    lines.on('line', (l) => {
      text += l + '\n';
      try {
        const m = JSON.parse(l) as { msg?: string; port?: number };
        if (m.msg === 'warden listening' && typeof m.port === 'number') resolve(m.port);
      } catch {
        // not a log line
      }
    });
    void exited.then((e) => reject(new Error(`warden serve exited early (${e.code ?? e.signal}): ${text}`)));
  });
  return { child, port, exited, output: () => text };
}

function client(port: number): pg.Client {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'alice', password: ALICE, database: 'main' });
  c.on('error', () => undefined);
  return c;
}

function auditVerify(dir: string): { status: number | null; out: string } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', CLI, 'audit', 'verify', '--dir', dir, '--origin', ORIGIN],
    {
      encoding: 'utf8',
    },
  );
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('faults around a real warden serve process', () => {
  let upstream: PgInstance;
  let dir: string;
  let configFile: string;
  const auditDir = (): string => join(dir, 'audit');

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(
      'CREATE TABLE drain_t (id int primary key); ALTER TABLE drain_t OWNER TO app; ' +
        'CREATE TABLE kill_t (id int primary key); ALTER TABLE kill_t OWNER TO app',
      'appdb',
    );
    dir = mkdtempSync(join(tmpdir(), 'warden-faults-'));
    writeFileSync(join(dir, 'app.pw'), UP + '\n', { mode: 0o600 });
    configFile = join(dir, 'warden.yaml');
    writeFileSync(
      configFile,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        limits: { drain_timeout_ms: 3000, startup_timeout_ms: 2000 },
        state_dir: dir,
        audit: { dir: auditDir(), origin: ORIGIN, checkpoint_interval_ms: 200 },
        users: [
          {
            name: 'alice',
            kind: 'human',
            scram_verifier: createVerifier(ALICE),
            logins: { main: 'app' },
          },
        ],
        targets: [
          {
            name: 'main',
            host: '127.0.0.1',
            port: upstream.port,
            database: 'appdb',
            environment: 'test',
            logins: { app: { user: 'app', password_file: join(dir, 'app.pw') } },
            policy: 'allow_all',
          },
        ],
      }),
    );
  });

  after(async () => {
    await upstream?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('SIGTERM drains: idle sessions end at once with 57P01, running statements and open transactions finish, stragglers are cut at the drain time, exit 0, the log verifies', async () => {
    const serve = await startServe(configFile);
    try {
      const idle = client(serve.port);
      const busy = client(serve.port);
      const inTx = client(serve.port);
      const straggler = client(serve.port);
      await Promise.all([idle, busy, inTx, straggler].map((c) => c.connect()));
      const idleEnded = new Promise<Error>((r) => idle.once('error', r));
      const stragglerEnded = new Promise<Error>((r) => straggler.once('error', r));
      await inTx.query('BEGIN');
      await inTx.query('INSERT INTO drain_t VALUES (1)');
      await straggler.query('BEGIN');
      await straggler.query('INSERT INTO drain_t VALUES (2)');
      const sleeping = busy.query('SELECT pg_sleep(1.2) AS slept, 7 AS n');
      await new Promise((r) => setTimeout(r, 200)); // the sleep is running upstream
      const t0 = Date.now();
      serve.child.kill('SIGTERM');

      // An idle session is told at once.
      const e1 = (await idleEnded) as Error & { code?: string };
      assert.equal(e1.code, '57P01');
      assert.match(e1.message, /Warden is shutting down/);
      assert.ok(Date.now() - t0 < 1500, `idle session ended after ${Date.now() - t0} ms`);
      // New connections are refused.
      await assert.rejects(client(serve.port).connect());
      // The running statement completes with its result.
      const r = await sleeping;
      assert.equal(r.rows[0]?.n, 7);
      // The open transaction may finish: more work, then COMMIT.
      await inTx.query('INSERT INTO drain_t VALUES (3)');
      await inTx.query('COMMIT');
      // The transaction that never ends is cut at the drain time, with 57P01; its work is rolled back.
      const e2 = (await stragglerEnded) as Error & { code?: string };
      assert.equal(e2.code, '57P01');
      const took = Date.now() - t0;
      assert.ok(took >= 2500 && took < 8000, `straggler cut after ${took} ms`);
      const ex = await serve.exited;
      assert.equal(ex.code, 0, serve.output());
      await Promise.all([idle, busy, inTx, straggler].map((c) => c.end().catch(() => undefined)));

      const rows = await upstream.query<{ id: number }>('SELECT id FROM drain_t ORDER BY id', 'appdb');
      assert.deepEqual(
        rows.map((x) => x.id),
        [1, 3],
      );
      const es = await readAll(auditDir());
      const texts = es.flatMap((e) => (e.kind === 'statement' ? [e.text] : []));
      assert.ok(texts.includes('INSERT INTO drain_t VALUES (3)'));
      const closes = es.filter((e) => e.kind === 'session.close');
      assert.ok(closes.length >= 4, `${closes.length} session.close entries`);
      const v = auditVerify(auditDir());
      assert.equal(v.status, 0, v.out);
      assert.match(v.out, /^OK /m);
    } finally {
      if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
      await serve.exited;
    }
  });

  it('SIGKILL during a stream of statements: after restart every acknowledged statement has its entry, nothing ran unrecorded, and warden audit verify passes', async () => {
    let serve = await startServe(configFile);
    const succeeded: string[] = [];
    try {
      const clients = Array.from({ length: 4 }, () => client(serve.port));
      await Promise.all(clients.map((c) => c.connect()));
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
      await until('acknowledged inserts', () => (succeeded.length >= 200 ? true : undefined), 30_000);
      serve.child.kill('SIGKILL');
      await serve.exited;
      stop = true;
      await Promise.all(streams);
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));

      serve = await startServe(configFile);
      const after = client(serve.port);
      await after.connect();
      await after.query('INSERT INTO kill_t VALUES (-1)');
      succeeded.push('INSERT INTO kill_t VALUES (-1)');
      await after.end();
      serve.child.kill('SIGTERM');
      assert.equal((await serve.exited).code, 0, serve.output());

      const es = await readAll(auditDir());
      const recorded = new Set(es.flatMap((e) => (e.kind === 'statement' ? [e.text] : [])));
      assert.deepEqual(
        succeeded.filter((s) => !recorded.has(s)),
        [],
        'every acknowledged statement has its entry',
      );
      const rows = await upstream.query<{ id: number }>('SELECT id FROM kill_t', 'appdb');
      assert.deepEqual(
        rows.filter((r) => !recorded.has(`INSERT INTO kill_t VALUES (${r.id})`)),
        [],
        'nothing ran unrecorded',
      );
      const v = auditVerify(auditDir());
      assert.equal(v.status, 0, v.out);
    } finally {
      if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
      await serve.exited;
    }
  });

  it('upstream restarted mid-session: the client gets a clear error, the log records the session end, new sessions work once it is back', async () => {
    const serve = await startServe(configFile);
    try {
      const c = client(serve.port);
      await c.connect();
      const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
      const pending = c.query('SELECT pg_sleep(30)').then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      await new Promise((r) => setTimeout(r, 300));
      await upstream.stopServer();
      const err = (await pending) ?? (await ended);
      // PostgreSQL's own 57P01 (administrator command) is relayed, or Warden's 08006 when the link just drops.
      assert.ok(['57P01', '08006'].includes(err.code ?? ''), `${err.code}: ${err.message}`);
      // While it is down: a new session is refused with 08001, cleanly.
      const down = client(serve.port);
      await assert.rejects(down.connect(), (e: Error & { code?: string }) => e.code === '08001');
      await upstream.startServer();
      const again = client(serve.port);
      await again.connect();
      assert.equal((await again.query('SELECT 41 + 1 AS x')).rows[0]?.x, 42);
      await again.end();
      await c.end().catch(() => undefined);
      serve.child.kill('SIGTERM');
      assert.equal((await serve.exited).code, 0, serve.output());
      const es = await readAll(auditDir());
      const lost = es.filter(
        (e) => e.kind === 'session.close' && /upstream/.test(String((e as { reason?: unknown }).reason)),
      );
      assert.ok(lost.length >= 1, 'the log records the session ended by the upstream');
      const v = auditVerify(auditDir());
      assert.equal(v.status, 0, v.out);
    } finally {
      if (!upstream.running) await upstream.startServer();
      if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
      await serve.exited;
    }
  });
  it('upstream crashes (SIGKILL) inside a transaction: the client gets 08006, the transaction is gone, sessions work after crash recovery', async () => {
    const serve = await startServe(configFile);
    try {
      const c = client(serve.port);
      await c.connect();
      await c.query('BEGIN');
      await c.query('INSERT INTO drain_t VALUES (100)');
      const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
      await upstream.kill();
      const err = await Promise.race([
        ended,
        c.query('SELECT 1').then(
          () => ({ code: 'none', message: 'answered' }) as Error & { code?: string },
          (e: Error & { code?: string }) => e,
        ),
      ]);
      assert.equal(err.code, '08006', `${err.code}: ${err.message}`);
      assert.match(err.message, /upstream database was lost/);
      await upstream.startServer();
      const again = client(serve.port);
      await again.connect();
      const rows = await again.query('SELECT count(*)::int AS n FROM drain_t WHERE id = 100');
      assert.equal(rows.rows[0]?.n, 0, 'the uncommitted insert did not survive the crash');
      await again.end();
      await c.end().catch(() => undefined);
      serve.child.kill('SIGTERM');
      assert.equal((await serve.exited).code, 0, serve.output());
      const v = auditVerify(auditDir());
      assert.equal(v.status, 0, v.out);
    } finally {
      if (!upstream.running) await upstream.startServer();
      if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
      await serve.exited;
    }
  });
});
