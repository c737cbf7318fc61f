// End to end: the gateway with the PostgreSQL audit store fails closed (58030) while that database is down, and resumes after.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import type { AuditLog } from '../src/audit/log.js';
import { AuditRecorder } from '../src/audit/recorder.js';
import { installPgAuditSchema } from '../src/audit/store-pg.js';
import { openAuditLogFromConfig } from '../src/audit/open.js';
import { verifyPgLog } from '../src/audit/verify.js';
import { buildGatewayConfig } from '../src/config/gateway-config.js';

const UP_PASSWORD = 'up-pgaudit-pw';
const GW_AUDIT_PASSWORD = 'gw-pgaudit-pw';
const ALICE = 'alice-pgaudit-pw';
const ORIGIN = 'pgaudit.e2e/log';

describe('gateway with the PostgreSQL audit store (end to end)', () => {
  let upstream: PgInstance;
  let auditPg: PgInstance;
  let gw: TestGateway;
  let log: AuditLog;
  let recorder: AuditRecorder;
  let keyDir: string;
  const errors: string[] = [];

  before(async () => {
    [upstream, auditPg] = await Promise.all([
      startPostgres({
        users: [{ name: 'app', password: UP_PASSWORD }],
        databases: [{ name: 'appdb', owner: 'app' }],
      }),
      startPostgres({ users: [{ name: 'warden_gw', password: GW_AUDIT_PASSWORD }], databases: ['auditdb'] }),
    ]);
    await upstream.query('CREATE TABLE t (id int primary key); ALTER TABLE t OWNER TO app', 'appdb');
    const admin = new pg.Client(auditPg.superuserConfig('auditdb'));
    await admin.connect();
    await installPgAuditSchema(admin, { gatewayRole: 'warden_gw' });
    await admin.end();
    keyDir = mkdtempSync(join(tmpdir(), 'warden-pgaudit-'));
    process.env['WARDEN_TEST_AUDIT_PW'] = GW_AUDIT_PASSWORD;
    // The configuration path an operator uses: audit.postgres in the gateway YAML.
    const cfg = buildGatewayConfig(
      {
        audit: {
          dir: keyDir,
          origin: ORIGIN,
          checkpoint_interval_ms: 0,
          postgres: {
            host: '127.0.0.1',
            port: auditPg.port,
            database: 'auditdb',
            user: 'warden_gw',
            password_env: 'WARDEN_TEST_AUDIT_PW',
          },
        },
        users: [],
        targets: [
          {
            name: 'x',
            host: '127.0.0.1',
            port: 1,
            database: 'x',
            logins: { a: { user: 'a' } },
            policy: 'allow_all',
          },
        ],
      },
      keyDir,
    );
    log = await openAuditLogFromConfig(cfg.audit!);
    recorder = new AuditRecorder(log, {
      onError: (kind, e) => errors.push(`${kind}: ${(e as Error).message}`),
    });
    gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: UP_PASSWORD }],
      users: [{ name: 'alice', password: ALICE }],
      hook: recorder.wrapHook({ check: () => ({ action: 'allow' }) }, { policyVersion: () => 'allow_all' }),
      gatewayOptions: { events: recorder.sessionEvents() },
    });
  });

  after(async () => {
    delete process.env['WARDEN_TEST_AUDIT_PW'];
    await gw?.stop();
    await log?.close();
    await Promise.all([upstream?.stop(), auditPg?.stop()]);
    if (keyDir !== undefined) rmSync(keyDir, { recursive: true, force: true });
  });

  it('refuses statements with 58030 while the audit database is down, runs none of them, and resumes when it is back', async () => {
    const c = await gw.connect('alice', ALICE);
    try {
      await c.query('INSERT INTO t VALUES (1)');
      await auditPg.stopServer();
      await assert.rejects(c.query('INSERT INTO t VALUES (100)'), (e: pg.DatabaseError) => {
        assert.equal(e.code, '58030');
        assert.match(e.message, /audit log could not record/);
        return true;
      });
      await assert.rejects(c.query('INSERT INTO t VALUES ($1)', [101]), { code: '58030' });
      const ran = await upstream.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM t WHERE id >= 100',
        'appdb',
      );
      assert.equal(ran[0]?.n, 0, 'no refused statement reached the upstream database');
      await auditPg.startServer();
      await c.query('INSERT INTO t VALUES (102)');
      const after = await upstream.query<{ id: number }>('SELECT id FROM t ORDER BY id', 'appdb');
      assert.deepEqual(
        after.map((r) => r.id),
        [1, 102],
      );
    } finally {
      await c.end();
    }
    await recorder.flush();
    await log.checkpoint();
    const admin = new pg.Client(auditPg.superuserConfig('auditdb'));
    await admin.connect();
    try {
      const texts = await admin.query<{ t: string }>(
        "SELECT convert_from(payload, 'UTF8')::json->>'text' AS t FROM warden_audit.entries WHERE convert_from(payload, 'UTF8')::json->>'kind' = 'statement' ORDER BY idx",
      );
      assert.deepEqual(
        texts.rows.map((r) => r.t),
        ['INSERT INTO t VALUES (1)', 'INSERT INTO t VALUES (102)'],
      );
      const v = await verifyPgLog(
        admin,
        {},
        { origin: ORIGIN, verifierKeys: [log.verifier], strictEntries: true },
      );
      assert.equal(v.ok, true, JSON.stringify(v.firstError));
      assert.equal(v.size, log.size);
    } finally {
      await admin.end();
    }
    assert.ok(
      errors.some((e) => e.startsWith('statement:')),
      'the refusals were reported',
    );
  });
});
