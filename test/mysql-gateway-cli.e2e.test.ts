// End to end: `warden passwd --mysql-native` prints a verifier and a mysql_native_hash line usable in the configuration.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runCommand } from './harness/sys.js';
import { parseVerifier } from '../src/identity/scram.js';
import { nativeHash, parseNativeHash, verifyCleartext } from '../src/identity/mysql-auth.js';
import { buildGatewayConfig } from '../src/config/gateway-config.js';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

describe('warden passwd --mysql-native', () => {
  it('prints the verifier, then the native hash as a YAML line', async () => {
    const r = await runCommand(process.execPath, [...CLI, 'passwd', '--mysql-native'], {
      input: 'päss word\n',
    });
    assert.equal(r.code, 0, r.stderr);
    const [verifierLine, nativeLine, rest] = r.stdout.split('\n');
    assert.equal(rest, '');
    const v = parseVerifier(verifierLine ?? '');
    assert.ok(verifyCleartext('päss word', v, v));
    const m = /^mysql_native_hash: '(\*[0-9A-F]{40})'$/.exec(nativeLine ?? '');
    assert.ok(m, nativeLine);
    assert.deepEqual(parseNativeHash(m[1] as string), nativeHash('päss word'));
    // The line is accepted by the configuration as printed.
    const cfg = buildGatewayConfig(
      {
        users: [
          { name: 'u', kind: 'human', scram_verifier: verifierLine, mysql_native_hash: m[1], logins: {} },
        ],
        targets: [
          {
            name: 'm',
            engine: 'mysql',
            host: 'h',
            port: 3306,
            database: 'd',
            logins: { a: { user: 'x' } },
            policy: 'allow_all',
          },
        ],
      },
      '/tmp',
    );
    assert.deepEqual(cfg.users.get('u')?.mysqlNativeHash, nativeHash('päss word'));
    assert.deepEqual(cfg.mysqlListen, { host: '127.0.0.1', port: 13306 });
  });

  it('without the flag prints only the verifier; unknown arguments are refused', async () => {
    const plain = await runCommand(process.execPath, [...CLI, 'passwd'], { input: 'x' });
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.split('\n').length, 2);
    const bad = await runCommand(process.execPath, [...CLI, 'passwd', '--native'], { input: 'x' });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /unknown argument/);
  });

  it('the configuration refuses a search_path on a MySQL target and a malformed native hash', () => {
    const base = {
      name: 'm',
      engine: 'mysql',
      host: 'h',
      port: 3306,
      database: 'd',
      logins: { a: { user: 'x' } },
      policy: 'allow_all',
    };
    assert.throws(
      () => buildGatewayConfig({ users: [], targets: [{ ...base, search_path: ['public'] }] }, '/tmp'),
      /no search_path/,
    );
    assert.throws(
      () =>
        buildGatewayConfig(
          {
            users: [{ name: 'u', kind: 'human', scram_verifier: 'x', mysql_native_hash: '*12' }],
            targets: [base],
          },
          '/tmp',
        ),
      /mysql_native_hash/,
    );
    const pgOnly = buildGatewayConfig({ users: [], targets: [{ ...base, engine: 'postgres' }] }, '/tmp');
    assert.equal(pgOnly.mysqlListen, undefined);
  });
});
