// End to end: the MySQL front end against the real MariaDB, with the real `mariadb` client, mysql2 and raw packets.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { formatNativeHash, nativeScramble } from '../src/identity/mysql-auth.js';
import { startGateway, type Gateway } from '../src/main.js';
import type { BindRequest, StatementHook, StatementOutcome, StatementRequest } from '../src/core/context.js';
import { CAP, COM } from '../src/wire/mysql/constants.js';
import { PacketFramer, packet, type Packet } from '../src/wire/mysql/framing.js';
import {
  decodeBinaryRow,
  decodeColumnDefinition,
  decodeErr,
  decodeHandshakeV10,
  decodeOk,
  decodePrepareOk,
  decodeTextRow,
  encodeHandshakeResponse41,
  encodeStmtExecute,
  terminatorStatus,
} from '../src/wire/mysql/codec.js';
import { STATUS, TYPE } from '../src/wire/mysql/constants.js';
import { connectMysqlUpstream } from '../src/upstream/mysql-connect.js';
import { makeTestPki, type TestPki } from './harness/certs.js';
import {
  createMariadbFixture,
  mariadbAvailable,
  runMariadb,
  type MariadbFixture,
} from './harness/mariadb.js';

const ALICE = 'alice-mysql-pw';
const BOB = 'bob-mysql-pw';
const NAT = 'nat-native-pw';
const CAROL = 'carol-mysql-pw';

interface Recorded {
  held: Set<string>;
  abortedBinds: number;
  checks: StatementRequest[];
  binds: BindRequest[];
  outcomes: StatementOutcome[];
}

/** A simple deny hook: refuses statements naming `secret_table` or the database `forbidden_db`, and a bound 'DENYPARAM'. */
function testHook(rec: Recorded): StatementHook {
  return {
    check(req) {
      rec.checks.push(req);
      if (req.path === 'mysql-prepare' && req.sql.includes('hold_me'))
        rec.held.add(`${req.session.sessionId}/${req.statementName ?? ''}`);
      if (/secret_table|forbidden_db/i.test(req.sql)) {
        return {
          action: 'deny',
          sqlstate: '42501',
          message: 'denied by test_deny_rule: secret things are not for you',
        };
      }
      if (/needs_approval/i.test(req.sql)) {
        return {
          action: 'deny',
          sqlstate: 'WA001',
          message: 'approval required: request r-1 (rule needs_two)',
        };
      }
      return { action: 'allow' };
    },
    bind(req) {
      rec.binds.push(req);
      if (!rec.held.has(`${req.session.sessionId}/${req.statementName}`)) return undefined;
      // Held (as an approval in wait mode would be) until the client goes away.
      return new Promise((resolve) => {
        req.signal?.addEventListener('abort', () => {
          rec.abortedBinds++;
          resolve({ action: 'deny', sqlstate: '57014', message: 'canceled' });
        });
      });
    },
    outcome(o) {
      rec.outcomes.push(o);
    },
  };
}

/** A minimal raw client: handshake and mysql_native_password login, then packets in and out. */
class RawClient {
  private readonly framer = new PacketFramer(64 * 1024 * 1024);
  private readonly queue: Packet[] = [];
  private waiter: ((p: Packet | null) => void) | null = null;
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (b: Buffer) => {
      this.framer.push(b);
      for (let p = this.framer.next(); p; p = this.framer.next()) this.queue.push(p);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  private wake(): void {
    if (!this.waiter) return;
    const p = this.queue.shift();
    if (p || this.closed) {
      const w = this.waiter;
      this.waiter = null;
      w(p ?? null);
    }
  }
  static async open(port: number): Promise<RawClient> {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new RawClient(s);
  }
  read(timeoutMs = 10_000): Promise<Packet | null> {
    const p = this.queue.shift();
    if (p) return Promise.resolve(p);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('raw client: no packet in time')), timeoutMs);
      this.waiter = (x) => {
        clearTimeout(t);
        resolve(x);
      };
    });
  }
  send(seq: number, payload: Buffer): void {
    this.socket.write(packet(seq, payload));
  }
  async login(user: string, password: string, database: string, extraCaps = 0): Promise<Packet> {
    const hello = await this.read();
    assert.ok(hello);
    const hs = decodeHandshakeV10(hello.payload);
    this.send(
      1,
      encodeHandshakeResponse41({
        capabilities:
          CAP.PROTOCOL_41 |
          CAP.SECURE_CONNECTION |
          CAP.PLUGIN_AUTH |
          CAP.CONNECT_WITH_DB |
          CAP.LONG_PASSWORD |
          CAP.LOCAL_FILES |
          extraCaps,
        maxPacketSize: 1 << 24,
        charset: 45,
        username: user,
        authResponse: nativeScramble(password, hs.authPluginData.subarray(0, 20)),
        database,
        authPluginName: 'mysql_native_password',
        attributes: new Map(),
      }),
    );
    const r = await this.read();
    assert.ok(r);
    return r;
  }
  close(): void {
    this.socket.destroy();
  }
}

