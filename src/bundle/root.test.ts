// Tests for the trust root: self-signed first root, rotation (k old + k new, version + 1 only), key enrollment refusals.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { computeKeyId, ALG_ED25519 } from '../audit/note.js';
import { signEnvelope } from './dsse.js';
import type { Envelope } from './dsse.js';
import { isBundleError } from './errors.js';
import type { BundleRefusal } from './errors.js';
import { generateKeyPair, parsePrivateKey, parsePublicKey } from './keys.js';
import type { SigningKey } from './keys.js';
import { createRoot, verifyRoot } from './root.js';

const FIX = join(import.meta.dirname, '../../test/fixtures');
const key = (n: string) => parsePrivateKey(readFileSync(join(FIX, `bundle/keys/${n}.key`), 'utf8'));
const fresh = (n: string) => parsePrivateKey(generateKeyPair(n).privateKey);
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];
const [eve, fay, gus] = [fresh('eve'), fresh('fay'), fresh('gus')];
const ORIGIN = 'warden.test/root';

const signAll = (env: Envelope, keys: readonly SigningKey[]): Envelope => keys.reduce(signEnvelope, env);
const refused = (reason: BundleRefusal) => (e: unknown) => isBundleError(e, reason);

function root(version: number, approvers: readonly SigningKey[], threshold = 2, origin = ORIGIN): Envelope {
  return createRoot({
    origin,
    version,
    threshold,
    approvers: approvers.map((k) => k.encoded),
    authors: [dev.encoded],
  });
}

const v1 = verifyRoot(signAll(root(1, [ana, ben, cho]), [ana, ben]));

describe('first root', () => {
  it('is accepted with k signatures by its own approvers', () => {
    assert.equal(v1.version, 1);
    assert.equal(v1.threshold, 2);
    assert.deepEqual(
      v1.approvers.map((k) => k.name),
      ['test-only-ana', 'test-only-ben', 'test-only-cho'],
    );
    assert.deepEqual(
      v1.authors.map((k) => k.name),
      ['test-only-dev'],
    );
  });
  it('is refused with fewer than k', () => {
    assert.throws(() => verifyRoot(signAll(root(1, [ana, ben, cho]), [ana])), refused('root-threshold-new'));
  });
  it('is refused unsigned', () => {
    assert.throws(() => verifyRoot(root(1, [ana, ben, cho])), refused('unsigned'));
  });
  it('does not count an author-only key', () => {
    assert.throws(() => verifyRoot(signAll(root(1, [ana, ben, cho]), [ana, dev])), refused('bad-signature'));
  });
  it('refuses a threshold above the number of approvers, or below one', () => {
    assert.throws(() => root(1, [ana, ben], 3), refused('malformed'));
    assert.throws(() => root(1, [ana, ben], 0), refused('malformed'));
  });
});

describe('root rotation', () => {
  it('is accepted with k old and k new signatures', () => {
    const v2 = verifyRoot(signAll(root(2, [cho, eve, fay]), [ana, ben, eve, fay]), v1);
    assert.equal(v2.version, 2);
    // and the next rotation is judged by the new root, not the first
    assert.throws(
      () => verifyRoot(signAll(root(3, [eve, fay, gus]), [ana, ben, gus]), v2),
      refused('bad-signature'),
    );
    assert.equal(verifyRoot(signAll(root(3, [eve, fay, gus]), [cho, eve, gus]), v2).version, 3);
  });
  it('counts a key in both roots once under each', () => {
    // ben and cho are in both: their two signatures satisfy k = 2 under the old root and under the new one
    assert.equal(verifyRoot(signAll(root(2, [ben, cho, eve]), [ben, cho]), v1).version, 2);
  });
  it('refuses a new root signed only by new keys', () => {
    assert.throws(
      () => verifyRoot(signAll(root(2, [eve, fay, gus]), [eve, fay, gus]), v1),
      refused('root-threshold-old'),
    );
  });
  it('refuses a new root with k old signatures but fewer than k new ones', () => {
    assert.throws(
      () => verifyRoot(signAll(root(2, [cho, eve, fay]), [ana, ben, eve]), v1),
      refused('root-threshold-new'),
    );
  });
  it('refuses a version that does not go up by exactly one', () => {
    assert.throws(
      () => verifyRoot(signAll(root(3, [ana, ben, eve]), [ana, ben]), v1),
      refused('root-version'),
    );
    assert.throws(
      () => verifyRoot(signAll(root(1, [ana, ben, eve]), [ana, ben]), v1),
      refused('root-version'),
    );
  });
  it('returns the trusted root itself for the same envelope', () => {
    assert.equal(verifyRoot(signAll(root(1, [ana, ben, cho]), [ana, ben, cho]), v1).version, 1);
  });
  it('refuses another origin', () => {
    assert.throws(
      () => verifyRoot(signAll(root(2, [ana, ben, cho], 2, 'elsewhere'), [ana, ben]), v1),
      refused('wrong-origin'),
    );
  });
});

