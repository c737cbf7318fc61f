// Tests of the gateway metrics feed: session counting and the statement hook wrapper (decisions, latency, bind passthrough).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SessionContext, StatementHook, StatementOutcome, StatementRequest } from '../core/context.js';
import { createWardenMetrics } from './metrics.js';
import { meteredHook, sessionMetricsEvents, timedAppender } from './gateway-metrics.js';

const session = (id: string) => ({ sessionId: id, protocol: 'postgres' }) as unknown as SessionContext;
const request = (sql: string) => ({ sql }) as unknown as StatementRequest;

void test('sessions: counted once at authentication, uncounted once at close', async () => {
  const m = createWardenMetrics();
  const ev = sessionMetricsEvents(m);
  await ev.authenticated?.(session('a'));
  await ev.authenticated?.(session('b'));
  await ev.authenticated?.(session('a')); // repeated: ignored
  assert.equal(m.sessionsActive.get(), 2);
  assert.equal(m.sessionsTotal.get({ protocol: 'postgres' }), 2);
  await ev.closed?.(session('a'), 'bye');
  await ev.closed?.(session('a'), 'bye'); // twice: once only
  await ev.closed?.(session('never'), 'bye'); // never counted: ignored
  assert.equal(m.sessionsActive.get(), 1);
  assert.match(m.registry.render(), /^warden_sessions_active 1$/m);
});

void test('statements: each verdict counted by decision; outcomes observe latency; throws count as deny', async () => {
  const m = createWardenMetrics();
  const seen: StatementOutcome[] = [];
  const inner: StatementHook = {
    check: (req) => {
      if (req.sql === 'boom') throw new Error('boom');
      if (req.sql === 'later') return Promise.resolve({ action: 'allow' });
      if (req.sql === 'held')
        return { action: 'deny', sqlstate: 'WA001', message: 'x', decision: { effect: 'approval' } };
      return req.sql.startsWith('DROP')
        ? { action: 'deny', sqlstate: '42501', message: 'no' }
        : { action: 'allow' };
    },
    outcome: (o) => seen.push(o),
  };
  const h = meteredHook(inner, m);
  assert.equal('bind' in h, false, 'no bind when the inner hook has none');
  const v = await h.check(request('SELECT 1'));
  await h.check(request('later'));
  await h.check(request('DROP TABLE t'));
  await h.check(request('held'));
  assert.throws(() => h.check(request('boom')));
  assert.equal(m.statements.get({ decision: 'allow' }), 2);
  assert.equal(m.statements.get({ decision: 'deny' }), 2);
  assert.equal(m.statements.get({ decision: 'approval' }), 1);
  const o = { request: request('SELECT 1'), verdict: v, commandTags: ['SELECT 1'], rows: 1, durationMs: 250 };
  h.outcome?.(o);
  assert.deepEqual(seen, [o], 'the outcome reaches the inner hook');
  const text = m.registry.render();
  assert.match(text, /^warden_statement_duration_seconds_count\{decision="allow"\} 1$/m);
  assert.match(text, /^warden_statement_duration_seconds_sum\{decision="allow"\} 0\.25$/m);
});

void test('bind is passed through when the inner hook has one', async () => {
  const m = createWardenMetrics();
  const h = meteredHook(
    { check: () => ({ action: 'allow' }), bind: () => ({ action: 'deny', sqlstate: '58030', message: 'b' }) },
    m,
  );
  assert.ok('bind' in h);
  const r = await h.bind({} as never);
  assert.equal(r?.action, 'deny');
});

void test('timedAppender: sets the append lag, passes results and failures through', async () => {
  const m = createWardenMetrics();
  const store = { failed: false };
  let fail = false;
  const a = timedAppender<string>(
    {
      store,
      append: async () => {
        await new Promise((r) => setTimeout(r, 20));
        if (fail) throw new Error('disk full');
        return { index: 7 };
      },
    },
    m,
  );
  assert.equal(a.store, store, 'the recorder still sees the store (recovery)');
  assert.deepEqual(await a.append('e'), { index: 7 });
  const lag = m.auditAppendLagSeconds.get();
  assert.ok(lag >= 0.015 && lag < 5, String(lag));
  fail = true;
  await assert.rejects(a.append('e'), /disk full/);
});
