// Tests of MySQL authentication checks: native and caching_sha2 scrambles, cleartext against SCRAM verifiers, the fast-auth cache, the RSA exchange.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVerifier, parseVerifier } from './scram.js';
import {
  FastAuthCache,
  decryptRsaPassword,
  encryptRsaPassword,
  formatNativeHash,
  loadOrCreateRsaKeys,
  nativeHash,
  nativeScramble,
  newScramble,
  parseNativeHash,
  sha2DoubleHash,
  sha2Scramble,
  verifyCleartext,
  verifyNative,
  verifySha2Fast,
} from './mysql-auth.js';
import { isWardenError } from '../core/errors.js';

describe('mysql authentication', () => {
  const scramble = newScramble();

  it('scrambles have 20 bytes, none of them NUL', () => {
    for (let i = 0; i < 50; i++) {
      const s = newScramble();
      assert.equal(s.length, 20);
      assert.ok(!s.includes(0));
    }
  });

  it('native: the right password passes, a wrong one or an unknown user fails', () => {
    const stored = nativeHash('s3cret');
    assert.ok(verifyNative(nativeScramble('s3cret', scramble), scramble, stored));
    assert.ok(!verifyNative(nativeScramble('s3cret!', scramble), scramble, stored));
    assert.ok(!verifyNative(nativeScramble('s3cret', newScramble()), scramble, stored));
    assert.ok(!verifyNative(nativeScramble('s3cret', scramble), scramble, null));
    assert.ok(!verifyNative(Buffer.alloc(0), scramble, stored));
  });

  it('native hashes print as MySQL does and parse back', () => {
    // MySQL: SELECT PASSWORD('password') = *2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19
    assert.equal(formatNativeHash('password'), '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19');
    assert.deepEqual(parseNativeHash('2470c0c06dee42fd1618bb99005adca2ec9d1e19'), nativeHash('password'));
    assert.throws(
      () => parseNativeHash('*123'),
      (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
    );
  });

  it('caching_sha2 fast path: only against the cached double hash', () => {
    const cached = sha2DoubleHash('pw-1');
    assert.ok(verifySha2Fast(sha2Scramble('pw-1', scramble), scramble, cached));
    assert.ok(!verifySha2Fast(sha2Scramble('pw-2', scramble), scramble, cached));
    assert.ok(!verifySha2Fast(sha2Scramble('pw-1', scramble), scramble, null));
    assert.ok(!verifySha2Fast(Buffer.alloc(31), scramble, cached));
  });

  it('cleartext is checked against the SCRAM verifier', () => {
    const v = parseVerifier(createVerifier('correct horse', { iterations: 64 }));
    const standIn = parseVerifier(createVerifier('other', { iterations: 64 }));
    assert.ok(verifyCleartext('correct horse', v, standIn));
    assert.ok(!verifyCleartext('correct horse ', v, standIn));
    assert.ok(!verifyCleartext('other', null, standIn));
  });

  it('the fast-auth cache is tied to the verifier and bounded', () => {
    const v1 = parseVerifier(createVerifier('a', { iterations: 16 }));
    const v2 = parseVerifier(createVerifier('a', { iterations: 16 }));
    const c = new FastAuthCache(2);
    c.set('alice', v1, sha2DoubleHash('a'));
    assert.deepEqual(c.get('alice', v1), sha2DoubleHash('a'));
    assert.equal(c.get('alice', v2), null, 'a changed verifier invalidates the entry');
    assert.equal(c.get('alice', null), null);
    c.set('bob', v1, Buffer.alloc(32));
    c.set('carol', v1, Buffer.alloc(32));
    assert.equal(c.size, 2);
    assert.equal(c.get('alice', v1), null, 'the oldest entry went first');
  });

  it('RSA keys are created 0600, reused, refused when readable; the password round-trips', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-rsa-'));
    try {
      const k1 = loadOrCreateRsaKeys(dir);
      assert.equal(statSync(join(dir, 'mysql-rsa.key')).mode & 0o777, 0o600);
      const k2 = loadOrCreateRsaKeys(dir);
      assert.deepEqual(k1.publicPem, k2.publicPem);
      assert.match(k1.publicPem.toString(), /BEGIN PUBLIC KEY/);
      const enc = encryptRsaPassword(k1.publicPem, 'pässword', scramble);
      assert.equal(decryptRsaPassword(k1, enc, scramble), 'pässword');
      assert.equal(decryptRsaPassword(k1, Buffer.alloc(256, 1), scramble), null);
      chmodSync(join(dir, 'mysql-rsa.key'), 0o644);
      assert.throws(
        () => loadOrCreateRsaKeys(dir),
        (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