describe('key enrollment', () => {
  it('refuses the same public key listed under two key ids', () => {
    const raw = Buffer.concat([Buffer.of(ALG_ED25519), ana.publicKey]);
    const alias = `alias+${computeKeyId('alias', ALG_ED25519, ana.publicKey).toString(16).padStart(8, '0')}+${raw.toString('base64')}`;
    assert.notEqual(parsePublicKey(alias).keyId, ana.keyId);
    assert.throws(
      () =>
        createRoot({
          origin: ORIGIN,
          version: 1,
          threshold: 2,
          approvers: [ana.encoded, alias, ben.encoded],
        }),
      refused('key-refused'),
    );
    assert.throws(
      () =>
        createRoot({ origin: ORIGIN, version: 1, threshold: 1, approvers: [ana.encoded], authors: [alias] }),
      refused('key-refused'),
    );
  });
  it('refuses a key whose key id does not match', () => {
    const bad = ana.encoded.replace(
      /\+([0-9a-f]{8})\+/,
      (_m, id: string) => `+${id === '00000000' ? '00000001' : '00000000'}+`,
    );
    assert.throws(() => parsePublicKey(bad), refused('key-refused'));
  });

  interface Vector {
    key: string;
    flags: string[] | null;
  }
  const vectors = JSON.parse(
    readFileSync(join(FIX, 'vectors/ed25519/ed25519vectors.json'), 'utf8'),
  ) as Vector[];
  const encode = (hex: string): string => {
    const raw = Buffer.from(hex, 'hex');
    const id = computeKeyId('k', ALG_ED25519, raw).toString(16).padStart(8, '0');
    return `k+${id}+${Buffer.concat([Buffer.of(ALG_ED25519), raw]).toString('base64')}`;
  };
  const lowOrder = [...new Set(vectors.filter((v) => v.flags?.includes('low_order_A')).map((v) => v.key))];
  const unflagged = [
    ...new Set(vectors.filter((v) => !(v.flags ?? []).some((f) => f.endsWith('_A'))).map((v) => v.key)),
  ].slice(0, 5);

  it('refuses every low-order key of the CCTV vectors at root creation', () => {
    assert.ok(lowOrder.length >= 8, `only ${lowOrder.length} low-order keys`);
    for (const hex of lowOrder)
      assert.throws(
        () => createRoot({ origin: ORIGIN, version: 1, threshold: 1, approvers: [ana.encoded, encode(hex)] }),
        refused('key-refused'),
        hex,
      );
  });
  it('accepts keys the vectors do not flag', () => {
    assert.ok(unflagged.length > 0);
    for (const hex of unflagged) assert.equal(parsePublicKey(encode(hex)).publicKeyHex, hex);
  });
});

describe('root expiry', () => {
  const expiring = (expires: string): Envelope =>
    signAll(
      createRoot({
        origin: ORIGIN,
        version: 1,
        threshold: 2,
        approvers: [ana, ben, cho].map((k) => k.encoded),
        expires,
      }),
      [ana, ben],
    );
  it('accepts a root before its expiry and refuses it after', () => {
    const env = expiring('2030-01-01T00:00:00Z');
    assert.equal(
      verifyRoot(env, undefined, new Date('2029-12-31T23:59:59Z')).expires,
      '2030-01-01T00:00:00Z',
    );
    assert.throws(() => verifyRoot(env, undefined, new Date('2030-01-01T00:00:00Z')), refused('expired'));
  });
  it('refuses an expiry that is not an RFC 3339 UTC time', () => {
    assert.throws(() => expiring('next year'), refused('malformed'));
    assert.throws(() => expiring('2030-01-01T00:00:00+02:00'), refused('malformed'));
  });
  it('a root without expiry never expires', () => {
    assert.equal(
      verifyRoot(signAll(root(1, [ana, ben, cho]), [ana, ben]), undefined, new Date('2999-01-01')).expires,
      undefined,
    );
  });
});
