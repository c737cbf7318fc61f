// End to end: the admin API next to a real gateway lists a live node-postgres session and counts it in /metrics.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { startAdminApi, type AdminApi } from '../src/admin-api/server.js';
import { createWardenMetrics } from '../src/admin-api/metrics.js';
import { createApiToken } from '../src/admin-api/tokens.js';
import { listLiveSessions } from '../src/admin-api/gateway-sessions.js';
import { call, fakeWorld } from '../src/admin-api/test-support.js';
import { loadPolicy } from '../src/policy/load.js';

const UP_PASSWORD = 'up-secret-A7';
const ALICE = 'alice-pw-9';

describe('admin API next to a real gateway', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let api: AdminApi;
  let client: pg.Client | undefined;
  const viewer = createApiToken({ user: 'vic', roles: ['viewer'] });
  const metrics = createWardenMetrics();

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: UP_PASSWORD }],
      users: [{ name: 'alice', password: ALICE }],
    });
    // Everything but sessions and readiness comes from the in-memory world; sessions are the gateway's own.
    const world = fakeWorld(loadPolicy(new URL('./fixtures/policy/demo', import.meta.url).pathname));
    metrics.registry.onCollect(() => metrics.sessionsActive.set(listLiveSessions(gw.gateway.pg).length));
    api = await startAdminApi({
      host: '127.0.0.1',
      port: 0,
      tokens: [viewer.record],
      providers: {
        ...world.providers,
        sessions: { list: () => listLiveSessions(gw.gateway.pg), timeline: () => Promise.resolve(undefined) },
        ready: {
          upstream: async () => {
            await upstream.query('SELECT 1', 'appdb');
          },
        },
      },
      metrics,
      log: () => {},
      checkResponses: true,
    });
  });

  after(async () => {
    await client?.end().catch(() => {});
    await api?.close();
    await gw?.stop();
    await upstream?.stop();
  });

  it('GET /api/sessions lists a live node-postgres session, and drops it once closed', async () => {
    const before = await call(api.port, 'GET', '/api/sessions', { token: viewer.token });
    assert.deepEqual(before.json, { sessions: [] });
    client = await gw.connect('alice', ALICE);
    await client.query("SET application_name = 'e2e-admin'");
    const r = await call(api.port, 'GET', '/api/sessions', { token: viewer.token });
    assert.equal(r.status, 200);
    assert.equal(r.json.sessions.length, 1);
    const s = r.json.sessions[0];
    assert.equal(s.user, 'alice');
    assert.equal(s.target, 'main');
    assert.equal(s.database, 'appdb');
    assert.equal(s.protocol, 'postgres');
    assert.equal(s.sourceAddress, '127.0.0.1');
    assert.ok(Date.now() - Date.parse(s.startedAt) < 60_000);
    const m = await call(api.port, 'GET', '/metrics', { token: viewer.token });
    assert.match(m.text, /^warden_sessions_active 1$/m);
    assert.equal((await call(api.port, 'GET', '/readyz')).status, 200);
    await client.end();
    client = undefined;
    for (let i = 0; i < 50; i++) {
      const after = await call(api.port, 'GET', '/api/sessions', { token: viewer.token });
      if (after.json.sessions.length === 0) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.fail('the closed session is still listed');
  });
});
