// Tests of the MySQL dialect: column lists from the real MariaDB's information_schema, the policy-version answer, analysis and denials.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import mysql from 'mysql2/promise';
import type { TargetConfig } from '../config/gateway-config.js';
import { mysqlDialect, sqlModeProblem } from './mysql-dialect.js';

const DB = `wdialect_${process.pid}`;
const TARGET: TargetConfig = {
  name: 'm',
  engine: 'mysql',
  host: '127.0.0.1',
  port: 3306,
  database: DB,
  environment: 'test',
  tls: { mode: 'disable' },
  searchPath: [],
  logins: new Map([['root', { user: 'root' }]]),
  policy: { kind: 'allow_all' },
};

describe('mysql dialect', () => {
  let root: mysql.Connection;
  before(async () => {
    root = await mysql.createConnection({
      host: '127.0.0.1',
      port: 3306,
      user: 'root',
      multipleStatements: true,
    });
    await root.query(`DROP DATABASE IF EXISTS ${DB}; CREATE DATABASE ${DB};
      CREATE TABLE ${DB}.t (id INT, Name VARCHAR(10), ssn VARCHAR(10))`);
  });
  after(async () => {
    await root.query(`DROP DATABASE IF EXISTS ${DB}`);
    await root.end();
  });

  it('reads ordered, lower-cased column lists; an unknown table is an error, never an empty list', async () => {
    const catalog = mysqlDialect(TARGET).catalog(TARGET);
    try {
      assert.deepEqual(await catalog.columns(DB, 't'), ['id', 'name', 'ssn']);
      await assert.rejects(catalog.columns(DB, 'nope'), /not found/);
    } finally {
      await catalog.close();
    }
  });

  it('an unreachable upstream is an error (the hook denies)', async () => {
    const down: TargetConfig = { ...TARGET, port: 1 };
    const catalog = mysqlDialect(down).catalog(down);
    try {
      await assert.rejects(catalog.columns(DB, 't'), /cannot read the columns/);
    } finally {
      await catalog.close();
    }
  });

  it('answers the policy-version question as a constant row MariaDB can run', async () => {
    const d = mysqlDialect(TARGET);
    const v = d.answerShow("SHOW VARIABLES LIKE 'warden.policy_version'", { label: '7', hash: 'ab' });
    assert.ok(v?.action === 'allow' && v.sql !== undefined);
    const [rows] = await root.query(v.sql);
    assert.deepEqual(rows, [{ Variable_name: 'warden.policy_version', Value: '7 ab' }]);
    assert.equal(d.answerShow('SELECT 1', { label: '7', hash: 'ab' }), undefined);
    assert.equal(d.answerShow("SHOW VARIABLES LIKE 'warden.policy_version'", undefined), undefined);
  });

  it('refuses servers that read quotes differently from the pre-lexer; accepts this one', async () => {
    assert.match(sqlModeProblem('STRICT_TRANS_TABLES,ANSI_QUOTES', '') ?? '', /ANSI_QUOTES/);
    assert.match(sqlModeProblem('no_backslash_escapes', '') ?? '', /NO_BACKSLASH_ESCAPES/);
    assert.match(sqlModeProblem('', "SET sql_mode='ANSI'") ?? '', /init_connect/);
    assert.equal(sqlModeProblem('STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION', ''), undefined);
    await mysqlDialect(TARGET).init();
    await mysqlDialect({ ...TARGET, port: 1 }).init(); // unreachable: not an error at start
  });

  it('analyses with the target database and passes hard denials on', () => {
    const d = mysqlDialect(TARGET);
    const a = d.analyze('SELECT ssn FROM t');
    assert.deepEqual(a.analysis.statements[0]?.relations, [
      { schema: DB, name: 't', operation: 'select', columns: ['ssn'] },
    ]);
    assert.equal(d.analyze("SELECT LOAD_FILE('/etc/passwd')").denied?.rule, 'function:load_file');
    assert.ok(d.analyze('SELECT 1 FROM').analysis.error !== undefined);
  });
});
