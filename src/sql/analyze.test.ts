// Tests for the SQL analyser: table-driven cases over every construct it must see through, plus fail-closed and cache checks.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StatementSummary } from '../core/access.js';
import { analyze, analyzeCached, initSqlAnalyser } from './analyze.js';

const SP = { searchPath: ['public'] };

before(async () => {
  await initSqlAnalyser();
});

/** `op:schema.name(cols)` or `op:schema.name(*)` for all columns; sorted. */
function rels(s: StatementSummary): string[] {
  return s.relations
    .map(
      (r) => `${r.operation}:${r.schema}.${r.name}(${r.columns === undefined ? '*' : r.columns.join(',')})`,
    )
    .sort();
}

function one(sql: string, searchPath: readonly string[] = SP.searchPath): StatementSummary {
  const a = analyze(sql, { searchPath });
  assert.equal(a.error, undefined, `unexpected parse error for ${sql}: ${a.error}`);
  assert.equal(a.statements.length, 1, `expected one statement: ${sql}`);
  return a.statements[0] as StatementSummary;
}

function funcs(s: StatementSummary): string[] {
  return s.functions.map((f) => `${f.schema}.${f.name}`).sort();
}

/** [sql, expected relations] — supported statements, checked exactly. */
const RELATION_CASES: readonly (readonly [string, readonly string[]])[] = [
  // plain selects and columns
  ['SELECT a, b FROM t', ['select:public.t(a,b)']],
  ['SELECT * FROM t', ['select:public.t(*)']],
  ['SELECT t.* FROM t', ['select:public.t(*)']],
  ['SELECT c FROM customers c', ['select:public.customers(*)']],
  ['SELECT row_to_json(c) FROM customers c', ['select:public.customers(*)']],
  ['SELECT count(*) FROM t', ['select:public.t()']],
  ['SELECT count(t.*) FROM t', ['select:public.t(*)']],
  ['SELECT c.name FROM customers AS c', ['select:public.customers(name)']],
  ['SELECT (c).ssn FROM customers c', ['select:public.customers(c,ssn)']],
  ['SELECT (c).* FROM customers c', ['select:public.customers(*)']],
  ['SELECT ssn(c) FROM customers c', ['select:public.customers(*)']],
  ['SELECT public.customers.ssn FROM public.customers', ['select:public.customers(ssn)']],
  ['SELECT x FROM customers AS c(x, y)', ['select:public.customers(*)']],
  ['SELECT 1', []],
  ['VALUES (1), (2)', []],
  ['TABLE t', ['select:public.t(*)']],
  ['SELECT a FROM ONLY t', ['select:public.t(a)']],
  // identifiers: case folding, quoting, unicode escapes, schemas
  ['SELECT A FROM Customers', ['select:public.customers(a)']],
  ['SELECT "A" FROM "Customers"', ['select:public.Customers(A)']],
  ['SELECT a FROM U&"\\0063ustomers"', ['select:public.customers(a)']],
  ['SELECT a FROM public.customers', ['select:public.customers(a)']],
  ['SELECT a FROM "public"."customers"', ['select:public.customers(a)']],
  ['SELECT a FROM sales.orders', ['select:sales.orders(a)']],
  ['SELECT a FROM /* comment */ t -- trailing', ['select:public.t(a)']],
  ['SELECT a FROM\n\tt\n', ['select:public.t(a)']],
  ['SELECT usename FROM pg_user', ['select:pg_catalog.pg_user(usename)']],
  ['SELECT * FROM pg_shadow', ['select:pg_catalog.pg_shadow(*)']],
  ['SELECT * FROM information_schema.tables', ['select:information_schema.tables(*)']],
  ['SELECT * FROM pg_temp.scratch', ['select:pg_temp.scratch(*)']],
  // joins and scoping
  ['SELECT a FROM t JOIN u ON t.id = u.id', ['select:public.t(a,id)', 'select:public.u(a,id)']],
  ['SELECT t.a, u.b FROM t JOIN u USING (id)', ['select:public.t(a,id)', 'select:public.u(b,id)']],
  ['SELECT t.a FROM t NATURAL JOIN u', ['select:public.t(*)', 'select:public.u(*)']],
  ['SELECT t.a FROM t, u', ['select:public.t(a)', 'select:public.u()']],
  ['SELECT j.a FROM (t JOIN u USING (id)) AS j', ['select:public.t(a,id)', 'select:public.u(a,id)']],
  [
    'SELECT x.a FROM t LEFT JOIN LATERAL (SELECT b FROM u WHERE u.k = t.k) x ON true',
    ['select:public.t(b,k)', 'select:public.u(b,k)'],
  ],
  ['SELECT s.a FROM (SELECT a FROM t) s', ['select:public.t(a)']],
  ['SELECT * FROM (SELECT a FROM t) s', ['select:public.t(a)']],
  ['SELECT a FROM t WHERE b IN (SELECT c FROM u)', ['select:public.t(a,b,c)', 'select:public.u(c)']],
  [
    'SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)',
    ['select:public.t(a,id)', 'select:public.u(id)'],
  ],
  ['SELECT (SELECT max(x) FROM u) FROM t', ['select:public.t(x)', 'select:public.u(x)']],
  [
    'SELECT a FROM t GROUP BY a HAVING count(*) > (SELECT 1 FROM u LIMIT 1)',
    ['select:public.t(a)', 'select:public.u()'],
  ],
  ['SELECT a FROM t ORDER BY (SELECT b FROM u LIMIT 1)', ['select:public.t(a,b)', 'select:public.u(b)']],
  ['SELECT a FROM t UNION SELECT b FROM u', ['select:public.t(a)', 'select:public.u(b)']],
  [
    'SELECT a FROM t INTERSECT SELECT a FROM u EXCEPT SELECT a FROM v',
    ['select:public.t(a)', 'select:public.u(a)', 'select:public.v(a)'],
  ],
  ['SELECT * FROM generate_series(1, 3) g', []],
  ['SELECT * FROM t, LATERAL unnest(t.arr) x', ['select:public.t(*)']],
  ['SELECT * FROM t TABLESAMPLE bernoulli (10)', ['select:public.t(*)']],
  ['SELECT a FROM t FOR UPDATE', ['select:public.t(a)']],
  ['SELECT sum(a) OVER (PARTITION BY b ORDER BY c) FROM t', ['select:public.t(a,b,c)']],
  [
    'SELECT CASE WHEN a > 0 THEN b ELSE (SELECT c FROM u) END FROM t',
    ['select:public.t(a,b,c)', 'select:public.u(c)'],
  ],
  // CTEs
  ['WITH x AS (SELECT a FROM t) SELECT a FROM x', ['select:public.t(a)']],
  ['WITH t AS (SELECT a FROM t) SELECT a FROM t', ['select:public.t(a)']],
  ['WITH x AS (SELECT 1) SELECT * FROM public.x', ['select:public.x(*)']],
  ['WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r', []],
  ['WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x', ['delete:public.t(*)', 'select:public.t(*)']],
  [
    'WITH x AS (UPDATE t SET a = 1 WHERE b = 2 RETURNING a) SELECT a FROM x',
    ['select:public.t(a,b)', 'update:public.t(a)'],
  ],
  [
    'WITH x AS (INSERT INTO t (a) VALUES (1) RETURNING id) SELECT * FROM x',
    ['insert:public.t(a)', 'select:public.t(id)'],
  ],
  ['SELECT * FROM (WITH y AS (SELECT a FROM t) SELECT a FROM y) z', ['select:public.t(a)']],
  // INSERT
  ['INSERT INTO t (a, b) VALUES (1, 2)', ['insert:public.t(a,b)']],
  ['INSERT INTO t VALUES (1, 2)', ['insert:public.t(*)']],
  ['INSERT INTO t DEFAULT VALUES', ['insert:public.t(*)']],
  ['INSERT INTO t (a) SELECT b FROM u', ['insert:public.t(a)', 'select:public.u(b)']],
  ['INSERT INTO t (a) VALUES ((SELECT max(b) FROM u))', ['insert:public.t(a)', 'select:public.u(b)']],
  ['INSERT INTO t (a) VALUES (1) RETURNING id', ['insert:public.t(a)', 'select:public.t(id)']],
  ['INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO NOTHING', ['insert:public.t(a)', 'select:public.t(a)']],
  [
    'INSERT INTO t (a, b) VALUES (1, 2) ON CONFLICT (a) DO UPDATE SET b = excluded.b WHERE t.c > 0',
    ['insert:public.t(a,b)', 'select:public.t(a,c)', 'update:public.t(b)'],
  ],
  // UPDATE / DELETE
  ['UPDATE t SET a = 1', ['update:public.t(a)']],
  ['UPDATE t SET a = b + 1 WHERE c = 2', ['select:public.t(b,c)', 'update:public.t(a)']],
  // x, y could be t's columns (an outer reference): attributed to both, conservatively.
  [
    'UPDATE t SET (a, b) = (SELECT x, y FROM u)',
    ['select:public.t(x,y)', 'select:public.u(x,y)', 'update:public.t(a,b)'],
  ],
  [
    'UPDATE t SET a = u.b FROM u WHERE t.id = u.id',
    ['select:public.t(id)', 'select:public.u(b,id)', 'update:public.t(a)'],
  ],
  ['UPDATE t AS x SET a = 1 WHERE x.k = 3 RETURNING x.*', ['select:public.t(*)', 'update:public.t(a)']],
  ['DELETE FROM t', ['delete:public.t(*)']],
  ['DELETE FROM t WHERE a = 1', ['delete:public.t(*)', 'select:public.t(a)']],
  [
    'DELETE FROM t USING u WHERE t.id = u.id',
    ['delete:public.t(*)', 'select:public.t(id)', 'select:public.u(id)'],
  ],
  [
    'DELETE FROM t WHERE id IN (SELECT id FROM u) RETURNING *',
    ['delete:public.t(*)', 'select:public.t(*)', 'select:public.u(id)'],
  ],
  // MERGE
  [
    'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 0 THEN UPDATE SET a = s.a WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)',
    [
      'delete:public.t(*)',
      'insert:public.t(a,id)',
      'merge:public.t(*)',
      'select:public.s(a,id,x)',
      'select:public.t(id)',
      'update:public.t(a)',
    ],
  ],
  [
    'MERGE INTO t USING (SELECT id FROM s) AS q ON t.id = q.id WHEN MATCHED THEN DO NOTHING',
    ['merge:public.t(*)', 'select:public.s(id)', 'select:public.t(id)'],
  ],
  // EXPLAIN, PREPARE, DECLARE
  ['EXPLAIN SELECT a FROM t', ['select:public.t(a)']],
  ['EXPLAIN ANALYZE DELETE FROM t', ['delete:public.t(*)']],
  ['EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1', ['update:public.t(a)']],
  ['PREPARE p(int) AS SELECT a FROM t WHERE b = $1', ['select:public.t(a,b)']],
  ['PREPARE q AS DELETE FROM t', ['delete:public.t(*)']],
  ['DECLARE c CURSOR FOR SELECT a FROM t', ['select:public.t(a)']],
  // COPY
  ['COPY t TO STDOUT', ['copy_to:public.t(*)', 'select:public.t(*)']],
  ['COPY t (a, b) TO STDOUT', ['copy_to:public.t(a,b)', 'select:public.t(a,b)']],
  ['COPY t FROM STDIN', ['copy_from:public.t(*)']],
  ['COPY t (a) FROM STDIN', ['copy_from:public.t(a)']],
  ['COPY (SELECT a FROM t) TO STDOUT', ['copy_to:public.t(a)', 'select:public.t(a)']],
  // CREATE ... AS, SELECT INTO, views, rules, triggers, functions
  ['SELECT a INTO new_t FROM t', ['create:public.new_t(*)', 'select:public.t(a)']],
  ['SELECT a INTO TEMP tmp FROM t', ['create:pg_temp.tmp(*)', 'select:public.t(a)']],
  ['CREATE TABLE n AS SELECT a FROM t', ['create:public.n(*)', 'select:public.t(a)']],
  ['CREATE MATERIALIZED VIEW mv AS SELECT a FROM t', ['create:public.mv(*)', 'select:public.t(a)']],
  ['CREATE VIEW v AS SELECT a FROM t', ['create:public.v(*)', 'select:public.t(a)']],
  ['CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u', ['create:public.t(*)', 'delete:public.u(*)']],
  ['CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg()', ['create:public.t(*)']],
  [
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT a FROM t'",
    ['create:public.f(*)', 'select:public.t(a)'],
  ],
  [
    'CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN (SELECT count(*) FROM t)',
    ['create:public.g(*)', 'select:public.t()'],
  ],
  [
    "CREATE FUNCTION h() RETURNS void LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; EXECUTE 'x'; END $$",
    ['create:public.h(*)', 'delete:public.t(*)'],
  ],
  ["CREATE FUNCTION c_fn() RETURNS int LANGUAGE c AS 'lib', 'sym'", ['create:public.c_fn(*)']],
  // DDL
  ["CREATE TABLE n (a int DEFAULT nextval('s'), b text CHECK (length(b) < 5))", ['create:public.n(*)']],
  ['CREATE TABLE n (a int REFERENCES p (id))', ['create:public.n(*)', 'create:public.p(*)']],
  ['CREATE TABLE child () INHERITS (parent)', ['alter:public.parent(*)', 'create:public.child(*)']],
  [
    'CREATE TABLE p1 PARTITION OF parent FOR VALUES IN (1)',
    ['alter:public.parent(*)', 'create:public.p1(*)'],
  ],
  ['CREATE TEMP TABLE tt (a int)', ['create:pg_temp.tt(*)']],
  ['CREATE INDEX i ON t (lower(a))', ['create:public.t(*)', 'select:public.t(a)']],
  ['CREATE SEQUENCE s', ['create:public.s(*)']],
  ['ALTER TABLE t ADD COLUMN c int', ['alter:public.t(*)']],
  ['ALTER TABLE t RENAME TO u', ['alter:public.t(*)']],
  ['ALTER TABLE s.t OWNER TO bob', ['alter:s.t(*)']],
  ['DROP TABLE a, s.b CASCADE', ['drop:public.a(*)', 'drop:s.b(*)']],
  ['DROP VIEW IF EXISTS v', ['drop:public.v(*)']],
  ['DROP FUNCTION f(int)', ['drop:public.f(*)']],
  ['DROP SCHEMA s CASCADE', ['drop:s.*(*)']],
  ['TRUNCATE t, s.u', ['truncate:public.t(*)', 'truncate:s.u(*)']],
  ['LOCK TABLE t IN ACCESS SHARE MODE', ['select:public.t(*)']],
  ['LOCK TABLE t IN ACCESS EXCLUSIVE MODE', ['update:public.t(*)']],
  ['VACUUM ANALYZE t', ['alter:public.t(*)']],
  ['ANALYZE t (a)', ['alter:public.t(*)']],
  ['GRANT SELECT ON t TO bob', ['alter:public.t(*)']],
  ['REVOKE ALL ON s.t FROM bob', ['alter:s.t(*)']],
  ['CALL p(1)', ['execute:public.p(*)']],
  ['CALL s.p((SELECT a FROM t))', ['execute:s.p(*)', 'select:public.t(a)']],
  // DO blocks
  ['DO $$ BEGIN DELETE FROM t; END $$', ['delete:public.t(*)']],
  [
    'DO $$ DECLARE x int; BEGIN x := (SELECT count(*) FROM t); INSERT INTO u VALUES (x); END $$',
    ['insert:public.u(*)', 'select:public.t()'],
  ],
  [
    "DO $$ DECLARE r record; BEGIN FOR r IN SELECT a FROM t LOOP RAISE NOTICE '%', r; END LOOP; END $$",
    ['select:public.t(a)'],
  ],
  [
    'DO $$ BEGIN IF (SELECT a FROM t LIMIT 1) > 0 THEN UPDATE u SET b = 1; END IF; END $$',
    ['select:public.t(a)', 'update:public.u(b)'],
  ],
  ['DO $$ BEGIN PERFORM f(); END $$', []],
  // utility
  ['BEGIN', []],
  ['COMMIT', []],
  ['SAVEPOINT s1', []],
  ['SHOW search_path', []],
  ['LISTEN ch', []],
  ["NOTIFY ch, 'x'", []],
  ['DISCARD PLANS', []],
  ['FETCH 10 FROM c', []],
  ['CLOSE c', []],
];

