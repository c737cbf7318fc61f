// End to end: the listener's TLS defaults (1.2+, forward-secret AEAD suites) and client certificates as a second factor.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  makeClientCert,
  makeExpiredClientCert,
  makeTestPki,
  type CertPair,
  type TestPki,
} from './harness/certs.js';
import { runPsql, type CommandResult } from './harness/clients.js';
import { runCommand } from './harness/sys.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry, type AuditEntry } from '../src/audit/entry.js';
import { sslRequest } from '../src/wire/pg/messages.js';
import { AuthThrottle } from '../src/identity/throttle.js';

const PW = {
  alice: 'alice-cert-pw',
  bob: 'bob-cert-pw',
  carol: 'carol-plain-pw',
  dave: 'dave-cert-pw',
} as const;
// The shared PostgreSQL (trust) serves as the upstream: this file is about the client side.
const UPSTREAM = { port: 5432, database: 'postgres', user: 'postgres' };

/** Opens TCP, asks for TLS the PostgreSQL way, then runs a TLS handshake with `opts`; resolves the outcome. */
function handshake(
  port: number,
  opts: tls.ConnectionOptions,
): Promise<{ ok: true; protocol: string; cipher: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const raw = net.connect({ host: '127.0.0.1', port });
    raw.once('error', (e) => resolve({ ok: false, error: e.message }));
    raw.once('connect', () => raw.write(sslRequest()));
    raw.once('data', (answer: Buffer) => {
      if (answer.toString() !== 'S') {
        resolve({ ok: false, error: `no TLS offered: ${answer.toString('hex')}` });
        raw.destroy();
        return;
      }
      const t = tls.connect({ socket: raw, rejectUnauthorized: false, ...opts }, () => {
        resolve({ ok: true, protocol: t.getProtocol() ?? '', cipher: t.getCipher().name });
        t.destroy();
      });
      t.once('error', (e) => {
        resolve({ ok: false, error: e.message });
        raw.destroy();
      });
    });
  });
}

async function readAudit(dir: string): Promise<AuditEntry[]> {
  const snap = await LogSnapshot.open(dir);
  const out: AuditEntry[] = [];
  for (let i = 0; i < snap.size; i++) out.push(decodeEntry(await snap.read(i)));
  return out;
}

describe('listener TLS defaults', () => {
  let dir: string;
  let pki: TestPki;
  let gw: TestGateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-tlsdef-'));
    pki = await makeTestPki(dir);
    gw = await startTestGateway({
      targets: [UPSTREAM],
      users: [{ name: 'carol', password: PW.carol }],
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
    });
  });
  after(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('negotiates TLS 1.3 by default and accepts a forward-secret AEAD suite under TLS 1.2', async () => {
    const modern = await handshake(gw.port, {});
    assert.deepEqual(modern.ok && modern.protocol, 'TLSv1.3');
    const v12 = await handshake(gw.port, {
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256',
    });
    assert.ok(v12.ok, JSON.stringify(v12));
    assert.equal(v12.protocol, 'TLSv1.2');
    assert.equal(v12.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256');
  });

  it('refuses TLS 1.1 and 1.0 clients (the server answers with a protocol_version alert)', async () => {
    for (const v of ['TLSv1.1', 'TLSv1'] as const) {
      // SECLEVEL=0 lets this client offer the old protocol at all; the refusal must come from the gateway.
      const r = await handshake(gw.port, {
        minVersion: 'TLSv1',
        maxVersion: v,
        ciphers: 'DEFAULT@SECLEVEL=0',
      });
      assert.equal(r.ok, false, `${v} must be refused`);
      assert.ok(!r.ok && /alert protocol version/i.test(r.error), `${v}: ${!r.ok ? r.error : ''}`);
    }
  });

  it('refuses CBC and SHA-1 suites under TLS 1.2', async () => {
    for (const c of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384']) {
      const r = await handshake(gw.port, { maxVersion: 'TLSv1.2', ciphers: c });
      assert.equal(r.ok, false, `${c} must be refused`);
      assert.ok(
        !r.ok && /handshake failure|no shared cipher/i.test(r.error),
        `${c}: ${!r.ok ? r.error : ''}`,
      );
    }
  });

  it('openssl s_client -tls1_1 is refused', async () => {
    // openssl s_client cannot speak the PostgreSQL SSLRequest preamble unless told to (-starttls postgres).
    const r = await runCommand(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${gw.port}`,
        '-starttls',
        'postgres',
        '-tls1_1',
        '-cipher',
        'DEFAULT@SECLEVEL=0',
      ],
      { timeoutMs: 15_000, input: '' },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /alert protocol version|unsupported protocol|no protocols available/i);
    const ok = await runCommand(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${gw.port}`, '-starttls', 'postgres', '-tls1_2'],
      { timeoutMs: 15_000, input: '' },
    );
    assert.match(ok.stdout, /Protocol\s*:\s*TLSv1\.2/);
  });
});

