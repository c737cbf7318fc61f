// Tests for GuardedPgClient: a server asking for a cleartext password over plain TCP gets an error, never the password.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { GuardedPgClient, cleartextGuardActive } from './pg-client.js';

const SECRET = 'canary-cleartext-Jx4Rv8';

/** A fake server that answers the startup packet with AuthenticationCleartextPassword and records the rest. */
async function cleartextAsker(): Promise<{
  port: number;
  received: () => Buffer;
  close: () => Promise<void>;
}> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let first = true;
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (first) {
        first = false;
        const auth = Buffer.alloc(9);
        auth.write('R', 0);
        auth.writeInt32BE(8, 1);
        auth.writeInt32BE(3, 5); // AuthenticationCleartextPassword
        s.write(auth);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => Buffer.concat(chunks),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

void test('the guard is active on the node-postgres in use', () => {
  assert.equal(cleartextGuardActive, true);
});

void test('a cleartext password request over plain TCP is refused; plain node-postgres would have sent it', async () => {
  const fake = await cleartextAsker();
  try {
    const config = { host: '127.0.0.1', port: fake.port, user: 'app', password: SECRET, database: 'db' };
    const guarded = new GuardedPgClient(config);
    guarded.on('error', () => undefined);
    await assert.rejects(guarded.connect(), /cleartext password over an unencrypted connection/);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(!fake.received().includes(Buffer.from(SECRET)), 'the password was not sent');

    // Control: the same exchange with the stock client does send it (so the fake server asks correctly).
    const stock = new pg.Client(config);
    stock.on('error', () => undefined);
    void stock.connect().catch(() => undefined);
    const deadline = Date.now() + 5000;
    while (!fake.received().includes(Buffer.from(SECRET)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(fake.received().includes(Buffer.from(SECRET)), 'the stock client sends it in clear');
    await stock.end().catch(() => undefined);
  } finally {
    await fake.close();
  }
});

void test('a pool built with the guarded client refuses too', async () => {
  const fake = await cleartextAsker();
  const pool = new pg.Pool({
    Client: GuardedPgClient,
    host: '127.0.0.1',
    port: fake.port,
    user: 'app',
    password: SECRET,
    database: 'db',
  });
  pool.on('error', () => undefined);
  try {
    await assert.rejects(pool.query('SELECT 1'), /cleartext password/);
    assert.ok(!fake.received().includes(Buffer.from(SECRET)));
  } finally {
    await pool.end();
    await fake.close();
  }
});
