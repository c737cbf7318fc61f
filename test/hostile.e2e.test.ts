// End to end: hostile clients (garbage, slow bytes, abandoned TLS, floods) never crash the gateway or disturb other sessions.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { makeTestPki } from './harness/certs.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';

const UP = 'hostile-up';
const PW = 'hostile-pw';

function closedWithin(socket: net.Socket): Promise<number> {
  const t = Date.now();
  socket.resume();
  return new Promise((resolve) => socket.on('close', () => resolve(Date.now() - t)));
}

describe('hostile clients', () => {
  let dir: string;
  let upstream: PgInstance;
  let gw: TestGateway;
  let healthy: pg.Client;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-hostile-'));
    const pki = await makeTestPki(dir);
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: UP }],
      users: [{ name: 'alice', password: PW }],
      tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
      limits: { startup_timeout_ms: 1500, max_connections: 20 },
    });
    healthy = await gw.connect('alice', PW);
  });

  after(async () => {
    await healthy?.end();
    await gw?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const stillHealthy = async (): Promise<void> => {
    const r = await healthy.query('SELECT 1 AS ok');
    assert.equal(r.rows[0]?.ok, 1);
  };

  it('survives random garbage as the first bytes, many times', async () => {
    for (let i = 0; i < 50; i++) {
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      const closed = closedWithin(s);
      s.on('error', () => undefined);
      s.end(randomBytes(1 + (i % 40) * 7));
      await closed;
    }
    await stillHealthy();
  });

  it('cuts a client that sends its startup packet one byte at a time', async () => {
    const s = net.connect({ host: '127.0.0.1', port: gw.port });
    s.on('error', () => undefined);
    const closed = closedWithin(s);
    const packet = Buffer.concat([
      Buffer.from([0, 0, 0, 40, 0, 3, 0, 0]),
      Buffer.from('user\0alice\0database\0main\0\0'.padEnd(32, '\0')),
    ]);
    let i = 0;
    const timer = setInterval(() => {
      if (i < packet.length && !s.destroyed) s.write(packet.subarray(i, ++i));
    }, 200);
    const took = await closed;
    clearInterval(timer);
    assert.ok(took >= 1400 && took < 4000, `closed after ${took} ms`);
    await stillHealthy();
  });

  it('cuts a TLS handshake abandoned halfway', async () => {
    const s = net.connect({ host: '127.0.0.1', port: gw.port });
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    const answer = new Promise<Buffer>((resolve) => s.once('data', resolve));
    s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    assert.equal((await answer).toString(), 'S');
    // Complete the TLS handshake, then never send the startup packet.
    const t = tls.connect({ socket: s, rejectUnauthorized: false });
    t.on('error', () => undefined);
    const took = await closedWithin(t);
    assert.ok(took < 4000, `closed after ${took} ms`);
    await stillHealthy();
  });

  it('cuts a client that stops in the middle of the TLS handshake', async () => {
    const s = net.connect({ host: '127.0.0.1', port: gw.port });
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    const answer = new Promise<Buffer>((resolve) => s.once('data', resolve));
    s.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    assert.equal((await answer).toString(), 'S');
    // The first bytes of a TLS record header, then silence.
    s.write(Buffer.from([0x16, 0x03, 0x01]));
    const took = await closedWithin(s);
    assert.ok(took < 4000, `closed after ${took} ms`);
    await stillHealthy();
  });

  it('refuses connections beyond max_connections and keeps serving the existing ones', async () => {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 40; i++) {
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      s.on('error', () => undefined);
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(gw.gateway.pg.sessions.size <= 20, `${gw.gateway.pg.sessions.size} sessions`);
    await stillHealthy();
    for (const s of sockets) s.destroy();
  });
});
