// Self-test of the harness: real PostgreSQL instances (SCRAM, md5, trust, TLS), psql, pgbench, pgbouncer, crash/restart, cleanup.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { makeClientCert, makeTestPki, type TestPki } from './certs.js';
import { initPgbench, parsePgbenchOutput, runPgbench, runPsql } from './clients.js';
import { isHarnessError } from './errors.js';
import { startPgbouncer, pgbouncerPath } from './pgbouncer.js';
import { startPostgres, type PgInstance } from './pg.js';
import { freePort, isAlive } from './sys.js';

const scratch = mkdtempSync(join(tmpdir(), 'warden-harness-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Connect with node-postgres; resolves to the SQLSTATE on failure, or the query's first row. */
async function tryConnect(
  cfg: pg.ClientConfig,
  sql = 'SELECT current_user AS u',
): Promise<{ row?: Record<string, unknown>; code?: string }> {
  const c = new pg.Client({ connectionTimeoutMillis: 5_000, ...cfg });
  c.on('error', () => {});
  try {
    await c.connect();
    const r = await c.query(sql);
    return { row: r.rows[0] as Record<string, unknown> };
  } catch (e) {
    return { code: (e as { code?: string }).code ?? 'no-code' };
  } finally {
    await c.end().catch(() => {});
  }
}

void describe('certs', () => {
  void test('makeTestPki: CA-signed server (localhost, 127.0.0.1, ::1) and client certificates, keys 0600', async () => {
    const pki = await makeTestPki(join(scratch, 'pki-a'), { clientCn: 'alice' });
    const bob = await makeClientCert(pki, 'bob');
    const v = spawnSync(
      'openssl',
      ['verify', '-CAfile', pki.caCert, pki.serverCert, pki.clientCert, bob.cert],
      { encoding: 'utf8' },
    );
    assert.equal(v.status, 0, v.stderr);
    for (const key of [pki.caKey, pki.serverKey, pki.clientKey, bob.key]) {
      assert.equal(statSync(key).mode & 0o777, 0o600, key);
    }
    const text = (f: string): string =>
      spawnSync('openssl', ['x509', '-in', f, '-noout', '-text'], { encoding: 'utf8' }).stdout;
    const server = text(pki.serverCert);
    assert.match(server, /DNS:localhost/);
    assert.match(server, /IP Address:127\.0\.0\.1/);
    assert.match(server, /TLS Web Server Authentication/);
    assert.match(text(pki.clientCert), /Subject: CN ?= ?alice/);
    assert.match(text(bob.cert), /Subject: CN ?= ?bob/);
    assert.match(text(bob.cert), /TLS Web Client Authentication/);
    // A second PKI is a different CA: its server certificate must not verify against the first.
    const other = await makeTestPki(join(scratch, 'pki-b'));
    const bad = spawnSync('openssl', ['verify', '-CAfile', pki.caCert, other.serverCert], {
      encoding: 'utf8',
    });
    assert.notEqual(bad.status, 0);
  });
});

void describe('freePort', () => {
  void test('returns a port that can be bound on 127.0.0.1', async () => {
    const port = await freePort();
    assert.ok(port > 0 && port < 65536);
    await new Promise<void>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
    });
  });
});

