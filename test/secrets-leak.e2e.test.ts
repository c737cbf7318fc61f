// End to end: canary secrets (upstream passwords, the audit signing key, API tokens, user passwords) never leave Warden.
//
// A real `warden serve` process runs with TLS, a signed bundle, the audit log and the admin API, in front of a private
// PostgreSQL that wants SCRAM. The test logs in (right and wrong), is denied, hits errors (upstream down, upstream
// refusing Warden's password, a bad bundle reload), reads every GET route of the admin API and the console, exports the
// audit log, then stops the gateway and searches everything it said or wrote for each canary in several encodings.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { makeTestPki, type TestPki } from './harness/certs.js';
import { runPsql } from './harness/clients.js';
import { createVerifier } from '../src/identity/scram.js';
import { generateSignerKey } from '../src/audit/note.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';
import { DEMO_DATA_SQL, DEMO_SCHEMA_SQL } from '../src/demo/sample-data.js';

const CLI = join(process.cwd(), 'src/cli/main.ts');
const ORIGIN = 'leak.test/audit';
const BUNDLE_DIR = join(process.cwd(), 'demo/bundle');
const POLICY_DIR = join(process.cwd(), 'demo/policy');

// Canaries: distinctive, never otherwise produced. Each is searched for raw, in base64/base64url and in hex.
const UP = 'canary-upstream-Qx7Vb2Lm9';
const DOWN_PW = 'canary-downstream-Zr4Kp8Wd';
const WRONG_UP = 'canary-wrongup-Hs3Jn6Tc';
const ALICE = 'canary-alice-pw-Fy5Gq1Xe';
const ALICE_TYPO = 'canary-alice-typo-Mb2Nw7Rk';
const MALLORY = 'canary-mallory-pw-Pv9Ds4Uj';

/** A port on which nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Every encoding under which a secret could slip out. */
function encodings(secret: string | Buffer): string[] {
  const b = Buffer.isBuffer(secret) ? secret : Buffer.from(secret);
  const forms = [
    b.toString('base64'),
    b.toString('base64url'),
    b.toString('hex'),
    b.toString('hex').toUpperCase(),
  ];
  // Unpadded base64 of the whole value, and its body without the last (partial) group.
  forms.push(b.toString('base64').replace(/=+$/, ''));
  if (!Buffer.isBuffer(secret)) forms.push(secret);
  return [...new Set(forms)].filter((f) => f.length >= 12);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

interface Serve {
  readonly child: ChildProcess;
  readonly port: number;
  readonly apiPort: number;
  readonly exited: Promise<unknown>;
  readonly output: () => string;
}

async function startServe(config: string): Promise<Serve> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<number>((resolve, reject) => {
    lines.on('line', (l) => {
      text += l + '\n';
      try {
        const m = JSON.parse(l) as { msg?: string; port?: number };
        if (m.msg === 'warden listening' && typeof m.port === 'number') resolve(m.port);
      } catch {
        // not a log line
      }
    });
    void exited.then(() => reject(new Error(`warden serve exited early: ${text}`)));
  });
  // The admin API's line goes to stderr (the gateway's log), before the listener's on stdout.
  const apiPort = Number(/"msg":"admin API listening"[^\n]*?"port":(\d+)/.exec(text)?.[1] ?? 0);
  return { child, port, apiPort, exited, output: () => text };
}