void describe('analyze: relations and columns', () => {
  for (const [sql, expected] of RELATION_CASES) {
    void test(sql, () => {
      const s = one(sql);
      assert.equal(s.unsupported, undefined, `unexpected unsupported: ${s.unsupported}`);
      assert.deepEqual(rels(s), [...expected].sort());
    });
  }
});

/** [sql, expected functions] */
const FUNCTION_CASES: readonly (readonly [string, readonly string[]])[] = [
  ['SELECT lower(a) FROM t', ['pg_catalog.lower']],
  ['SELECT my_fn(a) FROM t', ['public.my_fn']],
  ['SELECT s.my_fn(a) FROM t', ['s.my_fn']],
  ['SELECT pg_catalog.upper(a) FROM t', ['pg_catalog.upper']],
  ['SELECT "Upper"(a) FROM t', ['public.Upper']],
  ['SELECT a FROM t WHERE f1(b) > 0 ORDER BY f2(c)', ['public.f1', 'public.f2']],
  ['SELECT a FROM t GROUP BY f3(a) HAVING f4(count(*)) > 1', ['pg_catalog.count', 'public.f3', 'public.f4']],
  ['SELECT rank() OVER (ORDER BY f5(a)) FROM t', ['pg_catalog.rank', 'public.f5']],
  ['SELECT a FROM t WHERE b IN (SELECT f6(c) FROM u)', ['public.f6']],
  ['SELECT * FROM f7(1) AS x', ['public.f7']],
  [
    'SELECT * FROM ROWS FROM (f8(1), generate_series(1, 2)) AS x',
    ['pg_catalog.generate_series', 'public.f8'],
  ],
  ['INSERT INTO t (a) VALUES (f9())', ['public.f9']],
  ['UPDATE t SET a = f10(a) WHERE f11(b)', ['public.f10', 'public.f11']],
  ['DELETE FROM t WHERE f12(a) RETURNING f13(b)', ['public.f12', 'public.f13']],
  ['CREATE TABLE n (a int DEFAULT f14(), b int CHECK (f15(b)))', ['public.f14', 'public.f15']],
  ['CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION s.trg()', ['s.trg']],
  ['CALL s.p(f16())', ['public.f16', 's.p']],
  ['DO $$ BEGIN PERFORM f17(); END $$', ['public.f17']],
  ['SELECT extract(year FROM now())', ['pg_catalog.extract', 'pg_catalog.now']],
  ['SELECT CAST(f18(a) AS text) FROM t', ['public.f18']],
  ['SELECT coalesce(f19(a), 0) FROM t', ['public.f19']],
  ['SELECT a FROM t WHERE a = ANY (ARRAY[f20()])', ['public.f20']],
  [
    'SELECT json_agg(f21(a) ORDER BY f22(b)) FILTER (WHERE f23(c)) FROM t',
    ['pg_catalog.json_agg', 'public.f21', 'public.f22', 'public.f23'],
  ],
  ['EXPLAIN SELECT f24()', ['public.f24']],
  ["SELECT nextval('seq')", ['pg_catalog.nextval']],
];

