// End to end: the admin API over HTTPS when `admin_api.tls` is configured (TLS 1.2+, no plain HTTP, key file 0600).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from './harness/certs.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';
import { isWardenError } from '../src/core/errors.js';

const SHARED_PG = { port: 5432, database: 'postgres', user: 'postgres' };

function request(
  mod: typeof http | typeof https,
  port: number,
  path: string,
  opts: https.RequestOptions = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = mod.request(
      { host: 'localhost', port, path, method: 'GET', timeout: 5000, ...opts },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('admin API over TLS', () => {
  let dir: string;
  let pki: TestPki;
  let gw: TestGateway;
  let token: string;
  let port: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-apitls-'));
    pki = await makeTestPki(join(dir, 'pki'));
    const tokensFile = join(dir, 'tokens.yaml');
    token = addTokenToFile(tokensFile, { user: 'alice', roles: ['viewer'] }).token;
    gw = await startTestGateway({
      targets: [SHARED_PG],
      users: [{ name: 'alice', password: 'pw' }],
      adminApi: {
        listen: { host: '127.0.0.1', port: 0 },
        tokens_file: tokensFile,
        tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
      },
    });
    port = gw.gateway.adminApi?.port ?? 0;
    assert.ok(port > 0);
  });
  after(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers over HTTPS with a verified certificate', async () => {
    const ca = readFileSync(pki.caCert);
    const r = await request(https, port, '/api/whoami', {
      ca,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(r.status, 200, r.body);
    assert.match(r.body, /"alice"/);
    const anon = await request(https, port, '/api/whoami', { ca });
    assert.equal(anon.status, 401);
  });

  it('does not answer plain HTTP', async () => {
    await assert.rejects(request(http, port, '/healthz'));
  });

  it('refuses TLS 1.1', async () => {
    await assert.rejects(
      request(https, port, '/healthz', {
        ca: readFileSync(pki.caCert),
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
        ciphers: 'DEFAULT@SECLEVEL=0',
      }),
      /alert protocol version/i,
    );
  });

  it('refuses a key file readable by others', async () => {
    const key = join(dir, 'loose.key');
    copyFileSync(pki.serverKey, key);
    chmodSync(key, 0o644);
    await assert.rejects(
      startTestGateway({
        targets: [SHARED_PG],
        users: [{ name: 'alice', password: 'pw' }],
        adminApi: {
          listen: { host: '127.0.0.1', port: 0 },
          tokens_file: join(dir, 'tokens.yaml'),
          tls: { cert_file: pki.serverCert, key_file: key },
        },
      }),
      (e: unknown) =>
        isWardenError(e, 'CONFIG_INVALID') && /chmod 600/.test(e.message) && e.message.includes(key),
    );
  });
});
