// Tests of the gateway configuration's `admin_api` section: loaded through loadAdminApiConfig, errors name the field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGatewayConfig } from '../config/gateway-config.js';
import { createVerifier } from '../identity/scram.js';
import { addTokenToFile } from './token-file.js';

const VERIFIER = createVerifier('pw-config-test');

function raw(adminApi: unknown): Record<string, unknown> {
  return {
    users: [{ name: 'ann', kind: 'human', scram_verifier: VERIFIER, logins: { main: 'app' } }],
    targets: [
      {
        name: 'main',
        host: '127.0.0.1',
        port: 5432,
        database: 'db',
        logins: { app: { user: 'app' } },
        policy: 'allow_all',
      },
    ],
    ...(adminApi !== undefined ? { admin_api: adminApi } : {}),
  };
}

void test('admin_api: optional; loaded with the token file relative to the configuration folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-gwcfg-'));
  try {
    assert.equal(buildGatewayConfig(raw(undefined), dir).adminApi, undefined);
    addTokenToFile(join(dir, 'tok.yaml'), { user: 'ann', roles: ['viewer'] });
    const c = buildGatewayConfig(
      raw({ listen: { host: '127.0.0.1', port: 0 }, tokens_file: 'tok.yaml' }),
      dir,
    );
    assert.equal(c.adminApi?.port, 0);
    assert.equal(c.adminApi?.tokens[0]?.user, 'ann');
    assert.throws(
      () => buildGatewayConfig(raw({ tokens_file: 'tok.yaml', listen: { port: 99999 } }), dir),
      /admin_api\.listen\.port/,
    );
    assert.throws(() => buildGatewayConfig(raw({ token_file: 'tok.yaml' }), dir), /admin_api: unknown field/);
    assert.throws(() => buildGatewayConfig(raw('yes'), dir), /invalid configuration|admin_api/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
