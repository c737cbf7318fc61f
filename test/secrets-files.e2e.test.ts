// Every key or password file Warden reads is refused when group- or world-accessible, naming the file and the fix.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from './harness/certs.js';
import { startTestGateway } from './helpers/warden.js';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { isWardenError } from '../src/core/errors.js';
import { generateSignerKey } from '../src/audit/note.js';
import { AuditLog, loadOrCreateLogKey } from '../src/audit/log.js';
import { generateWitnessKey } from '../src/audit/witness.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';
import { runWitness } from '../src/cli/witness.js';
import { makeAuditCommands, type CliIo } from '../src/cli/audit.js';
import { bundleCommands } from '../src/cli/bundle.js';
import { loadOrCreateRsaKeys } from '../src/identity/mysql-auth.js';

const REPO = process.cwd();
const SHARED_PG = { port: 5432, database: 'postgres', user: 'postgres' };

/** Asserts `fn` fails with a configuration error that names `file` and `chmod 600`, and holds no `secret`. */
async function refused(fn: () => unknown, file: string, secret: string): Promise<void> {
  let error: unknown;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `${file}: expected a refusal`);
  const msg = (error as Error).message;
  assert.ok(isWardenError(error, 'CONFIG_INVALID'), `${file}: ${msg}`);
  assert.match(msg, /group or others/);
  assert.ok(msg.includes(file), `the message names the file: ${msg}`);
  assert.match(msg, /chmod 600/);
  assert.ok(!msg.includes(secret.trim()), 'the message does not show the secret');
}

