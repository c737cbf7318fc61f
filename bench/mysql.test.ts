// Tests of the MySQL bench helpers: mysqlslap report parsing, statement counts, the query mixes and the endpoint rotation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MYSQL_ENDPOINTS,
  mysqlConfigurations,
  mysqlRoundOrder,
  mysqlslapQps,
  parseMysqlslap,
  queryMix,
  slapCount,
} from './mysql.js';

// Captured from `mysqlslap Ver 1.0 Distrib 10.11.19-MariaDB` with --concurrency=1,4 --number-of-queries=100.
const TWO_BLOCKS = [
  'Benchmark',
  '\tAverage number of seconds to run all queries: 0.002 seconds',
  '\tMinimum number of seconds to run all queries: 0.001 seconds',
  '\tMaximum number of seconds to run all queries: 0.003 seconds',
  '\tNumber of clients running queries: 1',
  '\tAverage number of queries per client: 100',
  '',
  'Benchmark',
  '\tAverage number of seconds to run all queries: 4.875 seconds',
  '\tMinimum number of seconds to run all queries: 4.500 seconds',
  '\tMaximum number of seconds to run all queries: 5.250 seconds',
  '\tNumber of clients running queries: 32',
  '\tAverage number of queries per client: 7500',
  '',
].join('\n');

describe('parseMysqlslap', () => {
  it('reads every Benchmark block in order', () => {
    const b = parseMysqlslap(TWO_BLOCKS);
    assert.deepEqual(b, [
      { avgSec: 0.002, minSec: 0.001, maxSec: 0.003, clients: 1, queriesPerClient: 100 },
      { avgSec: 4.875, minSec: 4.5, maxSec: 5.25, clients: 32, queriesPerClient: 7500 },
    ]);
  });

  it('gives statements per second as clients × queries per client / average seconds', () => {
    const [one, two] = parseMysqlslap(TWO_BLOCKS);
    assert.equal(mysqlslapQps(one!), 50_000);
    assert.ok(Math.abs((mysqlslapQps(two!) ?? 0) - (32 * 7500) / 4.875) < 1e-6);
  });

  it('has no rate for a run too short to time', () => {
    const [b] = parseMysqlslap(TWO_BLOCKS.replace('0.002 seconds', '0.000 seconds'));
    assert.equal(mysqlslapQps(b!), null);
  });

  it('finds no block in an error message, and throws on a block missing a field or with a non-number', () => {
    assert.deepEqual(
      parseMysqlslap("mysqlslap: Error when connecting to server: 1045 Access denied for user 'x'"),
      [],
    );
    assert.throws(
      () => parseMysqlslap(TWO_BLOCKS.replace('\tNumber of clients running queries: 32\n', '')),
      /block 2: no "Number of clients running queries"/,
    );
    assert.throws(() => parseMysqlslap(TWO_BLOCKS.replace('7500', 'many')), /queries per client/);
  });
});

describe('slapCount', () => {
  it('rounds up to a multiple of the clients and stays within bounds', () => {
    assert.equal(slapCount(10_001, 8), 10_008);
    assert.equal(slapCount(5, 32), 3_200);
    assert.equal(slapCount(1e12, 1), 2_000_000);
    assert.equal(slapCount(1e12, 3) % 3, 0);
  });
});

describe('query mixes', () => {
  it('select-only is 100 primary-key SELECTs with varied ids; read-write adds an UPDATE and an INSERT each', () => {
    const sel = queryMix('select-only').trim().split(';\n');
    assert.equal(sel.length, 100);
    assert.ok(sel.every((q) => /^SELECT balance FROM bench_accounts WHERE id = \d+;?$/.test(q)));
    assert.ok(new Set(sel).size > 90, 'ids vary');
    const rw = queryMix('read-write').trim().split(';\n');
    assert.equal(rw.length, 300);
    assert.equal(rw.filter((q) => q.startsWith('UPDATE bench_accounts SET balance')).length, 100);
    assert.equal(rw.filter((q) => q.startsWith('INSERT INTO bench_history')).length, 100);
  });
});

describe('mysqlRoundOrder', () => {
  it('rotates so each endpoint goes first once over four rounds', () => {
    const firsts = [0, 1, 2, 3].map((r) => mysqlRoundOrder(r, MYSQL_ENDPOINTS)[0]);
    assert.deepEqual([...firsts].sort(), [...MYSQL_ENDPOINTS].sort());
    for (let r = 0; r < 4; r++)
      assert.deepEqual([...mysqlRoundOrder(r, MYSQL_ENDPOINTS)].sort(), [...MYSQL_ENDPOINTS].sort());
  });

  it('covers both mysqlslap mixes at 1, 8 and 32 clients and the prepared load', () => {
    const c = mysqlConfigurations();
    assert.equal(c.filter((x) => x.workload === 'select-only').length, 3);
    assert.equal(c.filter((x) => x.workload === 'read-write').length, 3);
    assert.ok(c.some((x) => x.workload === 'prepared'));
    assert.ok(c.some((x) => x.workload === 'fresh'));
  });
});
