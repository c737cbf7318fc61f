// Tests for bundle activation: one case per refusal, key-id games, the author never counting, and the demo bundle.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  BUNDLE_PAYLOAD_TYPE,
  bundleStatus,
  proposeBundle,
  readBundle,
  readPolicyFolder,
  verifyBundleForActivation,
} from './bundle.js';
import type { BundlePayload } from './bundle.js';
import {
  MAX_ENVELOPE_BYTES,
  canonicalJson,
  makeEnvelope,
  parseEnvelope,
  payloadBytes,
  signEnvelope,
} from './dsse.js';
import type { Envelope } from './dsse.js';
import { isBundleError } from './errors.js';
import type { BundleRefusal } from './errors.js';
import { generateKeyPair, parsePrivateKey } from './keys.js';
import type { SigningKey } from './keys.js';
import { createRoot, verifyRoot } from './root.js';

const FIX = join(import.meta.dirname, '../../test/fixtures');
const key = (n: string) => parsePrivateKey(readFileSync(join(FIX, `bundle/keys/${n}.key`), 'utf8'));
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];
const ORIGIN = 'warden.test/bundles';
const T0 = new Date('2030-01-01T00:00:00.000Z');
const NOW = new Date('2030-01-02T00:00:00.000Z');
const EXPIRES = new Date('2030-02-01T00:00:00.000Z');
const DAY = 86_400_000;
const POLICY = readPolicyFolder(join(FIX, 'policy/demo'));

const root = verifyRoot(
  [ana, ben].reduce(
    signEnvelope,
    createRoot({
      origin: ORIGIN,
      version: 1,
      threshold: 2,
      approvers: [ana.encoded, ben.encoded, cho.encoded],
      authors: [dev.encoded],
    }),
  ),
);

const signAll = (env: Envelope, keys: readonly SigningKey[]): Envelope => keys.reduce(signEnvelope, env);
const refused = (reason: BundleRefusal) => (e: unknown) => {
  assert.ok(isBundleError(e), String(e));
  assert.equal(e.reason, reason, e.message);
  assert.equal(e.code, 'CONFIG_INVALID');
  return true;
};

function propose(
  o: {
    version?: number;
    previous?: string | null;
    author?: SigningKey;
    settings?: Record<string, unknown>;
  } = {},
): Envelope {
  return proposeBundle({
    origin: ORIGIN,
    version: o.version ?? 1,
    previous: o.previous ?? null,
    author: o.author ?? dev,
    policy: POLICY,
    settings: o.settings ?? { statement_timeout_ms: 30000 },
    created: T0,
    expires: EXPIRES,
  });
}
/** A bundle envelope built from a raw payload object, signed by `keys` (bypasses proposeBundle's checks). */
function raw(payload: Record<string, unknown>, keys: readonly SigningKey[]): Envelope {
  return signAll(makeEnvelope(BUNDLE_PAYLOAD_TYPE, canonicalJson(payload)), keys);
}
const good = signAll(propose(), [ana, ben]);
const goodHash = readBundle(good).hash;

describe('verifyBundleForActivation accepts', () => {
  it('a bundle with the author and k distinct approvers', () => {
    const v = verifyBundleForActivation(good, root, {}, NOW);
    assert.equal(v.payload.version, 1);
    assert.equal(v.author.name, 'test-only-dev');
    assert.deepEqual(
      v.approvers.map((k) => k.name),
      ['test-only-ana', 'test-only-ben'],
    );
    assert.equal(v.hash, goodHash);
    assert.deepEqual(Object.keys(v.payload.policy).sort(), [
      'identities.yaml',
      'protections.yaml',
      'roles.yaml',
    ]);
    assert.ok(v.policy !== undefined);
  });
  it('the bundle it runs (same version, same hash)', () => {
    assert.equal(
      verifyBundleForActivation(good, root, { current: { version: 1, hash: goodHash } }, NOW).hash,
      goodHash,
    );
  });
  it('the next version linked to the running one', () => {
    const next = signAll(propose({ version: 2, previous: goodHash }), [ben, cho]);
    assert.equal(
      verifyBundleForActivation(next, root, { current: { version: 1, hash: goodHash } }, NOW).payload.version,
      2,
    );
  });
  it('envelope text as well as a parsed envelope', () => {
    assert.equal(verifyBundleForActivation(JSON.stringify(good), root, {}, NOW).hash, goodHash);
  });
});

