// Writes the sample signed demo bundle and its root, signed with the TEST-ONLY sample keys of test/fixtures/bundle/keys.
// Usage: node --import tsx scripts/make-demo-bundle.ts [--policy DIR] [--out DIR] [--origin NAME] [--expires-in DAYS]
// The keys are published in this repository: a bundle they sign is a demo, never a production configuration.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  createRoot,
  parsePrivateKey,
  proposeBundle,
  readBundle,
  readPolicyFolder,
  serializeEnvelope,
  signEnvelope,
  verifyBundleForActivation,
  verifyRoot,
} from '../src/bundle/index.js';

const repo = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    policy: { type: 'string' },
    out: { type: 'string' },
    origin: { type: 'string' },
    'expires-in': { type: 'string' },
  },
});
const policyDir =
  values.policy ??
  (existsSync(join(repo, 'demo/policy'))
    ? join(repo, 'demo/policy')
    : join(repo, 'test/fixtures/policy/demo'));
const out = values.out ?? join(repo, 'demo/bundle');
const origin = values.origin ?? 'warden.demo';
const days = Number(values['expires-in'] ?? '3650');

const key = (n: string) =>
  parsePrivateKey(readFileSync(join(repo, 'test/fixtures/bundle/keys', `${n}.key`), 'utf8'));
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];

// Root: three approvers, k = 2; dev may author. Signed by all three approvers.
const rootEnv = [ana, ben, cho].reduce(
  signEnvelope,
  createRoot({
    origin,
    version: 1,
    threshold: 2,
    approvers: [ana.encoded, ben.encoded, cho.encoded],
    authors: [dev.encoded],
  }),
);
const root = verifyRoot(rootEnv);

// Bundle version 1: authored by dev, approved by ana and ben.
const created = new Date();
const bundleEnv = [ana, ben].reduce(
  signEnvelope,
  proposeBundle({
    origin,
    version: 1,
    previous: null,
    author: dev,
    policy: readPolicyFolder(policyDir),
    settings: {},
    created,
    expires: new Date(created.getTime() + days * 86_400_000),
  }),
);
verifyBundleForActivation(bundleEnv, root, {}, created);

mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'root.json'), serializeEnvelope(rootEnv));
writeFileSync(join(out, 'bundle.json'), serializeEnvelope(bundleEnv));
console.log(
  `wrote ${join(out, 'root.json')} (root ${root.hash}) and ${join(out, 'bundle.json')} (bundle ${readBundle(bundleEnv).hash}) from ${policyDir}`,
);
