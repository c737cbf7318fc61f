// End to end: gateway memory stays flat under traffic with policy and audit on — retained heap and buffers after a full GC do not grow with the number of statements.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type pg from 'pg';
import { startTestGateway, type TestGateway } from './helpers/warden.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap in use plus ArrayBuffers (socket and audit buffers) after two full collections. */
function retainedMiB(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / 1048576;
}

const DB = `warden_mem_${randomBytes(4).toString('hex')}`;
const psql = (sql: string): void => {
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qAt', '-c', sql], {
    stdio: 'pipe',
  });
};

describe('gateway memory under traffic', () => {
  let gw: TestGateway;
  let clients: pg.Client[] = [];

  before(async () => {
    psql(`CREATE DATABASE ${DB}`);
    execFileSync('pgbench', ['-h', '127.0.0.1', '-U', 'postgres', '-i', '-s', '1', '-q', DB], {
      stdio: 'pipe',
    });
    gw = await startTestGateway({
      targets: [
        { port: 5432, database: DB, user: 'postgres', policyFolder: resolve('bench/fixtures/soak-policy') },
      ],
      users: [{ name: 'bench', password: 'memory-test-pw', kind: 'service' }],
      audit: { dir: 'audit', origin: 'memory.test/audit' },
    });
    clients = await Promise.all(Array.from({ length: 20 }, () => gw.connect('bench', 'memory-test-pw')));
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await gw.stop();
    psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  });

  /** Each client runs `rounds` × (UPDATE and SELECT with fresh literals, and a parameterised SELECT). */
  const traffic = (rounds: number): Promise<void[]> =>
    Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < rounds; i++) {
          const aid = 1 + Math.floor(Math.random() * 100_000);
          const delta = Math.floor(Math.random() * 1000);
          await c.query(`UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid}`);
          await c.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid}`);
          await c.query({ text: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', values: [aid] });
        }
      }),
    );

  it('60,000 statements after warm-up retain less than 2 MiB more (policy, audit log, 20 sessions)', async () => {
    await traffic(400); // 24,000 statements: caches and pools reach their working size
    const warm = retainedMiB();
    await traffic(1000); // 60,000 more, about 100,000 audit entries
    const later = retainedMiB();
    process.stderr.write(
      `# retained after warm-up ${warm.toFixed(1)} MiB, after 60,000 more ${later.toFixed(1)} MiB\n`,
    );
    assert.ok(later - warm < 2, `retained memory grew from ${warm.toFixed(1)} to ${later.toFixed(1)} MiB`);
  });
});
