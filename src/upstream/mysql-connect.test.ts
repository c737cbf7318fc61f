// Tests for the MySQL upstream login: full caching_sha2 authentication never sends the password over plain TCP.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { connectMysqlUpstream } from './mysql-connect.js';
import { CAP } from '../wire/mysql/constants.js';
import { encodeHandshakeV10 } from '../wire/mysql/codec.js';
import { packet } from '../wire/mysql/framing.js';

const SECRET = 'canary-mysql-full-auth-Wq3Ez7';

/**
 * A fake MySQL 8 server without TLS: greets with caching_sha2_password, asks for full authentication (0x01 0x04),
 * and hands out its own RSA public key to whoever asks (as a machine in the middle would). Records all it gets.
 */
async function fullAuthServer(): Promise<{
  port: number;
  received: () => Buffer[];
  close: () => Promise<void>;
}> {
  const got: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string);
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    const caps = CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH | 0x0001 | 0x0004 | 0x2000;
    s.write(
      packet(
        0,
        encodeHandshakeV10({
          serverVersion: '8.0.36-fake',
          connectionId: 7,
          authPluginData: Buffer.alloc(20, 0x41),
          capabilities: caps,
          charset: 45,
          status: 2,
          authPluginName: 'caching_sha2_password',
        }),
      ),
    );
    let step = 0;
    s.on('data', (d: Buffer) => {
      got.push(d);
      step++;
      if (step === 1)
        s.write(packet(2, Buffer.from([0x01, 0x04]))); // perform full authentication
      else if (step === 2) s.write(packet(4, Buffer.concat([Buffer.from([0x01]), pem]))); // "here is my key"
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => got,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

void test('full caching_sha2 authentication over plain TCP is refused: no key is asked for, no password sent', async () => {
  const fake = await fullAuthServer();
  try {
    await assert.rejects(
      connectMysqlUpstream(
        { host: '127.0.0.1', port: fake.port, tls: 'disable', connectTimeoutMs: 5000 },
        { user: 'app', password: SECRET },
        { database: 'db' },
      ),
      /only over TLS/,
    );
    await new Promise((r) => setTimeout(r, 100));
    const packets = fake.received();
    assert.equal(packets.length, 1, 'only the handshake response was sent (no public key request 0x02)');
    assert.ok(!Buffer.concat(packets).includes(Buffer.from(SECRET)));
  } finally {
    await fake.close();
  }
});
