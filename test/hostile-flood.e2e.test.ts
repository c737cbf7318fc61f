// End to end against a real `warden serve` process: authentication floods, connection floods with bounded memory,
// wire fuzzing on many connections, slow and truncated clients; other sessions keep working throughout.

import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startServe, wardenClient, writeServeConfig, type Serve } from './helpers/warden-serve.js';
import { WireClient } from './corpus/wire-client.js';
import { BodyBuilder, frame } from '../src/wire/pg/reader.js';
import {
  MSG,
  encodeParse,
  encodeStartup,
  query,
  saslInitialResponse,
  sync,
} from '../src/wire/pg/messages.js';

const UP = 'flood-up-pw';
const USERS = [
  { name: 'alice', password: 'flood-alice-pw' },
  { name: 'bob', password: 'flood-bob-pw' },
  { name: 'carol', password: 'flood-carol-pw' },
];
const pw = (name: string): string => USERS.find((u) => u.name === name)?.password ?? '';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Busy {
  stop: () => Promise<{ errors: string[]; worstMs: number; count: number }>;
}
/** Loops still running (stopped after each test, also when it failed, so that the process can exit). */
const active = new Set<Busy>();

/** Runs `SELECT 1` in a loop until `stop()` says so; records errors and the worst latency. */
function keepBusy(c: pg.Client): Busy {
  let running = true;
  const errors: string[] = [];
  let worstMs = 0;
  let count = 0;
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      try {
        const r = await c.query('SELECT 1 AS one');
        if (r.rows[0]?.one !== 1) errors.push('wrong answer');
      } catch (e) {
        errors.push(String(e));
      }
      worstMs = Math.max(worstMs, Date.now() - t);
      count++;
      await sleep(20);
    }
  })();
  const busy: Busy = {
    stop: async () => {
      running = false;
      active.delete(busy);
      await loop;
      return { errors, worstMs, count };
    },
  };
  active.add(busy);
  return busy;
}

/** Connects a pg client; resolves with the SQLSTATE it was refused with ('' on success) and the time taken. */
async function attempt(
  port: number,
  user: string,
  password: string,
  localAddress?: string,
): Promise<{ code: string; ms: number }> {
  const t = Date.now();
  const c = wardenClient(port, user, password, localAddress);
  try {
    await c.connect();
    await c.end();
    return { code: '', ms: Date.now() - t };
  } catch (e) {
    await c.end().catch(() => undefined);
    return { code: (e as { code?: string }).code ?? `other: ${String(e)}`, ms: Date.now() - t };
  }
}

