// End to end: MySQL sessions get what PostgreSQL sessions get from a signed bundle's settings (statement timeout, idle timeout, require_tls, allowed_source_cidrs) and from the listener (per-address startup cap, graceful drain), against the shared MariaDB.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { startGateway, type Gateway } from '../src/main.js';
import {
  createRoot,
  parsePrivateKey,
  proposeBundle,
  readBundle,
  serializeEnvelope,
  signEnvelope,
} from '../src/bundle/index.js';
import type { Envelope } from '../src/bundle/index.js';
import { PacketFramer, type Packet } from '../src/wire/mysql/framing.js';
import { decodeErr } from '../src/wire/mysql/codec.js';
import { makeTestPki, type TestPki } from './harness/certs.js';
import {
  createMariadbFixture,
  mariadbAvailable,
  mariadbRoot,
  runMariadb,
  type MariadbFixture,
} from './harness/mariadb.js';

const REPO = join(import.meta.dirname, '..');
const ALICE = 'alice-parity-pw';
const DAY = 86_400_000;
const ORIGIN = 'warden.test/mysql-parity';
const key = (n: string) =>
  parsePrivateKey(readFileSync(join(REPO, `test/fixtures/bundle/keys/${n}.key`), 'utf8'));
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A policy for one MariaDB database: alice (analysts) reads and writes its tables. */
function policyFor(database: string): Record<string, string> {
  return {
    'identities.yaml': [
      'version: 1',
      'users:',
      '  - name: alice',
      '    kind: human',
      '    groups: [analysts]',
      'groups:',
      '  - name: analysts',
      '    roles: [analyst]',
      '',
    ].join('\n'),
    'roles.yaml': [
      'version: 1',
      'roles:',
      '  - name: analyst',
      '    grants:',
      `      - schema: ${database}`,
      '        table: "*"',
      '        operations: [select, insert, update, delete]',
      '',
    ].join('\n'),
  };
}

function makeRoot(): Envelope {
  return [ana, ben, cho].reduce(
    signEnvelope,
    createRoot({
      origin: ORIGIN,
      version: 1,
      threshold: 2,
      approvers: [ana.encoded, ben.encoded, cho.encoded],
      authors: [dev.encoded],
    }),
  );
}

function bundle(
  database: string,
  version: number,
  previous: string | null,
  settings: Record<string, unknown>,
): Envelope {
  return [ana, ben].reduce(
    signEnvelope,
    proposeBundle({
      origin: ORIGIN,
      version,
      previous,
      author: dev,
      policy: policyFor(database),
      settings,
      created: new Date(Date.now() - 60_000),
      expires: new Date(Date.now() + 30 * DAY),
    }),
  );
}

/** The MySQL error of a failing promise (rejects if it succeeds). */
async function failure(p: Promise<unknown>): Promise<{ errno: number; sqlState: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const x = e as { errno?: number; sqlState?: string; message?: string };
    return { errno: x.errno ?? 0, sqlState: x.sqlState ?? '', message: x.message ?? '' };
  }
  throw new Error('expected the statement to fail');
}

/**
 * Records the asynchronous error a connection gets when the gateway ends it: mysql2 emits it on the connection,
 * with the errno as `code` (4031 for an idle timeout, 1053 for a shutdown).
 */
