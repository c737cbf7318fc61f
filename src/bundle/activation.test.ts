// Tests for activation on the gateway: the remembered state file, startup verification against it (rollback, fork, broken link), and the demo bundle.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  installBundleFile,
  loadStartupBundle,
  readActivationState,
  readBundleFile,
  readRootFile,
  refusalReason,
  writeActivationState,
} from './activation.js';
import { proposeBundle, readBundle, readPolicyFolder, verifyBundleForActivation } from './bundle.js';
import { serializeEnvelope, signEnvelope } from './dsse.js';
import type { Envelope } from './dsse.js';
import { isBundleError } from './errors.js';
import type { BundleRefusal } from './errors.js';
import { parsePrivateKey } from './keys.js';
import { createRoot, verifyRoot } from './root.js';

const REPO = join(import.meta.dirname, '../..');
const key = (n: string) =>
  parsePrivateKey(readFileSync(join(REPO, `test/fixtures/bundle/keys/${n}.key`), 'utf8'));
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];
const ORIGIN = 'warden.test/activation';
const NOW = new Date('2030-01-02T00:00:00.000Z');
const POLICY = readPolicyFolder(join(REPO, 'demo/policy'));

const rootEnv = [ana, ben].reduce(
  signEnvelope,
  createRoot({
    origin: ORIGIN,
    version: 1,
    threshold: 2,
    approvers: [ana.encoded, ben.encoded, cho.encoded],
    authors: [dev.encoded],
  }),
);

function bundle(version: number, previous: string | null, extra = ''): Envelope {
  const env = proposeBundle({
    origin: ORIGIN,
    version,
    previous,
    author: dev,
    policy: { ...POLICY, 'identities.yaml': `# ${extra}\n${POLICY['identities.yaml']}` },
    created: new Date('2030-01-01T00:00:00.000Z'),
    expires: new Date('2030-02-01T00:00:00.000Z'),
  });
  return [ana, ben].reduce(signEnvelope, env);
}
const hashOf = (env: Envelope): string => readBundle(env).hash;

const refused = (reason: BundleRefusal) => (e: unknown) => {
  assert.ok(isBundleError(e), String(e));
  assert.equal(e.reason, reason, e.message);
  return true;
};

function withDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'warden-activation-'));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function files(dir: string, env: Envelope) {
  writeFileSync(join(dir, 'root.json'), serializeEnvelope(rootEnv));
  writeFileSync(join(dir, 'bundle.json'), serializeEnvelope(env));
  return { root: join(dir, 'root.json'), path: join(dir, 'bundle.json'), stateFile: join(dir, 'state.json') };
}

describe('activation state file', () => {
  it('is empty when missing, and round-trips what was written without leaving temporary files', () => {
    withDir((dir) => {
      const f = join(dir, 'sub', 'state.json');
      assert.deepEqual(readActivationState(f), {});
      writeActivationState(f, { origin: ORIGIN, version: 3, hash: 'a'.repeat(64) });
      assert.deepEqual(readActivationState(f), {
        origin: ORIGIN,
        current: { version: 3, hash: 'a'.repeat(64) },
      });
      writeActivationState(f, { origin: ORIGIN, version: 4, hash: 'b'.repeat(64) });
      assert.equal(readActivationState(f).current?.version, 4);
      assert.deepEqual(readdirSync(join(dir, 'sub')), ['state.json']);
    });
  });

  it('refuses a malformed state instead of treating it as a first start', () => {
    withDir((dir) => {
      const f = join(dir, 'state.json');
      for (const text of [
        '',
        '{',
        'null',
        '{"origin":"o","version":0,"hash":"' + 'a'.repeat(64) + '"}',
        '{"origin":"o","version":1,"hash":"xyz"}',
        '{"version":1,"hash":"' + 'a'.repeat(64) + '"}',
      ]) {
        writeFileSync(f, text);
        assert.throws(() => readActivationState(f), refused('state-invalid'), text);
      }
    });
  });

  it('property: any valid state round-trips', () => {
    withDir((dir) => {
      const f = join(dir, 'state.json');
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
          fc.stringMatching(/^[0-9a-f]{64}$/),
          fc.stringMatching(/^[\x21-\x7e]{1,40}$/),
          (version, hash, origin) => {
            writeActivationState(f, { origin, version, hash });
            assert.deepEqual(readActivationState(f), { origin, current: { version, hash } });
          },
        ),
        { numRuns: 50 },
      );
    });
  });
});