describe('client certificates as a second factor', () => {
  let dir: string;
  let pki: TestPki;
  let other: TestPki;
  let gw: TestGateway;
  let auditDir: string;
  type Certs = Record<
    'alice' | 'mallory' | 'bob' | 'bob2' | 'otherAlice' | 'expiredAlice' | 'server',
    CertPair
  >;
  const certs = {} as Certs;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-clientcert-'));
    pki = await makeTestPki(join(dir, 'pki'));
    other = await makeTestPki(join(dir, 'other'), { clientCn: 'alice' });
    certs.alice = await makeClientCert(pki, 'alice');
    certs.mallory = await makeClientCert(pki, 'mallory');
    certs.bob = await makeClientCert(pki, 'bob');
    certs.bob2 = await makeClientCert(pki, 'bob', 'client-bob2'); // same CN, another key: another fingerprint
    certs.otherAlice = { cert: other.clientCert, key: other.clientKey };
    certs.expiredAlice = await makeExpiredClientCert(pki, 'alice');
    // The server's own certificate (CN localhost, serverAuth only), offered as a client certificate.
    certs.server = { cert: pki.serverCert, key: pki.serverKey };
    const bobFp = new X509Certificate(readFileSync(certs.bob.cert)).fingerprint256;
    const stateDir = join(dir, 'gw');
    auditDir = join(stateDir, 'audit');
    gw = await startTestGateway({
      dir: stateDir,
      targets: [UPSTREAM],
      users: [
        { name: 'alice', password: PW.alice, client_cert: { required: true, subject_cn: 'alice' } },
        {
          name: 'bob',
          password: PW.bob,
          // lower case without colons is accepted too
          client_cert: { required: true, fingerprint_sha256: bobFp.replaceAll(':', '').toLowerCase() },
        },
        { name: 'carol', password: PW.carol },
        { name: 'dave', password: PW.dave, client_cert: { required: true, subject_cn: 'localhost' } },
      ],
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey, client_ca_file: pki.caCert },
      audit: { dir: auditDir, origin: 'clientcert.test/audit', checkpoint_interval_ms: 0 },
      // Every case fails from 127.0.0.1 on purpose; the default throttle would slow the rest down to its 10 s cap.
      gatewayOptions: { authThrottle: new AuthThrottle({ freeFailures: 1000 }) },
    });
  });
  after(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const psql = (user: keyof typeof PW, o: { password?: string; cert?: CertPair; sslmode?: 'disable' }) =>
    runPsql({
      host: 'localhost',
      port: gw.port,
      user,
      password: o.password ?? PW[user],
      database: 'main',
      sslmode: o.sslmode ?? 'verify-full',
      ...(o.sslmode === 'disable' ? {} : { sslrootcert: pki.caCert }),
      // An explicit non-existent default keeps libpq from picking up ~/.postgresql/postgresql.crt.
      sslcert: o.cert?.cert ?? join(dir, 'no-such.crt'),
      sslkey: o.cert?.key ?? join(dir, 'no-such.key'),
      args: ['-At', '-c', 'SELECT current_user'],
    });

  const assertLooksLikeBadPassword = (r: CommandResult, user: string): void => {
    assert.notEqual(r.code, 0, 'must be refused');
    assert.match(r.stderr, new RegExp(`password authentication failed for user "${user}"`));
    assert.doesNotMatch(r.stderr, /certificate|cert/i, 'the client is not told why');
  };

  it('psql with the right password and a matching certificate (verify-full) gets in', async () => {
    const r = await psql('alice', { cert: certs.alice });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'postgres');
  });

  it('without a certificate, with another CN, or from another CA: the same answer as a wrong password', async () => {
    const wrongPassword = await psql('alice', { password: 'not-it', cert: certs.alice });
    assertLooksLikeBadPassword(wrongPassword, 'alice');
    for (const cert of [undefined, certs.mallory, certs.otherAlice, certs.expiredAlice]) {
      const r = await psql('alice', cert ? { cert } : {});
      assertLooksLikeBadPassword(r, 'alice');
      assert.equal(r.stderr.replace(/\d+/g, 'N'), wrongPassword.stderr.replace(/\d+/g, 'N'));
    }
    const plain = await psql('alice', { sslmode: 'disable' });
    assertLooksLikeBadPassword(plain, 'alice');
  });

  it('a certificate made for servers (no clientAuth) is not accepted as a client certificate', async () => {
    assertLooksLikeBadPassword(await psql('dave', { cert: certs.server }), 'dave');
  });

  it('a fingerprint pins one certificate: the same CN with another key is refused', async () => {
    const ok = await psql('bob', { cert: certs.bob });
    assert.equal(ok.code, 0, ok.stderr);
    assertLooksLikeBadPassword(await psql('bob', { cert: certs.bob2 }), 'bob');
  });

  it('users without the requirement are unaffected, with or without a certificate', async () => {
    const none = await psql('carol', {});
    assert.equal(none.code, 0, none.stderr);
    const some = await psql('carol', { cert: certs.mallory });
    assert.equal(some.code, 0, some.stderr);
    const plain = await psql('carol', { sslmode: 'disable' });
    assert.equal(plain.code, 0, plain.stderr);
  });

  it('node-postgres: the certificate is required in addition to the password', async () => {
    const base = {
      ...gw.clientConfig('alice', PW.alice),
      host: 'localhost',
    };
    const ca = readFileSync(pki.caCert);
    const good = new pg.Client({
      ...base,
      ssl: { ca, cert: readFileSync(certs.alice.cert), key: readFileSync(certs.alice.key) },
    });
    await good.connect();
    assert.equal((await good.query('SELECT 1 AS one')).rows[0]?.one, 1);
    await good.end();
    const bare = new pg.Client({ ...base, ssl: { ca } });
    await assert.rejects(bare.connect(), (e: pg.DatabaseError) => {
      assert.equal(e.code, '28P01');
      assert.equal(e.message, 'password authentication failed for user "alice"');
      return true;
    });
    const wrongPw = new pg.Client({
      ...base,
      password: 'nope',
      ssl: { ca, cert: readFileSync(certs.alice.cert), key: readFileSync(certs.alice.key) },
    });
    await assert.rejects(wrongPw.connect(), { code: '28P01' });
  });

  it('TLS session resumption works with client certificates requested, and keeps the first certificate', async () => {
    const ca = readFileSync(pki.caCert);
    const base = { ...gw.clientConfig('alice', PW.alice), host: 'localhost' };
    /** Connects with `ssl`, returns the TLS session for resumption and whether this one was resumed. */
    const login = async (
      ssl: tls.ConnectionOptions,
    ): Promise<{ ok: boolean; session?: Buffer | undefined; reused: boolean }> => {
      const c = new pg.Client({ ...base, ssl });
      c.on('error', () => undefined);
      try {
        await c.connect();
      } catch {
        return { ok: false, reused: false };
      }
      await c.query('SELECT 1');
      const stream = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
      const r = { ok: true, session: stream.getSession(), reused: stream.isSessionReused() };
      await c.end();
      return r;
    };
    const first = await login({
      ca,
      cert: readFileSync(certs.alice.cert),
      key: readFileSync(certs.alice.key),
    });
    assert.ok(first.ok && first.session, 'a resumable session');
    // Resuming proves possession of the session secret made with alice's certificate: no certificate is sent again.
    const resumed = await login({ ca, session: first.session });
    assert.deepEqual([resumed.ok, resumed.reused], [true, true]);
    // A session made with an untrusted certificate stays untrusted when resumed.
    const c = new pg.Client({
      ...gw.clientConfig('carol', PW.carol),
      host: 'localhost',
      ssl: { ca, cert: readFileSync(certs.otherAlice.cert), key: readFileSync(certs.otherAlice.key) },
    });
    await c.connect();
    const stream = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
    const untrusted = stream.getSession();
    await c.end();
    assert.ok(untrusted);
    const again = await login({ ca, session: untrusted });
    assert.equal(again.ok, false, 'alice with a resumed untrusted session is refused');
  });

  it('the audit log records why each certificate failure happened', async () => {
    let failures: string[] = [];
    const deadline = Date.now() + 10_000;
    for (;;) {
      const es = await readAudit(auditDir);
      failures = es.flatMap((e) => (e.kind === 'auth.failure' && e.user === 'alice' ? [e.reason] : []));
      if (failures.some((f) => /not trusted/.test(f)) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const has = (re: RegExp): boolean => failures.some((f) => re.test(f));
    assert.ok(has(/^wrong password$/), failures.join(' | '));
    assert.ok(has(/^client certificate: none presented$/), failures.join(' | '));
    assert.ok(has(/^client certificate: subject CN does not match$/), failures.join(' | '));
    assert.ok(has(/^client certificate: not trusted/), failures.join(' | '));
    assert.ok(has(/^client certificate: none presented \(no TLS\)$/), failures.join(' | '));
    assert.ok(has(/^client certificate: not trusted \(CERT_HAS_EXPIRED\)$/), failures.join(' | '));
    const all = JSON.stringify(await readAudit(auditDir));
    assert.ok(all.includes('fingerprint does not match'));
    assert.ok(
      all.includes('not trusted (INVALID_PURPOSE)'),
      'the server certificate was refused for its purpose',
    );
    for (const pw of Object.values(PW)) assert.ok(!all.includes(pw), 'no password in the audit log');
  });
});
