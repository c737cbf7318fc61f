// Tests for Ed25519 public-key acceptance against the C2SP/CCTV edge-case vectors, and the node:crypto key helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import {
  UnacceptableKeyError,
  assertAcceptablePublicKey,
  ed25519Sign,
  ed25519Verify,
  generateSeed,
  privateKeyFromSeed,
  publicKeyFromRaw,
  rawPublicKey,
} from './ed25519.js';

interface Vector {
  number: number;
  key: string;
  flags: string[] | null;
}
const vectors = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../test/fixtures/vectors/ed25519/ed25519vectors.json'), 'utf8'),
) as Vector[];

void test('CCTV vectors: keys flagged low order, non-canonical or with a low-order component are refused; others accepted', () => {
  const seen = new Map<string, boolean>();
  let refused = 0;
  let accepted = 0;
  for (const v of vectors) {
    const flags = v.flags ?? [];
    const bad = flags.some(
      (f) => f === 'low_order_A' || f === 'non_canonical_A' || f === 'low_order_component_A',
    );
    const prior = seen.get(v.key);
    if (prior !== undefined) {
      assert.equal(prior, bad, `vector ${v.number}: same key, different verdict`);
      continue;
    }
    seen.set(v.key, bad);
    const raw = Buffer.from(v.key, 'hex');
    if (bad) {
      assert.throws(() => assertAcceptablePublicKey(raw), UnacceptableKeyError, `vector ${v.number}`);
      assert.throws(() => publicKeyFromRaw(raw), UnacceptableKeyError);
      refused++;
    } else {
      assertAcceptablePublicKey(raw);
      accepted++;
    }
  }
  assert.ok(refused > 5 && accepted > 0, `refused ${refused}, accepted ${accepted}`);
  assert.ok(vectors.some((v) => v.flags?.includes('low_order_A')));
});

void test('freshly generated keys are accepted and sign/verify round-trips', () => {
  for (let i = 0; i < 5; i++) {
    const { publicKey } = generateKeyPairSync('ed25519');
    assertAcceptablePublicKey(rawPublicKey(publicKey));
  }
  const seed = generateSeed();
  const priv = privateKeyFromSeed(seed);
  const pub = publicKeyFromRaw(rawPublicKey(priv));
  const msg = Buffer.from('hello');
  const sig = ed25519Sign(priv, msg);
  assert.ok(ed25519Verify(pub, msg, sig));
  assert.ok(!ed25519Verify(pub, Buffer.from('hellp'), sig));
  assert.ok(!ed25519Verify(pub, msg, sig.subarray(1)));
});

void test('wrong lengths and off-curve points are refused', () => {
  assert.throws(() => assertAcceptablePublicKey(new Uint8Array(31)), UnacceptableKeyError);
  // y = 2 is not the y of any curve point.
  const raw = new Uint8Array(32);
  raw[0] = 2;
  assert.throws(() => assertAcceptablePublicKey(raw), /not a point on the curve/);
});