void describe('analyze: functions', () => {
  for (const [sql, expected] of FUNCTION_CASES) {
    void test(sql, () => {
      const s = one(sql);
      assert.equal(s.unsupported, undefined, `unexpected unsupported: ${s.unsupported}`);
      assert.deepEqual(funcs(s), [...expected].sort());
    });
  }
});

/** [sql, expected settings as name=value or name] */
const SETTING_CASES: readonly (readonly [string, readonly string[]])[] = [
  ['SET ROLE admin', ['role=admin']],
  ['SET LOCAL ROLE admin', ['role=admin']],
  ['RESET ROLE', ['role']],
  ['SET SESSION AUTHORIZATION bob', ['session_authorization=bob']],
  ['RESET SESSION AUTHORIZATION', ['session_authorization']],
  ['SET search_path TO evil, public', ['search_path=evil, public']],
  ['SET "Search_Path" = evil', ['search_path=evil']],
  ["SET SCHEMA 'evil'", ['search_path=evil']],
  ['RESET search_path', ['search_path']],
  ['RESET ALL', ['all', 'search_path']],
  ['DISCARD ALL', ['search_path']],
  ['SET statement_timeout = 5000', ['statement_timeout=5000']],
  ['SET TIME ZONE UTC', ['timezone=utc']],
  ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', ['transaction_isolation=serializable']],
  ["SELECT set_config('search_path', 'evil', false)", ['search_path']],
  ["SELECT pg_catalog.set_config('ROLE', 'x', true)", ['role']],
  ['SELECT set_config(name, v, false) FROM t', ['<dynamic>']],
  ["UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'", ['<pg_settings>']],
];

