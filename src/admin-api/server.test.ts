// API tests for every admin endpoint: authentication (tokens, JWTs), roles and separation of duties, validation, OpenAPI consistency, logs.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { loadPolicy } from '../policy/load.js';
import { encodeEntry } from '../audit/entry.js';
import { leafHash, verifyInclusion } from '../audit/merkle.js';
import { isWardenError } from '../core/errors.js';
import { parseJwks } from './jwt.js';
import { createWardenMetrics } from './metrics.js';
import { buildOpenApiDocument } from './openapi.js';
import { ROUTES } from './routes.js';
import { startAdminApi, type AdminApi, type AdminOidcOptions, type RequestLogRecord } from './server.js';
import { call, fakeWorld, signJwt, type FakeWorld } from './test-support.js';
import { createApiToken, type ApiTokenRecord } from './tokens.js';

const POLICY = loadPolicy(new URL('../../test/fixtures/policy/demo', import.meta.url).pathname);
const ISSUER = 'https://idp.test/';
const AUDIENCE = 'warden-admin';
const NOW = Date.parse('2024-05-01T12:00:00.000Z');
const nowSec = NOW / 1000;

function keyPair(kind: 'rsa' | 'ec' | 'ed25519'): { privateKey: KeyObject; jwk: Record<string, unknown> } {
  const kp =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : kind === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  return {
    privateKey: kp.privateKey,
    jwk: kp.publicKey.export({ format: 'jwk' }),
  };
}

const RSA = keyPair('rsa');
const EC = keyPair('ec');
const ED = keyPair('ed25519');
const OTHER_RSA = keyPair('rsa');

const TOKENS: Record<string, { token: string; record: ApiTokenRecord }> = {
  viewer: createApiToken({ user: 'vic', roles: ['viewer'] }),
  auditor: createApiToken({ user: 'audrey', roles: ['auditor'] }),
  approver: createApiToken({ user: 'aaron', roles: ['approver'] }),
  operator: createApiToken({ user: 'olga', roles: ['operator'], expires: new Date(NOW + 3600_000) }),
  expired: createApiToken({ user: 'ed', roles: ['viewer'], expires: new Date(NOW - 1000) }),
};
const tok = (role: keyof typeof TOKENS): string => TOKENS[role]?.token ?? '';

const OIDC: AdminOidcOptions = {
  issuer: ISSUER,
  audience: [AUDIENCE],
  keys: parseJwks({
    keys: [
      { ...RSA.jwk, kid: 'rsa1' },
      { ...EC.jwk, kid: 'ec1' },
      { ...ED.jwk, kid: 'ed1' },
    ],
  }),
  userClaim: 'preferred_username',
  userRoles: { alice: ['approver'], oscar: ['operator', 'auditor'] },
};

function jwt(
  over: Record<string, unknown> = {},
  key: { privateKey: KeyObject } = RSA,
  alg: 'RS256' | 'ES256' | 'EdDSA' = 'RS256',
  kid = 'rsa1',
): string {
  return signJwt(
    { iss: ISSUER, aud: AUDIENCE, exp: nowSec + 300, nbf: nowSec - 10, preferred_username: 'alice', ...over },
    key.privateKey,
    alg,
    { kid },
  );
}

