// End to end: verify-full towards the upstream. The right name works; a wrong name, a wrong CA or a server without TLS
// is refused with a clear error, and a recording proxy shows nothing but the SSLRequest and TLS handshake went out.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { makeTestPki, type TestPki } from './harness/certs.js';
import { startTestGateway, type TestTarget } from './helpers/warden.js';
import { sslRequest } from '../src/wire/pg/messages.js';

const UP = 'canary-verify-full-Tq8Wm3';
const ALICE = 'alice-upstream-tls-pw';

/** A TCP proxy that records what the gateway sends; `reply` replaces the upstream with a canned answer. */
async function recordingProxy(
  to: number | { reply: Buffer },
): Promise<{ port: number; sent: () => Buffer; close: () => Promise<void> }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    sockets.add(c);
    c.on('error', () => undefined);
    c.on('data', (d: Buffer) => chunks.push(d));
    if (typeof to === 'number') {
      const u = net.connect({ host: '127.0.0.1', port: to });
      sockets.add(u);
      u.on('error', () => c.destroy());
      c.on('error', () => u.destroy());
      c.pipe(u);
      u.pipe(c);
    } else {
      c.once('data', () => c.write(to.reply));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sent: () => Buffer.concat(chunks),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Asserts the bytes are one SSLRequest followed only by TLS records (no startup packet, no password in clear). */
function assertNothingInClear(sent: Buffer): void {
  assert.ok(sent.length >= 8, 'the gateway asked for TLS');
  assert.deepEqual(sent.subarray(0, 8), sslRequest(), 'the first bytes are the SSLRequest');
  let pos = 8;
  while (pos < sent.length) {
    // TLS record: content type 20..23, version 3.x, 2-byte length.
    const type = sent[pos] as number;
    assert.ok(type >= 20 && type <= 23 && sent[pos + 1] === 3, `a TLS record at ${pos} (type ${type})`);
    pos += 5 + sent.readUInt16BE(pos + 3);
  }
  assert.ok(!sent.includes(Buffer.from(UP)), 'the upstream password never went out');
  assert.ok(!sent.includes(Buffer.from('user\0app\0')), 'no startup packet in clear');
}

describe('verify-full towards the upstream', () => {
  let dir: string;
  let pki: TestPki;
  let other: TestPki;
  let upstream: PgInstance;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-upverify-'));
    pki = await makeTestPki(join(dir, 'pki'), { serverDnsNames: ['db.test'] });
    other = await makeTestPki(join(dir, 'other'));
    upstream = await startPostgres({
      auth: 'scram',
      tls: { cert: pki.serverCert, key: pki.serverKey, require: true },
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
  });
  after(async () => {
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Connects alice through a gateway whose only target is `target`; resolves the error, or undefined on success. */
  async function attempt(target: TestTarget): Promise<pg.DatabaseError | undefined> {
    const gw = await startTestGateway({ targets: [target], users: [{ name: 'alice', password: ALICE }] });
    try {
      const c = new pg.Client(gw.clientConfig('alice', ALICE));
      c.on('error', () => undefined);
      try {
        await c.connect();
        const r = await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
        assert.equal(r.rows[0]?.ssl, true, 'the upstream session is encrypted');
        await c.end();
        return undefined;
      } catch (e) {
        return e as pg.DatabaseError;
      }
    } finally {
      await gw.stop();
    }
  }

  const target = (port: number, tls: TestTarget['tls']): TestTarget => ({
    port,
    database: 'appdb',
    user: 'app',
    password: UP,
    ...(tls ? { tls } : {}),
  });

  it('the name in the certificate (server_name, or the host) verifies', async () => {
    const proxy = await recordingProxy(upstream.port);
    try {
      assert.equal(
        await attempt(
          target(proxy.port, { mode: 'verify-full', ca_file: pki.caCert, server_name: 'db.test' }),
        ),
        undefined,
      );
      // Without server_name the host is checked: 127.0.0.1 is an IP SAN of the test certificate.
      assert.equal(
        await attempt(target(proxy.port, { mode: 'verify-full', ca_file: pki.caCert })),
        undefined,
      );
      assert.ok(!proxy.sent().includes(Buffer.from(UP)), 'SCRAM never sends the password itself');
    } finally {
      await proxy.close();
    }
  });

  it('a wrong server_name is refused before anything but the handshake is sent', async () => {
    const proxy = await recordingProxy(upstream.port);
    try {
      const e = await attempt(
        target(proxy.port, { mode: 'verify-full', ca_file: pki.caCert, server_name: 'other.test' }),
      );
      assert.ok(e, 'refused');
      assert.equal(e.code, '08001');
      assert.match(e.message, /TLS to upstream .* failed: .*(altnames|Hostname|other\.test)/i);
      assert.doesNotMatch(e.message, new RegExp(UP));
      assertNothingInClear(proxy.sent());
    } finally {
      await proxy.close();
    }
  });

  it('a certificate from another CA is refused (verify-full and verify-ca), nothing in clear', async () => {
    for (const mode of ['verify-full', 'verify-ca'] as const) {
      const proxy = await recordingProxy(upstream.port);
      try {
        const e = await attempt(
          target(proxy.port, { mode, ca_file: other.caCert, server_name: 'localhost' }),
        );
        assert.ok(e, `${mode}: refused`);
        assert.equal(e.code, '08001');
        assert.match(e.message, /TLS to upstream .* failed: .*(self.signed|unable to (get|verify))/i);
        assertNothingInClear(proxy.sent());
      } finally {
        await proxy.close();
      }
    }
  });

  it('verify-ca checks the CA but not the name', async () => {
    assert.equal(
      await attempt(
        target(upstream.port, { mode: 'verify-ca', ca_file: pki.caCert, server_name: 'other.test' }),
      ),
      undefined,
    );
  });

  it('a server that declines TLS gets no startup packet and no password (no fallback to plaintext)', async () => {
    for (const mode of ['verify-full', 'require'] as const) {
      const fake = await recordingProxy({ reply: Buffer.from('N') });
      try {
        const e = await attempt(target(fake.port, { mode, ca_file: pki.caCert }));
        assert.ok(e, `${mode}: refused`);
        assert.equal(e.code, '08001');
        assert.match(e.message, /does not support TLS/);
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(fake.sent(), sslRequest(), 'only the SSLRequest was sent');
      } finally {
        await fake.close();
      }
    }
  });
});