describe('secret files with loose permissions are refused', () => {
  let dir: string;
  let pki: TestPki;
  const verifier = createVerifier('pw', { iterations: 4096 });
  const raw = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
    listen: { host: '127.0.0.1', port: 0 },
    state_dir: join(dir, 'state'),
    users: [{ name: 'alice', kind: 'human', scram_verifier: verifier, logins: { main: 'app' } }],
    targets: [
      {
        name: 'main',
        host: '127.0.0.1',
        port: 5432,
        database: 'postgres',
        logins: { app: { user: 'postgres' } },
        policy: 'allow_all',
      },
    ],
    ...o,
  });
  const loose = (name: string, content: string, mode = 0o644): string => {
    const p = join(dir, name);
    writeFileSync(p, content);
    chmodSync(p, mode);
    return p;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-secretfiles-'));
    pki = await makeTestPki(join(dir, 'pki'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the listener TLS private key', async () => {
    const key = join(dir, 'tls.key');
    copyFileSync(pki.serverKey, key);
    chmodSync(key, 0o640);
    const text = readFileSync(key, 'utf8');
    const body = text.split('\n')[1] ?? '';
    await refused(
      () =>
        startTestGateway({
          targets: [SHARED_PG],
          users: [{ name: 'alice', password: 'pw' }],
          tls: { cert_file: pki.serverCert, key_file: key },
        }),
      key,
      body,
    );
    chmodSync(key, 0o600);
    const ok = await startTestGateway({
      targets: [SHARED_PG],
      users: [{ name: 'alice', password: 'pw' }],
      tls: { cert_file: pki.serverCert, key_file: key },
    });
    await ok.stop();
  });

  it('upstream password files (targets and the PostgreSQL audit store)', async () => {
    const pw = loose('up.pw', 'canary-up-secret\n', 0o604);
    const withLogin = raw({
      targets: [
        {
          name: 'main',
          host: '127.0.0.1',
          port: 5432,
          database: 'postgres',
          logins: { app: { user: 'postgres', password_file: pw } },
          policy: 'allow_all',
        },
      ],
    });
    await refused(() => buildGatewayConfig(withLogin, dir), pw, 'canary-up-secret');
    const store = raw({
      audit: {
        dir: join(dir, 'a'),
        origin: 'x.test/a',
        postgres: {
          host: '127.0.0.1',
          port: 5432,
          database: 'postgres',
          user: 'postgres',
          password_file: pw,
        },
      },
    });
    await refused(() => buildGatewayConfig(store, dir), pw, 'canary-up-secret');
  });

  it('the admin API token file', async () => {
    const file = join(dir, 'tokens.yaml');
    addTokenToFile(file, { user: 'alice', roles: ['viewer'] });
    chmodSync(file, 0o644);
    const cfg = raw({ admin_api: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: file } });
    await refused(() => buildGatewayConfig(cfg, dir), file, 'sha256:');
    chmodSync(file, 0o600);
    assert.ok(buildGatewayConfig(cfg, dir).adminApi);
  });

  it("the audit log's signing key, in the gateway and in the audit tools", async () => {
    const { skey } = generateSignerKey('x.test/audit');
    const key = loose('log.key', `${skey}\n`, 0o640);
    await refused(() => loadOrCreateLogKey(key, 'x.test/audit'), key, skey);
    await refused(
      () => AuditLog.openDir(join(dir, 'audit'), { origin: 'x.test/audit', keyFile: key }),
      key,
      skey,
    );
    // `warden audit verify` without --key derives the public key from the log's own key file.
    const auditDir = join(dir, 'audit2');
    mkdirSync(auditDir);
    const inDir = join(auditDir, 'log.key');
    writeFileSync(inDir, `${skey}\n`, { mode: 0o644 });
    chmodSync(inDir, 0o644);
    const out: string[] = [];
    const io: CliIo = { out: (t) => void out.push(t), err: (t) => void out.push(t), errIsTTY: false };
    await refused(() => makeAuditCommands(io)['verify']!.run(['--dir', auditDir]), inDir, skey);
    assert.ok(!out.join('').includes(skey));
  });

  it('the fake-salt key in the state folder', async () => {
    const state = join(dir, 'gwstate');
    mkdirSync(state, { mode: 0o700 });
    const salt = loose('gwstate/fake-salt.key', `${'ab'.repeat(32)}\n`, 0o644);
    await refused(
      () =>
        startTestGateway({ dir: state, targets: [SHARED_PG], users: [{ name: 'alice', password: 'pw' }] }),
      salt,
      'ab'.repeat(32),
    );
  });

  it("the MySQL front end's RSA key in the state folder", async () => {
    const state = join(dir, 'mystate');
    mkdirSync(state, { mode: 0o700 });
    loadOrCreateRsaKeys(state); // created 0600: accepted
    const key = join(state, 'mysql-rsa.key');
    chmodSync(key, 0o640);
    await refused(() => loadOrCreateRsaKeys(state), key, readFileSync(key, 'utf8').split('\n')[1] ?? '');
  });

  it('`warden bundle sign --key` refuses a loose signing key', async () => {
    const key = join(dir, 'ana.key');
    copyFileSync(join(REPO, 'test/fixtures/bundle/keys/ana.key'), key);
    chmodSync(key, 0o644);
    const secret = readFileSync(key, 'utf8');
    const bundle = join(dir, 'bundle.json');
    copyFileSync(join(REPO, 'demo/bundle/bundle.json'), bundle);
    const before = readFileSync(bundle, 'utf8');
    await refused(() => bundleCommands['sign']!.run([bundle, '--key', key]), key, secret);
    assert.equal(readFileSync(bundle, 'utf8'), before, 'nothing was signed');
  });

  it('`warden witness serve --key` refuses a loose cosigner key', async () => {
    const { skey } = generateWitnessKey('witness.test');
    const key = loose('witness.key', `${skey}\n`, 0o660);
    // The log's verifier key is public: it may be readable by anyone.
    const logKey = loose('log.vkey', `${generateSignerKey('x.test/audit').vkey}\n`, 0o644);
    const io: CliIo = { out: () => undefined, err: () => undefined, errIsTTY: false };
    await refused(
      () =>
        runWitness(
          [
            'serve',
            '--key',
            key,
            '--log-key',
            logKey,
            '--state',
            join(dir, 'w.state'),
            '--listen',
            '127.0.0.1:0',
          ],
          io,
        ),
      key,
      skey,
    );
  });
});
