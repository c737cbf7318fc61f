// End to end: TLS on both sides (client → Warden, Warden → upstream), required TLS, and md5/trust upstream logins.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { makeTestPki, type TestPki } from './harness/certs.js';
import { runPsql } from './harness/clients.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';

const UP = 'up-tls-secret';
const ALICE = 'alice-tls-pw';

describe('TLS on both sides', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: PgInstance;
  let gw: TestGateway;
  let strict: TestGateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-tls-'));
    pki = await makeTestPki(dir);
    upstream = await startPostgres({
      auth: 'scram',
      tls: { cert: pki.serverCert, key: pki.serverKey, require: true },
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    const target = {
      port: upstream.port,
      database: 'appdb',
      user: 'app',
      password: UP,
      tls: { mode: 'verify-full' as const, ca_file: pki.caCert, server_name: 'localhost' },
    };
    gw = await startTestGateway({
      targets: [target],
      users: [{ name: 'alice', password: ALICE }],
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
    });
    strict = await startTestGateway({
      targets: [target],
      users: [{ name: 'alice', password: ALICE }],
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey, required: true },
    });
  });

  after(async () => {
    await gw?.stop();
    await strict?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves psql over TLS with sslmode=verify-full and reaches upstream over verified TLS', async () => {
    const r = await runPsql({
      host: 'localhost',
      port: gw.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      sslmode: 'verify-full',
      sslrootcert: pki.caCert,
      args: ['-At', '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid(); SHOW ssl'],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['t', 'on']);
  });

  it('serves node-postgres over TLS', async () => {
    const c = new pg.Client({
      ...gw.clientConfig('alice', ALICE),
      ssl: { ca: readFileSync(pki.caCert), servername: 'localhost' },
    });
    await c.connect();
    const r = await c.query('SELECT 1 AS one');
    assert.equal(r.rows[0]?.one, 1);
    await c.end();
  });

  it('still allows plaintext when TLS is offered but not required', async () => {
    const r = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      sslmode: 'disable',
      args: ['-At', '-c', 'SELECT 1'],
    });
    assert.equal(r.code, 0, r.stderr);
  });

  it('refuses plaintext with 28000 when the configuration requires TLS', async () => {
    const plain = await runPsql({
      host: '127.0.0.1',
      port: strict.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      sslmode: 'disable',
      args: ['-c', 'SELECT 1'],
    });
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /requires TLS/);
    const tls = await runPsql({
      host: 'localhost',
      port: strict.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      sslmode: 'verify-full',
      sslrootcert: pki.caCert,
      args: ['-At', '-c', 'SELECT 1'],
    });
    assert.equal(tls.code, 0, tls.stderr);
  });

  it('refuses an upstream whose certificate does not verify against the configured CA', async () => {
    const other = await makeTestPki(join(dir, 'other'));
    const bad = await startTestGateway({
      targets: [
        {
          port: upstream.port,
          database: 'appdb',
          user: 'app',
          password: UP,
          tls: { mode: 'verify-full', ca_file: other.caCert, server_name: 'localhost' },
        },
      ],
      users: [{ name: 'alice', password: ALICE }],
    });
    try {
      const c = new pg.Client(bad.clientConfig('alice', ALICE));
      await assert.rejects(c.connect(), (e: pg.DatabaseError) => {
        assert.equal(e.code, '08001');
        assert.match(e.message, /TLS to upstream/);
        return true;
      });
    } finally {
      await bad.stop();
    }
  });
});

describe('upstream login methods', () => {
  for (const auth of ['md5', 'trust'] as const) {
    it(`authenticates upstream with ${auth}`, async () => {
      const upstream = await startPostgres({
        auth,
        users: [{ name: 'app', password: UP }],
        databases: [{ name: 'appdb', owner: 'app' }],
      });
      const gw = await startTestGateway({
        targets: [
          {
            port: upstream.port,
            database: 'appdb',
            user: 'app',
            ...(auth === 'md5' ? { password: UP } : {}),
          },
        ],
        users: [{ name: 'alice', password: ALICE }],
      });
      try {
        const c = await gw.connect('alice', ALICE);
        const r = await c.query('SELECT current_user AS u');
        assert.equal(r.rows[0]?.u, 'app');
        await c.end();
      } finally {
        await gw.stop();
        await upstream.stop();
      }
    });
  }

  it('reports a wrong upstream secret without revealing it', async () => {
    const upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    const gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: 'not-the-secret' }],
      users: [{ name: 'alice', password: ALICE }],
    });
    try {
      const c = new pg.Client(gw.clientConfig('alice', ALICE));
      await assert.rejects(c.connect(), (e: pg.DatabaseError) => {
        assert.equal(e.code, '08001');
        assert.doesNotMatch(e.message + (e.detail ?? ''), /not-the-secret|up-tls-secret/);
        return true;
      });
    } finally {
      await gw.stop();
      await upstream.stop();
    }
  });
});
