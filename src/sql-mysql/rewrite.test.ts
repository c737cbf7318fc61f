// Tests of the MySQL mask/row-filter rewriter: the rewritten SQL runs on the real MariaDB and shows only masked, filtered rows; what cannot be rewritten is refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import { analyzeMysql } from './analyze.js';
import { mysqlMaskSql, rewriteMysql } from './rewrite.js';
import type { MysqlTableProtection } from './rewrite.js';

const DB = `wrewrite_${process.pid}`;
const PROT: ReadonlyMap<string, MysqlTableProtection> = new Map([
  [
    `${DB}.customers`,
    {
      columns: ['id', 'name', 'ssn', 'email', 'tenant_id'],
      masks: new Map([
        ['ssn', mysqlMaskSql({ kind: 'partial', keepFirst: 0, keepLast: 4 }, 'ssn')],
        ['email', mysqlMaskSql({ kind: 'hash' }, 'email')],
        ['name', mysqlMaskSql({ kind: 'redact' }, 'name')],
      ]),
      rowFilter: 'tenant_id = 1',
    },
  ],
]);
const rw = (sql: string): string | undefined => rewriteMysql(analyzeMysql(sql, { database: DB }), PROT, DB);

describe('mysql rewriter on MariaDB', () => {
  let conn: mysql.Connection;
  before(async () => {
    conn = await mysql.createConnection({
      host: '127.0.0.1',
      port: 3306,
      user: 'root',
      multipleStatements: true,
    });
    await conn.query(`DROP DATABASE IF EXISTS ${DB}; CREATE DATABASE ${DB}; USE ${DB};
      CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50), ssn VARCHAR(50), email VARCHAR(50), tenant_id INT);
      CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT);
      INSERT INTO customers VALUES (1, 'Ada', 'SECRET-SSN-1234', 'ada@x', 1), (2, 'Bob', 'SECRET-SSN-5678', 'bob@x', 2);
      INSERT INTO orders VALUES (10, 1), (20, 2);`);
  });
  after(async () => {
    await conn.query(`DROP DATABASE IF EXISTS ${DB}`);
    await conn.end();
  });
  const rows = async (sql: string): Promise<Record<string, unknown>[]> => {
    const out = rw(sql);
    assert.ok(out !== undefined, 'expected a rewrite');
    const [r] = await conn.query(out);
    return r as Record<string, unknown>[];
  };

  it('masks every way of reading a column and filters rows', async () => {
    const all = JSON.stringify([
      await rows('SELECT * FROM customers'),
      await rows('SELECT c.ssn, c.email, UPPER(c.name) AS n FROM customers c'),
      await rows('SELECT o.id, c.ssn FROM orders o JOIN customers c ON c.id = o.customer_id'),
      await rows('SELECT (SELECT MAX(ssn) FROM customers) AS m'),
      await rows('WITH x AS (SELECT ssn FROM customers) SELECT * FROM x'),
      await rows('SELECT ssn FROM customers UNION ALL SELECT email FROM customers'),
    ]);
    assert.ok(!all.includes('SECRET-SSN'), all);
    assert.ok(!all.includes('ada@x') && !all.includes('Bob'), all);
    assert.ok(all.includes('***********1234'), all);
    const count = await rows('SELECT COUNT(*) AS n FROM customers');
    assert.equal(Number(count[0]?.['n']), 1);
    const hidden = await rows("SELECT id FROM customers WHERE ssn LIKE 'SECRET%'");
    assert.equal(hidden.length, 0);
  });

  it('materialises the filtered table: a primary-key lookup never evaluates client conditions on hidden rows', async () => {
    // Merged into the outer query, `id = 2 AND name = 0` reads row 2 by key and warns "Truncated incorrect DECIMAL
    // value: 'Bob'" before the tenant filter drops it.
    const filterOnly = new Map([
      [`${DB}.customers`, { ...(PROT.get(`${DB}.customers`) as MysqlTableProtection), masks: new Map() }],
    ]);
    const sql = 'SELECT id FROM customers WHERE id = 2 AND tenant_id = 0 + name';
    const out = rewriteMysql(analyzeMysql(sql, { database: DB }), filterOnly, DB);
    assert.ok(out !== undefined);
    await conn.query(out);
    const [w] = await conn.query('SHOW WARNINGS');
    assert.ok(!JSON.stringify(w).includes('Bob'), JSON.stringify(w));
  });

  it('rewrites the body of an SQL PREPARE', async () => {
    const out = rw("PREPARE s FROM 'SELECT ssn FROM customers'");
    assert.ok(out?.startsWith('PREPARE `s` FROM ') === true);
    await conn.query(out);
    const [r] = await conn.query('EXECUTE s');
    assert.ok(!JSON.stringify(r).includes('SECRET'), JSON.stringify(r));
  });

  it('filters UPDATE and DELETE of a protected table, refusing masked columns', async () => {
    const out = rw('UPDATE customers SET tenant_id = tenant_id WHERE id > 0');
    assert.match(out ?? '', /tenant_id` = 1/);
    const [r] = await conn.query(out as string);
    assert.equal((r as { affectedRows: number }).affectedRows, 1);
    assert.throws(() => rw("UPDATE customers SET tenant_id = 1 WHERE ssn = 'x'"), /masked column/);
    assert.throws(
      () => rw('DELETE c FROM customers c JOIN orders o ON o.customer_id = c.id'),
      /cannot be filtered/,
    );
    assert.throws(() => rw('REPLACE INTO customers (id) VALUES (3)'), /cannot be masked/);
  });

  it('leaves statements on unprotected tables alone', () => {
    assert.equal(rw('SELECT id FROM orders'), undefined);
  });
});