function watch(c: mysql.Connection): {
  errors: { code?: string | number; message: string }[];
  ended: () => boolean;
} {
  const errors: { code?: string | number; message: string }[] = [];
  let ended = false;
  const raw = (
    c as unknown as {
      connection: {
        on(ev: string, f: (e: Error & { code?: string | number }) => void): void;
        stream: net.Socket;
      };
    }
  ).connection;
  raw.on('error', (e) =>
    errors.push({ message: e.message, ...(e.code !== undefined ? { code: e.code } : {}) }),
  );
  raw.stream.on('close', () => (ended = true));
  return { errors, ended: () => ended };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A raw socket that reads the first packet the gateway sends (handshake or ERR) and never answers it. */
async function rawFirstPacket(
  port: number,
  localAddress?: string,
): Promise<{ socket: net.Socket; first: Packet | null }> {
  const socket = net.connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
  socket.on('error', () => undefined);
  const framer = new PacketFramer(1 << 20);
  const first = await new Promise<Packet | null>((resolve) => {
    const t = setTimeout(() => resolve(null), 5000);
    socket.on('data', (b: Buffer) => {
      framer.push(b);
      const p = framer.next();
      if (p) {
        clearTimeout(t);
        resolve(p);
      }
    });
    socket.on('close', () => {
      clearTimeout(t);
      resolve(null);
    });
  });
  return { socket, first };
}

describe(
  'MySQL session parity with PostgreSQL (bundle settings, listener limits)',
  { timeout: 180_000 },
  () => {
    let available = false;
    let dir: string;
    let pki: TestPki;
    let db: MariadbFixture;
    let gw: Gateway;
    let port = 0;
    let current = { version: 1, hash: '' };
    const base = { statement_timeout_ms: 1000, idle_session_timeout_ms: 1500 };

    const activate = async (settings: Record<string, unknown>): Promise<void> => {
      const env = bundle(db.database, current.version + 1, current.hash, settings);
      const p = join(dir, `v${current.version + 1}.json`);
      writeFileSync(p, serializeEnvelope(env));
      const r = await gw.activateBundle(p);
      assert.equal(r.status, 'activated');
      current = { version: r.version, hash: r.hash };
    };
    const connect = (extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> =>
      mysql.createConnection({
        host: '127.0.0.1',
        port,
        user: 'alice',
        password: ALICE,
        database: 'shop',
        ...extra,
      });

    before(async () => {
      available = await mariadbAvailable();
      if (!available) return;
      dir = mkdtempSync(join(tmpdir(), 'warden-mysql-parity-'));
      pki = await makeTestPki(join(dir, 'pki'));
      db = await createMariadbFixture('wpar');
      // `big` × itself four times is 10^8 rows: far more than a second of work for the server.
      const setup = await runMariadb({
        port: 3306,
        user: db.user,
        password: db.password,
        database: db.database,
        sql: [
          'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50));',
          "INSERT INTO items VALUES (1,'apple'),(2,'pear');",
          'CREATE TABLE big (n INT);',
          'INSERT INTO big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) SELECT n FROM s;',
        ].join(' '),
      });
      assert.equal(setup.code, 0, setup.stderr);
      writeFileSync(join(dir, 'up.pw'), db.password, { mode: 0o600 });
      const first = bundle(db.database, 1, null, base);
      current = { version: 1, hash: readBundle(first).hash };
      writeFileSync(join(dir, 'root.json'), serializeEnvelope(makeRoot()));
      writeFileSync(join(dir, 'bundle.json'), serializeEnvelope(first));
      const cfg = buildGatewayConfig(
        {
          listen: { host: '127.0.0.1', port: 0 },
          mysql_listen: { host: '127.0.0.1', port: 0 },
          tls: { cert_file: pki.serverCert, key_file: pki.serverKey },
          limits: { startup_timeout_ms: 4000, max_startups_per_address: 2 },
          state_dir: join(dir, 'state'),
          users: [
            { name: 'alice', kind: 'human', scram_verifier: createVerifier(ALICE), logins: { shop: 'app' } },
          ],
          targets: [
            {
              name: 'shop',
              engine: 'mysql',
              host: '127.0.0.1',
              port: 3306,
              database: db.database,
              logins: { app: { user: db.user, password_file: 'up.pw' } },
              policy: { bundle: { root: 'root.json', path: 'bundle.json' } },
            },
          ],
        },
        dir,
      );
      gw = await startGateway(cfg, { log: () => undefined });
      port = (gw.mysql as NonNullable<Gateway['mysql']>).port;
    });

    after(async () => {
      await gw?.close(500);
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('statement_timeout_ms: max_statement_time is set upstream at session start and stops a long statement', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const c = await connect();
      try {
        const [rows] = await c.query('SELECT @@max_statement_time AS t');
        assert.equal(Number((rows as { t: unknown }[])[0]?.t), 1);
        const started = Date.now();
        const slow = await failure(c.query('SELECT COUNT(*) FROM big a, big b, big c, big d'));
        assert.equal(slow.errno, 1969, slow.message); // ER_STATEMENT_TIMEOUT (MariaDB)
        assert.match(slow.message, /max_statement_time/);
        assert.ok(Date.now() - started < 20_000);
        // The session goes on.
        const [again] = await c.query('SELECT name FROM items ORDER BY id');
        assert.deepEqual(
          (again as { name: string }[]).map((r) => r.name),
          ['apple', 'pear'],
        );
      } finally {
        await c.end();
      }
    });

    it('statement_timeout_ms: a client cannot change max_statement_time or max_execution_time while it is pinned', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const c = await connect();
      try {
        for (const sql of [
          'SET max_statement_time = 0',
          'SET SESSION max_statement_time = 100',
          'SET @@session.max_statement_time = 0',
          'SET autocommit = 1, max_statement_time = 0',
          'SET max_execution_time = 0',
        ]) {
          const e = await failure(c.query(sql));
          assert.match(e.message, /bundle-settings:statement_timeout_ms/, sql);
          assert.match(e.message, /pinned to 1000 ms/, sql);
        }
        const e = await failure(c.query('SET STATEMENT max_statement_time = 0 FOR SELECT 1'));
        assert.match(e.message, /setting:statement/);
        // Other harmless settings still pass, and the pinned value is intact.
        await c.query('SET autocommit = 1');
        const [rows] = await c.query('SELECT @@max_statement_time AS t');
        assert.equal(Number((rows as { t: unknown }[])[0]?.t), 1);
      } finally {
        await c.end();
      }
    });

    it('idle_session_timeout_ms: an idle session is closed with ERR 4031; a busy one stays', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const idle = await connect();
      const busy = await connect();
      const wi = watch(idle);
      const wb = watch(busy);
      try {
        await idle.query('SELECT 1');
        const started = Date.now();
        // busy talks every 400 ms for longer than the timeout.
        while (Date.now() - started < 3000) {
          await busy.query('SELECT 1');
          await sleep(400);
        }
        await until(() => wi.ended(), 5000, 'the idle session to be closed');
        assert.equal(wi.errors[0]?.code, 4031, JSON.stringify(wi.errors));
        assert.match(wi.errors[0]?.message ?? '', /inactivity.*idle_session_timeout_ms 1500/);
        assert.equal(wb.ended(), false);
        assert.deepEqual(wb.errors, []);
      } finally {
        idle.destroy();
        await busy.end().catch(() => undefined);
      }
    });

    it('idle_session_timeout_ms: an open transaction left idle is closed too', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const c = await connect();
      const w = watch(c);
      try {
        await c.query('BEGIN');
        await c.query("INSERT INTO items VALUES (9, 'ghost')");
        await until(() => w.ended(), 6000, 'the idle transaction to be closed');
        assert.equal(w.errors[0]?.code, 4031);
      } finally {
        c.destroy();
      }
      // The server rolled the transaction back when the upstream connection closed.
      const d = await connect();
      try {
        let n = 1;
        for (let i = 0; i < 40 && n !== 0; i++) {
          const [rows] = await d.query('SELECT COUNT(*) AS n FROM items WHERE id = 9');
          n = Number((rows as { n: unknown }[])[0]?.n);
          if (n !== 0) await sleep(100);
        }
        assert.equal(n, 0);
      } finally {
        await d.end();
      }
    });

    it('max_startups_per_address: one address cannot hold more logins under way; another address can', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const a = await rawFirstPacket(port);
      const b = await rawFirstPacket(port);
      try {
        assert.equal(a.first?.payload[0], 0x0a, 'handshake');
        assert.equal(b.first?.payload[0], 0x0a, 'handshake');
        const c = await rawFirstPacket(port);
        assert.equal(c.first?.payload[0], 0xff, 'ERR instead of the handshake');
        assert.ok(c.first !== null);
        const e = decodeErr(c.first.payload);
        assert.equal(e.errno, 1040);
        assert.match(e.message, /still logging in/);
        c.socket.destroy();
        // Another address (loopback alias) is not affected.
        const other = await rawFirstPacket(port, '127.0.0.2');
        assert.equal(other.first?.payload[0], 0x0a);
        other.socket.destroy();
        // Once a pending login goes away, the address may start another (alice logs in).
        a.socket.destroy();
        await sleep(200);
        const d = await connect();
        await d.query('SELECT 1');
        await d.end();
      } finally {
        a.socket.destroy();
        b.socket.destroy();
      }
    });

    it('require_tls: a plaintext session is refused after authentication; TLS is admitted', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const before = await connect({ ssl: { ca: readFileSync(pki.caCert, 'utf8') } });
      await activate({ ...base, require_tls: true });
      try {
        const e = await failure(connect());
        assert.equal(e.errno, 3159, e.message); // ER_SECURE_TRANSPORT_REQUIRED
        assert.match(e.message, /require_tls of bundle version 2/);
        const ok = await connect({ ssl: { ca: readFileSync(pki.caCert, 'utf8') } });
        const [rows] = await ok.query('SELECT COUNT(*) AS n FROM items');
        assert.equal(Number((rows as { n: unknown }[])[0]?.n), 2);
        await ok.end();
        await before.query('SELECT 1');
      } finally {
        await before.end();
      }
    });

    it('allowed_source_cidrs: a session from outside is refused at connect, and an open one statement by statement', async (t) => {
      if (!available) return t.skip('MariaDB is not available');
      const open = await connect({ ssl: { ca: readFileSync(pki.caCert, 'utf8') } });
      await activate({ ...base, allowed_source_cidrs: ['10.0.0.0/8'] });
      try {
        const e = await failure(connect());
        assert.equal(e.errno, 1045, e.message);
        assert.match(e.message, /connections from 127\.0\.0\.1 are not allowed.*allowed_source_cidrs/);
        const s = await failure(open.query('SELECT 1'));
        assert.match(s.message, /denied by bundle-settings:allowed_source_cidrs/);
        await activate({ ...base, allowed_source_cidrs: ['127.0.0.0/8'] });
        const ok = await connect();
        await ok.query('SELECT 1');
        await ok.end();
      } finally {
        await open.end();
      }
    });
  },
);

