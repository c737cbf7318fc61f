// MySQL bypass corpus data: the wcorpus database with canary values, and the root-side state digest.
//
// Every protected value carries a unique random token (12 hex digits) that the runner searches for in everything
// MariaDB returned; case SQL may name prefixes such as 'CANARY-SSN-' without matching.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type mysql from 'mysql2/promise';

export const DB = 'wcorpus';
export const OTHER_DB = 'wcorpus_other';
/** Files a case might make the server write (INTO OUTFILE targets): the digest lists them. */
export const OUT_PREFIX = 'wcorpus-out';

export type CanaryKind = 'ssn' | 'email' | 'secret' | 'name' | 'other';

export interface Canary {
  readonly kind: CanaryKind;
  readonly token: string;
  readonly value: string;
}

export interface Seed {
  readonly canaries: readonly Canary[];
  readonly sql: string;
}

const token = (): string => randomBytes(6).toString('hex');
const TENANT1 = ['Ada Lovelace', 'Alan Turing', 'Grace Hopper', 'Edsger Dijkstra'];
const lit = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** Fresh canaries and the SQL that creates both databases (run as root with multiple statements). */
export function makeSeed(): Seed {
  const canaries: Canary[] = [];
  const add = (kind: CanaryKind, f: (t: string) => string): string => {
    const t = token();
    const v = f(t);
    canaries.push({ kind, token: t, value: v });
    return v;
  };
  const rows: string[] = [];
  for (let i = 0; i < 8; i++) {
    const tenant = i < 4 ? 1 : 2;
    const name = tenant === 1 ? (TENANT1[i] as string) : add('name', (t) => `CANARY-NAME-${t}`);
    // The partial mask keeps the last 4 characters: plain digits, never part of the token.
    const ssn = add('ssn', (t) => `CANARY-SSN-${t}-${1000 + i}`);
    const email = add('email', (t) => `canary-${t}@mail.test`);
    rows.push(`(${i + 1}, ${lit(name)}, ${lit(email)}, ${lit(ssn)}, ${tenant})`);
  }
  const secrets = [1, 2, 3].map((id) => `(${id}, ${lit(add('secret', (t) => `CANARY-SECRET-${t}`))})`);
  const other = add('other', (t) => `CANARY-OTHER-${t}`);
  const sql = `
DROP DATABASE IF EXISTS ${DB};
DROP DATABASE IF EXISTS ${OTHER_DB};
CREATE DATABASE ${DB};
CREATE DATABASE ${OTHER_DB};
USE ${DB};
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200), ssn VARCHAR(100),
  tenant_id INT NOT NULL);
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL,
  status VARCHAR(20) NOT NULL DEFAULT 'new');
CREATE TABLE ledger (id INT PRIMARY KEY AUTO_INCREMENT, amount DECIMAL(10,2) NOT NULL, note VARCHAR(100));
CREATE TABLE secrets (id INT PRIMARY KEY, value VARCHAR(200) NOT NULL);
INSERT INTO customers VALUES ${rows.join(', ')};
INSERT INTO orders (id, customer_id, total, status) VALUES (1, 1, 10.50, 'paid'), (2, 2, 20.00, 'new'),
  (3, 5, 30.25, 'paid'), (4, 6, 7.00, 'new');
INSERT INTO ledger (id, amount, note) VALUES (1, 100.00, 'opening'), (2, -20.00, 'fee'), (3, 5.00, 'refund');
INSERT INTO secrets VALUES ${secrets.join(', ')};
CREATE FUNCTION order_total(cid INT) RETURNS DECIMAL(10,2) READS SQL DATA
  RETURN (SELECT COALESCE(SUM(total), 0) FROM orders WHERE customer_id = cid);
CREATE FUNCTION reveal_secret(sid INT) RETURNS VARCHAR(200) READS SQL DATA
  RETURN (SELECT value FROM secrets WHERE id = sid);
CREATE PROCEDURE purge_ledger() MODIFIES SQL DATA DELETE FROM ledger;
CREATE TABLE ${OTHER_DB}.hidden (id INT PRIMARY KEY, value VARCHAR(200));
INSERT INTO ${OTHER_DB}.hidden VALUES (1, ${lit(other)});
`;
  return { canaries, sql };
}

/**
 * A digest of everything a denied statement must not change: checksums of every table of both databases, their
 * object lists (tables, columns, routines, triggers, views, events), the account list, a few global variables,
 * and the INTO OUTFILE target files in /tmp.
 */
export async function stateDigest(root: mysql.Connection): Promise<string> {
  const parts: string[] = [];
  const q = async (sql: string): Promise<unknown[]> => {
    const [rows] = await root.query({ sql, rowsAsArray: true });
    return rows as unknown[];
  };
  const schemas = `('${DB}', '${OTHER_DB}')`;
  const tables = (await q(
    `SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ${schemas} ORDER BY 1`,
  )) as string[][];
  for (const [t] of tables) parts.push(JSON.stringify(await q(`CHECKSUM TABLE ${t as string} EXTENDED`)));
  for (const sql of [
    `SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ${schemas} ORDER BY 1, 2`,
    `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ${schemas} ORDER BY 1, 2, 3`,
    `SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ${schemas} ORDER BY 1, 2`,
    `SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ${schemas} ORDER BY 1, 2`,
    `SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS ORDER BY 1, 2`,
    `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1`,
    `SELECT User, Host FROM mysql.user ORDER BY 1, 2`,
    `SELECT @@GLOBAL.sql_mode, @@GLOBAL.general_log, @@GLOBAL.read_only, @@GLOBAL.local_infile, @@GLOBAL.max_connections, @@GLOBAL.event_scheduler`,
  ]) {
    parts.push(JSON.stringify(await q(sql)));
  }
  parts.push(
    readdirSync('/tmp')
      .filter((f) => f.startsWith(OUT_PREFIX))
      .sort()
      .join(','),
  );
  return createHash('sha256').update(parts.join('\n')).digest('hex') + '\n' + parts.join('\n');
}