void describe('analyze: settings', () => {
  for (const [sql, expected] of SETTING_CASES) {
    void test(sql, () => {
      const s = one(sql);
      assert.equal(s.unsupported, undefined);
      assert.deepEqual(
        s.settings.map((x) => (x.value === undefined ? x.name : `${x.name}=${x.value}`)),
        expected,
      );
    });
  }
});

/** Statements that must be denied: [sql, substring of the reason]. */
const UNSUPPORTED_CASES: readonly (readonly [string, string])[] = [
  ["DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", 'dynamic SQL'],
  ["DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'SELECT 1' LOOP END LOOP; END $$", 'dynamic SQL'],
  ["DO $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'SELECT 1'; END $$", 'dynamic SQL'],
  ["DO $$ BEGIN RETURN QUERY EXECUTE 'SELECT 1'; END $$", 'PL/pgSQL'],
  ['DO LANGUAGE plpython3u $$ import os $$', 'language plpython3u'],
  ['DO $$ BEGIN this is not plpgsql; END $$', 'PL/pgSQL'],
  ["COPY t TO '/tmp/x'", 'server file'],
  ["COPY t FROM '/etc/passwd'", 'server file'],
  ["COPY t FROM PROGRAM 'id'", 'program'],
  ["COPY (SELECT 1) TO PROGRAM 'sh'", 'program'],
  ["SELECT query_to_xml('select * from secrets', true, true, '')", 'cannot be analysed'],
  ["SELECT table_to_xml('secrets', true, true, '')", 'cannot be analysed'],
  ["SELECT ts_stat('select v from t')", 'cannot be analysed'],
  ['SELECT a FROM otherdb.public.t', 'three-part'],
  ["ALTER SYSTEM SET search_path = 'x'", 'ALTER SYSTEM'],
  ["CREATE FUNCTION bad() RETURNS int LANGUAGE sql AS 'SELEC 1'", 'does not parse'],
];

