// Tests of the console's static file serving through a real admin API server: CSP, types, traversal refusals, whoami.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAdminApi, type AdminApi } from '../admin-api/server.js';
import { createWardenMetrics } from '../admin-api/metrics.js';
import { createApiToken } from '../admin-api/tokens.js';
import { CONSOLE_CSP, defaultConsoleRoot, isConsolePath, serveConsole } from './static.js';

describe('console static files', () => {
  let api: AdminApi;
  let off: AdminApi;
  let root: string;
  const carol = createApiToken({ user: 'carol', roles: ['approver'] });
  const get = (path: string, init: RequestInit = {}, port = api.port): Promise<Response> =>
    fetch(`http://127.0.0.1:${port}${path}`, { redirect: 'manual', ...init });

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'warden-console-static-'));
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(root, 'app.js'), 'export {};');
    writeFileSync(join(root, 'secret.txt'), 'no');
    const base = { host: '127.0.0.1', port: 0, providers: {} as never, log: () => undefined };
    api = await startAdminApi({
      ...base,
      tokens: [carol.record],
      metrics: createWardenMetrics(),
      console: { root },
    });
    off = await startAdminApi({ ...base, tokens: [], metrics: createWardenMetrics(), console: false });
  });
  after(async () => {
    await api.close();
    await off.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves index.html at / and /console/, modules as JavaScript, all with the strict CSP', async () => {
    for (const [path, type] of [
      ['/', 'text/html; charset=utf-8'],
      ['/console/', 'text/html; charset=utf-8'],
      ['/console/app.js', 'text/javascript; charset=utf-8'],
    ] as const) {
      const r = await get(path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('content-type'), type);
      assert.equal(r.headers.get('content-security-policy'), CONSOLE_CSP);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('x-frame-options'), 'DENY');
    }
    assert.equal(await (await get('/console/app.js')).text(), 'export {};');
    const head = await get('/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    const moved = await get('/console');
    assert.equal(moved.status, 308);
    assert.equal(moved.headers.get('location'), '/console/');
  });

  it('refuses names outside the allowed set: traversal, other types, sub-folders, unknown files, POST', async () => {
    for (const path of [
      '/console/secret.txt',
      '/console/..%2Fstatic.ts',
      '/console/sub/app.js',
      '/console/App.js',
      '/console/missing.js',
    ]) {
      const r = await get(path);
      assert.equal(r.status, 404, path);
      assert.equal(r.headers.get('content-security-policy'), CONSOLE_CSP);
    }
    const post = await get('/', { method: 'POST' });
    assert.equal(post.status, 405);
    // Paths a client would normalise before sending, given to the server as is.
    for (const raw of ['/console/../../etc/passwd', '/console/%2e%2e/x.js', '/console/app.js%00.html'])
      assert.equal((await serveConsole('GET', raw, root)).status, 404, raw);
  });

  it('does not shadow the API, and can be turned off', async () => {
    assert.equal(isConsolePath('/api/whoami'), false);
    assert.equal(isConsolePath('/consoles'), false);
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/', {}, off.port)).status, 404);
  });

  it('whoami names the caller and its effective roles, and needs a token', async () => {
    const r = await get('/api/whoami', { headers: { authorization: `Bearer ${carol.token}` } });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { user: 'carol', via: 'token', roles: ['viewer', 'approver'] });
    assert.equal((await get('/api/whoami')).status, 401);
  });

  it('the default root holds the real console files', async () => {
    const r = await serveConsole('GET', '/', defaultConsoleRoot());
    assert.equal(r.status, 200);
    assert.match(r.body.toString(), /<script type="module" src="\/console\/app\.js"><\/script>/);
  });
});