describe('verifyBundleForActivation refuses', () => {
  it('an unsigned bundle', () => {
    assert.throws(
      () => verifyBundleForActivation({ ...good, signatures: [] }, root, {}, NOW),
      refused('unsigned'),
    );
  });
  it('a bundle below the threshold', () => {
    assert.throws(
      () => verifyBundleForActivation(signAll(propose(), [ana]), root, {}, NOW),
      refused('below-threshold'),
    );
  });
  it('a bundle signed by its author alone', () => {
    assert.throws(() => verifyBundleForActivation(propose(), root, {}, NOW), refused('author-only'));
  });
  it('a bundle whose author is an approver, counting the author', () => {
    // ana authors and two keys signed, but ana's own signature never counts: 1 of 2
    assert.throws(
      () => verifyBundleForActivation(signAll(propose({ author: ana }), [ben]), root, {}, NOW),
      refused('below-threshold'),
    );
    assert.throws(
      () => verifyBundleForActivation(propose({ author: ana }), root, {}, NOW),
      refused('author-only'),
    );
    assert.equal(
      verifyBundleForActivation(signAll(propose({ author: ana }), [ben, cho]), root, {}, NOW).approvers
        .length,
      2,
    );
  });
  it('a bundle with a bad signature', () => {
    const sig = Buffer.from(good.signatures[2]!.sig, 'base64');
    sig[10]! ^= 0x01;
    const bad = {
      ...good,
      signatures: [...good.signatures.slice(0, 2), { ...good.signatures[2]!, sig: sig.toString('base64') }],
    };
    assert.throws(() => verifyBundleForActivation(bad, root, {}, NOW), refused('bad-signature'));
  });
  it('a bundle with an extra signature by a key the root does not know', () => {
    const stranger = parsePrivateKey(generateKeyPair('stranger').privateKey);
    assert.throws(
      () => verifyBundleForActivation(signAll(good, [stranger]), root, {}, NOW),
      refused('bad-signature'),
    );
  });
  it('an altered payload', () => {
    const p = JSON.parse(payloadBytes(good).toString()) as BundlePayload;
    const altered = { ...p, policy: { ...p.policy, 'extra.yaml': 'version: 1\n' } };
    const env = { ...good, payload: canonicalJson(altered).toString('base64') };
    assert.throws(() => verifyBundleForActivation(env, root, {}, NOW), refused('payload-altered'));
  });
  it('an altered payload type', () => {
    const env = { ...good, payloadType: 'application/vnd.warden.root.v1+json' };
    assert.throws(() => verifyBundleForActivation(env, root, {}, NOW), refused('wrong-type'));
  });
  it('any flipped payload bit', () => {
    const bytes = payloadBytes(good);
    fc.assert(
      fc.property(fc.nat(bytes.length * 8 - 1), (bit) => {
        const b = Buffer.from(bytes);
        b[bit >> 3]! ^= 1 << (bit & 7);
        const env = { ...good, payload: b.toString('base64') };
        assert.throws(() => verifyBundleForActivation(env, root, {}, NOW), refused('payload-altered'));
      }),
      { numRuns: 30 },
    );
  });
  it('an expired bundle', () => {
    assert.throws(() => verifyBundleForActivation(good, root, {}, EXPIRES), refused('expired'));
  });
  it('a well-signed bundle under an expired root', () => {
    const expiring = verifyRoot(
      [ana, ben].reduce(
        signEnvelope,
        createRoot({
          origin: ORIGIN,
          version: 1,
          threshold: 2,
          approvers: [ana.encoded, ben.encoded, cho.encoded],
          authors: [dev.encoded],
          expires: '2030-01-03T00:00:00Z',
        }),
      ),
      undefined,
      NOW,
    );
    assert.equal(verifyBundleForActivation(good, expiring, {}, NOW).payload.version, 1);
    assert.throws(
      () => verifyBundleForActivation(good, expiring, {}, new Date(NOW.getTime() + 2 * DAY)),
      refused('expired'),
    );
  });
  it('an oversized envelope, before parsing it', () => {
    const huge = `{"payloadType":"${BUNDLE_PAYLOAD_TYPE}","payload":"${'A'.repeat(MAX_ENVELOPE_BYTES)}","signatures":[]}`;
    assert.throws(() => verifyBundleForActivation(huge, root, {}, NOW), refused('malformed'));
  });
  it('a version lower than the running one (rollback)', () => {
    assert.throws(
      () => verifyBundleForActivation(good, root, { current: { version: 2, hash: 'ab'.repeat(32) } }, NOW),
      refused('rollback'),
    );
  });
  it('the running version with different content', () => {
    const other = signAll(propose({ settings: { statement_timeout_ms: 5000 } }), [ana, ben]);
    assert.throws(
      () => verifyBundleForActivation(other, root, { current: { version: 1, hash: goodHash } }, NOW),
      refused('version-conflict'),
    );
  });
  it('a broken previous-hash link', () => {
    const next = signAll(propose({ version: 2, previous: 'cd'.repeat(32) }), [ana, ben]);
    assert.throws(
      () => verifyBundleForActivation(next, root, { current: { version: 1, hash: goodHash } }, NOW),
      refused('broken-link'),
    );
    const unlinked = signAll(propose({ version: 2, previous: null }), [ana, ben]);
    assert.throws(
      () => verifyBundleForActivation(unlinked, root, { current: { version: 1, hash: goodHash } }, NOW),
      refused('broken-link'),
    );
  });
  it('a bundle without the author signature', () => {
    const p = JSON.parse(payloadBytes(good).toString()) as Record<string, unknown>;
    assert.throws(
      () => verifyBundleForActivation(raw(p, [ana, ben]), root, {}, NOW),
      refused('author-signature-missing'),
    );
  });
  it('a bundle by an author the root does not enroll', () => {
    const stranger = parsePrivateKey(generateKeyPair('stranger').privateKey);
    const p = JSON.parse(payloadBytes(good).toString()) as Record<string, unknown>;
    const env = raw({ ...p, author: stranger.encoded }, [ana, ben, cho]);
    assert.throws(() => verifyBundleForActivation(env, root, {}, NOW), refused('unknown-author'));
  });
  it('a bundle for another origin', () => {
    const p = JSON.parse(payloadBytes(good).toString()) as Record<string, unknown>;
    assert.throws(
      () => verifyBundleForActivation(raw({ ...p, origin: 'elsewhere' }, [dev, ana, ben]), root, {}, NOW),
      refused('wrong-origin'),
    );
  });
  it('a bundle whose policy does not load', () => {
    const p = JSON.parse(payloadBytes(good).toString()) as Record<string, unknown>;
    const env = raw({ ...p, policy: { 'a.yaml': 'version: 1\nbogus: true\n' } }, [dev, ana, ben]);
    assert.throws(() => verifyBundleForActivation(env, root, {}, NOW), refused('policy-invalid'));
    assert.throws(
      () =>
        proposeBundle({
          origin: ORIGIN,
          version: 1,
          previous: null,
          author: dev,
          policy: { 'a.yaml': 'bogus: 1\n' },
          created: T0,
          expires: EXPIRES,
        }),
      refused('policy-invalid'),
    );
  });
  it('a payload with a path outside the policy folder or an unknown field', () => {
    const p = JSON.parse(payloadBytes(good).toString()) as Record<string, unknown>;
    for (const bad of [
      { ...p, policy: { '../x.yaml': 'version: 1\n' } },
      { ...p, policy: { '/etc/x.yaml': 'version: 1\n' } },
      { ...p, extra: 1 },
      { ...p, expires: '2030-02-01' },
    ])
      assert.throws(
        () => verifyBundleForActivation(raw(bad, [dev, ana, ben]), root, {}, NOW),
        refused('malformed'),
      );
  });
});

