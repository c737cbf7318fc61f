// Tests for the benchmark helpers: statistics, ratios, table rendering, argument parsing and the run plan.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fmt, fmtRatio, markdownTable, median, microsPerCall, percentile, ratio, textTable } from './lib.js';
import { parseArgs, SUITES } from './args.js';
import { configurations, ENDPOINTS, roundOrder } from './pgbench.js';

describe('median and percentile', () => {
  it('picks the middle value, or the mean of the two middle ones', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('does not reorder its input', () => {
    const xs = [5, 1, 4];
    median(xs);
    assert.deepEqual(xs, [5, 1, 4]);
  });

  it('lies between min and max, with as many values on each side (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 50 }), (xs) => {
        const m = median(xs);
        assert.ok(m >= Math.min(...xs) && m <= Math.max(...xs));
        const below = xs.filter((x) => x < m).length;
        const above = xs.filter((x) => x > m).length;
        assert.ok(below <= xs.length / 2 && above <= xs.length / 2);
      }),
    );
  });

  it('percentile by nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_x, i) => i + 1);
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.equal(percentile(xs, 100), 100);
    assert.equal(percentile([7], 99), 7);
  });
});

describe('ratio and formatting', () => {
  it('a ratio needs both sides and a non-zero divisor', () => {
    assert.equal(ratio(50, 100), 0.5);
    assert.equal(ratio(null, 100), null);
    assert.equal(ratio(1, 0), null);
    assert.equal(ratio(1, undefined), null);
    assert.equal(fmtRatio(0.934), '0.93×');
    assert.equal(fmtRatio(null), '–');
    assert.equal(fmt(12345.678, 1), '12,345.7');
    assert.equal(fmt(null), '–');
  });
});

describe('tables', () => {
  const t = {
    title: 'T',
    columns: ['name', 'value'],
    rows: [
      ['a|b', '1'],
      ['long name', '12,345'],
    ],
    notes: ['note'],
  };

  it('aligns text columns: first left, others right', () => {
    const lines = textTable(t).split('\n');
    assert.equal(lines[0], 'T');
    assert.equal(lines[2], 'name        value');
    assert.equal(lines[4], 'a|b             1');
    assert.equal(lines[5], 'long name  12,345');
    assert.equal(lines[6], 'note');
  });

  it('renders markdown with escaped pipes and right-aligned numbers', () => {
    assert.equal(
      markdownTable(t),
      ['| name | value |', '| --- | ---: |', '| a\\|b | 1 |', '| long name | 12,345 |'].join('\n'),
    );
  });
});

describe('microsPerCall', () => {
  it('measures slower work as slower', () => {
    const spin = (n: number) => (): number => {
      let x = 0;
      for (let i = 0; i < n; i++) x += i % 7;
      return x;
    };
    const fast = microsPerCall(spin(10), { batch: 200, samples: 15 });
    const slow = microsPerCall(spin(20_000), { batch: 20, samples: 15 });
    assert.ok(fast > 0 && slow > fast * 10, `fast ${fast} µs, slow ${slow} µs`);
  });
});

describe('parseArgs', () => {
  it('runs every suite by default, and one or several when named', () => {
    assert.deepEqual(parseArgs([]), { suites: [...SUITES], quick: false });
    assert.deepEqual(parseArgs(['audit', '--quick']), { suites: ['audit'], quick: true });
    assert.deepEqual(parseArgs(['analysis', 'pgbench', 'analysis']), {
      suites: ['analysis', 'pgbench'],
      quick: false,
    });
    assert.equal(parseArgs(['--help']), 'help');
  });

  it('refuses unknown arguments', () => {
    assert.throws(() => parseArgs(['--quik']), /unknown argument: --quik/);
    assert.throws(() => parseArgs(['pgbenchx']), /unknown argument/);
  });
});

describe('pgbench plan', () => {
  it('covers both workloads at 1, 8 and 32 clients, plus one prepared select-only run', () => {
    const c = configurations();
    for (const workload of ['select-only', 'tpcb-like']) {
      assert.deepEqual(
        c.filter((x) => x.workload === workload && x.protocol === 'simple').map((x) => [x.clients, x.jobs]),
        [
          [1, 1],
          [8, 2],
          [32, 2],
        ],
      );
    }
    assert.deepEqual(
      c.filter((x) => x.protocol === 'prepared').map((x) => x.workload),
      ['select-only'],
    );
  });

  it('rotates the endpoint order so each one goes first in turn', () => {
    const firsts = ENDPOINTS.map((_, i) => i).map((r) => roundOrder(r, ENDPOINTS)[0]);
    assert.deepEqual([...firsts].sort(), [...ENDPOINTS].sort());
    for (let r = 0; r < 6; r++) assert.deepEqual([...roundOrder(r, ENDPOINTS)].sort(), [...ENDPOINTS].sort());
    assert.deepEqual(roundOrder(1, ['direct', 'warden']), ['warden', 'direct']);
  });
});
