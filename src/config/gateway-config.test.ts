// Unit tests for the gateway configuration: strict validation, no silent policy default, secrets resolved from files/env.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGatewayConfig } from './gateway-config.js';
import { createVerifier } from '../identity/scram.js';
import { isWardenError } from '../core/errors.js';

const verifier = createVerifier('pw', { iterations: 4096 });

function base(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    users: [{ name: 'alice', kind: 'human', scram_verifier: verifier, logins: { main: 'app' } }],
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
    ...overrides,
  };
}

describe('gateway configuration', () => {
  it('applies the documented defaults', () => {
    const c = buildGatewayConfig(base(), '/tmp');
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 15432 });
    assert.equal(c.limits.maxMessageBytes, 1024 * 1024);
    assert.equal(c.limits.startupTimeoutMs, 10_000);
    assert.deepEqual(c.targets.get('main')?.searchPath, ['public']);
    assert.equal(c.targets.get('main')?.tls.mode, 'disable');
  });

  it('refuses a target with no policy: there is no silent default', () => {
    const raw = base();
    delete (raw['targets'] as Record<string, unknown>[])[0]?.['policy'];
    assert.throws(
      () => buildGatewayConfig(raw, '/tmp'),
      (e) => isWardenError(e, 'CONFIG_INVALID') && /policy/.test(e.message),
    );
  });

  it('refuses unknown keys, bad verifiers and mappings to unknown targets or logins', () => {
    assert.throws(() => buildGatewayConfig(base({ surprise: 1 }), '/tmp'), /additional properties/);
    const badVerifier = base({
      users: [{ name: 'alice', kind: 'human', scram_verifier: 'plaintext-password' }],
    });
    assert.throws(() => buildGatewayConfig(badVerifier, '/tmp'), /invalid scram_verifier/);
    const badTarget = base({
      users: [{ name: 'alice', kind: 'human', scram_verifier: verifier, logins: { nope: 'app' } }],
    });
    assert.throws(() => buildGatewayConfig(badTarget, '/tmp'), /unknown target "nope"/);
    const badLogin = base({
      users: [{ name: 'alice', kind: 'human', scram_verifier: verifier, logins: { main: 'root' } }],
    });
    assert.throws(() => buildGatewayConfig(badLogin, '/tmp'), /unknown login "root"/);
  });

  it('reads upstream secrets from a 0600 file or an environment variable, and refuses loose files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-cfg-'));
    writeFileSync(join(dir, 'ok.pw'), 's3cret\n', { mode: 0o600 });
    writeFileSync(join(dir, 'loose.pw'), 's3cret\n', { mode: 0o644 });
    const withFile = (file: string): Record<string, unknown> =>
      base({
        targets: [
          {
            name: 'main',
            host: 'h',
            port: 1,
            database: 'd',
            logins: { app: { user: 'app', password_file: file } },
            policy: 'allow_all',
          },
        ],
      });
    assert.equal(
      buildGatewayConfig(withFile('ok.pw'), dir).targets.get('main')?.logins.get('app')?.password,
      's3cret',
    );
    assert.throws(
      () => buildGatewayConfig(withFile('loose.pw'), dir),
      (e) => isWardenError(e, 'CONFIG_INVALID') && !e.message.includes('s3cret'),
    );
    process.env['WARDEN_TEST_SECRET_X'] = 'from-env';
    const withEnv = base({
      targets: [
        {
          name: 'main',
          host: 'h',
          port: 1,
          database: 'd',
          logins: { app: { user: 'app', password_env: 'WARDEN_TEST_SECRET_X' } },
          policy: 'allow_all',
        },
      ],
    });
    assert.equal(
      buildGatewayConfig(withEnv, dir).targets.get('main')?.logins.get('app')?.password,
      'from-env',
    );
    delete process.env['WARDEN_TEST_SECRET_X'];
  });

  it('client certificates: per-user requirement, normalised fingerprint, refused without a client CA', () => {
    const fp = 'ab'.repeat(32);
    const user = (client_cert: unknown): Record<string, unknown> => ({
      name: 'alice',
      kind: 'human',
      scram_verifier: verifier,
      client_cert,
    });
    const tls = { cert_file: 's.crt', key_file: 's.key', client_ca_file: 'ca.crt' };
    const c = buildGatewayConfig(
      base({
        tls,
        users: [
          user({ required: true, subject_cn: 'alice', fingerprint_sha256: fp }),
          { ...user({ required: false, subject_cn: 'x' }), name: 'bob' },
          { name: 'carol', kind: 'human', scram_verifier: verifier },
        ],
      }),
      '/etc/w',
    );
    assert.equal(c.tls?.clientCaFile, '/etc/w/ca.crt');
    assert.deepEqual(c.users.get('alice')?.clientCert, {
      subjectCn: 'alice',
      fingerprintSha256: Array(32).fill('AB').join(':'),
    });
    assert.equal(c.users.get('bob')?.clientCert, undefined, 'required: false asks for nothing');
    assert.equal(c.users.get('carol')?.clientCert, undefined);
    assert.throws(
      () => buildGatewayConfig(base({ users: [user({ required: true })] }), '/tmp'),
      /user "alice" requires a client certificate but tls.client_ca_file is not configured/,
    );
    for (const bad of [
      { subject_cn: 'a' },
      { required: true, fingerprint_sha256: 'abc' },
      { required: true, x: 1 },
    ])
      assert.throws(
        () => buildGatewayConfig(base({ tls, users: [user(bad)] }), '/tmp'),
        /invalid configuration/,
      );
  });
});
