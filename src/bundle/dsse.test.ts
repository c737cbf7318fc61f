// Tests for DSSE envelopes: the PAE vector, strict parsing, canonical JSON, and signature counting by public key.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  canonicalJson,
  makeEnvelope,
  pae,
  parseCanonicalJson,
  parseEnvelope,
  serializeEnvelope,
  signEnvelope,
  verifySignatures,
} from './dsse.js';
import { isBundleError } from './errors.js';
import { generateKeyPair, parsePrivateKey } from './keys.js';

const FIX = join(import.meta.dirname, '../../test/fixtures/bundle');
const vector = JSON.parse(readFileSync(join(FIX, 'dsse-pae.json'), 'utf8')).dssePae as {
  payloadType: string;
  payload: string;
  pae: string;
};
const key = (n: string) => parsePrivateKey(readFileSync(join(FIX, `keys/${n}.key`), 'utf8'));

describe('DSSE PAE', () => {
  it('matches the DSSE protocol vector byte for byte', () => {
    const got = pae(vector.payloadType, Buffer.from(vector.payload, 'utf8'));
    assert.equal(Buffer.from(got).toString('utf8'), vector.pae);
  });
  it('counts lengths in UTF-8 bytes, not characters', () => {
    const got = Buffer.from(pae('t\u00e9', Buffer.from('\u20ac', 'utf8'))).toString('utf8');
    assert.equal(got, 'DSSEv1 3 t\u00e9 3 \u20ac');
  });
});

describe('envelope parsing', () => {
  it('round-trips through its JSON form', () => {
    const env = signEnvelope(makeEnvelope('x/y', Buffer.from('{}')), key('ana'));
    assert.deepEqual(parseEnvelope(serializeEnvelope(env)), env);
  });
  for (const [name, text] of [
    ['not JSON', '{'],
    ['an array', '[]'],
    ['an unknown field', '{"payloadType":"a","payload":"","signatures":[],"x":1}'],
    ['non-canonical base64', '{"payloadType":"a","payload":"YQ","signatures":[]}'],
    ['a signature without sig', '{"payloadType":"a","payload":"","signatures":[{"keyid":"k"}]}'],
    ['an empty payload type', '{"payloadType":"","payload":"","signatures":[]}'],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => parseEnvelope(text),
        (e) => isBundleError(e, 'malformed'),
      );
    });
  }
});

describe('signatures', () => {
  it('refuses a second signature by the same key', () => {
    const env = signEnvelope(makeEnvelope('x/y', Buffer.from('{}')), key('ana'));
    assert.throws(
      () => signEnvelope(env, key('ana')),
      (e) => isBundleError(e, 'malformed'),
    );
  });
  it('counts one public key once whatever key ids its signatures carry', () => {
    const ana = key('ana');
    const env = signEnvelope(makeEnvelope('x/y', Buffer.from('{}')), ana);
    const dup = {
      ...env,
      signatures: [...env.signatures, { keyid: 'other+00000000', sig: env.signatures[0]!.sig }],
    };
    const r = verifySignatures(dup, [ana, key('ben')]);
    assert.equal(r.valid.size, 1);
    assert.deepEqual(r.invalid, []);
  });
  it('matches a signature to the key it verifies under, not the key id it claims', () => {
    const ana = key('ana');
    const ben = key('ben');
    const env = signEnvelope(makeEnvelope('x/y', Buffer.from('{}')), ana);
    const lying = { ...env, signatures: [{ keyid: ben.keyId, sig: env.signatures[0]!.sig }] };
    const r = verifySignatures(lying, [ben, ana]);
    assert.deepEqual(
      [...r.valid.values()].map((k) => k.name),
      [ana.name],
    );
  });
  it('reports a signature no known key verifies', () => {
    const stranger = parsePrivateKey(generateKeyPair('stranger').privateKey);
    const env = signEnvelope(makeEnvelope('x/y', Buffer.from('{}')), stranger);
    assert.deepEqual(verifySignatures(env, [key('ana')]).invalid, [0]);
  });
});

describe('canonical JSON', () => {
  it('sorts keys and drops whitespace', () => {
    assert.equal(
      canonicalJson({ b: [1, { d: 'x', c: null }], a: true }).toString(),
      '{"a":true,"b":[1,{"c":null,"d":"x"}]}',
    );
  });
  it('refuses floats', () => {
    assert.throws(
      () => canonicalJson({ a: 1.5 }),
      (e) => isBundleError(e, 'malformed'),
    );
  });
  it('parses only what re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => {
        let bytes: Buffer;
        try {
          bytes = canonicalJson(v);
        } catch {
          return; // floats and -0 inside objects are out of scope
        }
        assert.deepEqual(canonicalJson(parseCanonicalJson(bytes, 'v')), bytes);
        const spaced = Buffer.from(JSON.stringify(JSON.parse(bytes.toString()), null, 1));
        if (!spaced.equals(bytes)) assert.throws(() => parseCanonicalJson(spaced, 'v'));
      }),
      { numRuns: 200 },
    );
  });
});
