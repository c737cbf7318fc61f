// Tests for the configuration's bundle section: paths resolved, the default state file, strict validation, and loadBundleTargets without secrets.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGatewayConfig, loadBundleTargets } from './gateway-config.js';
import { isWardenError } from '../core/errors.js';

const VERIFIER =
  'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$3Gk0TPKWgCtgUmMvBbPvnYmxXtx6ag/O3mbD38lS6qo=:Rz9Zt0wYZ+3dTpAnvF7Y+CIxOoTNkN3r9exTtWfZCyU=';

function raw(policy: unknown, extra: Record<string, unknown> = {}) {
  return {
    state_dir: 'state',
    ...extra,
    users: [],
    targets: [
      { name: 'main', host: 'db', port: 5432, database: 'app', logins: { app: { user: 'app' } }, policy },
    ],
  };
}

describe('bundle policy configuration', () => {
  it('resolves root, path and state file against the configuration folder, with a default state file', () => {
    const c = buildGatewayConfig(raw({ bundle: { root: 'r.json', path: 'b/bundle.json' } }), '/etc/warden');
    assert.deepEqual(c.targets.get('main')?.policy, {
      kind: 'bundle',
      root: '/etc/warden/r.json',
      path: '/etc/warden/b/bundle.json',
      stateFile: '/etc/warden/state/bundle-main.state.json',
    });
    const d = buildGatewayConfig(
      raw({ bundle: { root: '/r.json', path: 'b.json', state_file: 's.json' } }),
      '/etc/warden',
    );
    const p = d.targets.get('main')?.policy;
    assert.ok(p?.kind === 'bundle');
    assert.equal(p.root, '/r.json');
    assert.equal(p.stateFile, '/etc/warden/s.json');
  });

  it('refuses a bundle section without root or path, or with unknown keys', () => {
    for (const bad of [
      { bundle: { path: 'b.json' } },
      { bundle: { root: 'r.json' } },
      { bundle: { root: 'r.json', path: 'b.json', key: 'x' } },
      { bundle: { root: '', path: 'b.json' } },
      { bundle: { root: 'r.json', path: 'b.json' }, folder: 'p' },
    ]) {
      assert.throws(
        () => buildGatewayConfig(raw(bad), '/x'),
        (e: unknown) => isWardenError(e) && e.code === 'CONFIG_INVALID',
        JSON.stringify(bad),
      );
    }
  });

  it('loadBundleTargets lists only bundle targets and never reads secrets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-bundle-config-'));
    try {
      const file = join(dir, 'warden.yaml');
      const r = raw({ bundle: { root: 'r.json', path: 'b.json' } });
      r.targets.push({
        name: 'dev',
        host: 'db',
        port: 5432,
        database: 'app',
        // A password file that does not exist: building the full configuration would fail on it.
        logins: { app: { user: 'app', password_file: 'missing.pw' } as never },
        policy: 'allow_all',
      });
      r.users = [{ name: 'u', kind: 'human', scram_verifier: VERIFIER }] as never;
      writeFileSync(file, JSON.stringify(r));
      const t = loadBundleTargets(file);
      assert.equal(t.stateDir, join(dir, 'state'));
      assert.deepEqual([...t.targets.keys()], ['main']);
      assert.equal(t.targets.get('main')?.path, join(dir, 'b.json'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