/** Reads one result (OK, or a result set to its terminator) from a raw client; checks the sequence ids. */
async function readResult(
  c: RawClient,
  deprecateEof: boolean,
  binary: boolean,
  seq: { next: number },
): Promise<{ rows: (string | null)[][]; more: boolean; affected?: number }> {
  const next = async (): Promise<Buffer> => {
    const p = await c.read();
    assert.ok(p, 'connection closed mid-result');
    assert.equal(p.seq, seq.next, 'sequence id');
    seq.next = (p.lastSeq + 1) & 0xff;
    return p.payload;
  };
  const first = await next();
  if (first[0] === 0x00) {
    const ok = decodeOk(first);
    return { rows: [], more: (ok.status & STATUS.MORE_RESULTS_EXISTS) !== 0, affected: ok.affectedRows };
  }
  assert.notEqual(first[0], 0xff, 'unexpected ERR');
  const n = first[0] as number;
  const types: number[] = [];
  for (let i = 0; i < n; i++) types.push(decodeColumnDefinition(await next()).type);
  if (!deprecateEof) assert.equal((await next())[0], 0xfe, 'EOF after column definitions');
  const rows: (string | null)[][] = [];
  for (;;) {
    const p = await next();
    if (p[0] === 0xfe && (deprecateEof ? p.length < 0xffffff : p.length < 9)) {
      if (deprecateEof) assert.ok(p.length >= 7, 'an OK packet, not an EOF');
      return { rows, more: (terminatorStatus(p) & STATUS.MORE_RESULTS_EXISTS) !== 0 };
    }
    const vals = binary ? decodeBinaryRow(p, types) : decodeTextRow(p, n);
    rows.push(
      vals.map((v) =>
        v === null ? null : binary && v[0] === v.length - 1 ? v.subarray(1).toString() : v.toString(),
      ),
    );
  }
}

