// Tests of the MySQL analyser: what each statement reports to the policy, what is always denied, and what is not understood.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatementSummary } from '../core/access.js';
import { analyzeMysql, wardenShowName } from './analyze.js';

const DB = { database: 'app' };
const one = (sql: string): StatementSummary => {
  const a = analyzeMysql(sql, DB);
  assert.equal(a.error, undefined, a.error);
  assert.equal(a.denied, undefined, a.denied?.reason);
  assert.equal(a.statements.length, 1);
  return (a.statements[0] as { summary: StatementSummary }).summary;
};
const rels = (s: StatementSummary): string[] =>
  s.relations
    .map((r) => `${r.operation}:${r.schema}.${r.name}${r.columns ? `(${r.columns.join(',')})` : ''}`)
    .sort();
const deniedBy = (sql: string): string => {
  const a = analyzeMysql(sql, DB);
  assert.ok(
    a.denied !== undefined,
    `expected a hard denial of ${sql}, got ${JSON.stringify(a.statements.map((s) => s.summary))}`,
  );
  return a.denied.rule;
};
const unsupported = (sql: string): void => {
  const a = analyzeMysql(sql, DB);
  const bad =
    a.error !== undefined ||
    a.denied !== undefined ||
    a.statements.some((s) => s.summary.unsupported !== undefined || s.summary.kind.startsWith('Mysql'));
  assert.ok(
    bad,
    `expected ${sql} not to be understood: ${JSON.stringify(a.statements.map((s) => s.summary))}`,
  );
};

