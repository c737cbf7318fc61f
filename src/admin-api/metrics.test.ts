// Tests for the Prometheus metrics registry: text format, labels, histogram buckets (with a property test).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Metrics, createWardenMetrics } from './metrics.js';

void test('counters and gauges render HELP, TYPE and labelled samples, escaping label values', () => {
  const m = new Metrics();
  const c = m.counter('x_total', 'Things\nseen.', ['kind']);
  const g = m.gauge('y', 'Level.');
  c.inc({ kind: 'a"b\\c\nd' });
  c.inc({ kind: 'plain' }, 2.5);
  g.set(-3);
  assert.equal(
    m.render(),
    [
      '# HELP x_total Things\\nseen.',
      '# TYPE x_total counter',
      'x_total{kind="a\\"b\\\\c\\nd"} 1',
      'x_total{kind="plain"} 2.5',
      '# HELP y Level.',
      '# TYPE y gauge',
      'y -3',
      '',
    ].join('\n'),
  );
});

void test('labels must be exactly the declared ones; counters never go down; names are checked', () => {
  const m = new Metrics();
  const c = m.counter('a_total', 'a', ['x']);
  assert.throws(() => c.inc(), /labels must be exactly \{x\}/);
  assert.throws(() => c.inc({ x: '1', y: '2' }), TypeError);
  assert.throws(() => c.inc({ x: '1' }, -1), RangeError);
  assert.throws(() => m.counter('a_total', 'again'), /already registered/);
  assert.throws(() => m.gauge('bad-name', 'x'), /invalid metric name/);
  assert.throws(() => m.histogram('h', 'h', ['le']), /reserved/);
  assert.throws(() => m.histogram('h2', 'h', [], [1, 1]), /strictly increasing/);
});

void test('histogram buckets are cumulative and end with +Inf = count', () => {
  const m = new Metrics();
  const h = m.histogram('lat_seconds', 'Latency.', ['op'], [0.1, 1]);
  for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v, { op: 'q' });
  const text = m.render();
  assert.match(text, /^lat_seconds_bucket\{op="q",le="0\.1"\} 2$/m);
  assert.match(text, /^lat_seconds_bucket\{op="q",le="1"\} 3$/m);
  assert.match(text, /^lat_seconds_bucket\{op="q",le="\+Inf"\} 4$/m);
  assert.match(text, /^lat_seconds_sum\{op="q"\} 3\.65$/m);
  assert.match(text, /^lat_seconds_count\{op="q"\} 4$/m);
});

void test('property: bucket counts never decrease and each equals the number of values <= its bound', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 20, noNaN: true }), { maxLength: 50 }), (values) => {
      const m = new Metrics();
      const bounds = [0.5, 1, 5, 10];
      const h = m.histogram('v', 'v', [], bounds);
      for (const v of values) h.observe(v);
      if (values.length === 0) return;
      const counts = [...m.render().matchAll(/^v_bucket\{le="([^"]+)"\} (\d+)$/gm)].map(
        (x) => [x[1], Number(x[2])] as const,
      );
      assert.equal(counts.length, bounds.length + 1);
      counts.forEach(([le, n], i) => {
        const bound = le === '+Inf' ? Infinity : Number(le);
        assert.equal(n, values.filter((v) => v <= bound).length);
        if (i > 0) assert.ok(n >= (counts[i - 1]?.[1] ?? 0));
      });
    }),
  );
});

void test('collectors run at render; a failing collector does not break the scrape', () => {
  const w = createWardenMetrics();
  let live = 2;
  w.registry.onCollect(() => {
    throw new Error('boom');
  });
  w.registry.onCollect(() => w.sessionsActive.set(live));
  assert.match(w.registry.render(), /^warden_sessions_active 2$/m);
  live = 0;
  assert.match(w.registry.render(), /^warden_sessions_active 0$/m);
  assert.match(w.registry.render(), /^# TYPE warden_statement_duration_seconds histogram$/m);
});
