// Tests for the PostgreSQL audit store against a private PostgreSQL: group commit, replicas, append-only attacks, outage and recovery, redaction.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startPostgres, type PgInstance } from '../../test/harness/pg.js';
import { AuditLog } from './log.js';
import { generateSignerKey, parseSignerKey } from './note.js';
import { PgAuditStore, installPgAuditSchema } from './store-pg.js';
import { verifyPgLog } from './verify.js';
import { makeEntry } from './entry.js';
import type { AuditEntry } from './entry.js';
import { RedactionRefusedError } from './redaction.js';

const ORIGIN = 'pg.test/audit';
const signer = parseSignerKey(generateSignerKey(ORIGIN).skey);
const GW_PASSWORD = 'gw-audit-pw-9';

const closeEntry = (reason: string, time?: Date): AuditEntry =>
  makeEntry({ kind: 'session.close', sessionId: 's1', reason, ...(time ? { time } : {}) });

describe('PgAuditStore', () => {
  let inst: PgInstance;
  let admin: pg.Client;
  const gwConn = (): pg.PoolConfig => ({
    host: '127.0.0.1',
    port: inst.port,
    user: 'warden_gw',
    password: GW_PASSWORD,
    database: 'auditdb',
  });
  const gwClient = async (): Promise<pg.Client> => {
    const c = new pg.Client(gwConn());
    await c.connect();
    return c;
  };
  const suClient = async (): Promise<pg.Client> => {
    const c = new pg.Client(inst.superuserConfig('auditdb'));
    await c.connect();
    return c;
  };
  const verify = (schema: string, lastSeen?: Uint8Array) =>
    verifyPgLog(
      admin,
      { schema },
      {
        origin: ORIGIN,
        verifierKeys: [signer.verifierKey],
        strictEntries: true,
        ...(lastSeen ? { lastSeenCheckpoint: lastSeen } : {}),
      },
    );
  /** A fresh schema with some entries and a checkpoint, written through the gateway role. */
  const seeded = async (schema: string, n: number): Promise<{ log: AuditLog; note: Uint8Array }> => {
    await installPgAuditSchema(admin, { schema, gatewayRole: 'warden_gw' });
    const store = await PgAuditStore.open({ connection: gwConn(), schema });
    const log = await AuditLog.open(store, { origin: ORIGIN, signer });
    await Promise.all(Array.from({ length: n }, (_v, i) => log.append(closeEntry(`r${i}`))));
    return { log, note: await log.checkpoint() };
  };

  before(async () => {
    inst = await startPostgres({
      users: [{ name: 'warden_gw', password: GW_PASSWORD }],
      databases: ['auditdb'],
    });
    admin = new pg.Client(inst.superuserConfig('auditdb'));
    await admin.connect();
  });
  after(async () => {
    await admin?.end().catch(() => undefined);
    await inst?.stop();
  });

  it('group-commits concurrent appends with gap-free indexes; the log verifies and reopens to the same root', async () => {
    const { log, note } = await seeded('a1', 300);
    assert.equal(log.size, 300);
    const rows = await admin.query<{ n: number; lo: number; hi: number; d: number }>(
      'SELECT count(*)::int AS n, min(idx)::int AS lo, max(idx)::int AS hi, count(DISTINCT idx)::int AS d FROM a1.entries',
    );
    assert.deepEqual(rows.rows[0], { n: 300, lo: 0, hi: 299, d: 300 });
    const v = await verify('a1');
    assert.equal(v.ok, true, JSON.stringify(v.firstError));
    assert.equal(v.size, 300);
    assert.equal(v.checkpointsChecked, 1);
    const root = log.root();
    await log.close();
    const again = await AuditLog.open(await PgAuditStore.open({ connection: gwConn(), schema: 'a1' }), {
      origin: ORIGIN,
      signer,
    });
    assert.deepEqual(again.root(), root);
    assert.ok(Buffer.from(again.latestCheckpoint()!).equals(note));
    const e = await again.store.read(7);
    assert.equal((JSON.parse(Buffer.from(e).toString()) as { reason: string }).reason, 'r7');
    await again.close();
  });

  it('two replicas appending at once share one gap-free log; checkpoints never go backwards', async () => {
    await installPgAuditSchema(admin, { schema: 'rep', gatewayRole: 'warden_gw' });
    const a = await AuditLog.open(await PgAuditStore.open({ connection: gwConn(), schema: 'rep' }), {
      origin: ORIGIN,
      signer,
    });
    const b = await AuditLog.open(await PgAuditStore.open({ connection: gwConn(), schema: 'rep' }), {
      origin: ORIGIN,
      signer,
    });
    const got = await Promise.all(
      Array.from({ length: 200 }, (_v, i) => (i % 2 === 0 ? a : b).append(closeEntry(`x${i}`))),
    );
    const idx = got.map((g) => g.index).sort((x, y) => x - y);
    assert.deepEqual(
      idx,
      Array.from({ length: 200 }, (_v, i) => i),
    );
    await a.checkpoint();
    await b.append(closeEntry('late'));
    await b.checkpoint();
    await a.checkpoint(); // a catches up with b's entry before signing
    assert.equal(a.size, 201);
    assert.deepEqual(a.root(), b.root());
    const v = await verify('rep');
    assert.equal(v.ok, true, JSON.stringify(v.firstError));
    assert.equal(v.size, 201);
    await a.close();
    await b.close();
  });

  it('attack: the gateway role cannot UPDATE, DELETE or TRUNCATE either table (privileges), nor skip triggers', async () => {
    const { log } = await seeded('att1', 5);
    await log.close();
    const c = await gwClient();
    try {
      for (const sql of [
        "UPDATE att1.entries SET payload = 'x' WHERE idx = 1",
        'DELETE FROM att1.entries WHERE idx = 1',
        'TRUNCATE att1.entries',
        'UPDATE att1.entries SET payload = NULL WHERE idx = 1',
        'DELETE FROM att1.entries_checkpoints',
        'TRUNCATE att1.entries_checkpoints',
        'ALTER TABLE att1.entries DISABLE TRIGGER ALL',
        'SET session_replication_role = replica',
      ]) {
        await assert.rejects(c.query(sql), { code: '42501' }, sql);
      }
    } finally {
      await c.end();
    }
    assert.equal((await verify('att1')).ok, true);
  });

  it('attack: the owner/superuser is refused by the triggers, also with session_replication_role = replica', async () => {
    const { log } = await seeded('att2', 5);
    await log.close();
    const c = await suClient();
    try {
      for (const replica of [false, true]) {
        if (replica) await c.query('SET session_replication_role = replica');
        for (const sql of [
          "UPDATE att2.entries SET payload = 'x' WHERE idx = 1",
          "UPDATE att2.entries SET leaf_hash = sha256('x') WHERE idx = 1",
          'DELETE FROM att2.entries WHERE idx = 4',
          'TRUNCATE att2.entries',
          "UPDATE att2.entries_checkpoints SET note = 'x'",
          'DELETE FROM att2.entries_checkpoints',
          'TRUNCATE att2.entries_checkpoints',
        ]) {
          await assert.rejects(c.query(sql), (e: pg.DatabaseError) => {
            assert.equal(e.code, '42501', sql);
            assert.match(e.message, /append-only/);
            return true;
          });
        }
      }
    } finally {
      await c.end();
    }
    const v = await verify('att2');
    assert.equal(v.ok, true, JSON.stringify(v.firstError));
    assert.equal(v.size, 5);
  });

  it('attack: a superuser who drops the triggers and edits, deletes or redacts rows is detected by verification', async () => {
    const { log, note } = await seeded('att3', 8);
    await log.close();
    await admin.query('ALTER TABLE att3.entries DISABLE TRIGGER ALL');
    // Payload edited with its leaf hash recomputed: only the signed checkpoint can tell.
    await admin.query(
      `UPDATE att3.entries SET payload = convert_to(replace(convert_from(payload, 'UTF8'), '"r3"', '"x3"'), 'UTF8') WHERE idx = 3`,
    );
    await admin.query(`UPDATE att3.entries SET leaf_hash = sha256('\\x00'::bytea || payload) WHERE idx = 3`);
    let v = await verify('att3');
    assert.equal(v.ok, false);
    assert.equal(v.firstError?.kind, 'root-mismatch');
    // Payload edited alone: the row's own hash says which.
    await admin.query(`UPDATE att3.entries SET payload = payload || '\\x20'::bytea WHERE idx = 5`);
    v = await verify('att3');
    assert.equal(v.firstError?.kind, 'entry-corrupt');
    assert.equal(v.firstError?.index, 5);
    await assert.rejects(PgAuditStore.open({ connection: gwConn(), schema: 'att3' }), /corrupt/);

    const { log: log4 } = await seeded('att4', 6);
    await log4.close();
    await admin.query('ALTER TABLE att4.entries DISABLE TRIGGER ALL');
    await admin.query('DELETE FROM att4.entries WHERE idx = 2');
    v = await verify('att4');
    assert.deepEqual([v.firstError?.kind, v.firstError?.index], ['entry-corrupt', 2]);
    // Truncation re-signed as a smaller tree is caught by a checkpoint seen before.
    const { log: log5, note: seen } = await seeded('att5', 6);
    await log5.close();
    await admin.query(
      'ALTER TABLE att5.entries DISABLE TRIGGER ALL; ALTER TABLE att5.entries_checkpoints DISABLE TRIGGER ALL',
    );
    await admin.query('DELETE FROM att5.entries WHERE idx >= 4; DELETE FROM att5.entries_checkpoints');
    v = await verify('att5', seen);
    assert.equal(v.firstError?.kind, 'truncated');
    // A payload removed by the owner without a logged redaction (the trigger lets a NULL through).
    const { log: log6 } = await seeded('att6', 4);
    await log6.close();
    await admin.query('UPDATE att6.entries SET payload = NULL WHERE idx = 1');
    v = await verify('att6');
    assert.deepEqual([v.firstError?.kind, v.firstError?.index], ['redaction-unlogged', 1]);
    assert.ok(note.length > 0);
  });

  it('appends reject with AUDIT_UNAVAILABLE while PostgreSQL is down, and work again once it is back', async () => {
    await installPgAuditSchema(admin, { schema: 'down', gatewayRole: 'warden_gw' });
    const log = await AuditLog.open(await PgAuditStore.open({ connection: gwConn(), schema: 'down' }), {
      origin: ORIGIN,
      signer,
    });
    try {
      await log.append(closeEntry('before'));
      await admin.end();
      await inst.stopServer();
      await assert.rejects(log.append(closeEntry('during')), { code: 'AUDIT_UNAVAILABLE' });
      await assert.rejects(log.checkpoint(), { code: 'AUDIT_UNAVAILABLE' });
      await inst.startServer();
      admin = new pg.Client(inst.superuserConfig('auditdb'));
      await admin.connect();
      const { index } = await log.append(closeEntry('after'));
      assert.equal(index, 1);
      await log.checkpoint();
      const v = await verify('down');
      assert.equal(v.ok, true, JSON.stringify(v.firstError));
      assert.equal(v.size, 2);
    } finally {
      await log.close();
    }
  });

  it('redaction by the table owner keeps verification green and is logged; the gateway role cannot redact', async () => {
    const { log } = await seeded('red', 3);
    const old = new Date(Date.now() - 400 * 86_400_000);
    const { index } = await log.append(closeEntry('secret-reason-text', old));
    await assert.rejects(log.redact(index, { reason: 'retention ended', actor: 'ops' }), /permission denied/);
    await log.close();
    // The gateway role logged the redaction but could not remove the payload: that is still consistent.
    const owner = await AuditLog.open(
      await PgAuditStore.open({ connection: inst.superuserConfig('auditdb'), schema: 'red' }),
      { origin: ORIGIN, signer },
    );
    await assert.rejects(owner.redact(0, { reason: 'too early', actor: 'ops' }), RedactionRefusedError);
    const r = await owner.redact(index, { reason: 'retention ended', actor: 'ops' });
    await owner.checkpoint();
    const row = await admin.query('SELECT payload FROM red.entries WHERE idx = $1', [index]);
    assert.equal(row.rows[0]?.payload, null);
    const v = await verify('red');
    assert.equal(v.ok, true, JSON.stringify(v.firstError));
    assert.equal(v.redacted, 1);
    const entry = JSON.parse(Buffer.from(await owner.store.read(r.redactionIndex)).toString()) as Record<
      string,
      unknown
    >;
    assert.deepEqual([entry.kind, entry.index, entry.actor], ['audit.redaction', index, 'ops']);
    await owner.close();
  });
});