describe('settings', () => {
  it('a signed bundle with an unknown or invalid setting is refused at verification, naming the key', () => {
    const p = JSON.parse(payloadBytes(good).toString()) as Record<string, unknown>;
    for (const [settings, key] of [
      [{ listen: { port: 5432 } }, 'listen'],
      [{ statement_timeout_ms: 0 }, 'statement_timeout_ms'],
      [{ require_tls: 'yes' }, 'require_tls'],
    ] as const) {
      assert.throws(
        () => verifyBundleForActivation(raw({ ...p, settings }, [dev, ana, ben]), root, {}, NOW),
        (e: unknown) => refused('settings-invalid')(e) && new RegExp(`"${key}"`).test((e as Error).message),
      );
    }
  });
  it('propose refuses an unknown setting, and verification returns the parsed settings', () => {
    assert.throws(() => propose({ settings: { max_connections: 5 } }), refused('settings-invalid'));
    assert.deepEqual(verifyBundleForActivation(good, root, {}, NOW).settings, { statementTimeoutMs: 30000 });
  });
});

/**
 * The TUF-style cases of issue 5 ("How we will know"), each refused or handled. Several are also tested above and
 * in root.test.ts (rotation with too few old or new signatures, a skipped root version); they are repeated here by
 * name so that the list can be checked against the issue.
 */
