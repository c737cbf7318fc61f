// End to end: `warden audit tail|search|export|prove|consistency|verify --pg` against a PostgreSQL audit store written by the log, including a tampered row the tools refuse to present.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { AuditLog } from '../src/audit/log.js';
import { makeEntry } from '../src/audit/entry.js';
import type { SessionOpenEntry, StatementEntry } from '../src/audit/entry.js';
import { generateSignerKey, parseSignerKey } from '../src/audit/note.js';
import { installPgAuditSchema, PgAuditStore } from '../src/audit/store-pg.js';
import { verifyConsistency } from '../src/audit/merkle.js';
import { runAudit } from '../src/cli/audit.js';
import type { CliIo } from '../src/cli/audit.js';

const ORIGIN = 'pgcli.e2e/log';
// The shared PostgreSQL of the test machine (trust); everything lives in a schema of its own, dropped after.
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };
const URL_ = `postgresql://${PG.user}@${PG.host}:${PG.port}/${PG.database}`;
const CLI = join(process.cwd(), 'src/cli/main.ts');

function capture(signal?: AbortSignal): { io: CliIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: {
      out: (t) => (out += t),
      err: (t) => (err += t),
      errIsTTY: false,
      followIntervalMs: 50,
      ...(signal !== undefined ? { signal } : {}),
    },
    out: () => out,
    err: () => err,
  };
}

const statement = (i: number): StatementEntry =>
  makeEntry<StatementEntry>({
    kind: 'statement',
    sessionId: 's1',
    principal: { name: i % 3 === 0 ? 'bob' : 'alice', kind: 'human', groups: [] },
    target: i % 2 === 0 ? 'prod' : 'staging',
    text: `SELECT * FROM t${i % 4} WHERE id = $1`,
    paramsHash: null,
    path: 'parse',
    decision: { effect: i % 5 === 0 ? 'deny' : 'allow', rules: [`r${i}`], reasons: [] },
    policyVersion: 1,
  });