describe('admin API', () => {
  let api: AdminApi;
  let world: FakeWorld;
  const logs: RequestLogRecord[] = [];
  const metrics = createWardenMetrics();
  const get = (path: string, token?: string): ReturnType<typeof call> =>
    call(api.port, 'GET', path, token === undefined ? {} : { token });
  const post = (path: string, body: unknown, token?: string): ReturnType<typeof call> =>
    call(api.port, 'POST', path, { body, ...(token === undefined ? {} : { token }) });

  before(async () => {
    world = fakeWorld(POLICY);
    api = await startAdminApi({
      host: '127.0.0.1',
      port: 0,
      tokens: Object.values(TOKENS).map((t) => t.record),
      oidc: OIDC,
      providers: world.providers,
      metrics,
      log: (r) => logs.push(r),
      checkResponses: true,
      now: () => new Date(NOW),
    });
  });
  after(() => api.close());

  describe('OpenAPI document', () => {
    it('lists every route and nothing else, and the server answers each documented operation', async () => {
      const doc = (await get('/api/openapi.json')).json as {
        openapi: string;
        paths: Record<string, Record<string, unknown>>;
      };
      assert.equal(doc.openapi, '3.1.0');
      assert.deepEqual(doc, JSON.parse(JSON.stringify(buildOpenApiDocument())));
      const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
      );
      const routed = ROUTES.map((r) => `${r.method} ${r.path}`);
      assert.deepEqual([...documented].sort(), [...routed].sort());
      for (const op of documented) {
        const [method = '', path = ''] = op.split(' ');
        const concrete = path.replace('{id}', 'apr-1').replace('{index}', '0');
        const r = await call(api.port, method, concrete, { token: tok('operator') });
        assert.notEqual(r.json?.error?.code, 'no_route', `${op} is documented but not routed`);
      }
      const unknown = await get('/api/nope', tok('viewer'));
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, 'no_route');
    });

    it('documents request schemas and role requirements from the same table', async () => {
      const doc = (await get('/api/openapi.json')).json;
      const bundlePost = doc.paths['/api/policy/bundles'].post;
      assert.deepEqual(bundlePost['x-warden-roles'], ['operator']);
      assert.equal(
        bundlePost.requestBody.content['application/json'].schema.properties.signatures.minItems,
        1,
      );
      const search = doc.paths['/api/audit/entries'].get.parameters.map((p: { name: string }) => p.name);
      assert.deepEqual(search, ['user', 'target', 'decision', 'since', 'until', 'limit']);
    });

    it('answers 405 with Allow for a known path and a wrong method', async () => {
      const r = await call(api.port, 'DELETE', '/api/sessions', { token: tok('viewer') });
      assert.equal(r.status, 405);
      assert.equal(r.headers.get('allow'), 'GET');
    });
  });

  describe('health, readiness, metrics', () => {
    it('healthz and readyz need no credentials; readyz is 503 naming the failed check', async () => {
      assert.deepEqual((await get('/healthz')).json, { status: 'ok' });
      const ready = await get('/readyz');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json, { ready: true, checks: { upstream: 'ok', audit_store: 'ok' } });
      world.ready['audit_store'] = false;
      try {
        const r = await get('/readyz');
        assert.equal(r.status, 503);
        assert.deepEqual(r.json, { ready: false, checks: { upstream: 'ok', audit_store: 'failed' } });
      } finally {
        world.ready['audit_store'] = true;
      }
      world.ready['upstream'] = false;
      assert.equal((await get('/readyz')).json.checks.upstream, 'failed');
      world.ready['upstream'] = true;
    });

    it('metrics are Prometheus text for viewers, with the gateway metrics and API request counts', async () => {
      assert.equal((await get('/metrics')).status, 401);
      metrics.statements.inc({ decision: 'deny' });
      metrics.statementSeconds.observe(0.004, { decision: 'allow' });
      const r = await get('/metrics', tok('viewer'));
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.match(r.text, /^# TYPE warden_statements_total counter$/m);
      assert.match(r.text, /^warden_statements_total\{decision="deny"\} 1$/m);
      assert.match(r.text, /^warden_statement_duration_seconds_bucket\{decision="allow",le="0\.005"\} 1$/m);
      assert.match(
        r.text,
        /^warden_admin_api_requests_total\{method="GET",route="metrics",status="401"\} 1$/m,
      );
    });
  });

  describe('authentication', () => {
    it('401 for a missing, malformed, unknown, wrong or expired token, with WWW-Authenticate', async () => {
      const missing = await get('/api/sessions');
      assert.equal(missing.status, 401);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="warden"');
      assert.match(missing.json.error.message, /missing bearer token/);
      const basic = await call(api.port, 'GET', '/api/sessions', {
        headers: { authorization: 'Basic dTpw' },
      });
      assert.equal(basic.status, 401);
      const viewer = tok('viewer');
      const wrongSecret = viewer.slice(0, -4) + (viewer.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      for (const t of [wrongSecret, 'wdn_nosuch_secret', 'garbage']) {
        const r = await get('/api/sessions', t);
        assert.equal(r.status, 401, t);
        assert.match(r.json.error.message, /invalid API token|malformed API token/);
      }
      const expired = await get('/api/sessions', tok('expired'));
      assert.equal(expired.status, 401);
      assert.equal(expired.json.error.message, 'API token expired');
      assert.equal((await get('/api/sessions', viewer)).status, 200);
    });

    it('accepts OIDC JWTs signed with RS256, ES256 and EdDSA keys from the JWKS', async () => {
      for (const [key, alg, kid] of [
        [RSA, 'RS256', 'rsa1'],
        [EC, 'ES256', 'ec1'],
        [ED, 'EdDSA', 'ed1'],
      ] as const) {
        const r = await get('/api/approvals', jwt({}, key, alg, kid));
        assert.equal(r.status, 200, alg);
      }
    });

    it('401 for a bad signature, wrong issuer or audience, expiry, nbf, unknown key or unsafe algorithm', async () => {
      const cases: [string, string][] = [
        [jwt({}, OTHER_RSA), 'invalid JWT: bad signature'],
        [jwt({ iss: 'https://evil.test/' }), 'invalid JWT: wrong issuer'],
        [jwt({ aud: 'someone-else' }), 'invalid JWT: wrong audience'],
        [jwt({ exp: nowSec - 120 }), 'invalid JWT: expired'],
        [jwt({ exp: undefined }), 'invalid JWT: expired'],
        [jwt({ nbf: nowSec + 600 }), 'invalid JWT: not yet valid'],
        [jwt({}, RSA, 'RS256', 'nope'), 'invalid JWT: no configured key matches'],
        [jwt({ preferred_username: undefined }), 'invalid JWT: the user claim is missing or not a user name'],
      ];
      // alg "none" and HMAC are refused whatever the signature.
      const [h, p] = jwt().split('.');
      const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
      const hs = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'rsa1' })).toString('base64url');
      cases.push([`${none}.${p}.x`, 'invalid JWT: unsupported algorithm (RS256, ES256 or EdDSA)']);
      cases.push([`${hs}.${p}.x`, 'invalid JWT: unsupported algorithm (RS256, ES256 or EdDSA)']);
      // A signature made by the EC key presented under the RSA algorithm.
      cases.push([`${h}.${p}.${jwt({}, EC, 'ES256', 'ec1').split('.')[2]}`, 'invalid JWT: bad signature']);
      for (const [t, message] of cases) {
        const r = await get('/api/approvals', t);
        assert.equal(r.status, 401, message);
        assert.equal(r.json.error.message, message);
      }
    });

    it('an authenticated OIDC user without API roles may only make requests', async () => {
      const nobody = jwt({ preferred_username: 'nina' });
      const r = await get('/api/sessions', nobody);
      assert.equal(r.status, 403);
      assert.equal(r.json.error.message, 'requires role viewer');
      const req = await post(
        '/api/requests',
        { role: 'dba', durationMinutes: 30, reason: 'incident 42' },
        nobody,
      );
      assert.equal(req.status, 201);
      assert.equal(req.json.requester, 'nina');
    });
  });

  describe('authorization by role', () => {
    // Which caller may reach each route (null: public). Others get 403 naming the role.
    const ALLOWED: Record<string, readonly string[] | null> = {
      healthz: null,
      readyz: null,
      openapi: null,
      whoami: ['viewer', 'auditor', 'approver', 'operator'],
      metrics: ['viewer', 'auditor', 'approver', 'operator'],
      listSessions: ['viewer', 'auditor', 'approver', 'operator'],
      sessionTimeline: ['auditor'],
      searchAuditEntries: ['auditor'],
      getAuditEntry: ['auditor'],
      verifyAudit: ['auditor'],
      getPolicy: ['viewer', 'auditor', 'approver', 'operator'],
      listBundles: ['viewer', 'auditor', 'approver', 'operator'],
      submitBundle: ['operator'],
      diffBundles: ['viewer', 'auditor', 'approver', 'operator'],
      accessMatrix: ['viewer', 'auditor', 'approver', 'operator'],
      listApprovals: ['auditor', 'approver'],
      getApproval: ['auditor', 'approver'],
      approve: ['approver'],
      deny: ['approver'],
      requestRole: ['viewer', 'auditor', 'approver', 'operator'],
    };
    const SAMPLE: Record<string, { path: string; body?: unknown }> = {
      sessionTimeline: { path: '/api/sessions/s-alice/timeline' },
      getAuditEntry: { path: '/api/audit/entries/0' },
      diffBundles: { path: '/api/policy/diff?from=2&to=3' },
      accessMatrix: { path: '/api/policy/access-matrix?table=public.customers' },
      getApproval: { path: '/api/approvals/apr-1' },
      approve: { path: '/api/approvals/nosuch/approve', body: { reason: 'ok' } },
      deny: { path: '/api/approvals/nosuch/deny', body: { reason: 'no' } },
      submitBundle: {
        path: '/api/policy/bundles',
        body: { payloadType: 'x', payload: 'bm8=', signatures: [{ keyid: 'k', sig: 'AA==' }] },
      },
      requestRole: { path: '/api/requests', body: { role: 'dba', durationMinutes: 5, reason: 'r' } },
    };

    it('every route in the table is covered by this test', () => {
      assert.deepEqual(Object.keys(ALLOWED).sort(), ROUTES.map((r) => r.operationId).sort());
    });

    for (const route of ROUTES) {
      it(`${route.method} ${route.path}`, async () => {
        const allowed = ALLOWED[route.operationId];
        const sample = SAMPLE[route.operationId] ?? { path: route.path };
        for (const role of ['viewer', 'auditor', 'approver', 'operator'] as const) {
          const r = await call(api.port, route.method, sample.path, {
            token: tok(role),
            ...(sample.body !== undefined ? { body: sample.body } : {}),
          });
          if (allowed === null || allowed === undefined || allowed.includes(role)) {
            assert.ok(r.status !== 401 && r.status !== 403, `${role}: ${r.status} ${r.text}`);
          } else {
            assert.equal(r.status, 403, `${role} should be refused`);
            assert.equal(
              r.json.error.message,
              `requires role ${(route.auth as readonly string[]).join(' or ')}`,
            );
          }
        }
        if (allowed !== null) assert.equal((await call(api.port, route.method, sample.path)).status, 401);
      });
    }
  });

  describe('separation of duties', () => {
    const base = {
      host: '127.0.0.1',
      port: 0,
      providers: {} as never,
      metrics: createWardenMetrics(),
      log: () => {},
    };

    it('refuses, at start, a user holding operator and approver through two tokens', async () => {
      const a = createApiToken({ user: 'mallory', roles: ['operator'] }).record;
      const b = createApiToken({ user: 'mallory', roles: ['approver', 'viewer'] }).record;
      await assert.rejects(
        startAdminApi({ ...base, tokens: [a, b] }),
        (e) => isWardenError(e, 'CONFIG_INVALID') && /mallory.*operator.*approver/.test(e.message),
      );
      const both = createApiToken({ user: 'mallory', roles: ['operator', 'approver'] }).record;
      await assert.rejects(startAdminApi({ ...base, tokens: [both] }), (e) =>
        isWardenError(e, 'CONFIG_INVALID'),
      );
    });

    it('refuses a user made operator by a token and approver by the OIDC role map', async () => {
      const a = createApiToken({ user: 'alice', roles: ['operator'] }).record;
      await assert.rejects(startAdminApi({ ...base, tokens: [a], oidc: OIDC }), (e) =>
        isWardenError(e, 'CONFIG_INVALID'),
      );
    });

    it('an approver cannot submit bundles; an operator cannot approve or deny', async () => {
      const env = { payloadType: 'x', payload: 'b2s=', signatures: [{ keyid: 'k', sig: 'AA==' }] };
      const byApprover = await post('/api/policy/bundles', env, tok('approver'));
      assert.equal(byApprover.status, 403);
      assert.equal(byApprover.json.error.message, 'requires role operator');
      const byOidcOperator = await post(
        '/api/approvals/apr-1/approve',
        { reason: 'ok' },
        jwt({ preferred_username: 'oscar' }),
      );
      assert.equal(byOidcOperator.status, 403);
      assert.equal(byOidcOperator.json.error.message, 'requires role approver');
      assert.equal((await post('/api/approvals/apr-1/deny', { reason: 'x' }, tok('operator'))).status, 403);
      assert.equal(world.activated.length, 0);
      assert.equal(world.approvals.items.get('apr-1')?.state, 'pending');
    });
  });

  describe('validation', () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ['GET', '/api/audit/entries?limit=abc', undefined, 400, /^query\.limit: must be integer$/],
      ['GET', '/api/audit/entries?limit=5000', undefined, 400, /^query\.limit: must be <= 1000$/],
      ['GET', '/api/audit/entries?limit=0', undefined, 400, /^query\.limit: must be >= 1$/],
      [
        'GET',
        '/api/audit/entries?since=yesterday',
        undefined,
        400,
        /^query\.since: must be an ISO-8601 date-time/,
      ],
      [
        'GET',
        '/api/audit/entries?decision=maybe',
        undefined,
        400,
        /^query\.decision: must be one of allow, deny, approval$/,
      ],
      ['GET', '/api/audit/entries?color=red', undefined, 400, /^query: unknown field "color"$/],
      ['GET', '/api/audit/entries?user=a&user=b', undefined, 400, /^query\.user: given more than once$/],
      [
        'GET',
        '/api/audit/entries?since=2024-05-02T00:00:00Z&until=2024-05-01T00:00:00Z',
        undefined,
        400,
        /^query\.since: must not be after query\.until$/,
      ],
      ['GET', '/api/audit/entries/-1', undefined, 400, /^path\.index: must be >= 0$/],
      ['GET', '/api/audit/entries/x', undefined, 400, /^path\.index: must be integer$/],
    ];
    for (const [method, path, body, status, message] of cases) {
      it(`${method} ${path} → ${status}`, async () => {
        const r = await call(api.port, method, path, {
          token: tok('auditor'),
          ...(body !== undefined ? { body } : {}),
        });
        assert.equal(r.status, status);
        assert.equal(r.json.error.code, 'bad_request');
        assert.match(r.json.error.message, message);
      });
    }

    it('bodies: required fields, types, JSON, content type, unsigned bundles, size cap', async () => {
      const a = tok('approver');
      let r = await post('/api/approvals/apr-1/approve', {}, a);
      assert.equal(r.status, 400);
      assert.equal(r.json.error.message, 'body.reason: is required');
      r = await post('/api/approvals/apr-1/approve', { reason: '' }, a);
      assert.equal(r.json.error.message, 'body.reason: must NOT have fewer than 1 characters');
      r = await post('/api/approvals/apr-1/approve', { reason: 'x', approver: 'someone-else' }, a);
      assert.equal(r.json.error.message, 'body: unknown field "approver"');
      r = await call(api.port, 'POST', '/api/approvals/apr-1/approve', {
        token: a,
        rawBody: '{"reason":',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.message, 'body: not valid JSON');
      r = await call(api.port, 'POST', '/api/approvals/apr-1/approve', {
        token: a,
        rawBody: 'reason=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(r.status, 415);
      const o = tok('operator');
      r = await post('/api/policy/bundles', { payloadType: 'x', payload: 'b2s=', signatures: [] }, o);
      assert.equal(r.status, 400);
      assert.equal(r.json.error.message, 'body.signatures: must NOT have fewer than 1 items');
      r = await post('/api/policy/bundles', { policy: { 'a.yaml': 'grants: []' } }, o);
      assert.equal(r.status, 400);
      r = await post('/api/requests', { role: 'dba; drop', durationMinutes: 5, reason: 'r' }, o);
      assert.equal(r.json.error.message, 'body.role: must match pattern "^[A-Za-z0-9_.-]{1,64}$"');
      r = await post('/api/requests', { role: 'dba', durationMinutes: 5000, reason: 'r' }, o);
      assert.equal(r.json.error.message, 'body.durationMinutes: must be <= 1440');
      const big = {
        payloadType: 'x',
        payload: 'A'.repeat(1024 * 1024 + 10),
        signatures: [{ keyid: 'k', sig: 'AA==' }],
      };
      r = await post('/api/policy/bundles', big, o);
      assert.equal(r.status, 413);
      assert.equal(r.json.error.code, 'payload_too_large');
      assert.equal(world.activated.length, 0);
      r = await get('/api/policy/diff?from=2', tok('viewer'));
      assert.equal(r.json.error.message, 'query.to: is required');
      r = await get('/api/policy/access-matrix?table=customers', tok('viewer'));
      assert.equal(r.status, 400);
      assert.match(r.json.error.message, /^query\.table: must match pattern/);
    });
  });

  describe('endpoints', () => {
    it('GET /api/sessions lists live sessions', async () => {
      const r = await get('/api/sessions', tok('viewer'));
      assert.equal(r.json.sessions.length, 1);
      assert.equal(r.json.sessions[0].user, 'alice');
      assert.equal(r.json.sessions[0].startedAt, '2024-05-01T10:00:00.000Z');
    });

    it('GET /api/sessions/{id}/timeline returns events or 404', async () => {
      const r = await get('/api/sessions/s-alice/timeline', tok('auditor'));
      assert.deepEqual(r.json, {
        session: 's-alice',
        events: [{ at: '2024-05-01T10:00:00.000Z', type: 'statement', summary: 'select 1', index: 0 }],
      });
      const missing = await get('/api/sessions/s-none/timeline', tok('auditor'));
      assert.equal(missing.status, 404);
      assert.equal(missing.json.error.code, 'not_found');
    });

    it('GET /api/audit/entries filters by user, target, decision and time, with a default limit', async () => {
      const au = tok('auditor');
      let r = await get('/api/audit/entries', au);
      assert.deepEqual(
        r.json.entries.map((e: { index: number }) => e.index),
        [0, 1, 2, 3, 4],
      );
      assert.equal(world.searches.at(-1)?.limit, 100);
      r = await get('/api/audit/entries?user=alice&decision=deny', au);
      assert.deepEqual(
        r.json.entries.map((e: { index: number }) => e.index),
        [3],
      );
      r = await get(
        '/api/audit/entries?target=main&since=2024-05-01T10:01:00Z&until=2024-05-01T10:03:00.000Z&limit=2',
        au,
      );
      assert.deepEqual(
        r.json.entries.map((e: { index: number }) => e.index),
        [1, 3],
      );
      assert.equal(world.searches.at(-1)?.since?.toISOString(), '2024-05-01T10:01:00.000Z');
    });

    it('GET /api/audit/entries/{index} returns the entry with an inclusion proof that verifies', async () => {
      for (const index of [0, 3, 4]) {
        const r = await get(`/api/audit/entries/${index}`, tok('auditor'));
        assert.equal(r.status, 200);
        const entry = world.entries[index];
        assert.ok(entry !== undefined);
        assert.deepEqual(r.json.entry, JSON.parse(JSON.stringify(entry)));
        const leaf = Buffer.from(r.json.leafHash, 'base64');
        assert.equal(leaf.toString('hex'), Buffer.from(leafHash(encodeEntry(entry))).toString('hex'));
        const hashes = (r.json.proof.hashes as string[]).map((h) => new Uint8Array(Buffer.from(h, 'base64')));
        verifyInclusion(
          index,
          r.json.proof.size,
          leaf,
          hashes,
          new Uint8Array(Buffer.from(r.json.proof.root, 'base64')),
        );
        // A proof for a different index must not verify.
        assert.throws(() =>
          verifyInclusion(
            (index + 1) % 5,
            5,
            leaf,
            hashes,
            new Uint8Array(Buffer.from(r.json.proof.root, 'base64')),
          ),
        );
      }
      assert.equal((await get('/api/audit/entries/5', tok('auditor'))).status, 404);
    });

    it('GET /api/audit/verify reports the verifier result, failures included', async () => {
      let r = await get('/api/audit/verify', tok('auditor'));
      assert.equal(r.json.ok, true);
      assert.equal(r.json.size, 5);
      assert.equal(r.json.root, Buffer.from(world.tree.root()).toString('base64'));
      const good = world.verifyResult;
      world.verifyResult = {
        ...good,
        ok: false,
        size: 2,
        firstError: {
          kind: 'root-mismatch',
          message: 'root differs from checkpoint 0',
          index: 2,
          checkpoint: 0,
        },
      };
      try {
        r = await get('/api/audit/verify', tok('auditor'));
        assert.equal(r.status, 200);
        assert.equal(r.json.ok, false);
        assert.deepEqual(r.json.firstError, {
          kind: 'root-mismatch',
          message: 'root differs from checkpoint 0',
          index: 2,
          checkpoint: 0,
        });
      } finally {
        world.verifyResult = good;
      }
    });

    it('GET /api/policy shows the running bundle, or null', async () => {
      let r = await get('/api/policy', tok('viewer'));
      assert.equal(r.json.running.version, 3);
      assert.equal(r.json.running.signatures.length, 2);
      assert.equal(r.json.running.policy, undefined);
      const running = world.running;
      world.running = undefined;
      try {
        r = await get('/api/policy', tok('viewer'));
        assert.deepEqual(r.json, { running: null });
      } finally {
        world.running = running;
      }
    });

    it('GET /api/policy/bundles and /api/policy/diff', async () => {
      const list = await get('/api/policy/bundles', tok('viewer'));
      assert.deepEqual(
        list.json.bundles.map((b: { version: number; active: boolean }) => [b.version, b.active]),
        [
          [3, true],
          [2, false],
        ],
      );
      const d = await get('/api/policy/diff?from=2&to=3', tok('viewer'));
      assert.equal(d.status, 200);
      assert.match(d.json.diff, /^-x: 1$/m);
      assert.match(d.json.diff, /^\+x: 2$/m);
      const same = await get('/api/policy/diff?from=3&to=3', tok('viewer'));
      assert.equal(same.json.diff, '');
      const missing = await get('/api/policy/diff?from=1&to=3', tok('viewer'));
      assert.equal(missing.status, 404);
      assert.equal(missing.json.error.message, 'no bundle version 1');
    });

    it('POST /api/policy/bundles hands the signed envelope to activation, as the caller', async () => {
      const env = {
        payloadType: 'application/vnd.warden.bundle.v1+json',
        payload: 'b2s=',
        signatures: [{ keyid: 'k', sig: 'AA==' }],
      };
      const r = await post('/api/policy/bundles', env, tok('operator'));
      assert.equal(r.status, 201);
      assert.deepEqual(r.json, { version: 4, hash: 'd'.repeat(64) });
      assert.equal(world.activated.length, 1);
      assert.deepEqual(world.activated[0]?.envelope, env);
      assert.equal(world.activated[0]?.by.user, 'olga');
      const refused = await post('/api/policy/bundles', { ...env, payload: 'bm8=' }, tok('operator'));
      assert.equal(refused.status, 400);
      assert.equal(refused.json.error.code, 'config_invalid');
      assert.equal(refused.json.error.message, 'bundle refused: not enough approver signatures');
      world.activated.length = 0;
    });

    it('GET /api/policy/access-matrix computes who can reach a table under the running policy', async () => {
      const r = await get('/api/policy/access-matrix?table=public.customers', tok('viewer'));
      assert.equal(r.status, 200);
      assert.equal(r.json.version, 3);
      const alice = r.json.rows.find((x: { principal: string }) => x.principal === 'alice');
      assert.deepEqual(alice.operations, ['select']);
      assert.equal(alice.rowFilter, 'tenant_id = {{ user.tenant | int }}');
      assert.deepEqual(
        (await get('/api/policy/access-matrix?table=public.nothing', tok('viewer'))).json.rows,
        [],
      );
    });

    it('approvals: list, filter, get, approve as the caller, self-approval refused, decided is final', async () => {
      const pending = world.approvals.add({
        requester: 'vic',
        sql: 'delete from t where id = 2',
        target: 'main',
      });
      let r = await get('/api/approvals?state=pending', tok('approver'));
      assert.ok(r.json.approvals.some((a: { id: string }) => a.id === pending.id));
      r = await get(`/api/approvals/${pending.id}`, tok('auditor'));
      assert.equal(r.json.sql, 'delete from t where id = 2');
      assert.equal((await get('/api/approvals/apr-999', tok('approver'))).status, 404);
      // apr-1 was requested by alice; alice is an approver through OIDC and cannot approve it herself.
      r = await post('/api/approvals/apr-1/approve', { reason: 'looks fine' }, jwt());
      assert.equal(r.status, 403);
      assert.equal(r.json.error.code, 'insufficient_privilege');
      r = await post(
        `/api/approvals/${pending.id}/approve`,
        { reason: 'checked the ticket' },
        tok('approver'),
      );
      assert.equal(r.status, 200);
      assert.equal(r.json.state, 'approved');
      assert.deepEqual(
        r.json.decisions.map((d: { by: string; reason: string }) => [d.by, d.reason]),
        [['aaron', 'checked the ticket']],
      );
      r = await post(`/api/approvals/${pending.id}/deny`, { reason: 'too late' }, tok('approver'));
      assert.equal(r.status, 409);
      const other = world.approvals.add({ requester: 'vic', role: 'dba', kind: 'role' });
      r = await post(`/api/approvals/${other.id}/deny`, { reason: 'not needed' }, jwt());
      assert.equal(r.json.state, 'denied');
      assert.equal(r.json.decisions[0].by, 'alice');
      r = await get('/api/approvals?state=denied', tok('auditor'));
      assert.deepEqual(
        r.json.approvals.map((a: { id: string }) => a.id),
        [other.id],
      );
    });

    it('POST /api/requests creates a role request for the caller', async () => {
      const r = await post(
        '/api/requests',
        { role: 'dba', target: 'main', durationMinutes: 60, reason: 'migration' },
        tok('auditor'),
      );
      assert.equal(r.status, 201);
      assert.equal(r.json.kind, 'role');
      assert.equal(r.json.requester, 'audrey');
      assert.equal(r.json.role, 'dba');
      assert.equal(r.json.state, 'pending');
    });
  });

  describe('logs', () => {
    it('one JSON record per request with method, path, status, identity and duration; never a token', () => {
      assert.ok(logs.length > 50);
      const sample = logs.find((l) => l.route === 'listSessions' && l.status === 200);
      assert.ok(sample);
      assert.equal(sample.method, 'GET');
      assert.equal(sample.path, '/api/sessions');
      assert.equal(typeof sample.durationMs, 'number');
      assert.ok(sample.user !== null && sample.via === 'token');
      const refused = logs.find((l) => l.status === 401);
      assert.equal(refused?.user, null);
      const text = JSON.stringify(logs);
      for (const { token } of Object.values(TOKENS)) {
        assert.ok(!text.includes(token));
        assert.ok(!text.includes(token.slice(-20)));
      }
      assert.ok(!text.includes(jwt().split('.')[2] ?? 'x'));
    });
  });
});