describe('TUF conformance cases', () => {
  const root3 = verifyRoot(
    [ana, ben, cho].reduce(
      signEnvelope,
      createRoot({
        origin: ORIGIN,
        version: 1,
        threshold: 3,
        approvers: [ana.encoded, ben.encoded, cho.encoded],
        authors: [dev.encoded],
      }),
    ),
  );
  const corrupt = (s: { keyid: string; sig: string }) => {
    const b = Buffer.from(s.sig, 'base64');
    b[5]! ^= 0x80;
    return { ...s, sig: b.toString('base64') };
  };

  it('duplicate signatures: the same signature twice counts once', () => {
    const once = signAll(propose(), [ana]);
    const dup = { ...once, signatures: [...once.signatures, once.signatures[1]!] };
    assert.throws(() => verifyBundleForActivation(dup, root, {}, NOW), refused('below-threshold'));
    // duplicates of a valid signature beside k distinct approvers are harmless, and still count once
    const v = verifyBundleForActivation(
      { ...good, signatures: [...good.signatures, good.signatures[1]!, good.signatures[2]!] },
      root,
      {},
      NOW,
    );
    assert.equal(v.approvers.length, 2);
    // signing again with the same key is refused at signing time
    assert.throws(() => signAll(propose(), [ana, ana]), refused('malformed'));
  });
  it('one key under two ids counts once', () => {
    const once = signAll(propose(), [ana]);
    const twice = {
      ...once,
      signatures: [...once.signatures, { keyid: cho.keyId, sig: once.signatures[1]!.sig }],
    };
    assert.throws(() => verifyBundleForActivation(twice, root, {}, NOW), refused('below-threshold'));
  });
  it('a bad signature beside enough good ones refuses the bundle', () => {
    // author + k approvers are valid; one more (an enrolled approver's) is corrupt: refused, not ignored
    const extra = signAll(good, [cho]);
    const bad = { ...extra, signatures: [...extra.signatures.slice(0, 3), corrupt(extra.signatures[3]!)] };
    assert.equal(verifyBundleForActivation(extra, root, {}, NOW).approvers.length, 3);
    assert.throws(() => verifyBundleForActivation(bad, root, {}, NOW), refused('bad-signature'));
    // and a garbage signature under a made-up key id
    const junk = { ...good, signatures: [...good.signatures, { keyid: 'nobody+00000000', sig: 'AAAA' }] };
    assert.throws(() => verifyBundleForActivation(junk, root, {}, NOW), refused('bad-signature'));
  });
  it('the author alone is refused', () => {
    assert.throws(() => verifyBundleForActivation(propose(), root3, {}, NOW), refused('author-only'));
  });
  it('the author plus k-1 others is refused (k = 3), whether or not the author is an approver', () => {
    assert.throws(
      () => verifyBundleForActivation(signAll(propose(), [ana, ben]), root3, {}, NOW),
      refused('below-threshold'),
    );
    // ana authors and ana, ben, cho signed: ana's own signature does not count, so 2 of 3
    assert.throws(
      () => verifyBundleForActivation(signAll(propose({ author: ana }), [ben, cho]), root3, {}, NOW),
      refused('below-threshold'),
    );
    assert.equal(
      verifyBundleForActivation(signAll(propose(), [ana, ben, cho]), root3, {}, NOW).approvers.length,
      3,
    );
  });
  it('rollback and an equal version with a different hash are refused', () => {
    const v2 = signAll(propose({ version: 2, previous: goodHash }), [ana, ben]);
    const running = { current: { version: 2, hash: readBundle(v2).hash } };
    assert.throws(() => verifyBundleForActivation(good, root, running, NOW), refused('rollback'));
    const fork = signAll(propose({ version: 2, previous: goodHash, settings: { require_tls: true } }), [
      ana,
      ben,
    ]);
    assert.throws(() => verifyBundleForActivation(fork, root, running, NOW), refused('version-conflict'));
  });
  it('root rotation with too few old or new signatures, and a skipped root version, are refused', () => {
    const rotate = (version: number, signers: readonly SigningKey[]) =>
      signAll(
        createRoot({
          origin: ORIGIN,
          version,
          threshold: 2,
          approvers: [cho.encoded, dev.encoded],
          authors: [],
        }),
        signers,
      );
    assert.equal(verifyRoot(rotate(2, [ana, ben, cho, dev]), root).version, 2);
    assert.throws(() => verifyRoot(rotate(2, [ana, dev]), root), refused('root-threshold-old'));
    assert.throws(() => verifyRoot(rotate(2, [ana, ben, cho]), root), refused('root-threshold-new'));
    assert.throws(() => verifyRoot(rotate(3, [ana, ben, cho, dev]), root), refused('root-version'));
  });
  it('an expired bundle or root, and an oversized bundle, are refused', () => {
    assert.throws(() => verifyBundleForActivation(good, root, {}, EXPIRES), refused('expired'));
    const oldRoot = verifyRoot(
      signAll(
        createRoot({
          origin: ORIGIN,
          version: 1,
          threshold: 2,
          approvers: [ana.encoded, ben.encoded, cho.encoded],
          authors: [dev.encoded],
          expires: '2030-01-01T12:00:00Z',
        }),
        [ana, ben],
      ),
      undefined,
      T0,
    );
    assert.throws(() => verifyBundleForActivation(good, oldRoot, {}, NOW), refused('expired'));
    const huge = `{"payloadType":"${BUNDLE_PAYLOAD_TYPE}","payload":"${'A'.repeat(MAX_ENVELOPE_BYTES)}","signatures":[]}`;
    assert.throws(() => verifyBundleForActivation(huge, root, {}, NOW), refused('malformed'));
  });
});