describe('warden audit --pg (end to end)', () => {
  const schema = `pgcli_${randomBytes(4).toString('hex')}`;
  const role = `${schema}_gw`;
  let admin: pg.Client;
  let log: AuditLog | undefined;
  let dir: string;
  let vkeyFile: string;
  const base = (): string[] => ['--pg', URL_, '--schema', schema];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-pgcli-'));
    admin = new pg.Client(PG);
    await admin.connect();
    await admin.query(`CREATE ROLE ${role} NOLOGIN`);
    await installPgAuditSchema(admin, { schema, gatewayRole: role });
    const { skey } = generateSignerKey(ORIGIN);
    const signer = parseSignerKey(skey);
    vkeyFile = join(dir, 'log.vkey');
    writeFileSync(vkeyFile, `${signer.verifierKey}\n`);
    const store = await PgAuditStore.open({ connection: PG, schema });
    log = await AuditLog.open(store, { origin: ORIGIN, signer });
    await log.append(
      makeEntry<SessionOpenEntry>({
        kind: 'session.open',
        sessionId: 's1',
        principal: { name: 'alice', kind: 'human', groups: [] },
        protocol: 'postgres',
        target: 'prod',
        environment: 'test',
        sourceAddress: '127.0.0.1',
        tls: false,
        applicationName: 'psql',
      }),
    );
    for (let i = 1; i < 10; i++) await log.append(statement(i));
    await log.checkpoint(); // size 10
    for (let i = 10; i < 30; i++) await log.append(statement(i));
    await log.checkpoint(); // size 30
  });

  after(async () => {
    await log?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin?.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    await admin?.end().catch(() => undefined);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('tail, search and export read the PostgreSQL store', async () => {
    let c = capture();
    assert.equal(await runAudit(['tail', ...base(), '-n', '3'], c.io), 0, c.err());
    const tail = c
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { index: number; entry: StatementEntry });
    assert.deepEqual(
      tail.map((x) => x.index),
      [27, 28, 29],
    );
    assert.equal(tail[2]!.entry.text, 'SELECT * FROM t1 WHERE id = $1');

    c = capture();
    assert.equal(await runAudit(['search', ...base(), '--user', 'bob', '--decision', 'deny'], c.io), 0);
    const found = c
      .out()
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { index: number }).index);
    // bob: i % 3 == 0; deny: i % 5 == 0 -> 15 only (0 is the session.open entry).
    assert.deepEqual(found, [15]);
    assert.match(c.err(), /1 matching entry/);

    c = capture();
    assert.equal(await runAudit(['export', ...base()], c.io), 0);
    const lines = c.out().trim().split('\n');
    assert.equal(lines.length, 31, 'every entry and the checkpoint');
    assert.equal((JSON.parse(lines[0]!) as { entry: { kind: string } }).entry.kind, 'session.open');
    assert.equal((JSON.parse(lines[30]!) as { size: number }).size, 30);

    // The real command line, as its own process.
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'audit', 'export', ...base()], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, c.out());
  });

  it('prove and consistency give proofs that check offline; verify --pg agrees', async () => {
    let c = capture();
    const proof = join(dir, 'p7.proof');
    const entry = join(dir, 'p7.entry');
    assert.equal(
      await runAudit(
        ['prove', ...base(), '--key', vkeyFile, '--index', '7', '--out', proof, '--entry-out', entry],
        c.io,
      ),
      0,
      c.err(),
    );
    c = capture();
    assert.equal(
      await runAudit(['check-proof', proof, '--entry', entry, '--key', vkeyFile], c.io),
      0,
      c.out(),
    );
    assert.match(c.out(), /^OK entry 7 is in pgcli\.e2e\/log at size 30/);
    // prove --pg without a published key is a usage error (the key does not live beside a database).
    c = capture();
    assert.equal(await runAudit(['prove', ...base(), '--index', '7'], c.io), 2);

    c = capture();
    assert.equal(await runAudit(['consistency', ...base(), '--from', '10', '--to', '30'], c.io), 0, c.err());
    const out = c.out().trim().split('\n');
    const root1 = Buffer.from(out[1]!.slice('root1 '.length), 'base64');
    const root2 = Buffer.from(out[3]!.slice('root2 '.length), 'base64');
    assert.deepEqual(root2, Buffer.from(log!.root(30)));
    assert.deepEqual(root1, Buffer.from(log!.root(10)));
    verifyConsistency(
      10,
      30,
      out.slice(4).map((l) => Buffer.from(l, 'base64')),
      root1,
      root2,
    );

    c = capture();
    assert.equal(await runAudit(['verify', ...base(), '--key', vkeyFile], c.io), 0, c.out());
    assert.match(c.out(), /^OK 30 entries/);
  });

  it('tail --follow --pg prints entries as they are appended', async () => {
    const ac = new AbortController();
    const c = capture(ac.signal);
    const running = runAudit(['tail', ...base(), '-n', '0', '--follow'], c.io);
    await new Promise((r) => setTimeout(r, 200));
    await log!.append(statement(30));
    await log!.append(statement(31));
    const end = Date.now() + 10_000;
    while (c.out().trim().split('\n').filter(Boolean).length < 2 && Date.now() < end)
      await new Promise((r) => setTimeout(r, 25));
    ac.abort();
    assert.equal(await running, 0);
    assert.deepEqual(
      c
        .out()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { index: number }).index),
      [30, 31],
    );
  });

  it('a row tampered behind the triggers is refused by the tools and reported by verify', async () => {
    // The owner drops the protection and rewrites a payload (a real attacker with superuser rights).
    await admin.query(`ALTER TABLE ${schema}.entries DISABLE TRIGGER USER`);
    await admin.query(
      `UPDATE ${schema}.entries SET payload = convert_to(replace(convert_from(payload, 'UTF8'), 't1 ', 't9 '), 'UTF8') WHERE idx = 5`,
    );
    for (const t of ['warden_append_only_rows', 'warden_append_only_truncate'])
      await admin.query(`ALTER TABLE ${schema}.entries ENABLE ALWAYS TRIGGER ${t}`);
    await assert.rejects(
      runAudit(['export', ...base()], capture().io),
      /payload does not match its leaf hash/,
    );
    await assert.rejects(
      runAudit(['prove', ...base(), '--key', vkeyFile, '--index', '1'], capture().io),
      /payload does not match its leaf hash/,
    );
    const c = capture();
    assert.equal(await runAudit(['verify', ...base(), '--key', vkeyFile], c.io), 1);
    assert.match(c.out(), /^FAIL entry-corrupt at entry 5/);
    assert.ok(!readFileSync(vkeyFile, 'utf8').includes('PRIVATE'), 'only the public key was written');
  });
});