describe('MySQL front end against MariaDB', { timeout: 600_000 }, async () => {
  if (!(await mariadbAvailable())) {
    it('needs the shared MariaDB on 127.0.0.1:3306', { skip: 'MariaDB is not available' }, () => undefined);
    return;
  }
  let dir: string;
  let pki: TestPki;
  let db: MariadbFixture;
  let gw: Gateway;
  let port: number;
  let strict: Gateway;
  const rec: Recorded = { held: new Set(), abortedBinds: 0, checks: [], binds: [], outcomes: [] };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-mysql-'));
    pki = await makeTestPki(join(dir, 'pki'));
    db = await createMariadbFixture('wmy');
    const setup = await runMariadb({
      port: 3306,
      user: db.user,
      password: db.password,
      database: db.database,
      sql: [
        'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(8,2));',
        "INSERT INTO items VALUES (1,'apple',1.50),(2,'pear',2.25),(3,'plum',NULL);",
        'CREATE TABLE secret_table (id INT);',
        'CREATE TABLE loaded (line TEXT);',
      ].join(' '),
    });
    assert.equal(setup.code, 0, setup.stderr);
    writeFileSync(join(dir, 'up.pw'), db.password, { mode: 0o600 });
    const users = [
      { name: 'alice', kind: 'human', scram_verifier: createVerifier(ALICE), logins: { shop: 'app' } },
      { name: 'bob', kind: 'human', scram_verifier: createVerifier(BOB), logins: { shop: 'app' } },
      { name: 'carol', kind: 'service', scram_verifier: createVerifier(CAROL), logins: { shop: 'app' } },
      {
        name: 'nat',
        kind: 'service',
        scram_verifier: createVerifier(NAT),
        mysql_native_hash: formatNativeHash(NAT),
        logins: { shop: 'app' },
      },
    ];
    const target = {
      name: 'shop',
      engine: 'mysql',
      host: '127.0.0.1',
      port: 3306,
      database: db.database,
      logins: { app: { user: db.user, password_file: 'up.pw' } },
      policy: 'allow_all',
    };
    const cfg = buildGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        mysql_listen: { host: '127.0.0.1', port: 0 },
        tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
        limits: { startup_timeout_ms: 1500 },
        state_dir: join(dir, 'state'),
        users,
        targets: [target],
      },
      dir,
    );
    gw = await startGateway(cfg, { hookFor: () => testHook(rec), log: () => undefined });
    port = (gw.mysql as NonNullable<Gateway['mysql']>).port;
    const strictCfg = buildGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        mysql_listen: { host: '127.0.0.1', port: 0 },
        tls: { cert_file: pki.serverCert, key_file: pki.serverKey, required: true },
        state_dir: join(dir, 'state-strict'),
        users,
        targets: [target],
      },
      dir,
    );
    strict = await startGateway(strictCfg, { log: () => undefined });
  });

  after(async () => {
    await gw?.close(1000);
    await strict?.close(1000);
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (
    user: string,
    password: string,
    sql: string,
    extra: Partial<Parameters<typeof runMariadb>[0]> = {},
  ) => runMariadb({ port, user, password, database: 'shop', sql, ...extra });

  it('the mariadb client logs in with caching_sha2_password over TLS (verified) and runs queries', async () => {
    const r = await cli(
      'alice',
      ALICE,
      'SELECT id, name FROM items ORDER BY id; SELECT COUNT(*) AS n FROM items',
      {
        tls: { ca: pki.caCert },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'id\tname\n1\tapple\n2\tpear\n3\tplum\nn\n3\n');
  });

  it('after a full authentication, a plaintext login takes the fast path', async () => {
    // alice authenticated fully above: her SHA256(SHA256(pw)) is cached, so the scramble suffices without TLS.
    const fast = await cli('alice', ALICE, 'SELECT 7');
    assert.equal(fast.code, 0, fast.stderr);
    assert.equal(fast.stdout, '7\n7\n');
  });

  it('a cleartext password on a plaintext connection is refused, even the right one', async () => {
    const c = await RawClient.open(port);
    try {
      const hello = await c.read();
      assert.ok(hello);
      c.send(
        1,
        encodeHandshakeResponse41({
          capabilities: CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH | CAP.CONNECT_WITH_DB,
          maxPacketSize: 1 << 24,
          charset: 45,
          username: 'carol',
          authResponse: Buffer.alloc(32, 1), // a scramble that cannot match: full authentication follows
          database: 'shop',
          authPluginName: 'caching_sha2_password',
          attributes: new Map(),
        }),
      );
      const more = await c.read();
      assert.deepEqual(more?.payload, Buffer.from([0x01, 0x04]), 'perform_full_authentication');
      c.send(3, Buffer.from(`${CAROL}\0`));
      const refused = await c.read();
      assert.ok(refused);
      assert.equal(decodeErr(refused.payload).errno, 1045);
    } finally {
      c.close();
    }
  });

  it('mysql2 logs in over plaintext with the RSA exchange, then on the fast path', async () => {
    for (let i = 0; i < 2; i++) {
      const c = await mysql.createConnection({
        host: '127.0.0.1',
        port,
        user: 'bob',
        password: BOB,
        database: 'shop',
      });
      const [rows] = await c.query('SELECT name FROM items WHERE id = 2');
      assert.deepEqual(rows, [{ name: 'pear' }]);
      await c.end();
    }
  });

  it('mysql_native_password works for a user with a native hash (mariadb client, plaintext)', async () => {
    const r = await cli('nat', NAT, "SELECT CONCAT('n', 'at') AS who");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'who\nnat\n');
  });

  it('queries, prepared statements, multi-statements and relayed errors through mysql2', async () => {
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'alice',
      password: ALICE,
      database: 'shop',
      multipleStatements: true,
    });
    try {
      const [rows] = await c.query('SELECT id, name, price FROM items ORDER BY id');
      assert.deepEqual(rows, [
        { id: 1, name: 'apple', price: '1.50' },
        { id: 2, name: 'pear', price: '2.25' },
        { id: 3, name: 'plum', price: null },
      ]);
      const before = rec.checks.length;
      const [p1] = await c.execute('SELECT name, price FROM items WHERE id = ? OR name = ?', [1, 'plum']);
      assert.deepEqual(p1, [
        { name: 'apple', price: '1.50' },
        { name: 'plum', price: null },
      ]);
      const prep = rec.checks.slice(before).find((r) => r.path === 'mysql-prepare');
      assert.ok(prep, 'the prepare went through the hook');
      assert.match(prep.statementName ?? '', /^\d+$/);
      const binds = rec.binds.filter((b) => b.statementName === prep.statementName);
      assert.equal(binds.length, 1);
      assert.equal(binds[0]?.paramCount, 2);
      // Same statement, same values: the same hash; other values: another.
      await c.execute('SELECT name, price FROM items WHERE id = ? OR name = ?', [1, 'plum']);
      await c.execute('SELECT name, price FROM items WHERE id = ? OR name = ?', [2, 'plum']);
      const hashes = rec.binds.filter((b) => b.statementName === prep.statementName).map((b) => b.paramsHash);
      assert.equal(hashes.length, 3);
      assert.equal(hashes[0], hashes[1]);
      assert.notEqual(hashes[0], hashes[2]);
      const [ins] = await c.execute('INSERT INTO items VALUES (?, ?, ?)', [4, 'fig', 3.5]);
      assert.equal((ins as mysql.ResultSetHeader).affectedRows, 1);
      const [multi] = await c.query(
        'SELECT 1 AS a; UPDATE items SET price = 4 WHERE id = 4; SELECT name FROM items WHERE id = 4',
      );
      assert.equal((multi as unknown[]).length, 3);
      assert.deepEqual((multi as unknown[])[0], [{ a: 1 }]);
      assert.equal(((multi as unknown[])[1] as mysql.ResultSetHeader).affectedRows, 1);
      assert.deepEqual((multi as unknown[])[2], [{ name: 'fig' }]);
      const multiCheck = rec.checks.find((r) => r.sql.startsWith('SELECT 1 AS a; UPDATE'));
      assert.ok(multiCheck, 'the hook saw the whole multi-statement text once');
      assert.equal(multiCheck.path, 'mysql-query');
      await assert.rejects(c.query('SELECT * FROM no_such_table'), (e: mysql.QueryError) => {
        assert.equal(e.errno, 1146);
        assert.equal(e.sqlState, '42S02');
        return true;
      });
      await assert.rejects(
        c.query('SELEC 1'),
        (e: mysql.QueryError) => e.errno === 1064 && e.sqlState === '42000',
      );
      // An error in the middle of a multi-statement: the server's error, and the session goes on.
      await assert.rejects(
        c.query('SELECT 1; SELECT * FROM nope; SELECT 3'),
        (e: mysql.QueryError) => e.errno === 1146,
      );
      await c.ping();
      const [after] = await c.query('SELECT 5 AS five');
      assert.deepEqual(after, [{ five: 5 }]);
      const out = rec.outcomes.find((o) => o.request.sql === 'SELECT id, name, price FROM items ORDER BY id');
      assert.ok(out);
      assert.equal(out.rows, 3);
      const failed = rec.outcomes.find((o) => o.request.sql === 'SELECT * FROM no_such_table');
      assert.equal(failed?.sqlstate, '42S02');
    } finally {
      await c.end();
    }
  });

  it('a denial is an ERR with errno 1142 / SQLSTATE 42000 naming the rule, and nothing reaches the server', async () => {
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'alice',
      password: ALICE,
      database: 'shop',
      multipleStatements: true,
    });
    try {
      await assert.rejects(c.query('SELECT * FROM secret_table'), (e: mysql.QueryError) => {
        assert.equal(e.errno, 1142);
        assert.equal(e.sqlState, '42000');
        assert.match(e.message, /test_deny_rule/);
        return true;
      });
      // No part of a denied multi-statement runs.
      await assert.rejects(
        c.query('INSERT INTO items VALUES (50, "x", 1); SELECT * FROM secret_table'),
        (e: mysql.QueryError) => e.errno === 1142,
      );
      const [none] = await c.query('SELECT COUNT(*) AS n FROM items WHERE id = 50');
      assert.deepEqual(none, [{ n: 0 }]);
      // A denied prepare.
      await assert.rejects(
        c.execute('SELECT * FROM secret_table WHERE id = ?', [1]),
        (e: mysql.QueryError) => e.errno === 1142,
      );
      // Approval required: errno 1644 with SQLSTATE WA001.
      await assert.rejects(c.query('DELETE FROM items /* needs_approval */'), (e: mysql.QueryError) => {
        assert.equal(e.errno, 1644);
        assert.equal(e.sqlState, 'WA001');
        return true;
      });
      const [still] = await c.query('SELECT COUNT(*) AS n FROM items');
      assert.deepEqual(still, [{ n: 4 }]);
    } finally {
      await c.end();
    }
  });

  it('COM_INIT_DB goes through the hook as USE; a denied switch is refused', async () => {
    const ok = await cli('nat', NAT, 'USE shop_other; SELECT 1', { database: 'shop' });
    // The upstream decides whether the database exists (the login has rights on its own database only).
    assert.notEqual(ok.code, 0);
    assert.match(ok.stderr, /1044|1049/);
    const own = await cli('nat', NAT, `USE ${db.database}; SELECT DATABASE()`);
    assert.equal(own.code, 0, own.stderr);
    assert.match(own.stdout, new RegExp(db.database));
    assert.ok(rec.checks.some((r) => r.sql === `USE \`${db.database}\``));
    const denied = await cli('nat', NAT, 'USE forbidden_db; SELECT 1');
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /1142.*test_deny_rule/);
  });

  it('COM_FIELD_LIST is decided as a read of the table; unknown commands get 1047', async () => {
    const c = await RawClient.open(port);
    try {
      const ok = await c.login('nat', NAT, 'shop');
      assert.equal(ok.payload[0], 0x00);
      c.send(0, Buffer.concat([Buffer.from([COM.FIELD_LIST]), Buffer.from('items\0')]));
      const names: string[] = [];
      for (;;) {
        const p = await c.read();
        assert.ok(p);
        if (p.payload[0] === 0xfe && p.payload.length < 9) break;
        names.push(decodeColumnDefinition(p.payload).name);
      }
      assert.deepEqual(names, ['id', 'name', 'price']);
      assert.ok(rec.checks.some((r) => r.sql === 'SELECT * FROM `items`'));
      c.send(0, Buffer.concat([Buffer.from([COM.FIELD_LIST]), Buffer.from('secret_table\0')]));
      const denied = await c.read();
      assert.ok(denied);
      assert.equal(decodeErr(denied.payload).errno, 1142);
      c.send(0, Buffer.from([COM.STATISTICS]));
      const unknown = await c.read();
      assert.ok(unknown);
      assert.equal(decodeErr(unknown.payload).errno, 1047);
      // The session is still usable.
      c.send(0, Buffer.from([COM.PING]));
      const pong = await c.read();
      assert.equal(pong?.payload[0], 0x00);
    } finally {
      c.close();
    }
  });

  for (const deprecateEof of [false, true]) {
    it(`raw protocol ${deprecateEof ? 'with' : 'without'} CLIENT_DEPRECATE_EOF: results, multi-results, prepare/execute`, async () => {
      const c = await RawClient.open(port);
      try {
        const ok = await c.login(
          'nat',
          NAT,
          'shop',
          CAP.MULTI_STATEMENTS |
            CAP.MULTI_RESULTS |
            CAP.PS_MULTI_RESULTS |
            (deprecateEof ? CAP.DEPRECATE_EOF : 0),
        );
        assert.equal(ok.payload[0], 0x00);
        c.send(
          0,
          Buffer.from(
            '\x03SELECT id, name FROM items WHERE id <= 2 ORDER BY id; DO 1; SELECT 3 AS three',
            'latin1',
          ),
        );
        const seq = { next: 1 };
        const r1 = await readResult(c, deprecateEof, false, seq);
        assert.deepEqual(r1.rows, [
          ['1', 'apple'],
          ['2', 'pear'],
        ]);
        assert.ok(r1.more);
        const r2 = await readResult(c, deprecateEof, false, seq);
        assert.deepEqual(r2.rows, []);
        assert.ok(r2.more);
        const r3 = await readResult(c, deprecateEof, false, seq);
        assert.deepEqual(r3.rows, [['3']]);
        assert.ok(!r3.more);

        c.send(0, Buffer.from('\x16SELECT name FROM items WHERE id = ?', 'latin1'));
        const prepOk = await c.read();
        assert.ok(prepOk);
        const prep = decodePrepareOk(prepOk.payload);
        assert.equal(prep.numParams, 1);
        assert.equal(prep.numColumns, 1);
        const defs: number[] = [];
        for (let i = 0; i < (deprecateEof ? 2 : 4); i++) defs.push((await c.read())?.payload[0] as number);
        if (!deprecateEof) {
          assert.equal(defs[1], 0xfe);
          assert.equal(defs[3], 0xfe);
        }
        const prepareCheck = rec.checks.find(
          (r) =>
            r.sql === 'SELECT name FROM items WHERE id = ?' && r.statementName === String(prep.statementId),
        );
        assert.ok(prepareCheck, 'the client sees the statement id the hook was given');
        const id = Buffer.alloc(4);
        id.writeInt32LE(2);
        c.send(
          0,
          encodeStmtExecute({
            statementId: prep.statementId,
            flags: 0,
            iterations: 1,
            newParamsBound: true,
            params: [{ type: TYPE.LONG, unsigned: false, value: id }],
          }),
        );
        const ex = await readResult(c, deprecateEof, true, { next: 1 });
        assert.deepEqual(ex.rows, [['pear']]);
        // An unknown statement id never reaches the server.
        c.send(
          0,
          encodeStmtExecute({ statementId: 999, flags: 0, iterations: 1, newParamsBound: false, params: [] }),
        );
        const unknown = await c.read();
        assert.equal(decodeErr(unknown?.payload ?? Buffer.alloc(0)).errno, 1243);
        c.send(
          0,
          Buffer.concat([Buffer.from([0x19]), Buffer.from(new Uint32Array([prep.statementId]).buffer)]),
        );
        c.send(0, Buffer.from([0x0e]));
        const pong = await c.read();
        assert.equal(pong?.payload[0], 0x00);
      } finally {
        c.close();
      }
    });
  }

  it('an execute held by the hook is aborted when the client disconnects', { timeout: 30_000 }, async () => {
    const c = await RawClient.open(port);
    const ok = await c.login('nat', NAT, 'shop');
    assert.equal(ok.payload[0], 0x00);
    c.send(0, Buffer.from('\x16SELECT 1 + ? AS x /* hold_me */', 'latin1'));
    const prepOk = await c.read();
    assert.ok(prepOk);
    const prep = decodePrepareOk(prepOk.payload);
    while ((await c.read(300).catch(() => null)) !== null) {
      // the definitions that follow PREPARE_OK
    }
    const bindsBefore = rec.binds.length;
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    c.send(
      0,
      encodeStmtExecute({
        statementId: prep.statementId,
        flags: 0,
        iterations: 1,
        newParamsBound: true,
        params: [{ type: TYPE.LONG, unsigned: false, value: one }],
      }),
    );
    const deadline = Date.now() + 10_000;
    while (rec.binds.length === bindsBefore && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(rec.abortedBinds, 0, 'held, not answered');
    c.close();
    while (rec.abortedBinds === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(rec.abortedBinds, 1);
  });

  it('COM_CHANGE_USER is refused with a clear error', async () => {
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'alice',
      password: ALICE,
      database: 'shop',
    });
    try {
      await assert.rejects(c.changeUser({ user: 'bob', password: BOB }), (e: mysql.QueryError) => {
        assert.equal(e.errno, 1235);
        assert.match(e.message, /COM_CHANGE_USER is not supported/);
        return true;
      });
    } finally {
      c.destroy();
    }
  });

  it('LOAD DATA LOCAL is refused (the capability is never offered nor passed upstream)', async () => {
    const file = join(dir, 'data.txt');
    writeFileSync(file, 'line1\nline2\n');
    const r = await cli('nat', NAT, `LOAD DATA LOCAL INFILE '${file}' INTO TABLE loaded`, {
      extraArgs: ['--local-infile=1'],
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ERROR (1148|4166|2068)/);
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'alice',
      password: ALICE,
      database: 'shop',
    });
    try {
      await assert.rejects(
        c.query({
          sql: `LOAD DATA LOCAL INFILE '${file}' INTO TABLE loaded`,
          infileStreamFactory: () => {
            throw new Error('the gateway must never ask for a local file');
          },
        } as mysql.QueryOptions),
      );
      const [rows] = await c.query('SELECT COUNT(*) AS n FROM loaded');
      assert.deepEqual(rows, [{ n: 0 }]);
    } finally {
      await c.end();
    }
  });

  it('a large result (200k rows) streams through without the gateway holding it', async () => {
    const base = process.memoryUsage().rss;
    let peak = base;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    try {
      // About 200 MB of rows through the real client (in another process), counted there.
      const r = await runMariadb({
        port,
        user: 'nat',
        password: NAT,
        database: 'shop',
        sql: "SELECT seq, REPEAT('x', 1000) FROM seq_1_to_200000",
        extraArgs: ['--quick', '--skip-column-names'],
        timeoutMs: 180_000,
        pipeTo: "awk '{ n++; last = $0 } END { print n; print substr(last, 1, 12) }'",
      });
      assert.equal(r.code, 0, r.stderr.slice(0, 500));
      assert.equal(r.stderr, '');
      assert.equal(r.stdout, '200000\n200000\txxxxx\n');
    } finally {
      clearInterval(timer);
    }
    assert.ok(
      peak - base < 120 * 1024 * 1024,
      `gateway memory grew by ${Math.round((peak - base) / 1e6)} MB`,
    );
    // mysql2 streaming rows, binary protocol too.
    const c = await mysql.createConnection({
      host: '127.0.0.1',
      port,
      user: 'alice',
      password: ALICE,
      database: 'shop',
    });
    try {
      const [text] = await c.query('SELECT seq FROM seq_1_to_200000');
      assert.equal((text as unknown[]).length, 200_000);
      const [bin] = await c.execute('SELECT seq, ? AS tag FROM seq_1_to_50000', ['t']);
      assert.equal((bin as unknown[]).length, 50_000);
      assert.deepEqual((bin as { seq: number; tag: string }[])[49_999], { seq: 50_000, tag: 't' });
    } finally {
      await c.end();
    }
  });

  it('a client that stops reading pauses the upstream: the gateway does not buffer the result', async () => {
    const c = await RawClient.open(port);
    try {
      const ok = await c.login('nat', NAT, 'shop');
      assert.equal(ok.payload[0], 0x00);
      c.socket.pause();
      const base = process.memoryUsage().rss;
      c.send(0, Buffer.from(`\x03SELECT seq, REPEAT('y', 1000) FROM seq_1_to_300000`, 'latin1'));
      let peak = base;
      for (let i = 0; i < 40; i++) {
        await new Promise((r) => setTimeout(r, 50));
        peak = Math.max(peak, process.memoryUsage().rss);
      }
      // 300 MB of rows are waiting upstream; only socket buffers' worth may be held.
      assert.ok(peak - base < 64 * 1024 * 1024, `memory grew by ${Math.round((peak - base) / 1e6)} MB`);
    } finally {
      c.close();
    }
    const r = await cli('nat', NAT, 'SELECT 1');
    assert.equal(r.code, 0, r.stderr);
  });

  it('the upstream connector speaks caching_sha2_password (against Warden itself): full over TLS, fast, wrong', async () => {
    const plain = { host: '127.0.0.1', port, tls: 'disable' as const };
    const verified = {
      host: '127.0.0.1',
      port,
      tls: 'verify-full' as const,
      caFile: pki.caCert,
      serverName: 'localhost',
    };
    // carol never logged in: full authentication, the password inside verified TLS.
    const viaTls = await connectMysqlUpstream(
      verified,
      { user: 'carol', password: CAROL },
      { database: 'shop' },
    );
    assert.ok(viaTls.tls);
    viaTls.socket.destroy();
    // Now cached: the scramble alone suffices, even without TLS.
    const fast = await connectMysqlUpstream(plain, { user: 'carol', password: CAROL }, { database: 'shop' });
    assert.equal(fast.tls, false);
    fast.socket.destroy();
    // A wrong password misses the cache; full authentication follows and fails (or is refused without TLS).
    await assert.rejects(
      connectMysqlUpstream(plain, { user: 'carol', password: 'nope' }, { database: 'shop' }),
      /could not authenticate|only over TLS/,
    );
    await assert.rejects(
      connectMysqlUpstream(verified, { user: 'carol', password: 'nope' }, { database: 'shop' }),
      /could not authenticate/,
    );
  });

  it('the PostgreSQL front end does not serve MySQL targets', async () => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: gw.pg.port,
      user: 'alice',
      password: ALICE,
      database: 'shop',
    });
    c.on('error', () => undefined);
    await assert.rejects(c.connect(), (e: { code?: string }) => e.code === '3D000');
  });

  it('wrong password and unknown user look the same', async () => {
    const wrong = await cli('nat', 'not-it', 'SELECT 1');
    const unknown = await cli('nobody', 'not-it', 'SELECT 1');
    assert.notEqual(wrong.code, 0);
    assert.notEqual(unknown.code, 0);
    assert.equal(wrong.stderr.replace('nat', 'X'), unknown.stderr.replace('nobody', 'X'));
    assert.match(wrong.stderr, /ERROR 1045 \(28000\)/);
  });

  it('over max_connections a client gets ERR 1040 before the handshake', async () => {
    const small = await startGateway(
      buildGatewayConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          mysql_listen: { host: '127.0.0.1', port: 0 },
          limits: { max_connections: 1 },
          state_dir: join(dir, 'state-small'),
          users: [
            {
              name: 'nat',
              kind: 'service',
              scram_verifier: createVerifier(NAT),
              mysql_native_hash: formatNativeHash(NAT),
              logins: { shop: 'app' },
            },
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
      ),
      { log: () => undefined },
    );
    try {
      const sport = (small.mysql as NonNullable<Gateway['mysql']>).port;
      const first = await mysql.createConnection({
        host: '127.0.0.1',
        port: sport,
        user: 'nat',
        password: NAT,
        database: 'shop',
      });
      await assert.rejects(
        mysql.createConnection({
          host: '127.0.0.1',
          port: sport,
          user: 'nat',
          password: NAT,
          database: 'shop',
        }),
        (e: mysql.QueryError) => e.errno === 1040,
      );
      await first.end();
    } finally {
      await small.close(1000);
    }
  });

  it('TLS required: plaintext is refused before authentication', async () => {
    const sport = (strict.mysql as NonNullable<Gateway['mysql']>).port;
    await assert.rejects(
      mysql.createConnection({
        host: '127.0.0.1',
        port: sport,
        user: 'alice',
        password: ALICE,
        database: 'shop',
      }),
      (e: mysql.QueryError) => e.errno === 3159,
    );
    const ok = await runMariadb({
      port: sport,
      user: 'alice',
      password: ALICE,
      database: 'shop',
      sql: 'SELECT 1',
      tls: 'on',
    });
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('property: random commands after login get answers or a clean close, and the gateway keeps serving', async () => {
    // Every command byte except COM_QUERY (random SQL is not run against a real server), with random bodies.
    const commands = Array.from({ length: 0x22 }, (_, i) => i).filter((b) => b !== COM.QUERY);
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            cmd: fc.constantFrom(...commands),
            body: fc.uint8Array({ maxLength: 40 }),
            seq: fc.constantFrom(0, 0, 0, 1, 7),
          }),
          { minLength: 1, maxLength: 3 },
        ),
        async (packets) => {
          const c = await RawClient.open(port);
          try {
            const ok = await c.login('nat', NAT, 'shop');
            assert.equal(ok.payload[0], 0x00);
            for (const p of packets) {
              c.send(p.seq, Buffer.concat([Buffer.from([p.cmd]), Buffer.from(p.body)]));
              // Commands without a response (CLOSE, SEND_LONG_DATA) are followed by a ping to have one.
              c.send(0, Buffer.from([COM.PING]));
            }
            // Read until the connection is idle or closed; the final ping must be answered unless the session ended.
            let last: Packet | null = null;
            for (;;) {
              const r = await c.read(500).catch(() => null);
              if (r === null) break;
              last = r;
            }
            assert.ok(
              c.closed || last?.payload[0] === 0x00,
              'the final ping is answered or the session was closed',
            );
          } finally {
            c.close();
          }
        },
      ),
      { numRuns: 15 },
    );
    const r = await cli('nat', NAT, 'SELECT 1');
    assert.equal(r.code, 0, r.stderr);
    const deadline = Date.now() + 5000;
    const listener = gw.mysql as NonNullable<Gateway['mysql']>;
    while (listener.sessions.size > 0 && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 50));
    assert.equal(listener.sessions.size, 0, 'every session closed');
  });

  it('hostile bytes: oversized, garbage and silent clients get an ERR or a timeout, never a crash', async () => {
    const big = await RawClient.open(port);
    const login = await big.login('nat', NAT, 'shop');
    assert.equal(login.payload[0], 0x00);
    big.send(0, Buffer.concat([Buffer.from([COM.QUERY]), Buffer.alloc(2 * 1024 * 1024, 0x20)]));
    const tooBig = await big.read();
    assert.ok(tooBig);
    assert.equal(decodeErr(tooBig.payload).errno, 1153);
    assert.equal(await big.read(), null, 'the session is closed');
    big.close();

    const garbage = await RawClient.open(port);
    await garbage.read();
    garbage.send(1, Buffer.from('this is not a handshake response'));
    const bad = await garbage.read();
    assert.ok(bad);
    assert.equal(bad.payload[0], 0xff);
    garbage.close();

    const silent = await RawClient.open(port);
    await silent.read();
    const started = Date.now();
    const timeout = await silent.read(10_000);
    assert.ok(timeout);
    assert.equal(decodeErr(timeout.payload).errno, 1043);
    assert.ok(Date.now() - started >= 1000);
    silent.close();

    // The gateway still serves.
    const r = await cli('nat', NAT, 'SELECT 1');
    assert.equal(r.code, 0, r.stderr);
  });
});
