// Tests for the mask/row-filter rewriter: tree-level checks, then every masking trick run against the real PostgreSQL on 127.0.0.1:5432.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { isWardenError } from '../core/errors.js';
import { initSqlAnalyser } from './analyze.js';
import { parseSql } from './parser.js';
import { rewrite } from './rewrite.js';
import type { TableProtection } from './rewrite.js';

const SCHEMA = `warden_rw_${process.pid}_${randomBytes(4).toString('hex')}`;
const SP = { searchPath: [SCHEMA] };

const RAW_SSNS = ['123-45-6789', '987-65-4321', '555-12-3456'];
const RAW_EMAILS = ['ann@example.com', 'bob@example.com', 'eve@example.com'];
/** Row of tenant 2: the row filter must hide it entirely. */
const HIDDEN_NAME = 'eve-tenant2';

const PROTECTION: TableProtection = {
  columns: ['id', 'name', 'ssn', 'email', 'tenant'],
  masks: new Map([
    ['ssn', "left(ssn, 3) || '-**-****'"],
    ['email', "'***'"],
  ]),
  rowFilter: 'tenant = 1',
};
const PROTECTIONS = new Map([[`${SCHEMA}.customers`, PROTECTION]]);

before(async () => {
  await initSqlAnalyser();
});

void describe('rewrite: without a database', () => {
  void test('returns SQL that reads nothing protected unchanged', async () => {
    const sql = 'SELECT a FROM other WHERE b = 1';
    assert.equal(await rewrite(sql, PROTECTIONS, SP), sql);
  });

  void test('a CTE named like the protected table shadows it, but the CTE body reads the real table', async () => {
    const out = await rewrite(
      'WITH customers AS (SELECT * FROM customers) SELECT ssn FROM customers',
      PROTECTIONS,
      SP,
    );
    assert.equal((out.match(/FROM public|FROM warden_rw/g) ?? []).length, 1, out);
    assert.match(out, /-\*\*-\*\*\*\*/);
  });

  void test('a later CTE referencing an earlier one is not rewritten; the real table is', async () => {
    const out = await rewrite(
      'WITH a AS (SELECT 1 AS x), customers AS (SELECT * FROM a) SELECT * FROM customers',
      PROTECTIONS,
      SP,
    );
    assert.equal(out.includes(SCHEMA), false, out);
    const out2 = await rewrite('WITH a AS (SELECT * FROM customers) SELECT * FROM a', PROTECTIONS, SP);
    assert.ok(out2.includes(`${SCHEMA}.customers`), out2);
  });

  void test('a CTE inside one arm of a UNION only shadows the table in that arm', async () => {
    const out = await rewrite(
      '(WITH customers AS (SELECT 1 AS ssn) SELECT ssn FROM customers) UNION SELECT ssn FROM customers',
      PROTECTIONS,
      SP,
    );
    assert.equal(out.split(`${SCHEMA}.customers`).length - 1, 1, out);
  });

  void test('other search paths resolve elsewhere and are not rewritten', async () => {
    const sql = 'SELECT ssn FROM customers';
    assert.equal(await rewrite(sql, PROTECTIONS, { searchPath: ['public'] }), sql);
  });

  void test('mask and filter expressions must be a single expression', async () => {
    for (const bad of ["'x'; DROP TABLE t", "'x' FROM pg_shadow", '1, 2', 'SELECT', "'x' AS y"]) {
      const prot = new Map([[`${SCHEMA}.customers`, { ...PROTECTION, masks: new Map([['ssn', bad]]) }]]);
      await assert.rejects(
        rewrite('SELECT 1 FROM customers', prot, SP),
        (e) => isWardenError(e, 'CONFIG_INVALID'),
        bad,
      );
    }
    const badFilter = new Map([[`${SCHEMA}.customers`, { ...PROTECTION, rowFilter: 'true; DELETE FROM t' }]]);
    await assert.rejects(rewrite('SELECT 1 FROM customers', badFilter, SP), (e) =>
      isWardenError(e, 'CONFIG_INVALID'),
    );
  });

  const DENIED = [
    "UPDATE customers SET name = 'x' WHERE ssn = '123-45-6789'",
    'UPDATE customers SET name = ssn',
    'UPDATE customers c SET name = (c).ssn',
    'UPDATE customers SET name = customers.email',
    'UPDATE customers SET name = row_to_json(customers)::text',
    'DELETE FROM customers WHERE ssn LIKE $$1%$$',
    'DELETE FROM customers RETURNING *',
    'DELETE FROM customers c RETURNING c',
    'INSERT INTO customers (id) VALUES (9) RETURNING ssn',
    'INSERT INTO customers (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = customers.ssn',
    'MERGE INTO customers c USING (SELECT 1 AS id) s ON c.id = s.id WHEN MATCHED THEN DELETE',
    'SELECT * FROM customers TABLESAMPLE SYSTEM (50)',
    "DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM customers LIMIT 1); END $$",
    "CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM customers'",
    "SELECT query_to_xml('SELECT * FROM customers', true, true, '')",
  ];
  for (const sql of DENIED) {
    void test(`refuses: ${sql}`, async () => {
      await assert.rejects(rewrite(sql, PROTECTIONS, SP), (e) => isWardenError(e, 'INSUFFICIENT_PRIVILEGE'));
    });
  }

  void test('output always re-parses', async () => {
    const out = await rewrite('SELECT 1; SELECT ssn FROM customers; SELECT 2', PROTECTIONS, SP);
    const p = parseSql(out);
    assert.ok(p.ok && p.statements.length === 3);
  });
});

