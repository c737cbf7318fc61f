// End to end: the MySQL front end's response scanner with the server's bytes cut into tiny TCP pieces (a re-chunking proxy before the real MariaDB).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { buildGatewayConfig } from '../src/config/gateway-config.js';
import { createVerifier } from '../src/identity/scram.js';
import { startGateway, type Gateway } from '../src/main.js';
import {
  MARIADB_PORT,
  createMariadbFixture,
  mariadbAvailable,
  type MariadbFixture,
} from './harness/mariadb.js';

const PW = 'frag-mysql-pw';

/** A TCP proxy to MariaDB that forwards the server's bytes in pieces of 1 to 7 bytes, one piece per turn. */
async function startChoppingProxy(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect({ host: '127.0.0.1', port: MARIADB_PORT });
    sockets.add(client).add(up);
    client.setNoDelay(true);
    let queue = Promise.resolve();
    up.on('data', (chunk: Buffer) => {
      up.pause();
      queue = queue.then(async () => {
        let pos = 0;
        let n = 0;
        while (pos < chunk.length) {
          const k = 1 + ((pos * 7 + n++) % 7);
          client.write(chunk.subarray(pos, pos + k));
          pos += k;
          // Large chunks go in pieces of the same small sizes, but yield less often.
          if (chunk.length < 4096 || n % 64 === 0) await new Promise((r) => setImmediate(r));
        }
        up.resume();
      });
    });
    client.on('data', (b: Buffer) => up.write(b));
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end);
    up.on('close', end);
    client.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('MySQL front end with a fragmented upstream stream', { timeout: 120_000 }, async () => {
  if (!(await mariadbAvailable())) {
    it('needs the shared MariaDB on 127.0.0.1:3306', { skip: 'MariaDB is not available' }, () => undefined);
    return;
  }
  let dir: string;
  let db: MariadbFixture;
  let proxy: Awaited<ReturnType<typeof startChoppingProxy>>;
  let gw: Gateway;
  let direct: mysql.Connection;
  let through: mysql.Connection;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-mysql-frag-'));
    db = await createMariadbFixture('wmf');
    proxy = await startChoppingProxy();
    writeFileSync(join(dir, 'up.pw'), db.password, { mode: 0o600 });
    const cfg = buildGatewayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        mysql_listen: { host: '127.0.0.1', port: 0 },
        state_dir: join(dir, 'state'),
        users: [
          { name: 'alice', kind: 'human', scram_verifier: createVerifier(PW), logins: { shop: 'app' } },
        ],
        targets: [
          {
            name: 'shop',
            engine: 'mysql',
            host: '127.0.0.1',
            port: proxy.port,
            database: db.database,
            logins: { app: { user: db.user, password_file: 'up.pw' } },
            policy: 'allow_all',
          },
        ],
      },
      dir,
    );
    gw = await startGateway(cfg, { log: () => undefined });
    const common = {
      host: '127.0.0.1',
      multipleStatements: true,
      dateStrings: true,
      supportBigNumbers: true,
    };
    direct = await mysql.createConnection({
      ...common,
      port: MARIADB_PORT,
      user: db.user,
      password: db.password,
      database: db.database,
    });
    through = await mysql.createConnection({
      ...common,
      port: (gw.mysql as NonNullable<Gateway['mysql']>).port,
      user: 'alice',
      password: PW,
      database: 'shop',
    });
    await direct.query(
      'CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(300), b BLOB, d DATETIME, n DECIMAL(10,3), f DOUBLE)',
    );
    await direct.query(
      "INSERT INTO t SELECT seq, REPEAT(CHAR(65 + seq % 26), seq % 300), IF(seq % 5 = 0, NULL, UNHEX(REPEAT('FE', seq % 20))), '2024-01-02 03:04:05' + INTERVAL seq MINUTE, seq / 7, seq * 1.5 FROM seq_1_to_2000",
    );
  });

  after(async () => {
    await through?.end().catch(() => undefined);
    await direct?.end().catch(() => undefined);
    await gw?.close(1000);
    await proxy?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('text results, multi-results, errors and binary results match a direct connection', async () => {
    const queries = [
      'SELECT * FROM t ORDER BY id',
      'SELECT 1 AS a; SELECT id, s FROM t WHERE id < 5 ORDER BY id; UPDATE t SET f = f WHERE id = 1; SELECT COUNT(*) AS c FROM t',
      'SELECT id FROM t WHERE id = -1',
    ];
    for (const q of queries) {
      const [a] = await direct.query(q);
      const [b] = await through.query(q);
      assert.deepEqual(b, a, q);
    }
    await assert.rejects(through.query('SELECT * FROM nope'), (e: mysql.QueryError) => e.errno === 1146);
    const [pa] = await direct.execute('SELECT * FROM t WHERE id > ? AND s <> ? ORDER BY id', [10, 'x']);
    const [pb] = await through.execute('SELECT * FROM t WHERE id > ? AND s <> ? ORDER BY id', [10, 'x']);
    assert.equal((pb as unknown[]).length, 1990);
    assert.deepEqual(pb, pa);
    const [again] = await through.query('SELECT 42 AS answer');
    assert.deepEqual(again, [{ answer: 42 }]);
  });
});
