// End to end: the demo policy enforced at the statement hook, through a real gateway to a private PostgreSQL seeded with the demo schema, with psql and node-postgres.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { runPsql } from './harness/clients.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { DEMO_DATA_SQL, DEMO_SCHEMA_SQL } from '../src/demo/sample-data.js';

const POLICY = fileURLToPath(new URL('../demo/policy', import.meta.url));
const UP_PASSWORD = 'up-secret-P7';
const PW = { alice: 'alice-pw-1', bob: 'bob-pw-2', carol: 'carol-pw-3' } as const;
type Who = keyof typeof PW;
/** The raw SSNs of the demo data: none of them may ever reach alice or bob. */
const RAW_SSNS = ['123-45-6789', '987-65-4321', '555-12-3456', '222-33-4444'];

function assertNoRawSsn(text: string): void {
  for (const s of RAW_SSNS) assert.equal(text.includes(s), false, `raw ssn ${s} leaked: ${text}`);
}

/** pg's DatabaseError carries the SQLSTATE in `code`. */
function isPgError(code: string, pattern?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    const err = e as { code?: string; message?: string };
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message ?? '', pattern);
    return true;
  };
}

describe('policy hook end to end (demo policy)', () => {
  let upstream: PgInstance;
  let gw: TestGateway;

  const psql = (who: Who, sql: string, extra: string[] = []) =>
    runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: who,
      password: PW[who],
      database: 'main',
      args: ['-At', ...extra, '-c', sql],
    });
  const ledger = async (): Promise<string> =>
    JSON.stringify(
      await upstream.query('SELECT id, account, amount FROM public.ledger ORDER BY id', 'appdb'),
    );

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(`SET ROLE app; ${DEMO_SCHEMA_SQL} ${DEMO_DATA_SQL}`, 'appdb');
    await upstream.query(
      'CREATE FUNCTION public.secret_fn() RETURNS text LANGUAGE sql AS $$ SELECT $x$secret$x$ $$; ' +
        'GRANT EXECUTE ON FUNCTION public.secret_fn() TO app',
      'appdb',
    );
    gw = await startTestGateway({
      targets: [
        { port: upstream.port, database: 'appdb', user: 'app', password: UP_PASSWORD, policyFolder: POLICY },
      ],
      users: (Object.keys(PW) as Who[]).map((name) => ({ name, password: PW[name] })),
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.stop();
  });

  it('lets alice read orders', async () => {
    const r = await psql('alice', 'SELECT count(*) FROM orders');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '5');
  });

  it("masks alice's ssn and filters her tenant, through psql, however the column is reached", async () => {
    const plain = await psql('alice', 'SELECT id, ssn FROM customers ORDER BY id');
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(plain.stdout.trim().split('\n'), ['1|*******6789', '2|*******4321']);
    for (const sql of [
      'SELECT c FROM customers c ORDER BY c.id',
      'SELECT row_to_json(c) FROM customers c',
      'SELECT * FROM customers',
      'SELECT x.ssn FROM (SELECT * FROM public.customers) x',
    ]) {
      const r = await psql('alice', sql);
      assert.equal(r.code, 0, `${sql}: ${r.stderr}`);
      assertNoRawSsn(r.stdout);
      assert.match(r.stdout, /\*{7}6789/, sql);
      assert.equal(r.stdout.includes('Grace'), false, `row filter: ${r.stdout}`);
    }
  });

  it("masks alice's ssn through node-postgres (simple and extended protocol)", async () => {
    const c = await gw.connect('alice', PW.alice);
    try {
      const whole = await c.query('SELECT c FROM customers c ORDER BY c.id');
      const json = await c.query('SELECT row_to_json(c) AS j FROM customers c ORDER BY c.id');
      const param = await c.query('SELECT ssn FROM customers WHERE id = $1', [2]);
      const text = JSON.stringify([whole.rows, json.rows, param.rows]);
      assertNoRawSsn(text);
      assert.deepEqual(param.rows, [{ ssn: '*******4321' }]);
      assert.equal((json.rows[0] as { j: { ssn: string } }).j.ssn, '*******6789');
    } finally {
      await c.end();
    }
  });

  it("denies bob's UPDATE of the append-only ledger with 42501 and leaves it unchanged", async () => {
    const before = await ledger();
    const c = await gw.connect('bob', PW.bob);
    try {
      await assert.rejects(
        c.query('UPDATE ledger SET amount = 0 WHERE id = 1'),
        isPgError('42501', /append_only:public\.ledger/),
      );
      await assert.rejects(
        c.query('UPDATE ledger SET amount = $1 WHERE id = 1', [0]),
        isPgError('42501', /append_only:public\.ledger/),
      );
      // The session stays usable.
      assert.equal((await c.query('SELECT 1 AS one')).rows[0]?.one, 1);
    } finally {
      await c.end();
    }
    assert.equal(await ledger(), before);
    const r = await psql('bob', 'DELETE FROM ledger');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /append_only:public\.ledger/);
    assert.equal(await ledger(), before);
  });

  it('denies an unknown user-level function, SET search_path, SET ROLE, and unparsable SQL', async () => {
    const c = await gw.connect('alice', PW.alice);
    try {
      await assert.rejects(c.query('SELECT public.secret_fn()'), isPgError('42501', /secret_fn/));
      await assert.rejects(c.query('SET search_path = evil, public'), isPgError('42501', /search_path/));
      await assert.rejects(c.query('SET ROLE postgres'), isPgError('42501', /setting:role/));
      await assert.rejects(c.query('SELEC 1 FROM orders'), isPgError('42601', /could not be parsed/));
      assert.equal((await c.query('SHOW search_path')).rows.length, 1);
    } finally {
      await c.end();
    }
  });

  it('runs nothing of a multi-statement string in which one statement is denied', async () => {
    const before = await ledger();
    const r = await psql(
      'bob',
      "INSERT INTO ledger (account, amount) VALUES ('sneaky', 1); UPDATE ledger SET amount = 0 WHERE id = 1",
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /append_only:public\.ledger/);
    assert.equal(await ledger(), before);
    const ok = await psql('bob', "INSERT INTO ledger (account, amount) VALUES ('sale', 2); SELECT 1");
    assert.equal(ok.code, 0, ok.stderr);
    assert.notEqual(await ledger(), before);
  });

  it('refuses a bulk change that needs approval with WA001', async () => {
    const c = await gw.connect('bob', PW.bob);
    try {
      await assert.rejects(c.query('UPDATE orders SET amount = 0'), isPgError('WA001', /bulk-change/));
    } finally {
      await c.end();
    }
  });

  it('allows PREPARE/EXECUTE of allowed bodies (masked) and denies forbidden ones', async () => {
    const c = await gw.connect('bob', PW.bob);
    try {
      await c.query('PREPARE p1 AS SELECT ssn FROM customers WHERE id = $1');
      const r = await c.query('EXECUTE p1(1)');
      assert.deepEqual(r.rows, [{ ssn: '*******6789' }]);
      await assert.rejects(
        c.query('PREPARE p2 AS UPDATE ledger SET amount = 0'),
        isPgError('42501', /append_only/),
      );
      await assert.rejects(c.query('EXECUTE p2'), isPgError('42501', /prepared:unknown/));
      await assert.rejects(c.query('PREPARE p3 AS SELECT email FROM customers'), isPgError('42501'));
      await assert.rejects(c.query('EXECUTE p3'), isPgError('42501', /prepared:unknown/));
      // A body may not smuggle a forbidden function through EXECUTE's parameters.
      await assert.rejects(c.query('EXECUTE p1(length(public.secret_fn()))'), isPgError('42501'));
      await c.query('DEALLOCATE p1');
      await assert.rejects(c.query('EXECUTE p1(1)'), isPgError('42501', /prepared:unknown/));
    } finally {
      await c.end();
    }
    // Names are per session: another session of bob cannot execute what this one prepared.
    const d = await gw.connect('bob', PW.bob);
    try {
      await assert.rejects(d.query('EXECUTE p1(1)'), isPgError('42501', /prepared:unknown/));
    } finally {
      await d.end();
    }
  });

  it('decides extended-protocol statements at Parse, including named ones reused by SQL EXECUTE', async () => {
    const c: pg.Client = await gw.connect('alice', PW.alice);
    try {
      const q = { name: 'by_id', text: 'SELECT name, ssn FROM customers WHERE id = $1' };
      const one = await c.query({ ...q, values: [1] });
      const two = await c.query({ ...q, values: [2] });
      assert.deepEqual(
        [...one.rows, ...two.rows].map((r: { ssn: string }) => r.ssn),
        ['*******6789', '*******4321'],
      );
      // Tenant 2 is filtered out even when asked for by id.
      assert.equal((await c.query({ ...q, values: [3] })).rows.length, 0);
      const viaSql = await c.query('EXECUTE by_id(2)');
      assert.deepEqual(viaSql.rows, [{ name: 'Alan Turing', ssn: '*******4321' }]);
      await assert.rejects(
        c.query({ name: 'upd', text: 'UPDATE orders SET amount = $1 WHERE id = 100', values: [1] }),
        isPgError('42501', /default-deny/),
      );
      assert.equal((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0]?.n, 5);
    } finally {
      await c.end();
    }
  });

  it('lets alice use psql \\d customers and \\dt', async () => {
    const d = await psql('alice', '\\d customers');
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /ssn/);
    const dt = await psql('alice', '\\dt');
    assert.equal(dt.code, 0, dt.stderr);
    assert.match(dt.stdout, /customers/);
    assert.match(dt.stdout, /ledger/);
  });
});
