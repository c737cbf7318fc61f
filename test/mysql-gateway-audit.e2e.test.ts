// End to end: MySQL sessions, logins and statements land in the same audit log as PostgreSQL ones (write-ahead, with outcomes).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { startGateway, type Gateway } from '../src/main.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry, type AuditEntry } from '../src/audit/entry.js';
import { createMariadbFixture, mariadbAvailable, type MariadbFixture } from './harness/mariadb.js';

const PW = 'audit-mysql-pw';

describe('MySQL front end and the audit log', { timeout: 120_000 }, async () => {
  if (!(await mariadbAvailable())) {
    it('needs the shared MariaDB on 127.0.0.1:3306', { skip: 'MariaDB is not available' }, () => undefined);
    return;
  }
  let dir: string;
  let db: MariadbFixture;
  let gw: Gateway;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-mysql-audit-'));
    db = await createMariadbFixture('wma');
    writeFileSync(join(dir, 'up.pw'), db.password, { mode: 0o600 });
    const cfg = buildGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        mysql_listen: { host: '127.0.0.1', port: 0 },
        state_dir: join(dir, 'state'),
        audit: { dir: join(dir, 'audit'), origin: 'mysql.e2e/log', checkpoint_interval_ms: 0 },
        users: [
          { name: 'alice', kind: 'human', scram_verifier: createVerifier(PW), logins: { shop: 'app' } },
        ],
        targets: [
          {
            name: 'shop',
            engine: 'mysql',
            host: '127.0.0.1',
            port: 3306,
            database: db.database,
            logins: { app: { user: db.user, password_file: 'up.pw' } },
            policy: 'allow_all',
          },
        ],
      },
      dir,
    );
    gw = await startGateway(cfg, { log: () => undefined });
  });

  after(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records session open/close, auth success and failure, statements with their path, binds and outcomes', async () => {
    const port = (gw.mysql as NonNullable<Gateway['mysql']>).port;
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'alice',
      password: PW,
      database: 'shop',
    });
    await c.query('SELECT 40 + 2 AS answer');
    await c.execute('SELECT ? AS p', ['bound']);
    await c.end();
    await assert.rejects(
      mysql.createConnection({ host: '127.0.0.1', port, user: 'alice', password: 'wrong', database: 'shop' }),
    );
    await new Promise((r) => setTimeout(r, 200));
    await gw.close(1000);
    const snap = await LogSnapshot.open(join(dir, 'audit'));
    const entries: AuditEntry[] = [];
    for (let i = 0; i < snap.size; i++) entries.push(decodeEntry(await snap.read(i)));
    const kinds = entries.map((e) => e.kind);
    for (const k of [
      'session.open',
      'auth.success',
      'statement',
      'statement.outcome',
      'auth.failure',
      'session.close',
    ]) {
      assert.ok(kinds.includes(k as AuditEntry['kind']), `missing ${k} in ${kinds.join(',')}`);
    }
    const open = entries.find((e) => e.kind === 'session.open') as unknown as {
      protocol: string;
      target: string;
    };
    assert.equal(open.protocol, 'mysql');
    assert.equal(open.target, 'shop');
    const stmts = entries.filter((e) => e.kind === 'statement') as unknown as {
      text: string;
      path: string;
    }[];
    assert.ok(stmts.some((s) => s.text === 'SELECT 40 + 2 AS answer' && s.path === 'mysql-query'));
    assert.ok(stmts.some((s) => s.text === 'SELECT ? AS p' && s.path === 'mysql-prepare'));
    assert.ok(kinds.includes('statement.bind'), 'the execute parameters were recorded');
    // The execute's entry links to its COM_STMT_PREPARE's statement entry (same session, the statement id).
    const prep = entries.find(
      (e) => e.kind === 'statement' && e.path === 'mysql-prepare' && e.text === 'SELECT ? AS p',
    );
    const bind = entries.find((e) => e.kind === 'statement.bind');
    assert.ok(prep?.kind === 'statement' && bind?.kind === 'statement.bind');
    assert.equal(bind.statementId, prep.id, 'the execute entry links to its prepare entry');
    assert.equal(bind.sessionId, prep.sessionId);
    assert.equal(Object.hasOwn(bind, 'approvalRequestId'), false, 'no approval was involved');
    const fail = entries.find((e) => e.kind === 'auth.failure') as unknown as {
      user: string;
      reason: string;
    };
    assert.equal(fail.user, 'alice');
    assert.equal(fail.reason, 'wrong password');
  });
});