describe('key-id games', () => {
  it('counts the same key under two key ids once', () => {
    const once = signAll(propose(), [ana]);
    const anaSig = once.signatures[1]!;
    const twice = { ...once, signatures: [...once.signatures, { keyid: ben.keyId, sig: anaSig.sig }] };
    assert.throws(() => verifyBundleForActivation(twice, root, {}, NOW), refused('below-threshold'));
    assert.equal(bundleStatus(twice, root).counted, 1);
  });
  it('counts a valid signature carrying a wrong key id for the key that made it', () => {
    const env = signAll(propose(), [ana, ben]);
    const relabelled = {
      ...env,
      signatures: env.signatures.map((s, i) => (i === 2 ? { ...s, keyid: cho.keyId } : s)),
    };
    const v = verifyBundleForActivation(relabelled, root, {}, NOW);
    assert.deepEqual(
      v.approvers.map((k) => k.name),
      ['test-only-ana', 'test-only-ben'],
    );
  });
});

describe('bundleStatus', () => {
  it('lists present and missing approvers', () => {
    const s = bundleStatus(signAll(propose(), [cho]), root);
    assert.equal(s.authorSigned, true);
    assert.equal(s.counted, 1);
    assert.equal(s.threshold, 2);
    assert.deepEqual(
      s.approvers.map((a) => [a.key.name, a.signed]),
      [
        ['test-only-ana', false],
        ['test-only-ben', false],
        ['test-only-cho', true],
      ],
    );
  });
});

describe('the sample demo bundle', () => {
  it('verifies against the sample root and loads its policy', () => {
    const demoRoot = verifyRoot(parseEnvelope(readFileSync(join(FIX, 'bundle/demo/root.json'))));
    const env = readFileSync(join(FIX, 'bundle/demo/bundle.json'));
    const at = new Date(Date.parse(readBundle(parseEnvelope(env)).payload.created) + DAY);
    const v = verifyBundleForActivation(env, demoRoot, {}, at);
    assert.equal(v.payload.version, 1);
    assert.equal(v.approvers.length, 2);
    assert.deepEqual(v.payload.policy, POLICY);
  });
});
