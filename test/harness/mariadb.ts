// Test harness for the shared MariaDB (127.0.0.1:3306, root over the local socket): throwaway databases and users, and the real `mariadb` client.

import { randomBytes } from 'node:crypto';
import { runCommand, type CommandResult } from './sys.js';

export const MARIADB_HOST = '127.0.0.1';
export const MARIADB_PORT = Number(process.env.WARDEN_TEST_MARIADB_PORT ?? 3306);

/** Runs SQL as the MariaDB root user (local socket); throws with the client's stderr on failure. */
export async function mariadbRoot(sql: string): Promise<string> {
  const r = await runCommand('mariadb', ['-uroot', '--batch', '--skip-column-names'], {
    input: sql,
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(`mariadb as root failed (${String(r.code)}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Whether the shared MariaDB answers (tests skip with a reason when it does not). */
export async function mariadbAvailable(): Promise<boolean> {
  try {
    await mariadbRoot('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

export interface MariadbFixture {
  readonly database: string;
  readonly user: string;
  readonly password: string;
  /** Drops the database and the user. */
  drop(): Promise<void>;
}

/** A fresh database and a password-protected user (mysql_native_password) with all rights on it only. */
export async function createMariadbFixture(prefix = 'warden'): Promise<MariadbFixture> {
  const tag = randomBytes(4).toString('hex');
  const database = `${prefix}_db_${tag}`;
  const user = `${prefix}_u_${tag}`;
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  const hosts = ['127.0.0.1', 'localhost'];
  await mariadbRoot(
    [
      `CREATE DATABASE \`${database}\`;`,
      ...hosts.map((h) => `CREATE USER '${user}'@'${h}' IDENTIFIED BY '${password}';`),
      ...hosts.map((h) => `GRANT ALL ON \`${database}\`.* TO '${user}'@'${h}';`),
    ].join('\n'),
  );
  return {
    database,
    user,
    password,
    async drop() {
      await mariadbRoot(
        [
          `DROP DATABASE IF EXISTS \`${database}\`;`,
          ...hosts.map((h) => `DROP USER IF EXISTS '${user}'@'${h}';`),
        ].join('\n'),
      );
    },
  };
}

export interface MariadbClientOptions {
  readonly host?: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database?: string;
  /** SQL run with -e. */
  readonly sql: string;
  /** TLS: 'off' (--skip-ssl), 'on' (no verification), or verify against a CA file. */
  readonly tls?: 'off' | 'on' | { readonly ca: string };
  readonly extraArgs?: readonly string[];
  readonly timeoutMs?: number;
  /** A shell command the client's output is piped into (e.g. `wc -l`), so a large result is never held here. */
  readonly pipeTo?: string;
}

/** Runs the real `mariadb` command-line client in batch mode. */
export function runMariadb(o: MariadbClientOptions): Promise<CommandResult> {
  const args = [
    `--host=${o.host ?? '127.0.0.1'}`,
    `--port=${o.port}`,
    `--user=${o.user}`,
    `--password=${o.password}`,
    '--batch',
    '--connect-timeout=20',
  ];
  const t = o.tls ?? 'off';
  if (t === 'off') args.push('--skip-ssl');
  else if (t === 'on') args.push('--ssl');
  else args.push('--ssl', `--ssl-ca=${t.ca}`, '--ssl-verify-server-cert');
  args.push(...(o.extraArgs ?? []));
  if (o.database !== undefined) args.push(o.database);
  args.push('-e', o.sql);
  // No option files: the machine's my.cnf must not change what the test does.
  const full = ['--no-defaults', ...args];
  const timeoutMs = o.timeoutMs ?? 60_000;
  if (o.pipeTo !== undefined) {
    return runCommand('bash', ['-c', `set -o pipefail; mariadb "$@" | ${o.pipeTo}`, 'bash', ...full], {
      timeoutMs,
    });
  }
  return runCommand('mariadb', full, { timeoutMs });
}