void describe('SCRAM instance', () => {
  let inst: PgInstance;
  const alice = { name: 'alice', password: 'correct horse' };
  before(async () => {
    inst = await startPostgres({
      auth: 'scram',
      users: [alice],
      databases: [{ name: 'app', owner: 'alice' }],
    });
  });
  after(() => inst.stop());

  void test('passwords are stored as SCRAM and the pg_hba method is scram-sha-256', async () => {
    const rows = await inst.query<{ p: string }>(
      "SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'alice'",
    );
    assert.match(rows[0]?.p ?? '', /^SCRAM-SHA-256\$/);
    const hba = await inst.query<{ m: string }>(
      "SELECT DISTINCT auth_method AS m FROM pg_hba_file_rules WHERE type = 'host'",
    );
    assert.deepEqual(
      hba.map((r) => r.m),
      ['scram-sha-256'],
    );
  });

  void test('pg: right password connects, wrong password fails with 28P01', async () => {
    const base = { host: inst.host, port: inst.port, user: 'alice', database: 'app' };
    const ok = await tryConnect(
      { ...base, password: alice.password },
      'SELECT current_user AS u, current_database() AS d',
    );
    assert.deepEqual(ok.row, { u: 'alice', d: 'app' });
    const bad = await tryConnect({ ...base, password: 'wrong' });
    assert.equal(bad.code, '28P01');
  });

  void test('psql: runs input, stops at the first error, rejects a wrong password', async () => {
    const target = { host: inst.host, port: inst.port, user: 'alice', database: 'app' };
    const ok = await runPsql({
      ...target,
      password: alice.password,
      args: ['-At', '-c', 'SELECT current_user, 6 * 7'],
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim(), 'alice|42');
    const script = await runPsql({
      ...target,
      password: alice.password,
      args: ['-At'],
      input: 'CREATE TABLE t (x int);\nSELECT nope;\nINSERT INTO t VALUES (1);\n',
    });
    assert.equal(script.code, 3, 'ON_ERROR_STOP makes psql exit 3');
    assert.match(script.stderr, /column "nope" does not exist/);
    assert.deepEqual(await inst.query('SELECT * FROM t', 'app'), [], 'the INSERT after the error never ran');
    const bad = await runPsql({ ...target, password: 'wrong', args: ['-c', 'SELECT 1'] });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /password authentication failed for user "alice"/);
    assert.doesNotMatch(bad.stderr, /wrong/, 'the password is not echoed');
  });

  void test('pgbench: initialises and reports TPS and latency', async () => {
    const target = {
      host: inst.host,
      port: inst.port,
      user: 'alice',
      database: 'app',
      password: alice.password,
    };
    const init = await initPgbench({ ...target, scale: 1 });
    assert.equal(init.code, 0, init.stderr);
    const r = await runPgbench({ ...target, clients: 2, transactions: 25, builtin: 'select-only' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.transactions, 50);
    assert.equal(r.failed, 0);
    assert.ok(r.tps !== null && r.tps > 0, `tps ${r.tps}`);
    assert.ok(r.latencyAvgMs !== null && r.latencyAvgMs > 0);
    const bad = await runPgbench({ ...target, password: 'wrong', transactions: 1 });
    assert.notEqual(bad.code, 0);
    assert.equal(bad.tps, null);
  });

  void test('lifecycle: kill (crash) keeps committed data, stopServer/startServer and restart keep the port', async () => {
    const port = inst.port;
    await inst.query('CREATE TABLE crash (x int); INSERT INTO crash VALUES (1), (2), (3)', 'app');
    const pid = inst.pid;
    assert.ok(pid !== undefined && isAlive(pid));
    await inst.kill();
    assert.equal(inst.running, false);
    assert.equal(isAlive(pid), false);
    await assert.rejects(inst.query('SELECT 1'));
    await inst.startServer();
    assert.match(
      readFileSync(inst.logFile, 'utf8'),
      /database system was interrupted|not properly shut down/,
    );
    assert.deepEqual(await inst.query('SELECT count(*)::int AS n FROM crash', 'app'), [{ n: 3 }]);
    await inst.stopServer();
    assert.equal(inst.pid, undefined);
    await inst.startServer();
    await inst.restart();
    assert.equal(inst.port, port);
    assert.notEqual(inst.pid, pid);
    assert.deepEqual(await inst.query('SELECT count(*)::int AS n FROM crash', 'app'), [{ n: 3 }]);
  });

  void test('pause makes connections hang; resume brings them back', async () => {
    inst.pause();
    try {
      const r = await tryConnect({ ...inst.superuserConfig(), connectionTimeoutMillis: 300 });
      assert.equal(r.code, 'no-code', 'a frozen server cannot answer');
    } finally {
      inst.resume();
    }
    assert.deepEqual(await inst.query('SELECT 1 AS one'), [{ one: 1 }]);
  });

  void test('pgbouncer in front of the instance (skipped if not installed)', async (t) => {
    if (pgbouncerPath() === null) {
      t.skip('pgbouncer is not installed');
      return;
    }
    const pgb = await startPgbouncer({
      upstreamHost: inst.host,
      upstreamPort: inst.port,
      database: 'app',
      user: 'alice',
      password: alice.password,
      poolMode: 'transaction',
    });
    assert.ok(pgb !== null);
    try {
      const base = { host: pgb.host, port: pgb.port, user: 'alice', database: 'app' };
      const ok = await tryConnect(
        { ...base, password: alice.password },
        'SELECT current_user AS u, inet_server_port() AS p',
      );
      assert.deepEqual(ok.row, { u: 'alice', p: inst.port });
      const bad = await tryConnect({ ...base, password: 'wrong' });
      assert.equal(bad.code, '08P01', 'pgbouncer reports a failed login as a protocol error');
      const psql = await runPsql({ ...base, password: alice.password, args: ['-At', '-c', 'SELECT 1'] });
      assert.equal(psql.stdout.trim(), '1', psql.stderr);
    } finally {
      await pgb.stop();
    }
    assert.equal(existsSync(pgb.rootDir), false);
    assert.equal(pgb.pid, undefined);
  });
});

void describe('other authentication methods and settings', () => {
  void test('md5: passwords stored as md5, login works, wrong password is 28P01', async () => {
    const inst = await startPostgres({
      auth: 'md5',
      users: [{ name: 'bob', password: 'pw-b' }],
      databases: ['bobdb'],
    });
    try {
      const rows = await inst.query<{ p: string }>(
        "SELECT rolpassword AS p FROM pg_authid WHERE rolname = 'bob'",
      );
      assert.match(rows[0]?.p ?? '', /^md5[0-9a-f]{32}$/);
      const base = { host: inst.host, port: inst.port, user: 'bob', database: 'bobdb' };
      assert.deepEqual((await tryConnect({ ...base, password: 'pw-b' })).row, { u: 'bob' });
      assert.equal((await tryConnect({ ...base, password: 'nope' })).code, '28P01');
    } finally {
      await inst.stop();
    }
  });

  void test('trust with extra settings and a fresh initdb', async () => {
    const inst = await startPostgres({
      auth: 'trust',
      fresh: true,
      settings: { work_mem: '7MB', application_name: "it's" },
    });
    try {
      const r = await tryConnect(
        { host: inst.host, port: inst.port, user: 'postgres', database: 'postgres' },
        'SHOW work_mem',
      );
      assert.deepEqual(r.row, { work_mem: '7MB' });
      assert.deepEqual(await inst.query('SHOW max_connections'), [{ max_connections: '200' }]);
      assert.deepEqual(await inst.query("SELECT current_setting('application_name') AS a"), [{ a: "it's" }]);
    } finally {
      await inst.stop();
    }
    await assert.rejects(startPostgres({ settings: { 'bad name': 'x' } }), (e) =>
      isHarnessError(e, 'INVALID_OPTION'),
    );
    await assert.rejects(startPostgres({ settings: { shared_buffers: 'plenty' } }), (e) => {
      assert.ok(isHarnessError(e, 'PG_START_FAILED'), String(e));
      assert.match(
        e.detail ?? '',
        /invalid value for parameter "shared_buffers"/,
        'the error carries the log tail',
      );
      return true;
    });
  });
});

void describe('TLS instance', () => {
  let pki: TestPki;
  let wrong: TestPki;
  before(async () => {
    pki = await makeTestPki(join(scratch, 'pki-tls'), { clientCn: 'carol' });
    wrong = await makeTestPki(join(scratch, 'pki-wrong'));
  });

  void test('verify-full with the right CA works (pg and psql); the wrong CA is refused', async () => {
    const inst = await startPostgres({
      auth: 'scram',
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert },
      users: [{ name: 'carol', password: 'pw-c' }],
    });
    try {
      const key = statSync(join(inst.dataDir, 'server.key'));
      assert.equal(key.mode & 0o777, 0o600);
      const sslQuery = 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()';
      const base = { port: inst.port, user: 'carol', database: 'postgres', password: 'pw-c' };
      const ca = readFileSync(pki.caCert, 'utf8');
      for (const host of ['localhost', '127.0.0.1']) {
        const r = await tryConnect({ ...base, host, ssl: { ca, rejectUnauthorized: true } }, sslQuery);
        assert.deepEqual(r.row, { ssl: true }, host);
      }
      const refused = await tryConnect({
        ...base,
        host: 'localhost',
        ssl: { ca: readFileSync(wrong.caCert, 'utf8') },
      });
      assert.ok(refused.row === undefined, 'an unknown CA must not verify');

      const psqlBase = { ...base, host: '127.0.0.1', sslmode: 'verify-full' as const };
      const ok = await runPsql({ ...psqlBase, sslrootcert: pki.caCert, args: ['-At', '-c', sslQuery] });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.trim(), 't');
      const bad = await runPsql({ ...psqlBase, sslrootcert: wrong.caCert, args: ['-c', 'SELECT 1'] });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /certificate verify failed/);
    } finally {
      await inst.stop();
    }
    assert.equal(existsSync(inst.rootDir), false);
  });

  void test('hostssl + clientcert=verify-full: the client certificate CN must match the user', async () => {
    const inst = await startPostgres({
      auth: 'scram',
      tls: {
        cert: pki.serverCert,
        key: pki.serverKey,
        ca: pki.caCert,
        require: true,
        clientCert: 'verify-full',
      },
      users: [{ name: 'carol', password: 'pw-c' }],
    });
    try {
      const base = {
        host: '127.0.0.1',
        port: inst.port,
        user: 'carol',
        database: 'postgres',
        password: 'pw-c',
      };
      const ca = readFileSync(pki.caCert, 'utf8');
      const cert = readFileSync(pki.clientCert, 'utf8');
      const key = readFileSync(pki.clientKey, 'utf8');
      assert.deepEqual((await tryConnect({ ...base, ssl: { ca, cert, key } })).row, { u: 'carol' });
      assert.equal((await tryConnect({ ...base, ssl: { ca } })).code, '28000', 'no client certificate');
      assert.equal((await tryConnect({ ...base, ssl: false })).code, '28000', 'no TLS at all');
      const dave = await makeClientCert(pki, 'dave');
      const mismatch = await tryConnect({
        ...base,
        ssl: { ca, cert: readFileSync(dave.cert, 'utf8'), key: readFileSync(dave.key, 'utf8') },
      });
      // PostgreSQL reports a CN that does not match the user as an authentication failure (28P01);
      // the password is right, so only the certificate check can have failed.
      assert.equal(mismatch.code, '28P01', 'CN dave does not match user carol');
      assert.match(inst.logTail(20), /clientcert=verify-full\) failed for user "carol": CN mismatch/);
    } finally {
      await inst.stop();
    }
  });
});