describe('loadStartupBundle', () => {
  const v1 = bundle(1, null);
  const v2 = bundle(2, hashOf(v1));

  it('accepts any verified bundle on first start, and the same bundle on a restart', () => {
    withDir((dir) => {
      const f = files(dir, v1);
      const s = loadStartupBundle(f, NOW);
      assert.equal(s.verified.payload.version, 1);
      assert.equal(s.verified.hash, hashOf(v1));
      assert.equal(s.previous, undefined);
      writeActivationState(f.stateFile, { origin: ORIGIN, version: 1, hash: hashOf(v1) });
      assert.equal(loadStartupBundle(f, NOW).previous?.version, 1);
    });
  });

  it('refuses a rollback below the remembered version', () => {
    withDir((dir) => {
      const f = files(dir, v1);
      writeActivationState(f.stateFile, { origin: ORIGIN, version: 2, hash: hashOf(v2) });
      assert.throws(() => loadStartupBundle(f, NOW), refused('rollback'));
    });
  });

  it('refuses another bundle with the remembered version (a fork)', () => {
    withDir((dir) => {
      const fork = bundle(1, null, 'fork');
      assert.notEqual(hashOf(fork), hashOf(v1));
      const f = files(dir, fork);
      writeActivationState(f.stateFile, { origin: ORIGIN, version: 1, hash: hashOf(v1) });
      assert.throws(() => loadStartupBundle(f, NOW), refused('version-conflict'));
    });
  });

  it('refuses a higher version that does not link to the remembered one', () => {
    withDir((dir) => {
      const f = files(dir, bundle(2, 'c'.repeat(64)));
      writeActivationState(f.stateFile, { origin: ORIGIN, version: 1, hash: hashOf(v1) });
      assert.throws(() => loadStartupBundle(f, NOW), refused('broken-link'));
      writeFileSync(f.path, serializeEnvelope(v2));
      assert.equal(loadStartupBundle(f, NOW).verified.payload.version, 2);
    });
  });

  it('refuses a state of another origin, a missing bundle, an expired or under-signed one', () => {
    withDir((dir) => {
      const f = files(dir, v1);
      writeActivationState(f.stateFile, { origin: 'other', version: 1, hash: hashOf(v1) });
      assert.throws(() => loadStartupBundle(f, NOW), refused('wrong-origin'));
      rmSync(f.stateFile);
      assert.throws(
        () => loadStartupBundle({ ...f, path: join(dir, 'nope.json') }, NOW),
        refused('unreadable'),
      );
      assert.throws(() => loadStartupBundle(f, new Date('2031-01-01T00:00:00.000Z')), refused('expired'));
      const authorOnly = proposeBundle({
        origin: ORIGIN,
        version: 1,
        previous: null,
        author: dev,
        policy: POLICY,
        created: new Date('2030-01-01T00:00:00.000Z'),
        expires: new Date('2030-02-01T00:00:00.000Z'),
      });
      writeFileSync(f.path, serializeEnvelope(authorOnly));
      assert.throws(() => loadStartupBundle(f, NOW), refused('author-only'));
      writeFileSync(f.path, serializeEnvelope(signEnvelope(authorOnly, ana)));
      assert.throws(() => loadStartupBundle(f, NOW), refused('below-threshold'));
      assert.equal(refusalReason(new Error('x')), 'error');
    });
  });

  it('installBundleFile replaces the bundle atomically with the exact envelope', () => {
    withDir((dir) => {
      const f = files(dir, v1);
      installBundleFile(f.path, v2);
      assert.equal(hashOf(readBundleFile(f.path)), hashOf(v2));
      assert.deepEqual(readdirSync(dir).sort(), ['bundle.json', 'root.json']);
    });
  });
});

describe('the demo bundle (demo/bundle)', () => {
  it('verifies against its root with two approvers and holds exactly demo/policy', () => {
    const root = readRootFile(join(REPO, 'demo/bundle/root.json'));
    assert.equal(root.threshold, 2);
    const env = readBundleFile(join(REPO, 'demo/bundle/bundle.json'));
    const v = verifyBundleForActivation(env, root, {});
    assert.deepEqual(
      v.approvers.map((k) => k.keyId.split('+')[0]),
      ['test-only-ana', 'test-only-ben'],
    );
    assert.equal(v.author.keyId.split('+')[0], 'test-only-dev');
    // Drift guard: regenerate demo/bundle with scripts/make-demo-bundle.ts when demo/policy changes.
    assert.deepEqual(v.payload.policy, readPolicyFolder(join(REPO, 'demo/policy')));
    assert.equal(verifyRoot(readBundleFile(join(REPO, 'demo/bundle/root.json'))).hash, root.hash);
  });
});