describe('MySQL graceful drain', { timeout: 120_000 }, () => {
  let available = false;
  let dir: string;
  let db: MariadbFixture;
  let gw: Gateway;
  let port = 0;
  let closed = false;

  before(async () => {
    available = await mariadbAvailable();
    if (!available) return;
    dir = mkdtempSync(join(tmpdir(), 'warden-mysql-drain-'));
    db = await createMariadbFixture('wdrn');
    const setup = await runMariadb({
      port: 3306,
      user: db.user,
      password: db.password,
      database: db.database,
      sql: [
        'CREATE TABLE t (id INT PRIMARY KEY);',
        'CREATE TABLE big (n INT);',
        'INSERT INTO big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) SELECT n FROM s;',
      ].join(' '),
    });
    assert.equal(setup.code, 0, setup.stderr);
    writeFileSync(join(dir, 'up.pw'), db.password, { mode: 0o600 });
    const cfg = buildGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        mysql_listen: { host: '127.0.0.1', port: 0 },
        state_dir: join(dir, 'state'),
        users: [
          { name: 'alice', kind: 'human', scram_verifier: createVerifier(ALICE), logins: { shop: 'app' } },
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
    // The drain is about the session, not the policy: every statement is allowed.
    gw = await startGateway(cfg, {
      log: () => undefined,
      hookFor: () => ({ check: () => ({ action: 'allow' }) }),
    });
    port = (gw.mysql as NonNullable<Gateway['mysql']>).port;
  });

  after(async () => {
    if (!closed) await gw?.close(0);
    // Whatever happened, the heavy statement must not keep a core busy.
    if (db) await mariadbRoot(`KILL QUERY USER '${db.user}'`).catch(() => undefined);
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('idle sessions end at once, a running statement and an open transaction finish, the rest is cut at the deadline', async (t) => {
    if (!available) return t.skip('MariaDB is not available');
    const connect = (): Promise<mysql.Connection> =>
      mysql.createConnection({ host: '127.0.0.1', port, user: 'alice', password: ALICE, database: 'shop' });
    const idle = await connect();
    const running = await connect();
    const inTx = await connect();
    const stuck = await connect();
    const heavy = await connect();
    const [wi, wr, wt, ws] = [idle, running, inTx, stuck].map(watch) as [
      ReturnType<typeof watch>,
      ReturnType<typeof watch>,
      ReturnType<typeof watch>,
      ReturnType<typeof watch>,
    ];
    await inTx.query('BEGIN');
    await inTx.query('INSERT INTO t VALUES (1)');
    await stuck.query('BEGIN');
    // 10^10 joined rows: still running at the drain deadline (minutes of work).
    const heavyQuery = heavy.query('SELECT COUNT(*) FROM big a, big b, big c, big d, big e').then(
      () => 'finished',
      (e: { errno?: number }) => String(e.errno),
    );
    const slow = running.query('SELECT SLEEP(1.5) AS s');
    await sleep(200);
    const started = Date.now();
    closed = true;
    const closing = gw.close(6000);
    // Idle: ERR 1053 right away.
    await until(() => wi.ended(), 3000, 'the idle session to end');
    assert.equal(wi.errors[0]?.code, 1053, JSON.stringify(wi.errors));
    assert.match(wi.errors[0]?.message ?? '', /shutting down/);
    assert.ok(Date.now() - started < 1500, 'idle session ended at once');
    // New connections are no longer accepted.
    await assert.rejects(connect());
    // The running statement finishes with its result, then the session ends.
    const [rows] = await slow;
    assert.equal(Number((rows as { s: unknown }[])[0]?.s), 0);
    await until(() => wr.ended(), 3000, 'the running session to end after its statement');
    assert.equal(wr.errors[0]?.code, 1053);
    // The transaction may go on and commit; the session ends when it is over.
    assert.equal(wt.ended(), false);
    await inTx.query('INSERT INTO t VALUES (2)');
    await inTx.query('COMMIT');
    await until(() => wt.ended(), 3000, 'the session to end after its transaction');
    // The stuck transaction is cut at the deadline.
    assert.equal(ws.ended(), false);
    await closing;
    const took = Date.now() - started;
    assert.ok(took >= 5500 && took < 15_000, `close took ${took} ms`);
    await until(() => ws.ended(), 3000, 'the stuck session to be cut');
    assert.equal(ws.errors[0]?.code, 1053);
    // The statement left at the deadline got the ERR as its answer, and was stopped upstream (KILL QUERY).
    assert.equal(await heavyQuery, '1053');
    let left = 1;
    for (let i = 0; i < 50 && left > 0; i++) {
      left = Number(
        (
          await mariadbRoot(
            `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '${db.user}' AND INFO LIKE 'SELECT COUNT(*) FROM big%'`,
          )
        ).trim(),
      );
      if (left > 0) await sleep(100);
    }
    assert.equal(left, 0, 'the heavy statement still runs upstream');
    // What committed during the drain is there.
    const check = await runMariadb({
      port: 3306,
      user: db.user,
      password: db.password,
      database: db.database,
      sql: 'SELECT id FROM t ORDER BY id',
    });
    assert.equal(check.stdout, 'id\n1\n2\n');
    for (const c of [idle, running, inTx, stuck, heavy]) c.destroy();
  });
});