describe('mysql analyser', () => {
  it('reports reads with columns, resolving aliases and the current database', () => {
    const s = one(
      'SELECT c.name, o.total FROM customers c JOIN other.orders o ON o.cid = c.id WHERE c.tenant_id = 1',
    );
    assert.equal(s.kind, 'SelectStmt');
    assert.deepEqual(rels(s), ['select:app.customers(id,name,tenant_id)', 'select:other.orders(cid,total)']);
    assert.deepEqual(rels(one('SELECT * FROM t')), ['select:app.t']);
    assert.deepEqual(rels(one('SELECT COUNT(*) FROM t')), ['select:app.t()']);
    assert.deepEqual(rels(one('SELECT `A`.`X` FROM `App`.`T` `a`')), ['select:app.t(x)']);
  });

  it('counts an unqualified column of a subquery against the enclosing tables too', () => {
    const s = one('SELECT id FROM customers WHERE id IN (SELECT ssn FROM orders)');
    assert.deepEqual(rels(s), ['select:app.customers(id,ssn)', 'select:app.orders(ssn)']);
  });

  it('reports CTE bodies and derived tables, not CTE names', () => {
    assert.deepEqual(rels(one('WITH x AS (SELECT a FROM t) SELECT * FROM x')), ['select:app.t(a)']);
    assert.deepEqual(rels(one('SELECT d.a FROM (SELECT a FROM t) AS d')), ['select:app.t(a)']);
  });

  it('reports writes: REPLACE deletes, ON DUPLICATE KEY UPDATE updates, multi-table DELETE', () => {
    assert.deepEqual(rels(one('REPLACE INTO ledger VALUES (1)')), ['delete:app.ledger', 'insert:app.ledger']);
    assert.deepEqual(rels(one('INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE b = 2')), [
      'insert:app.t(a)',
      'update:app.t(b)',
    ]);
    assert.deepEqual(rels(one('DELETE l FROM ledger l JOIN orders o ON o.id = l.id')), [
      'delete:app.ledger',
      'select:app.ledger(id)',
      'select:app.orders(id)',
    ]);
    const u = one('UPDATE orders o JOIN ledger l ON l.id = o.id SET l.amount = 0');
    assert.ok(rels(u).includes('update:app.ledger(amount)'));
    assert.equal(one('UPDATE t SET a = 1').hasWhere, false);
    assert.equal(one('DELETE FROM t WHERE a = 1').hasWhere, true);
  });

  it('does not count a WHERE that restricts nothing (approval rules without_where)', () => {
    for (const w of ['1', 'TRUE', 'a = a', 'a = 1 OR 1 = 1', 'EXISTS (SELECT id FROM o)', '(SELECT 1)']) {
      assert.equal(one(`DELETE FROM t WHERE ${w}`).hasWhere, false, w);
      assert.equal(one(`UPDATE t SET b = 1 WHERE ${w}`).hasWhere, false, w);
    }
    for (const w of [
      'a = 1',
      'a = 1 AND 1 = 1',
      'a IN (SELECT id FROM o)',
      'EXISTS (SELECT 1 FROM o WHERE o.id = t.a)',
    ]) {
      assert.equal(one(`DELETE FROM t WHERE ${w}`).hasWhere, true, w);
    }
  });

  it('reports DDL: TRUNCATE, RENAME, DROP, ALTER ... RENAME TO', () => {
    assert.deepEqual(rels(one('TRUNCATE ledger')), ['truncate:app.ledger']);
    assert.deepEqual(rels(one('RENAME TABLE a TO b')), ['alter:app.a', 'create:app.b']);
    assert.deepEqual(rels(one('DROP TABLE a')), ['drop:app.a']);
    assert.deepEqual(rels(one('ALTER TABLE a RENAME TO b')), ['alter:app.a', 'create:app.b']);
  });

  it('finds LOAD DATA LOCAL targets in the tree and refuses server-side LOAD DATA', () => {
    const s = one("LOAD DATA LOCAL INFILE 'x' REPLACE INTO TABLE ledger");
    assert.equal(s.kind, 'CopyStmt');
    assert.deepEqual(rels(s), ['copy_from:app.ledger', 'delete:app.ledger']);
    assert.equal(deniedBy("LOAD DATA INFILE '/etc/passwd' INTO TABLE t"), 'load-data');
  });

  it('always denies files, sleeps, locks, UDFs, system schemas and dangerous settings', () => {
    assert.equal(deniedBy("SELECT a FROM t INTO OUTFILE '/tmp/x'"), 'into-outfile');
    assert.equal(deniedBy("SELECT a INTO DUMPFILE '/tmp/x' FROM t"), 'into-outfile');
    assert.equal(deniedBy('SELECT a FROM t INTO @v'), 'select-into');
    assert.equal(deniedBy("SELECT LOAD_FILE('/etc/passwd')"), 'function:load_file');
    assert.equal(deniedBy('SELECT a FROM t WHERE SLEEP(1) = 0'), 'function:sleep');
    assert.equal(deniedBy("SELECT sys_exec('id')"), 'function:sys_exec');
    assert.equal(deniedBy('SELECT my_udf(1)'), 'function:my_udf');
    assert.equal(deniedBy('SELECT * FROM mysql.user'), 'catalog:mysql.user');
    assert.equal(deniedBy('SELECT @@datadir'), 'variable:datadir');
    assert.equal(deniedBy("SET sql_mode = 'ANSI_QUOTES'"), 'setting:sql_mode');
    assert.equal(deniedBy("SET @@session.sql_mode = ''"), 'setting:sql_mode');
    assert.equal(deniedBy('SET GLOBAL max_connections = 1'), 'setting:global');
    assert.equal(deniedBy('SET NAMES gbk'), 'setting:names');
    assert.equal(deniedBy('/*! SELECT 1 */'), 'mysql-lexer');
    assert.equal(deniedBy('PREPARE s FROM @q'), 'prepare:dynamic');
    assert.equal(deniedBy('USE other'), 'use-database');
  });

  it('lets harmless settings through unreported and reports the others to the policy', () => {
    assert.deepEqual(one('SET autocommit = 1, NAMES_x = 2'.replace(', NAMES_x = 2', '')).settings, []);
    assert.deepEqual(
      one('SET max_join_size = 10').settings.map((x) => x.name),
      ['max_join_size'],
    );
    assert.deepEqual(rels(one('SET @a = (SELECT x FROM t)')), ['select:app.t(x)']);
    assert.equal(one('SET NAMES utf8mb4').kind, 'VariableSetStmt');
  });

  it("reports MySQL's statement-timeout variables as the setting statement_timeout (the bundle guard pins it)", () => {
    for (const sql of [
      'SET max_statement_time = 0',
      'SET SESSION max_statement_time = 100',
      'SET @@session.max_statement_time = 0',
      'SET SESSION max_statement_time := 0',
      'SET @@max_execution_time = 0',
      'SET LOCAL max_execution_time = 5',
      'SET autocommit = 1, max_statement_time = 0',
    ]) {
      assert.deepEqual(
        one(sql).settings.map((x) => x.name),
        ['statement_timeout'],
        sql,
      );
    }
    assert.equal(deniedBy('SET STATEMENT max_statement_time = 0 FOR SELECT 1'), 'setting:statement');
    assert.equal(deniedBy('SET GLOBAL max_statement_time = 0'), 'setting:global');
  });

  it('decides PREPARE by its body and names EXECUTE / DEALLOCATE', () => {
    const p = one("PREPARE s FROM 'DELETE FROM ledger'");
    assert.equal(p.kind, 'PrepareStmt');
    assert.equal(p.preparedName, 's');
    assert.deepEqual(rels(p), ['delete:app.ledger']);
    assert.equal(one('EXECUTE s USING @a, @b').preparedName, 's');
    assert.equal(one('DEALLOCATE PREPARE s').kind, 'DeallocateStmt');
  });

  it('splits multi-statements and analyses each', () => {
    const a = analyzeMysql('SELECT 1; DELETE FROM ledger', DB);
    assert.deepEqual(
      a.statements.map((s) => s.summary.kind),
      ['SelectStmt', 'DeleteStmt'],
    );
  });

  it('does not understand (so denies) what it cannot check', () => {
    unsupported('HANDLER t OPEN');
    unsupported('LOCK TABLES t WRITE');
    unsupported("GRANT ALL ON *.* TO 'x'");
    unsupported('CALL');
    unsupported('SHOW PROCESSLIST');
    unsupported('CREATE VIEW v AS SELECT 1');
    unsupported('CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1');
    unsupported('DO 1');
    unsupported('TABLE t');
    unsupported('SELEC 1');
    unsupported('SELECT x.a FROM t');
  });

  it('recognises the policy-version question', () => {
    assert.equal(wardenShowName("SHOW VARIABLES LIKE 'warden.policy_version'"), 'warden.policy_version');
    assert.equal(wardenShowName("show session variables like 'WARDEN.POLICY_HASH'"), 'warden.policy_hash');
    assert.equal(wardenShowName("SHOW VARIABLES LIKE 'warden.policy_version'; SELECT 1"), undefined);
    assert.equal(wardenShowName("SHOW VARIABLES LIKE 'version'"), undefined);
  });
});
