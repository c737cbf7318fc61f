// End to end: real psql and node-postgres through Warden to a private PostgreSQL with SCRAM auth.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { runPsql } from './harness/clients.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { connectUpstream } from '../src/upstream/pg-connect.js';
import { Framer } from '../src/wire/pg/framing.js';
import { MSG, cancelRequest, decodeFields, query } from '../src/wire/pg/messages.js';
import { BodyBuilder, frame } from '../src/wire/pg/reader.js';
import type { BindRequest, StatementRequest } from '../src/core/context.js';

const UP_PASSWORD = 'up-secret-Z9';
const ALICE = 'alice-pw-1';
const BOB = 'bob-pw-2';

/** Reads typed messages from a raw socket. */
function messageReader(socket: net.Socket): {
  next(): Promise<{ type: string; body: Buffer }>;
  all(until: string): Promise<{ type: string; body: Buffer }[]>;
} {
  const framer = new Framer(1 << 30, { startup: false });
  const queue: { type: string; body: Buffer }[] = [];
  let wake: (() => void) | null = null;
  socket.on('data', (c: Buffer) => {
    framer.push(c);
    for (let f = framer.next(); f; f = framer.next())
      queue.push({ type: String.fromCharCode(f.type), body: f.body });
    wake?.();
  });
  socket.on('close', () => wake?.());
  const next = async (): Promise<{ type: string; body: Buffer }> => {
    for (;;) {
      const m = queue.shift();
      if (m) return m;
      if (socket.destroyed) throw new Error('socket closed');
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
  };
  return {
    next,
    async all(until: string) {
      const out: { type: string; body: Buffer }[] = [];
      for (;;) {
        const m = await next();
        out.push(m);
        if (m.type === until) return out;
      }
    },
  };
}

const parse = (name: string, sql: string): Buffer =>
  frame(MSG.Parse, new BodyBuilder().cstring(name).cstring(sql).int16(0).build());
const bind = (stmt: string, params: string[] = []): Buffer => {
  const b = new BodyBuilder().cstring('').cstring(stmt).int16(0).int16(params.length);
  for (const p of params) {
    const v = Buffer.from(p);
    b.int32(v.length).bytes(v);
  }
  return frame(MSG.Bind, b.int16(0).build());
};
const execute = (): Buffer => frame(MSG.Execute, new BodyBuilder().cstring('').int32(0).build());
const syncMsg = (): Buffer => frame(MSG.Sync);

describe('gateway end to end (SCRAM upstream)', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  const seen: StatementRequest[] = [];
  const binds: BindRequest[] = [];

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: UP_PASSWORD }],
      users: [
        { name: 'alice', password: ALICE },
        { name: 'bob', password: BOB },
      ],
      hook: {
        check(req) {
          seen.push(req);
          if (/forbidden_table/i.test(req.sql)) {
            return {
              action: 'deny',
              sqlstate: '42501',
              message: 'denied by test-rule: forbidden_table is off limits',
            };
          }
          if (req.sql.includes('/* hold */')) {
            return new Promise((resolve) => {
              req.notice('waiting for approval');
              const t = setTimeout(() => resolve({ action: 'allow' }), 300);
              req.signal.addEventListener('abort', () => {
                clearTimeout(t);
                resolve({ action: 'deny', sqlstate: '57014', message: 'canceled' });
              });
            });
          }
          return { action: 'allow' };
        },
        bind(req) {
          binds.push(req);
          if (req.statementName === 'nobind') {
            return { action: 'deny', sqlstate: '42501', message: 'denied by test-rule: parameters refused' };
          }
          return undefined;
        },
      },
      limits: { startup_timeout_ms: 1000 },
    });
    const c = await gw.connect('alice', ALICE);
    await c.query('CREATE TABLE items (id int primary key, name text)');
    await c.query("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    await c.end();
    await upstream.query(
      'CREATE TABLE forbidden_table (secret text); GRANT ALL ON forbidden_table TO app',
      'appdb',
    );
  });

  after(async () => {
    await gw?.stop();
    await upstream?.stop();
  });

  it('runs simple queries through real psql, including multi-statement strings', async () => {
    const r = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      args: ['-At', '-c', 'SELECT count(*) FROM items; SELECT current_user'],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['3', 'app']);
  });

  it('runs extended-protocol queries with parameters and named prepared statements (node-postgres)', async () => {
    const c = await gw.connect('bob', BOB);
    try {
      const r = await c.query('SELECT name FROM items WHERE id = $1', [2]);
      assert.deepEqual(r.rows, [{ name: 'two' }]);
      for (const id of [1, 3]) {
        const n = await c.query({
          name: 'by_id',
          text: 'SELECT name FROM items WHERE id = $1',
          values: [id],
        });
        assert.equal(n.rows[0]?.name, id === 1 ? 'one' : 'three');
      }
      const nul = await c.query('SELECT $1::text IS NULL AS isnull, $2::text = $3 AS empty', [null, '', '']);
      assert.deepEqual(nul.rows, [{ isnull: true, empty: true }]);
    } finally {
      await c.end();
    }
  });

  it('keeps pipelined extended-protocol messages in order', async () => {
    const conn = await connectUpstream(
      { host: '127.0.0.1', port: gw.port, tls: 'disable' },
      { user: 'alice', password: ALICE },
      new Map([['database', 'main']]),
    );
    const rd = messageReader(conn.socket);
    conn.socket.write(
      Buffer.concat([
        parse('s1', 'SELECT name FROM items WHERE id = $1'),
        bind('s1', ['1']),
        execute(),
        bind('s1', ['2']),
        execute(),
        syncMsg(),
        parse('', 'SELECT 42'),
        bind(''),
        execute(),
        syncMsg(),
      ]),
    );
    const first = await rd.all('Z');
    const rows = first.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6));
    assert.deepEqual(rows, ['one', 'two']);
    assert.deepEqual(
      first.map((m) => m.type),
      ['1', '2', 'D', 'C', '2', 'D', 'C', 'Z'],
    );
    const second = await rd.all('Z');
    assert.deepEqual(
      second.map((m) => m.type),
      ['1', '2', 'D', 'C', 'Z'],
    );
    conn.socket.destroy();
  });

  it('denies at the hook with 42501, leaves the session usable, and runs nothing of a denied multi-statement string', async () => {
    const c = await gw.connect('alice', ALICE);
    try {
      await assert.rejects(
        c.query("INSERT INTO items VALUES (10, 'x'); SELECT * FROM forbidden_table"),
        (e: pg.DatabaseError) => {
          assert.equal(e.code, '42501');
          assert.match(e.message, /denied by test-rule/);
          return true;
        },
      );
      const r = await c.query('SELECT count(*)::int AS n FROM items WHERE id = 10');
      assert.equal(r.rows[0]?.n, 0, 'no part of the denied string ran');
      await assert.rejects(c.query('SELECT * FROM forbidden_table WHERE secret = $1', ['a']), {
        code: '42501',
      });
      const again = await c.query('SELECT 1 AS one');
      assert.equal(again.rows[0]?.one, 1);
    } finally {
      await c.end();
    }
  });

  it('denies a Parse in the middle of a pipeline: earlier work of the batch is rolled back, the next batch runs', async () => {
    const conn = await connectUpstream(
      { host: '127.0.0.1', port: gw.port, tls: 'disable' },
      { user: 'alice', password: ALICE },
      new Map([['database', 'main']]),
    );
    const rd = messageReader(conn.socket);
    conn.socket.write(
      Buffer.concat([
        parse('', "INSERT INTO items VALUES (20, 'pipelined')"),
        bind(''),
        execute(),
        parse('', 'SELECT * FROM forbidden_table'),
        bind(''),
        execute(),
        syncMsg(),
        parse('', 'SELECT count(*) FROM items WHERE id = 20'),
        bind(''),
        execute(),
        syncMsg(),
      ]),
    );
    const first = await rd.all('Z');
    assert.deepEqual(
      first.map((m) => m.type),
      ['1', '2', 'C', 'E', 'Z'],
    );
    const err = decodeFields(first[3]?.body as Buffer);
    assert.equal(err.get('C'), '42501');
    assert.match(err.get('M') ?? '', /denied by test-rule/);
    const second = await rd.all('Z');
    const d = second.find((m) => m.type === 'D');
    assert.equal(
      d?.body.toString('utf8', 6),
      '0',
      'the INSERT before the denied Parse was rolled back with the batch',
    );
    conn.socket.destroy();
  });

  it('shows every statement to the hook whole, with identity and protocol path', () => {
    const simple = seen.find((r) => r.sql === 'SELECT count(*) FROM items; SELECT current_user');
    assert.ok(simple, 'multi-statement string seen whole');
    assert.equal(simple.path, 'simple');
    assert.equal(simple.session.principal.name, 'alice');
    assert.equal(simple.session.target, 'main');
    const named = seen.find((r) => r.statementName === 's1');
    assert.equal(named?.path, 'parse');
    assert.equal(named?.sql, 'SELECT name FROM items WHERE id = $1');
  });

  it('shows each Bind to the hook with a hash of its parameters, and can refuse it', async () => {
    const c = await gw.connect('bob', BOB);
    try {
      const before = binds.length;
      await c.query('SELECT $1::text AS v', ['a']);
      await c.query('SELECT $1::text AS v', ['a']);
      await c.query('SELECT $1::text AS v', ['b']);
      await c.query('SELECT $1::text AS v', [null]);
      const hashes = binds.slice(before).map((b) => b.paramsHash);
      assert.equal(hashes.length, 4);
      assert.equal(hashes[0], hashes[1], 'the same parameters hash alike');
      assert.equal(new Set(hashes).size, 3, 'different values (and NULL) hash differently');
      assert.equal(binds[before]?.session.principal.name, 'bob');
      await assert.rejects(c.query({ name: 'nobind', text: 'SELECT 1 AS one' }), (e: pg.DatabaseError) => {
        assert.equal(e.code, '42501');
        assert.match(e.message, /parameters refused/);
        return true;
      });
      const r = await c.query('SELECT 2 AS two');
      assert.equal(r.rows[0]?.two, 2);
    } finally {
      await c.end();
    }
  });

  it('holds a statement and sends notices while it waits', async () => {
    const c = await gw.connect('alice', ALICE);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      const r = await c.query('SELECT 7 AS seven /* hold */');
      assert.equal(r.rows[0]?.seven, 7);
      assert.deepEqual(notices, ['waiting for approval']);
    } finally {
      await c.end();
    }
  });

  it('handles transactions: an error mid-transaction, then ROLLBACK', async () => {
    const c = await gw.connect('alice', ALICE);
    try {
      await c.query('BEGIN');
      await c.query("INSERT INTO items VALUES (30, 'tx')");
      await assert.rejects(c.query('SELECT 1/0'), { code: '22012' });
      await assert.rejects(c.query('SELECT 1'), { code: '25P02' });
      await c.query('ROLLBACK');
      const r = await c.query('SELECT count(*)::int AS n FROM items WHERE id = 30');
      assert.equal(r.rows[0]?.n, 0);
    } finally {
      await c.end();
    }
  });

  it('copies in and out with psql', async () => {
    const input = Array.from({ length: 500 }, (_, i) => `${1000 + i}\tcopy-${i}`).join('\n') + '\n\\.\n';
    const r = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'bob',
      password: BOB,
      database: 'main',
      args: ['-c', 'COPY items FROM STDIN'],
      input,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'bob',
      password: BOB,
      database: 'main',
      args: ['-c', 'COPY (SELECT id, name FROM items WHERE id >= 1000 ORDER BY id) TO STDOUT'],
    });
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.trim().split('\n');
    assert.equal(lines.length, 500);
    assert.equal(lines[499], '1499\tcopy-499');
  });

  it('delivers LISTEN/NOTIFY between sessions', async () => {
    const listener = await gw.connect('alice', ALICE);
    const notifier = await gw.connect('bob', BOB);
    try {
      const got = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
      await listener.query('LISTEN warden_test');
      await notifier.query("NOTIFY warden_test, 'hello'");
      const n = await got;
      assert.equal(n.channel, 'warden_test');
      assert.equal(n.payload, 'hello');
    } finally {
      await listener.end();
      await notifier.end();
    }
  });

  it('cancels a running pg_sleep with Warden’s own BackendKeyData', async () => {
    const c = await gw.connect('alice', ALICE);
    try {
      const internals = c as unknown as { processID: number; secretKey: number };
      const upstreamPids = await upstream.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE usename = $1',
        undefined,
        ['app'],
      );
      assert.ok(
        !upstreamPids.some((r) => r.pid === internals.processID),
        'the client never sees the upstream pid',
      );
      const started = Date.now();
      const sleeping = c.query('SELECT pg_sleep(30)');
      await new Promise((r) => setTimeout(r, 300));
      // A cancel with a wrong secret is dropped.
      const bogus = net.connect({ host: '127.0.0.1', port: gw.port });
      bogus.end(cancelRequest(internals.processID, internals.secretKey ^ 1));
      await new Promise((r) => setTimeout(r, 300));
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      s.end(cancelRequest(internals.processID, internals.secretKey));
      await assert.rejects(sleeping, { code: '57014' });
      assert.ok(Date.now() - started < 10_000);
      const r = await c.query('SELECT 1 AS ok');
      assert.equal(r.rows[0]?.ok, 1);
    } finally {
      await c.end();
    }
  });

  it('refuses a wrong password and an unknown user with the same 28P01 answer', async () => {
    const wrong = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'alice',
      password: 'nope',
      database: 'main',
      args: ['-c', 'SELECT 1'],
    });
    const unknown = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'mallory',
      password: 'nope',
      database: 'main',
      args: ['-c', 'SELECT 1'],
    });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /password authentication failed for user "alice"/);
    assert.match(unknown.stderr, /password authentication failed for user "mallory"/);
    const c = new pg.Client(gw.clientConfig('mallory', 'x'));
    await assert.rejects(c.connect(), { code: '28P01' });
  });

  it('refuses an unknown target after authentication with 3D000', async () => {
    const c = new pg.Client(gw.clientConfig('alice', ALICE, 'nosuchtarget'));
    await assert.rejects(c.connect(), { code: '3D000' });
  });

  it('streams a 100 MB result with bounded gateway memory', async () => {
    const base = process.memoryUsage();
    let peak = 0;
    const timer = setInterval(() => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
    }, 20);
    const r = await runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'alice',
      password: ALICE,
      database: 'main',
      args: ['-At', '-o', '/dev/null', '-c', "SELECT repeat('x', 1000) FROM generate_series(1, 100000)"],
      timeoutMs: 120_000,
    });
    clearInterval(timer);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      peak < 48 * 1024 * 1024,
      `gateway memory grew by ${Math.round(peak / 1048576)} MiB while streaming 100 MB`,
    );
  });

  it('ends the session with 08P01 on an oversized message', async () => {
    const conn = await connectUpstream(
      { host: '127.0.0.1', port: gw.port, tls: 'disable' },
      { user: 'alice', password: ALICE },
      new Map([['database', 'main']]),
    );
    const rd = messageReader(conn.socket);
    conn.socket.write(query(`SELECT '${'x'.repeat(1024 * 1024 + 10)}'`));
    const m = await rd.next();
    assert.equal(m.type, 'E');
    const f = decodeFields(m.body);
    assert.equal(f.get('C'), '08P01');
    assert.match(f.get('M') ?? '', /over the limit/);
  });

  it('ends the session with 08P01 on a malformed message, without disturbing another session', async () => {
    const other = await gw.connect('bob', BOB);
    const conn = await connectUpstream(
      { host: '127.0.0.1', port: gw.port, tls: 'disable' },
      { user: 'alice', password: ALICE },
      new Map([['database', 'main']]),
    );
    const rd = messageReader(conn.socket);
    // A Parse whose parameter count promises more than the message holds.
    conn.socket.write(
      frame(MSG.Parse, Buffer.concat([Buffer.from('s\0SELECT 1\0'), Buffer.from([0, 5, 0, 0])])),
    );
    const m = await rd.next();
    assert.equal(m.type, 'E');
    assert.equal(decodeFields(m.body).get('C'), '08P01');
    const r = await other.query('SELECT 2 AS two');
    assert.equal(r.rows[0]?.two, 2);
    await other.end();
  });

  it('declines SSLRequest without a certificate and GSSENCRequest, then continues in plaintext', async () => {
    for (const code of [80877103, 80877104]) {
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      const answer = await new Promise<Buffer>((resolve, reject) => {
        s.once('data', resolve);
        s.once('error', reject);
        s.write(frame(null, new BodyBuilder().int32(code).build()));
      });
      assert.equal(answer.toString(), 'N');
      s.destroy();
    }
  });

  it('relays NoticeResponse, ParameterStatus and ErrorResponse fields', async () => {
    const c = await gw.connect('alice', ALICE);
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      await c.query("DO $$ BEGIN RAISE NOTICE 'hello from upstream'; END $$");
      assert.deepEqual(notices, ['hello from upstream']);
      await assert.rejects(c.query("INSERT INTO items VALUES (1, 'dup')"), (e: pg.DatabaseError) => {
        assert.equal(e.code, '23505');
        assert.match(e.detail ?? '', /Key \(id\)=\(1\) already exists/);
        assert.equal(e.constraint, 'items_pkey');
        return true;
      });
      await c.query("SET application_name = 'renamed'");
      const r = await c.query('SHOW application_name');
      assert.equal(r.rows[0]?.application_name, 'renamed');
    } finally {
      await c.end();
    }
  });

  it('slows down repeated failed logins', async () => {
    const attempt = async (): Promise<number> => {
      const t = Date.now();
      const c = new pg.Client(gw.clientConfig('bob', 'wrong-password'));
      await assert.rejects(c.connect(), { code: '28P01' });
      return Date.now() - t;
    };
    const times: number[] = [];
    for (let i = 0; i < 6; i++) times.push(await attempt());
    assert.ok(
      (times[5] as number) >= 400,
      `sixth failure answered after ${times[5]} ms: ${times.join(', ')}`,
    );
    assert.ok((times[5] as number) > (times[0] as number) + 300);
  });

  it('disconnects a client that stays silent during startup', async () => {
    const s = net.connect({ host: '127.0.0.1', port: gw.port });
    s.resume(); // read (and discard) what the gateway sends, so its FIN is seen
    const started = Date.now();
    await new Promise<void>((resolve) => s.on('close', () => resolve()));
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 5000, `closed after ${took} ms`);
  });
});