void describe('rewrite: against PostgreSQL', () => {
  let client: pg.Client | undefined;
  let skipReason: string | undefined;

  before(async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
    try {
      await c.connect();
    } catch (e) {
      skipReason = `PostgreSQL not reachable: ${(e as Error).message}`;
      return;
    }
    client = c;
    await c.query(`CREATE SCHEMA ${SCHEMA}`);
    await c.query(
      `CREATE TABLE ${SCHEMA}.customers (id int PRIMARY KEY, name text, ssn text, email text, tenant int)`,
    );
    await c.query(`CREATE TABLE ${SCHEMA}.sink (v text)`);
    await c.query(
      `INSERT INTO ${SCHEMA}.customers VALUES
        (1, 'ann', $1, $4, 1), (2, 'bob', $2, $5, 1), (3, '${HIDDEN_NAME}', $3, $6, 2)`,
      [...RAW_SSNS, ...RAW_EMAILS],
    );
    // The pinned search path Warden uses (with pg_catalog first, unqualified CREATE would target pg_catalog).
    await c.query(`SET search_path = pg_catalog, ${SCHEMA}`);
  });

  after(async () => {
    if (client) {
      await client.query(`DROP SCHEMA ${SCHEMA} CASCADE`);
      await client.end();
    }
  });

  /** Fails if any raw secret or the filtered row shows up in `text`. */
  function assertNoLeak(text: string, what: string): void {
    for (const raw of [...RAW_SSNS, ...RAW_EMAILS, HIDDEN_NAME]) {
      assert.ok(!text.includes(raw), `${what} leaked ${raw}: ${text}`);
    }
  }

  async function run(sql: string): Promise<pg.QueryResult[]> {
    const out = await rewrite(sql, PROTECTIONS, SP);
    const r = (await (client as pg.Client).query(out)) as pg.QueryResult | pg.QueryResult[];
    return Array.isArray(r) ? r : [r];
  }

  /** [sql, whether the result must show a masked value] */
  const TRICKS: readonly (readonly [string, boolean])[] = [
    ['SELECT ssn, email FROM customers', true],
    // Regression (bypass corpus identifiers-026): fully qualified column references to the replaced table.
    [`SELECT ${SCHEMA}.customers.ssn FROM ${SCHEMA}.customers`, true],
    [`SELECT ${SCHEMA}.customers.* FROM ${SCHEMA}.customers`, true],
    ['SELECT c.ssn FROM customers c', true],
    ['SELECT (c).ssn FROM customers c', true],
    ['SELECT row_to_json(c) FROM customers c', true],
    ['SELECT to_jsonb(c.*) FROM customers c', true],
    ['SELECT c FROM customers c', true],
    ['SELECT c::text FROM customers c', true],
    ['SELECT ssn::text AS s FROM customers', true],
    ['SELECT upper(ssn) FROM customers', true],
    ["SELECT string_agg(ssn || email, ',') FROM customers", true],
    ['SELECT max(ssn), min(email) FROM customers', true],
    ["SELECT ssn FROM customers UNION ALL SELECT 'x'", true],
    ['SELECT ssn AS name FROM customers', true],
    ['SELECT x FROM customers AS c(a, b, x)', true],
    ['SELECT * FROM customers', true],
    ['SELECT t.* FROM customers t', true],
    [`SELECT * FROM ${SCHEMA}.customers`, true],
    ['SELECT * FROM ONLY customers', true],
    ['WITH q AS (SELECT * FROM customers) SELECT * FROM q', true],
    ['WITH RECURSIVE q AS (SELECT ssn FROM customers UNION SELECT ssn FROM q) SELECT * FROM q', true],
    ['SELECT * FROM (SELECT ssn AS s FROM customers) z', true],
    ['SELECT (SELECT max(ssn) FROM customers)', true],
    ['SELECT 1 AS one, (SELECT array_agg(c) FROM customers c)', true],
    ['SELECT * FROM customers JOIN customers c2 USING (id)', true],
    ['SELECT * FROM customers a NATURAL JOIN customers b', true],
    ['SELECT l.* FROM generate_series(1, 1) g, LATERAL (SELECT ssn FROM customers) l', true],
    ['SELECT id FROM customers WHERE ssn = $$123-45-6789$$', false],
    ["SELECT id FROM customers WHERE ssn LIKE '123-45%' OR email LIKE 'ann%'", false],
    ['SELECT id, name FROM customers ORDER BY ssn', false],
    ['SELECT count(*) AS n, json_agg(name) FROM customers', false],
    ['SELECT * FROM customers WHERE id IN (SELECT id FROM customers WHERE tenant = 2)', false],
    ['SELECT ssn, count(*) FROM customers GROUP BY ssn HAVING count(*) > 0', true],
  ];

  for (const [sql, masked] of TRICKS) {
    void test(sql, async (t) => {
      if (!client) return t.skip(skipReason);
      const results = await run(sql);
      const text = JSON.stringify(results.map((r) => r.rows));
      assertNoLeak(text, sql);
      if (masked) assert.match(text, /-\*\*-\*\*\*\*|\*\*\*/, `no masked value in ${text}`);
    });
  }

  void test('the row filter hides other tenants: count and ids', async (t) => {
    if (!client) return t.skip(skipReason);
    const [r] = await run('SELECT count(*)::int AS n, array_agg(id ORDER BY id) AS ids FROM customers');
    assert.deepEqual(r?.rows, [{ n: 2, ids: [1, 2] }]);
  });

  void test('INSERT ... SELECT and UPDATE ... FROM copy only masked values', async (t) => {
    if (!client) return t.skip(skipReason);
    await run('INSERT INTO sink SELECT ssn || email FROM customers');
    await run("INSERT INTO sink VALUES ('seed')");
    await run('UPDATE sink SET v = c.ssn FROM customers c WHERE c.id = 1 AND sink.v = $$seed$$');
    const rows = (await client.query('SELECT v FROM sink ORDER BY v')).rows as { v: string }[];
    assertNoLeak(JSON.stringify(rows), 'sink');
    assert.equal(rows.length, 3);
    assert.ok(rows.every((x) => x.v.includes('-**-****')));
  });

  void test('MERGE source, CREATE TABLE AS, PREPARE/EXECUTE and cursors see masked values', async (t) => {
    if (!client) return t.skip(skipReason);
    await run('CREATE TEMP TABLE m (id int, v text)');
    await run(
      'MERGE INTO m USING customers c ON m.id = c.id WHEN NOT MATCHED THEN INSERT VALUES (c.id, c.ssn)',
    );
    await run('CREATE TEMP TABLE copy_all AS SELECT * FROM customers');
    await run('PREPARE pp AS SELECT ssn FROM customers');
    const c = client;
    const texts = [
      JSON.stringify((await c.query('SELECT * FROM m')).rows),
      JSON.stringify((await c.query('SELECT * FROM copy_all')).rows),
      JSON.stringify((await c.query('EXECUTE pp')).rows),
    ];
    await c.query('BEGIN');
    await run('DECLARE cur CURSOR FOR SELECT c FROM customers c');
    texts.push(JSON.stringify((await c.query('FETCH ALL FROM cur')).rows));
    await c.query('COMMIT');
    await c.query('DEALLOCATE pp');
    for (const text of texts) {
      assertNoLeak(text, 'derived');
      assert.match(text, /-\*\*-\*\*\*\*/);
    }
  });

  void test('UPDATE and DELETE cannot touch rows outside the row filter', async (t) => {
    if (!client) return t.skip(skipReason);
    const c = client;
    await c.query('BEGIN');
    try {
      const [u] = await run(`UPDATE customers SET name = 'changed' WHERE id = 3`);
      const [d] = await run(`DELETE FROM customers WHERE name = '${HIDDEN_NAME}'`);
      const [d2] = await run('DELETE FROM customers c WHERE c.id = 2');
      assert.equal(u?.rowCount, 0);
      assert.equal(d?.rowCount, 0);
      assert.equal(d2?.rowCount, 1);
    } finally {
      await c.query('ROLLBACK');
    }
  });

  void test('COPY protected TO STDOUT exports masked rows only (psql)', (t) => {
    if (!client) return t.skip(skipReason);
    return rewrite('COPY customers TO STDOUT', PROTECTIONS, SP).then((out) => {
      const r = spawnSync(
        'psql',
        ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-X', '-q', '-c', out],
        {
          encoding: 'utf8',
          env: { ...process.env, PGOPTIONS: `-c search_path=pg_catalog,${SCHEMA}` },
          timeout: 20_000,
        },
      );
      if (r.error) return t.skip(`psql not available: ${r.error.message}`);
      assert.equal(r.status, 0, r.stderr);
      assertNoLeak(r.stdout, 'COPY');
      assert.equal(r.stdout.trim().split('\n').length, 2);
      assert.match(r.stdout, /123-\*\*-\*\*\*\*/);
    });
  });
});