describe('hostile clients against a real warden serve process', () => {
  let upstream: PgInstance;
  let dir: string;

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP }],
      databases: [{ name: 'appdb', owner: 'app' }],
      settings: { max_connections: '400' },
    });
    dir = mkdtempSync(join(tmpdir(), 'warden-flood-'));
  });

  afterEach(async () => {
    for (const b of [...active]) await b.stop();
  });

  after(async () => {
    await upstream?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const serve = async (limits: Record<string, number>): Promise<Serve> => {
    const d = mkdtempSync(join(dir, 'gw-'));
    return startServe(
      writeServeConfig({
        dir: d,
        upstreamPort: upstream.port,
        database: 'appdb',
        upstreamUser: 'app',
        upstreamPassword: UP,
        users: USERS,
        limits,
      }),
    );
  };

  it('rate-limits an authentication flood per address and per user; other users and addresses still get in', async () => {
    const gw = await serve({ startup_timeout_ms: 5000 });
    try {
      // 20 parallel guessers from 127.0.0.2 against alice, for 6 s.
      const rss0 = gw.rss();
      const answers: { code: string; ms: number }[] = [];
      const until = Date.now() + 6000;
      const guessers = Array.from({ length: 20 }, async () => {
        while (Date.now() < until) answers.push(await attempt(gw.port, 'alice', 'wrong', '127.0.0.2'));
      });
      await sleep(1000);
      // Meanwhile: another user from another address gets in without delay.
      const bob = await attempt(gw.port, 'bob', pw('bob'), '127.0.0.1');
      assert.equal(bob.code, '');
      assert.ok(bob.ms < 2000, `bob waited ${bob.ms} ms`);
      await Promise.all(guessers);
      const evaluated = answers.filter((a) => a.code === '28P01').length;
      const refused = answers.filter((a) => a.code === '53300').length;
      const other = answers.filter((a) => a.code !== '28P01' && a.code !== '53300');
      assert.deepEqual(other, [], 'every guess is answered 28P01 or 53300');
      const grew = gw.rss() - rss0;
      assert.ok(grew < 150 * 1024 * 1024, `gateway RSS grew by ${(grew / 1048576).toFixed(1)} MiB`);
      // Unthrottled, 20 parallel guessers get hundreds of guesses evaluated in 6 s.
      assert.ok(evaluated <= 25, `${evaluated} guesses evaluated in 6 s (refused: ${refused})`);
      // The flooded user, with the right password, from another address: slowed (the user is under attack) but in.
      const alice = await attempt(gw.port, 'alice', pw('alice'), '127.0.0.3');
      assert.equal(alice.code, '');
      assert.ok(alice.ms < 15_000, `alice waited ${alice.ms} ms`);

      // Per user: one wrong guess each from many addresses; the later ones are slowed down.
      const spread: number[] = [];
      for (let i = 0; i < 6; i++) {
        const a = await attempt(gw.port, 'carol', 'wrong', `127.0.1.${i + 1}`);
        assert.equal(a.code, '28P01');
        spread.push(a.ms);
      }
      assert.ok((spread[5] ?? 0) >= 700, `6th guess from a fresh address took ${spread[5]} ms: ${spread}`);
      // carol from yet another address with the right password still gets in.
      assert.equal((await attempt(gw.port, 'carol', pw('carol'), '127.0.1.100')).code, '');
    } finally {
      await gw.kill();
    }
  });

  it('a connection flood beyond max_connections is refused cleanly, sessions keep working, memory stays bounded, it recovers', async () => {
    const gw = await serve({ max_connections: 100, startup_timeout_ms: 3000 });
    const held: net.Socket[] = [];
    try {
      const healthy = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const c = wardenClient(gw.port, 'bob', pw('bob'));
          await c.connect();
          return c;
        }),
      );
      const busy = healthy.map(keepBusy);
      await sleep(500);
      const rss0 = gw.rss();
      let peak = rss0;
      let closedByGateway = 0;
      // 3,000 connections in waves: each sends half a startup packet and holds on.
      for (let wave = 0; wave < 15; wave++) {
        for (let i = 0; i < 200; i++) {
          const s = net.connect({ host: '127.0.0.1', port: gw.port });
          s.on('error', () => undefined);
          s.on('close', () => closedByGateway++);
          s.resume(); // read what the gateway says, so that its close is seen
          s.write(Buffer.from([0, 0, 0, 40, 0, 3, 0, 0]));
          held.push(s);
        }
        await sleep(100);
        peak = Math.max(peak, gw.rss());
      }
      await sleep(500);
      peak = Math.max(peak, gw.rss());
      assert.ok(closedByGateway >= 2500, `${closedByGateway} connections refused`);
      const grew = peak - rss0;
      assert.ok(grew < 150 * 1024 * 1024, `gateway RSS grew by ${(grew / 1048576).toFixed(1)} MiB`);
      // While the slots are full, a new session is refused (not queued, not hung).
      const full = await attempt(gw.port, 'bob', pw('bob'));
      assert.equal(full.code, '53300', 'refused as PostgreSQL does: sorry, too many clients already');
      assert.ok(full.ms < 5000);
      for (const s of held) s.destroy();
      const stats = await Promise.all(busy.map((b) => b.stop()));
      for (const st of stats) {
        assert.deepEqual(st.errors, []);
        assert.ok(st.count > 10);
        assert.ok(st.worstMs < 2000, `worst latency ${st.worstMs} ms during the flood`);
      }
      await sleep(300);
      // Recovered: new sessions get in.
      assert.equal((await attempt(gw.port, 'bob', pw('bob'))).code, '');
      await Promise.all(healthy.map((c) => c.end()));
      console.log(
        `# connection flood: RSS ${(rss0 / 1048576).toFixed(1)} → peak ${(peak / 1048576).toFixed(1)} MiB`,
      );
    } finally {
      for (const s of held) s.destroy();
      await gw.kill();
    }
  });

  it('one address cannot take every slot with connections that never log in; other addresses still get in', async () => {
    const gw = await serve({ max_connections: 100, max_startups_per_address: 30, startup_timeout_ms: 3000 });
    const held: net.Socket[] = [];
    try {
      let refused = 0;
      let closed = 0;
      // 120 connections from 127.0.0.3 that send half a startup packet and wait (more than max_connections).
      await Promise.all(
        Array.from({ length: 120 }, async () => {
          const s = net.connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.3' });
          s.on('error', () => undefined);
          s.on('close', () => closed++);
          held.push(s);
          s.on('data', (d: Buffer) => {
            if (d[0] === 0x45 && d.includes(Buffer.from('C53300'))) refused++;
          });
          await new Promise<void>((r) => s.once('connect', () => r()));
          s.write(Buffer.from([0, 0, 0, 40, 0, 3, 0, 0]));
        }),
      );
      await sleep(300);
      // All but max_startups_per_address are refused: with 53300, or closed outright once the listener's own
      // socket cap (max_connections + 16, refused sockets included while they close) is reached.
      assert.equal(closed, 90, `${closed} closed, ${refused} of them with 53300`);
      assert.ok(refused >= 80, `${refused} refused with 53300`);
      // Another address gets in at once, several times over.
      for (const a of ['127.0.0.4', '127.0.0.5', '127.0.0.4']) {
        const r = await attempt(gw.port, 'bob', pw('bob'), a);
        assert.equal(r.code, '', `login from ${a}`);
      }
      // The flooding address is refused until its stalled connections are cut by the startup timer.
      assert.equal((await attempt(gw.port, 'bob', pw('bob'), '127.0.0.3')).code, '53300');
      await sleep(3500);
      assert.equal((await attempt(gw.port, 'bob', pw('bob'), '127.0.0.3')).code, '');
    } finally {
      for (const s of held) s.destroy();
      await gw.kill();
    }
  });

  it('fuzzed bytes on many connections (before and after authentication): the gateway survives and others keep working', async () => {
    const gw = await serve({ max_connections: 400, startup_timeout_ms: 1500, max_message_bytes: 65536 });
    try {
      const healthy = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const c = wardenClient(gw.port, 'bob', pw('bob'));
          await c.connect();
          return c;
        }),
      );
      const busy = healthy.map(keepBusy);
      const rss0 = gw.rss();
      const seeds = [
        encodeStartup(
          new Map([
            ['user', 'bob'],
            ['database', 'main'],
          ]),
        ),
        Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]),
        query('SELECT 1'),
        encodeParse({ name: 's', sql: 'SELECT $1', paramTypes: [23] }),
        frame(
          MSG.Bind,
          new BodyBuilder()
            .cstring('')
            .cstring('s')
            .int16(0)
            .int16(1)
            .int32(1)
            .bytes(Buffer.from('1'))
            .int16(0)
            .build(),
        ),
        sync(),
        saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc'),
      ];
      const mutate = fc
        .tuple(
          fc.constantFrom(...seeds),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
          fc.nat(),
          fc.uint8Array({ maxLength: 64 }),
        )
        .map(([s, flips, cut, tail]) => {
          const b = Buffer.from(s);
          for (const [at, v] of flips) b[at % b.length] = v;
          return Buffer.concat([b.subarray(0, 1 + (cut % b.length)), Buffer.from(tail)]);
        });
      const samples = fc.sample(fc.array(mutate, { minLength: 1, maxLength: 4 }), { numRuns: 300, seed: 8 });
      let i = 0;
      const one = async (authenticated: boolean, bytes: Buffer[]): Promise<void> => {
        let s: net.Socket;
        if (authenticated) {
          const w = await WireClient.connect(gw.port, 'bob', pw('bob'));
          s = w.socket;
        } else {
          s = net.connect({ host: '127.0.0.1', port: gw.port });
          s.on('error', () => undefined);
          await new Promise<void>((r) => s.once('connect', () => r()));
        }
        const closed = new Promise<void>((r) => s.once('close', () => r()));
        s.resume();
        for (const b of bytes) s.write(b);
        // The gateway ends the session (protocol error or startup timeout) or is still answering; cut after 3 s.
        await Promise.race([closed, sleep(3000)]);
        s.destroy();
      };
      const workers = Array.from({ length: 30 }, async () => {
        while (i < samples.length) {
          const k = i++;
          await one(k % 3 === 0, samples[k] as Buffer[]);
        }
      });
      await Promise.all(workers);
      const stats = await Promise.all(busy.map((b) => b.stop()));
      for (const st of stats) {
        assert.deepEqual(st.errors, []);
        assert.ok(st.worstMs < 3000, `worst latency ${st.worstMs} ms during fuzzing`);
      }
      assert.equal(gw.child.exitCode, null, 'the gateway is still running');
      assert.equal((await attempt(gw.port, 'bob', pw('bob'))).code, '');
      const grew = gw.rss() - rss0;
      assert.ok(grew < 150 * 1024 * 1024, `gateway RSS grew by ${(grew / 1048576).toFixed(1)} MiB`);
      await Promise.all(healthy.map((c) => c.end()));
    } finally {
      await gw.kill();
    }
  });

  it('a slow client (one byte at a time) in an established session stalls no one, and is answered', async () => {
    const gw = await serve({});
    try {
      const other = wardenClient(gw.port, 'bob', pw('bob'));
      await other.connect();
      const slow = await WireClient.connect(gw.port, 'alice', pw('alice'));
      const msg = query('SELECT 42 AS answer');
      const busy = keepBusy(other);
      for (let k = 0; k < msg.length; k++) {
        slow.socket.write(msg.subarray(k, k + 1));
        await sleep(100);
      }
      const got = await slow.until(1, 5000);
      assert.ok(got.some((m) => m.type === 'D'));
      const st = await busy.stop();
      assert.deepEqual(st.errors, []);
      assert.ok(st.count > 20 && st.worstMs < 1000, `${st.count} queries, worst ${st.worstMs} ms`);
      slow.close();
      await other.end();
    } finally {
      await gw.kill();
    }
  });

  it('truncated messages: a body cut short then the connection dropped frees the session; a half message holds no other session', async () => {
    const gw = await serve({ max_connections: 20 });
    try {
      // 40 sessions (twice max_connections) each send a Query whose body never arrives, then hang up.
      for (let k = 0; k < 40; k++) {
        const w = await WireClient.connect(gw.port, 'bob', pw('bob'));
        const hdr = Buffer.alloc(5);
        hdr[0] = MSG.Query;
        hdr.writeInt32BE(1000, 1);
        w.socket.write(Buffer.concat([hdr, Buffer.from('SELECT ')]));
        await sleep(10);
        w.socket.destroy();
      }
      // If the cut sessions were leaked, the slots would be gone.
      await sleep(200);
      const ok = await Promise.all(Array.from({ length: 10 }, () => attempt(gw.port, 'bob', pw('bob'))));
      assert.deepEqual(
        ok.map((a) => a.code),
        Array(10).fill(''),
      );
      // A half message followed by silence: that session waits, the others are unaffected.
      const half = await WireClient.connect(gw.port, 'bob', pw('bob'));
      half.socket.write(query('SELECT 1').subarray(0, 7));
      const other = wardenClient(gw.port, 'alice', pw('alice'));
      await other.connect();
      assert.equal((await other.query('SELECT 2 AS two')).rows[0]?.two, 2);
      // Sending the rest completes it.
      half.socket.write(query('SELECT 1').subarray(7));
      const got = await half.until(1, 5000);
      assert.ok(got.some((m) => m.type === 'C'));
      half.close();
      await other.end();
    } finally {
      await gw.kill();
    }
  });
});