describe('secrets never leak', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: PgInstance;
  let serve: Serve;
  let stateDir: string;
  let auditDir: string;
  let bundlePath: string;
  let logKey: string;
  let vkeyFile: string;
  let operatorToken: string;
  let approverToken: string;
  /** Everything observed from outside: client errors, API bodies, CLI output. */
  const seen: { where: string; text: string }[] = [];
  const note = (where: string, text: string): void => {
    seen.push({ where, text });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-leak-'));
    pki = await makeTestPki(join(dir, 'pki'));
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(
      `${DEMO_SCHEMA_SQL}${DEMO_DATA_SQL}
       GRANT ALL ON ALL TABLES IN SCHEMA public TO app; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app;`,
      'appdb',
    );
    stateDir = join(dir, 'state');
    auditDir = join(stateDir, 'audit');
    mkdirSync(stateDir, { mode: 0o700 });
    const secret = (name: string, value: string): string => {
      const p = join(dir, name);
      writeFileSync(p, value + '\n', { mode: 0o600 });
      return p;
    };
    const keys = generateSignerKey(ORIGIN);
    logKey = keys.skey;
    const logKeyFile = secret('log.key', logKey);
    vkeyFile = join(dir, 'log.vkey');
    writeFileSync(vkeyFile, keys.vkey + '\n');
    const tokensFile = join(dir, 'api-tokens.yaml');
    operatorToken = addTokenToFile(tokensFile, {
      user: 'alice',
      roles: ['viewer', 'auditor', 'operator'],
    }).token;
    approverToken = addTokenToFile(tokensFile, { user: 'carol', roles: ['approver'] }).token;
    bundlePath = join(dir, 'bundle.json');
    copyFileSync(join(BUNDLE_DIR, 'bundle.json'), bundlePath);
    const logins = { main: 'app', down: 'app', wrong: 'app' };
    const configFile = join(dir, 'warden.yaml');
    writeFileSync(
      configFile,
      JSON.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
        state_dir: stateDir,
        audit: { dir: auditDir, origin: ORIGIN, key_file: logKeyFile, checkpoint_interval_ms: 200 },
        admin_api: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: tokensFile },
        users: [
          { name: 'alice', kind: 'human', groups: ['analysts'], attributes: { tenant: '1' } },
          { name: 'bob', kind: 'human', groups: ['writers'], attributes: { tenant: '1' } },
          { name: 'carol', kind: 'human', groups: ['approvers'] },
        ].map((u) => ({ ...u, scram_verifier: createVerifier(ALICE), logins })),
        targets: [
          {
            name: 'main',
            host: '127.0.0.1',
            port: upstream.port,
            database: 'appdb',
            logins: { app: { user: 'app', password_file: secret('up.pw', UP) } },
            policy: { bundle: { root: join(BUNDLE_DIR, 'root.json'), path: bundlePath } },
          },
          {
            name: 'down',
            host: '127.0.0.1',
            port: await closedPort(),
            database: 'appdb',
            logins: { app: { user: 'app', password_file: secret('down.pw', DOWN_PW) } },
            policy: { folder: POLICY_DIR },
          },
          {
            name: 'wrong',
            host: '127.0.0.1',
            port: upstream.port,
            database: 'appdb',
            logins: { app: { user: 'app', password_file: secret('wrong.pw', WRONG_UP) } },
            policy: { folder: POLICY_DIR },
          },
        ],
      }),
    );
    serve = await startServe(configFile);
  });

  after(async () => {
    if (serve && serve.child.exitCode === null) {
      serve.child.kill('SIGKILL');
      await serve.exited;
    }
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const client = (password: string, o: { user?: string; database?: string } = {}): pg.Client => {
    const c = new pg.Client({
      host: 'localhost',
      port: serve.port,
      user: o.user ?? 'alice',
      password,
      database: o.database ?? 'main',
      ssl: { ca: readFileSync(pki.caCert) },
    });
    c.on('error', () => undefined);
    return c;
  };
  const expectError = async (what: string, p: Promise<unknown>, code?: string): Promise<void> => {
    await assert.rejects(p, (e: pg.DatabaseError) => {
      note(what, `${e.code} ${e.message} ${e.detail ?? ''} ${e.hint ?? ''}`);
      if (code !== undefined) assert.equal(e.code, code, `${what}: ${e.message}`);
      return true;
    });
  };

  it('logins, statements, denials and errors', async () => {
    const c = client(ALICE);
    await c.connect();
    const rows = await c.query('SELECT name, ssn FROM customers ORDER BY id');
    note('masked read', JSON.stringify(rows.rows));
    assert.equal(rows.rows.length, 2, 'row filter: tenant 1 only');
    await expectError('denial', c.query('UPDATE orders SET amount = 0 WHERE id = 100'), '42501');
    await expectError('parse error', c.query('SELEC nonsense'));
    await expectError('unknown table', c.query('SELECT * FROM no_such_table'));
    // A statement whose text carries the password: it is recorded (it is SQL), but the canary set below excludes
    // nothing of the sort; so this only checks the gateway does not add secrets of its own.
    await c.end();

    const viaPsql = await runPsql({
      host: 'localhost',
      port: serve.port,
      user: 'bob',
      password: ALICE,
      database: 'main',
      sslmode: 'verify-full',
      sslrootcert: pki.caCert,
      args: [
        '-c',
        "INSERT INTO ledger (account, amount) VALUES ('sale', 1)",
        '-c',
        'UPDATE ledger SET amount = 0',
      ],
    });
    note('psql', viaPsql.stdout + viaPsql.stderr);
    assert.match(viaPsql.stderr, /append_only/);

    await expectError('wrong password', client(ALICE_TYPO).connect(), '28P01');
    await expectError('unknown user', client(MALLORY, { user: 'mallory' }).connect(), '28P01');
    await expectError('upstream down', client(ALICE, { database: 'down' }).connect(), '08001');
    await expectError('upstream refuses Warden', client(ALICE, { database: 'wrong' }).connect(), '08001');
    const psqlBad = await runPsql({
      host: 'localhost',
      port: serve.port,
      user: 'alice',
      password: ALICE_TYPO,
      database: 'main',
      sslmode: 'require',
      args: ['-c', 'SELECT 1'],
    });
    note('psql wrong password', psqlBad.stdout + psqlBad.stderr);
    assert.notEqual(psqlBad.code, 0);
  });

  it('the upstream restarts under an open session: a clear error, then new sessions work', async () => {
    const c = client(ALICE);
    await c.connect();
    const lost = new Promise<string>((resolve) => {
      c.on('error', (e: Error & { code?: string }) => resolve(`${e.code ?? ''} ${e.message}`));
      c.on('end', () => resolve('ended'));
    });
    await upstream.restart();
    await expectError('query after upstream restart', c.query('SELECT 1'));
    note('session error on upstream loss', await lost);
    const again = client(ALICE);
    await again.connect();
    assert.equal((await again.query('SELECT count(*)::int AS n FROM orders')).rows[0]?.n, 5);
    await again.end();
  });

  it('a bad bundle reload (SIGHUP) is refused and reported without secrets', async () => {
    const good = readFileSync(bundlePath);
    writeFileSync(bundlePath, good.toString().replace(/"payload":\s*"./, '"payload":"A'));
    serve.child.kill('SIGHUP');
    const deadline = Date.now() + 15_000;
    while (!/bundle refused|not-activated|reload/i.test(serve.output()) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(serve.output(), /bundle refused|not-activated|reload/i);
    writeFileSync(bundlePath, '{ this is not json');
    serve.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 1500));
    writeFileSync(bundlePath, good);
  });

  it('every admin API GET route, the console, and bad tokens', async () => {
    const base = `http://127.0.0.1:${serve.apiPort}`;
    const get = async (path: string, token?: string): Promise<{ status: number; text: string }> => {
      const r = await fetch(base + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
      const text = await r.text();
      note(
        `GET ${path} (${token === undefined ? 'anonymous' : token === operatorToken ? 'operator' : 'other'})`,
        text,
      );
      return { status: r.status, text };
    };
    const doc = JSON.parse((await get('/api/openapi.json')).text) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const sessions = JSON.parse((await get('/api/sessions', operatorToken)).text) as unknown;
    const firstId = /"id":"([^"]+)"/.exec(JSON.stringify(sessions))?.[1] ?? 'none';
    const gets = Object.entries(doc.paths).filter(([, ops]) => 'get' in ops);
    assert.ok(gets.length >= 10, `the OpenAPI document lists the GET routes (${gets.length})`);
    let ok = 0;
    for (const [path] of gets) {
      const concrete = path
        .replace('{index}', '0')
        .replace('{id}', firstId)
        .replace(/\{[^}]+\}/g, 'x');
      for (const token of [operatorToken, approverToken, undefined, 'wdn_bogus_' + 'A'.repeat(40)]) {
        const r = await get(concrete, token);
        if (r.status === 200) ok++;
      }
    }
    assert.ok(ok >= gets.length, `most routes answered 200 at least once (${ok})`);
    await get('/');
    await get('/api/audit/entries?limit=500', operatorToken);
    await get('/metrics', operatorToken);
  });

  it('warden audit export and verify', () => {
    for (const args of [
      ['audit', 'export', '--dir', auditDir],
      ['audit', 'verify', '--dir', auditDir, '--key', vkeyFile],
    ]) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8' });
      note(args.join(' '), r.stdout + r.stderr);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.ok(
      seen.some((s) => s.where === 'audit export --dir ' + auditDir && s.text.includes('auth.failure')),
    );
  });

  it('no canary appears in any output, response, audit entry or file the gateway wrote', async () => {
    serve.child.kill('SIGTERM');
    await serve.exited;
    note('gateway stdout+stderr', serve.output());
    assert.match(serve.output(), /warden stopped/);
    // Files Warden wrote (audit log, checkpoints, approvals, bundle state), but not the secret files themselves.
    for (const f of filesUnder(stateDir)) {
      if (/fake-salt\.key$/.test(f)) continue;
      assert.equal(statSync(f).mode & 0o077 & 0o022, 0, `${f} is not writable by others`);
      note(`file ${relative(dir, f)}`, readFileSync(f).toString('latin1'));
    }
    const seed = Buffer.from(logKey.split('+').pop() ?? '', 'base64');
    const canaries: [string, string[]][] = [
      ['upstream password', encodings(UP)],
      ['password of the unreachable target', encodings(DOWN_PW)],
      ['wrong upstream password', encodings(WRONG_UP)],
      ["alice's password", encodings(ALICE)],
      ["alice's mistyped password", encodings(ALICE_TYPO)],
      ["an unknown user's password", encodings(MALLORY)],
      ['audit signing key', [logKey, ...encodings(seed), ...encodings(seed.subarray(1))]],
      ['operator API token', encodings(operatorToken)],
      ['approver API token', encodings(approverToken)],
      ['API token secret part', encodings(operatorToken.split('_').pop() ?? '')],
      ['fake-salt key', [readFileSync(join(stateDir, 'fake-salt.key'), 'utf8').trim()]],
    ];
    assert.ok(seen.length > 50, `enough was observed (${seen.length})`);
    const leaks: string[] = [];
    for (const { where, text } of seen) {
      for (const [name, forms] of canaries) {
        for (const f of forms) if (text.includes(f)) leaks.push(`${name} in ${where}`);
      }
    }
    assert.deepEqual(leaks, []);
    // Positive control: the same search finds each secret where it does belong (its own file, the client's side).
    const found = (text: string, forms: string[]): boolean => forms.some((f) => text.includes(f));
    assert.ok(found(readFileSync(join(dir, 'up.pw'), 'utf8'), canaries[0]![1]));
    assert.ok(found(Buffer.from(UP).toString('base64'), canaries[0]![1]));
    assert.ok(found(readFileSync(join(dir, 'log.key'), 'utf8'), canaries[6]![1]));
    assert.ok(found(`Bearer ${Buffer.from(operatorToken).toString('hex')}`, canaries[7]![1]));
    // And the exercise did produce what it claims to search: audit entries of failures and denials.
    const exported = seen.find((s) => s.where.startsWith('audit export'))?.text ?? '';
    for (const kind of ['auth.failure', 'statement', 'bundle']) assert.match(exported, new RegExp(kind));
  });
});
