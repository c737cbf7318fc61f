// Tests of token files and `warden api token create`: the token is printed once, only its hash is stored, roles are separated.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addTokenToFile, parseExpiry, parseRoles, readTokenRecords } from './token-file.js';
import { loadTokenFile, TokenStore } from './tokens.js';
import { runApiToken } from '../cli/api.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'warden-tokfile-'));
}

void test('parseExpiry: durations, ISO times, never; refuses garbage and the past', () => {
  const now = new Date('2024-01-01T00:00:00.000Z');
  assert.equal(parseExpiry('30d', now)?.toISOString(), '2024-01-31T00:00:00.000Z');
  assert.equal(parseExpiry('12h', now)?.toISOString(), '2024-01-01T12:00:00.000Z');
  assert.equal(parseExpiry('90m', now)?.toISOString(), '2024-01-01T01:30:00.000Z');
  assert.equal(parseExpiry('2025-06-01T00:00:00Z', now)?.toISOString(), '2025-06-01T00:00:00.000Z');
  assert.equal(parseExpiry('never', now), null);
  for (const bad of ['0d', '30x', 'soon', '2023-01-01T00:00:00Z', ''])
    assert.throws(() => parseExpiry(bad, now), /expires/);
});

void test('parseRoles: known roles only, deduplicated', () => {
  assert.deepEqual(parseRoles('viewer,auditor,viewer'), ['viewer', 'auditor']);
  assert.throws(() => parseRoles('viewer,root'), /unknown role "root"/);
  assert.throws(() => parseRoles(''), /at least one/);
});

void test('addTokenToFile: appends hashed records (0600) that load and check; refuses operator+approver', () => {
  const dir = tmp();
  try {
    const file = join(dir, 'tokens.yaml');
    const a = addTokenToFile(file, { user: 'alice', roles: ['viewer', 'auditor'] });
    const b = addTokenToFile(file, { user: 'carol', roles: ['approver'], expires: new Date('2099-01-01') });
    const text = readFileSync(file, 'utf8');
    assert.ok(!text.includes(a.token) && !text.includes(b.token), 'no token is stored');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const records = loadTokenFile(file);
    assert.equal(records.length, 2);
    const store = new TokenStore(records);
    const ca = store.check(a.token);
    assert.ok(ca.ok && ca.record.user === 'alice');
    assert.equal(store.check(`${a.token}x`).ok, false);
    assert.throws(
      () => addTokenToFile(file, { user: 'carol', roles: ['operator'] }),
      /both (operator and approver|approver and operator)/,
    );
    assert.equal(readTokenRecords(file).length, 2, 'a refused token leaves the file unchanged');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('warden api token create prints the token once and stores its hash', () => {
  const dir = tmp();
  try {
    const file = join(dir, 'api.yaml');
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
    const code = runApiToken(
      ['create', '--user', 'bob', '--roles', 'viewer', '--expires', '30d', '--file', file],
      io,
      new Date('2024-01-01T00:00:00.000Z'),
    );
    assert.equal(code, 0, err.join(''));
    const token = out.join('').trim();
    assert.match(token, /^wdn_[A-Za-z0-9-]+_[A-Za-z0-9_-]+$/);
    const [rec] = loadTokenFile(file);
    assert.equal(rec?.user, 'bob');
    assert.equal(rec?.expires?.toISOString(), '2024-01-31T00:00:00.000Z');
    assert.ok(!readFileSync(file, 'utf8').includes(token));
    assert.ok(!err.join('').includes(token), 'the token goes to stdout only');
    assert.equal(runApiToken(['create', '--user', 'bob', '--file', file], io), 2);
    assert.equal(runApiToken(['create', '--user', 'bob', '--roles', 'king', '--file', file], io), 1);
    assert.equal(runApiToken(['rotate'], io), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
