// Tests for API tokens: shown once, hashed at rest, checked in constant time, expiry, token file parsing; and role separation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWardenError } from '../core/errors.js';
import {
  TokenStore,
  createApiToken,
  hashToken,
  loadTokenFile,
  parseTokenRecords,
  tokenRecordToJson,
} from './tokens.js';
import { assertSeparation, conflictingRoles, effectiveRoles } from './roles.js';

void test('a created token verifies; its record holds only a SHA-256 hash, never the token', () => {
  const { token, record } = createApiToken({ user: 'vic', roles: ['viewer'], id: 'ci-1' });
  assert.match(token, /^wdn_ci-1_[A-Za-z0-9_-]{43}$/);
  assert.equal(record.hash, hashToken(token));
  assert.ok(!JSON.stringify(tokenRecordToJson(record)).includes(token.slice(9)));
  const store = new TokenStore([record]);
  const ok = store.check(token);
  assert.ok(ok.ok && ok.record.user === 'vic');
  assert.deepEqual(store.check(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), {
    ok: false,
    reason: 'invalid',
  });
  assert.deepEqual(store.check('wdn_other_' + token.slice(9)), { ok: false, reason: 'invalid' });
  assert.deepEqual(store.check('wdn_ci-1_'), { ok: false, reason: 'malformed' });
  assert.deepEqual(store.check('Bearer x'), { ok: false, reason: 'malformed' });
  assert.deepEqual(store.check('wdn_' + 'x'.repeat(20000)), { ok: false, reason: 'malformed' });
});

void test('expiry: valid before, expired at and after', () => {
  const expires = new Date('2024-06-01T00:00:00Z');
  const { token, record } = createApiToken({ user: 'u', roles: ['auditor'], expires });
  const store = new TokenStore([record]);
  assert.ok(store.check(token, new Date(expires.getTime() - 1)).ok);
  assert.deepEqual(store.check(token, expires), { ok: false, reason: 'expired' });
});

void test('token files round-trip (YAML) and bad records are refused naming the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-tokens-'));
  try {
    const a = createApiToken({ user: 'vic', roles: ['viewer'], expires: new Date('2030-01-01T00:00:00Z') });
    const file = join(dir, 'tokens.yaml');
    writeFileSync(file, `tokens:\n  - ${JSON.stringify(tokenRecordToJson(a.record))}\n`, { mode: 0o600 });
    const [r] = loadTokenFile(file);
    assert.deepEqual(r, a.record);
    assert.ok(new TokenStore(loadTokenFile(file)).check(a.token).ok);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const good = { id: 'a', user: 'u', hash: 'sha256:' + '0'.repeat(64), roles: ['viewer'], expires: null };
  const bad: [unknown, RegExp][] = [
    [{ tokens: [{ ...good, hash: 'plain-token' }] }, /tokens\[0\]\.hash/],
    [{ tokens: [{ ...good, roles: ['admin'] }] }, /tokens\[0\]\.roles/],
    [{ tokens: [{ ...good, roles: [] }] }, /tokens\[0\]\.roles/],
    [{ tokens: [{ ...good, expires: 'soon' }] }, /tokens\[0\]\.expires/],
    [{ tokens: [{ ...good, token: 'wdn_x' }] }, /unknown field "token"/],
    [{ tokens: [good, good] }, /duplicate id/],
    [{ nope: 1 }, /expected a list/],
  ];
  for (const [doc, re] of bad) {
    assert.throws(
      () => parseTokenRecords(doc),
      (e) => isWardenError(e, 'CONFIG_INVALID') && re.test(e.message),
    );
  }
});

void test('roles: operator+approver conflict, everyone views, separation checked per user across sources', () => {
  assert.deepEqual(conflictingRoles(['operator', 'viewer', 'approver']), ['operator', 'approver']);
  assert.equal(conflictingRoles(['operator', 'auditor']), undefined);
  assert.ok(effectiveRoles(['auditor']).has('viewer'));
  assert.equal(effectiveRoles([]).size, 0);
  assertSeparation([
    { user: 'a', roles: ['operator'], source: 't1' },
    { user: 'b', roles: ['approver'], source: 't2' },
  ]);
  assert.throws(
    () =>
      assertSeparation([
        { user: 'a', roles: ['operator'], source: 'token t1' },
        { user: 'a', roles: ['approver'], source: 'oidc.roles' },
      ]),
    /"a" would hold both operator and approver \(from token t1, oidc\.roles\)/,
  );
});
