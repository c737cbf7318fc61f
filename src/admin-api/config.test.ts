// Tests for the admin_api configuration section and JWKS loading: files, defaults, refusals (incl. separation of duties).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWardenError } from '../core/errors.js';
import { loadAdminApiConfig } from './config.js';
import { parseJwks, verifyJwt } from './jwt.js';
import { signJwt } from './test-support.js';
import { createApiToken, tokenRecordToJson } from './tokens.js';

const ed = generateKeyPairSync('ed25519');
const edJwk = ed.publicKey.export({ format: 'jwk' });

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'warden-adminapi-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void test('loads listen, token file and OIDC settings, resolving relative paths', () => {
  withDir((dir) => {
    const t = createApiToken({ user: 'olga', roles: ['operator'] });
    writeFileSync(join(dir, 'tokens.json'), JSON.stringify({ tokens: [tokenRecordToJson(t.record)] }), {
      mode: 0o600,
    });
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...edJwk, kid: 'k1' }] }));
    const c = loadAdminApiConfig(
      {
        listen: { port: 0 },
        tokens_file: 'tokens.json',
        oidc: {
          issuer: 'https://idp/',
          audience: ['a', 'b'],
          jwks_file: 'jwks.json',
          roles: { alice: ['approver'] },
        },
      },
      dir,
    );
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 0);
    assert.equal(c.tokens[0]?.user, 'olga');
    assert.equal(c.oidc?.userClaim, 'sub');
    assert.deepEqual(c.oidc?.audience, ['a', 'b']);
    const token = signJwt(
      { iss: 'https://idp/', aud: 'b', exp: Date.now() / 1000 + 60, sub: 'alice' },
      ed.privateKey,
      'EdDSA',
      { kid: 'k1' },
    );
    assert.deepEqual(c.oidc && verifyJwt(token, c.oidc).ok, true);
  });
});

void test('refuses operator+approver for one user across the token file and OIDC roles', () => {
  withDir((dir) => {
    const t = createApiToken({ user: 'alice', roles: ['operator'] });
    writeFileSync(join(dir, 'tokens.yaml'), `tokens:\n  - ${JSON.stringify(tokenRecordToJson(t.record))}\n`, {
      mode: 0o600,
    });
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [edJwk] }));
    assert.throws(
      () =>
        loadAdminApiConfig(
          {
            tokens_file: 'tokens.yaml',
            oidc: { issuer: 'i', audience: 'a', jwks_file: 'jwks.json', roles: { alice: ['approver'] } },
          },
          dir,
        ),
      (e) => isWardenError(e, 'CONFIG_INVALID') && /alice.*both operator and approver/.test(e.message),
    );
  });
});

void test('refuses unknown fields, bad ports, no authentication at all, bad role names', () => {
  const cases: [unknown, RegExp][] = [
    [{ listen: { port: 70000 } }, /admin_api\.listen\.port/],
    [{ tokenz: 'x' }, /unknown field "tokenz"/],
    [{}, /no way to authenticate/],
    [{ oidc: { issuer: 'i', audience: 'a', jwks_file: '/nonexistent/jwks.json' } }, /cannot read JWKS file/],
    [{ oidc: { issuer: 'i', audience: 'a', jwks_file: 'j', roles: { bob: ['root'] } } }, /oidc\.roles\.bob/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(
      () => loadAdminApiConfig(raw, '/tmp'),
      (e) => isWardenError(e, 'CONFIG_INVALID') && re.test(e.message),
      String(re),
    );
  }
});

void test('JWKS: private keys, short RSA keys, HMAC keys and mismatched alg are refused', () => {
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  const priv = ed.privateKey.export({ format: 'jwk' });
  const bad: [unknown, RegExp][] = [
    [{ keys: [priv] }, /private key/],
    [{ keys: [rsa1024] }, /at least 2048 bits/],
    [{ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, /unsupported key/],
    [{ keys: [{ ...edJwk, alg: 'RS256' }] }, /does not fit/],
    [{ keys: [] }, /non-empty/],
  ];
  for (const [doc, re] of bad)
    assert.throws(
      () => parseJwks(doc),
      (e) => isWardenError(e, 'CONFIG_INVALID') && re.test(e.message),
    );
  // Without a kid, every key of the header's algorithm is tried.
  const keys = parseJwks({ keys: [edJwk] });
  const t = signJwt({ iss: 'i', aud: 'a', exp: 2e9, sub: 'bob' }, ed.privateKey, 'EdDSA');
  const r = verifyJwt(t, { issuer: 'i', audience: ['a'], keys, userClaim: 'sub' }, new Date(1.9e12));
  assert.ok(r.ok && r.user === 'bob');
  assert.deepEqual(verifyJwt(t, { issuer: 'i', audience: ['a'], keys, userClaim: 'sub' }, new Date(2.1e12)), {
    ok: false,
    reason: 'expired',
  });
});