void describe('analyze: fail closed', () => {
  for (const [sql, reason] of UNSUPPORTED_CASES) {
    void test(sql, () => {
      const s = one(sql);
      assert.ok(
        s.unsupported?.includes(reason),
        `expected unsupported with "${reason}", got ${s.unsupported}`,
      );
    });
  }

  void test('parse errors carry the message and position', () => {
    const a = analyze('SELECT * FROM t WHERE', SP);
    assert.equal(a.statements.length, 0);
    assert.match(a.error ?? '', /syntax error at end of input \(at position \d+\)/);
  });

  void test('comment-split keywords do not parse', () => {
    assert.ok(analyze('SEL/**/ECT * FROM t', SP).error !== undefined);
  });

  void test('one bad statement fails the whole string', () => {
    const a = analyze('SELECT 1; DELETE FROM; SELECT 2', SP);
    assert.ok(a.error !== undefined);
    assert.equal(a.statements.length, 0);
  });

  void test('an empty search path cannot resolve unqualified user names', () => {
    assert.ok(one('SELECT a FROM t', []).unsupported?.includes('empty search path'));
    assert.equal(one('SELECT a FROM s.t', []).unsupported, undefined);
  });

  void test('property: arbitrary text never throws; it is either a parse error or summaries', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        const a = analyze(`SELECT ${s}`, SP);
        assert.ok(a.error !== undefined || a.statements.length >= 1);
      }),
      { numRuns: 200 },
    );
  });
});