void describe('cleanup', () => {
  void test('stop() removes the folder, is idempotent, and later queries fail', async () => {
    const inst = await startPostgres({ auth: 'trust' });
    const pid = inst.pid;
    assert.ok(existsSync(inst.dataDir));
    await inst.stop();
    await inst.stop();
    assert.equal(existsSync(inst.rootDir), false);
    assert.ok(pid !== undefined && !isAlive(pid));
    await assert.rejects(inst.query('SELECT 1'));
    await assert.rejects(inst.startServer(), (e) => isHarnessError(e, 'PG_NOT_RUNNING'));
  });

  for (const mode of ['throw', 'sigterm'] as const) {
    void test(`a process that dies (${mode}) without stop() still stops its instance`, () => {
      const child = fileURLToPath(new URL('./exit-child.ts', import.meta.url));
      const r = spawnSync(process.execPath, ['--import', 'tsx', child, mode], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
      assert.ok(line !== undefined, `child printed no instance: ${r.stderr}`);
      const info = JSON.parse(line) as { rootDir: string; pid: number };
      if (mode === 'throw') assert.match(r.stderr, /deliberate uncaught exception/);
      else assert.equal(r.signal, 'SIGTERM');
      assert.equal(existsSync(info.rootDir), false, 'temp folder removed');
      assert.equal(isAlive(info.pid), false, 'postmaster stopped');
    });
  }
});

void describe('parsePgbenchOutput', () => {
  void test('reads the pgbench 15 summary', () => {
    const out = [
      'pgbench (15.20 (Debian 15.20-0+deb12u1))',
      'transaction type: <builtin: select only>',
      'number of transactions actually processed: 1234/1234',
      'number of failed transactions: 2 (0.162%)',
      'latency average = 0.812 ms',
      'latency stddev = 0.101 ms',
      'initial connection time = 4.321 ms',
      'tps = 2461.234567 (without initial connection time)',
    ].join('\n');
    assert.deepEqual(parsePgbenchOutput(out), {
      tps: 2461.234567,
      latencyAvgMs: 0.812,
      latencyStddevMs: 0.101,
      initialConnectionMs: 4.321,
      transactions: 1234,
      failed: 2,
    });
  });

  void test('reads the pre-14 summary (excluding connections establishing) and misses gracefully', () => {
    const old =
      'tps = 10.5 (including connections establishing)\ntps = 11.25 (excluding connections establishing)\n';
    assert.equal(parsePgbenchOutput(old).tps, 11.25);
    assert.deepEqual(parsePgbenchOutput('connection to server failed'), {
      tps: null,
      latencyAvgMs: null,
      latencyStddevMs: null,
      initialConnectionMs: null,
      transactions: null,
      failed: null,
    });
  });
});