void describe('analyze: statement metadata', () => {
  void test('multi-statement strings give one summary each, with its own text', () => {
    const a = analyze('SELECT a FROM t;  DELETE FROM u WHERE x = 1 ;\nINSERT INTO v VALUES (1)', SP);
    assert.deepEqual(
      a.statements.map((s) => [s.kind, s.text]),
      [
        ['SelectStmt', 'SELECT a FROM t'],
        ['DeleteStmt', 'DELETE FROM u WHERE x = 1'],
        ['InsertStmt', 'INSERT INTO v VALUES (1)'],
      ],
    );
  });

  void test('statement text slicing counts UTF-8 bytes, not characters', () => {
    const a = analyze("SELECT 'é€😀'; SELECT 2", SP);
    assert.deepEqual(
      a.statements.map((s) => s.text),
      ["SELECT 'é€😀'", 'SELECT 2'],
    );
  });

  void test('hasWhere is set for UPDATE and DELETE, including writable CTEs', () => {
    assert.equal(one('DELETE FROM t').hasWhere, false);
    assert.equal(one('DELETE FROM t WHERE a = 1').hasWhere, true);
    assert.equal(one('UPDATE t SET a = 1').hasWhere, false);
    assert.equal(one('WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x').hasWhere, false);
    // Regression: a WHERE that cannot restrict the target's rows counts as none (approval rules use it).
    for (const sql of [
      'DELETE FROM t WHERE true',
      'DELETE FROM t WHERE 1 = 1',
      "UPDATE t SET a = 1 WHERE 'x' = 'x'",
      'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.b = 2)',
      "DELETE FROM t WHERE now() > now() - interval '1 day'",
    ]) {
      assert.equal(one(sql).hasWhere, false, sql);
    }
    for (const sql of [
      'DELETE FROM t WHERE t.a = 1',
      'DELETE FROM t AS x WHERE x.a = 1',
      'UPDATE t SET a = 1 WHERE a IN (SELECT b FROM u)',
      'DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.b = t.a)',
    ]) {
      assert.equal(one(sql).hasWhere, true, sql);
    }
    assert.equal(one('WITH x AS (DELETE FROM t WHERE a=1 RETURNING 1) DELETE FROM u').hasWhere, false);
    assert.equal(one('SELECT 1').hasWhere, undefined);
  });

  void test('hasWhere: a WHERE that is recognisably always true counts as none (tautology corpus)', () => {
    // Each evades a `without_where` approval rule unless recognised: all must count as no WHERE.
    const evasions = [
      'DELETE FROM t WHERE a = a',
      'DELETE FROM t WHERE t.a = t.a',
      'UPDATE t SET b = 1 WHERE a >= a',
      'DELETE FROM t WHERE a IS NOT DISTINCT FROM a',
      'DELETE FROM t WHERE a BETWEEN a AND a',
      'DELETE FROM t WHERE a = 1 OR true',
      'DELETE FROM t WHERE true OR a = 1',
      'DELETE FROM t WHERE a = 1 OR 1 = 1',
      "DELETE FROM t WHERE a = 1 OR 'x' = 'x'",
      "DELETE FROM t WHERE a = 1 OR 'x' <> 'y'",
      'DELETE FROM t WHERE a = 1 OR 2 > 1',
      'DELETE FROM t WHERE a = 1 OR 1.5 <= 2',
      'DELETE FROM t WHERE a = 1 OR NOT false',
      "DELETE FROM t WHERE a = 1 OR 't'::boolean",
      "DELETE FROM t WHERE a = 1 OR 'yes'::bool",
      'DELETE FROM t WHERE a = 1 OR (true IS TRUE)',
      'DELETE FROM t WHERE (a = a) AND (b = b)',
      'DELETE FROM t WHERE a = a AND true',
      'DELETE FROM t WHERE NOT (a <> a)',
      'DELETE FROM t WHERE a IS NULL OR a IS NOT NULL',
      'DELETE FROM t WHERE a = 1 OR NOT (a = 1)',
      'DELETE FROM t WHERE lower(b) = lower(b)',
      'DELETE FROM t WHERE a = 1 OR a = a',
      'UPDATE t SET b = 1 WHERE (a = a) IS TRUE',
      'UPDATE t SET b = 1 WHERE a = 1 OR (b = b OR a = 2)',
      'DELETE FROM t WHERE ((((a = a))))',
    ];
    for (const sql of evasions) assert.equal(one(sql).hasWhere, false, sql);
    // Restricting conditions (or ones the analyser cannot decide) still count as a WHERE.
    const restricting = [
      'DELETE FROM t WHERE a = 1',
      'DELETE FROM t WHERE a = b',
      'DELETE FROM t WHERE a <> a',
      'DELETE FROM t WHERE a = 1 OR false',
      'DELETE FROM t WHERE a = 1 OR 1 = 2',
      "DELETE FROM t WHERE a = 1 OR 'x' = 'y'",
      'DELETE FROM t WHERE a = 1 AND true',
      'DELETE FROM t WHERE a = 1 OR NOT (a = 2)',
      'DELETE FROM t WHERE a IS NULL OR b IS NOT NULL',
      'DELETE FROM t WHERE a + 1 = a + 2',
      "DELETE FROM t WHERE a = 1 OR 'b' > 'a'",
      'DELETE FROM t WHERE a BETWEEN a AND 10',
      'UPDATE t SET b = 1 WHERE a IN (SELECT a FROM t)',
      "DELETE FROM t WHERE a = 1 OR 'maybe'::boolean",
    ];
    for (const sql of restricting) assert.equal(one(sql).hasWhere, true, sql);
    // Every UPDATE/DELETE in the string counts: one tautology makes the whole statement "without WHERE".
    assert.equal(
      one('WITH x AS (DELETE FROM t WHERE a = a RETURNING 1) UPDATE u SET c = 1 WHERE c = 2').hasWhere,
      false,
    );
  });

  void test('EXECUTE, PREPARE and DEALLOCATE name the prepared statement', () => {
    const e = one('EXECUTE p(1, (SELECT a FROM t))');
    assert.equal(e.kind, 'ExecuteStmt');
    assert.equal(e.preparedName, 'p');
    assert.equal(e.unsupported, undefined);
    assert.deepEqual(rels(e), ['select:public.t(a)']);
    assert.equal(one('PREPARE q AS SELECT 1').preparedName, 'q');
    assert.equal(one('DEALLOCATE q').preparedName, 'q');
  });

  // Regression (bypass corpus triggers-rules-ddl-035..038): two-phase commit was treated as transaction control.
  void test('two-phase commit is refused, ordinary transaction control is not', () => {
    for (const sql of ["PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'"]) {
      assert.match(one(sql).unsupported ?? '', /two-phase commit/, sql);
    }
    for (const sql of ['BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT s', 'RELEASE s', 'ROLLBACK TO s']) {
      assert.equal(one(sql).unsupported, undefined, sql);
    }
  });

  void test('kinds are the libpg-query node names', () => {
    assert.equal(one('EXPLAIN ANALYZE DELETE FROM t').kind, 'ExplainStmt');
    assert.equal(one('BEGIN').kind, 'TransactionStmt');
    assert.equal(one('COPY t TO STDOUT').kind, 'CopyStmt');
  });

  void test('search path: first schema resolves user names; pg_catalog names stay in pg_catalog', () => {
    const s = one('SELECT a, my_fn(a), lower(a) FROM t JOIN pg_class ON true', ['app', 'public']);
    assert.deepEqual(rels(s), ['select:app.t(a)', 'select:pg_catalog.pg_class(a)']);
    assert.deepEqual(funcs(s), ['app.my_fn', 'pg_catalog.lower']);
  });

  void test('summaries are frozen', () => {
    const s = one('SELECT a FROM t');
    assert.ok(Object.isFrozen(s) && Object.isFrozen(s.relations) && Object.isFrozen(s.relations[0]));
  });
});

void describe('analyzeCached', () => {
  void test('returns the same result and keys on the search path', () => {
    const a = analyzeCached('SELECT a FROM t', { searchPath: ['x'] });
    const b = analyzeCached('SELECT a FROM t', { searchPath: ['x'] });
    const c = analyzeCached('SELECT a FROM t', { searchPath: ['y'] });
    assert.equal(a, b);
    assert.equal(a.statements[0]?.relations[0]?.schema, 'x');
    assert.equal(c.statements[0]?.relations[0]?.schema, 'y');
  });

  void test('timing: a cached lookup is well under 20 µs; a cold join is under a few ms', () => {
    const sql =
      'SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 10';
    const n = 2000;
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < 50; i++) analyze(sql, SP);
    const cold = Number(process.hrtime.bigint() - t0) / 50 / 1000;
    analyzeCached(sql, SP);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) analyzeCached(sql, SP);
    const warm = Number(process.hrtime.bigint() - t0) / n / 1000;
    console.log(`analyze cold ${cold.toFixed(1)} µs, cached ${warm.toFixed(2)} µs`);
    assert.ok(warm < 20, `cached lookup took ${warm} µs`);
    assert.ok(cold < 5000, `cold analysis took ${cold} µs`);
  });
});
