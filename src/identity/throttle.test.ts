// Tests for the authentication throttle: free failures, exponential delay with a cap, decay, success, bounded memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isWardenError } from '../core/errors.js';
import { AuthThrottle, addressKey } from './throttle.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

void test('no delay for the free failures, then 250 ms doubling up to a 10 s cap', () => {
  const c = clock();
  const t = new AuthThrottle({ now: c.now });
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    delays.push(t.delayMs('10.0.0.1', 'alice'));
    t.failure('10.0.0.1', 'alice');
  }
  assert.deepEqual(delays, [0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 10_000]);
  for (let i = 0; i < 100; i++) t.failure('10.0.0.1', 'alice');
  assert.equal(t.delayMs('10.0.0.1', 'alice'), 10_000);
});

void test('failures from one address slow every user from it (spraying)', () => {
  const t = new AuthThrottle({ now: clock().now });
  for (const u of ['a', 'b', 'c', 'd']) t.failure('10.0.0.1', u);
  assert.equal(t.delayMs('10.0.0.1', 'e'), 500);
  assert.equal(t.delayMs('10.0.0.2', 'e'), 0);
});

void test('failures against one user from many addresses slow that user (distributed guessing)', () => {
  const t = new AuthThrottle({ now: clock().now });
  for (let i = 0; i < 5; i++) t.failure(`10.0.0.${i}`, 'alice');
  assert.equal(t.delayMs('10.9.9.9', 'alice'), 1000);
  assert.equal(t.delayMs('10.9.9.9', 'bob'), 0);
});

void test('counters decay after the window of quiet', () => {
  const c = clock();
  const t = new AuthThrottle({ now: c.now, windowMs: 60_000 });
  for (let i = 0; i < 5; i++) t.failure('10.0.0.1', 'alice');
  c.advance(59_999);
  assert.equal(t.delayMs('10.0.0.1', 'alice'), 1000);
  t.failure('10.0.0.1', 'alice'); // a failure restarts the window
  c.advance(59_999);
  assert.equal(t.delayMs('10.0.0.1', 'alice'), 2000);
  c.advance(1);
  assert.equal(t.delayMs('10.0.0.1', 'alice'), 0);
  t.failure('10.0.0.1', 'alice');
  assert.equal(t.delayMs('10.0.0.1', 'alice'), 0, 'counting starts again from zero');
});

void test("success clears the pair and its share of the user's counter, but not the address's", () => {
  const t = new AuthThrottle({ now: clock().now });
  for (let i = 0; i < 4; i++) t.failure('10.0.0.1', 'alice');
  for (let i = 0; i < 4; i++) t.failure('10.0.0.2', 'alice');
  t.success('10.0.0.1', 'alice');
  // Address 10.0.0.1 keeps its 4 failures.
  assert.equal(t.delayMs('10.0.0.1', 'bob'), 500);
  // alice keeps the 4 failures that came from 10.0.0.2.
  assert.equal(t.delayMs('10.0.0.3', 'alice'), 500);
  t.success('10.0.0.2', 'alice');
  assert.equal(t.delayMs('10.0.0.3', 'alice'), 0);
  assert.equal(t.tracked.pairs, 0);
  t.success('10.0.0.9', 'nobody'); // harmless when nothing is tracked
});

void test('memory is bounded: oldest keys are evicted first', () => {
  const c = clock();
  const t = new AuthThrottle({ now: c.now, maxKeys: 100 });
  for (let i = 0; i < 3; i++) t.failure('10.0.0.1', 'target');
  for (let i = 0; i < 1000; i++) {
    c.advance(1);
    t.failure(`192.168.${i >> 8}.${i & 0xff}`, `user${i}`);
  }
  assert.deepEqual(t.tracked, { addresses: 100, users: 100, pairs: 100 });
  assert.equal(t.delayMs('10.0.0.1', 'target'), 0, 'the oldest keys were evicted');
  assert.equal(t.delayMs('192.168.3.231', 'user999'), 0);
  t.failure('192.168.3.231', 'user999');
  t.failure('192.168.3.231', 'user999');
  assert.equal(t.delayMs('192.168.3.231', 'user999'), 250);
});

void test('property: delay is monotone in failures and never exceeds the cap', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('a1', 'a2', 'a3'), fc.constantFrom('u1', 'u2')), { maxLength: 40 }),
      (events) => {
        const t = new AuthThrottle({ now: clock().now });
        for (const [a, u] of events) {
          const before = t.delayMs(a, u);
          t.failure(a, u);
          const after = t.delayMs(a, u);
          assert.ok(after >= before && after <= 10_000);
        }
      },
    ),
  );
});

void test('invalid options are configuration errors', () => {
  for (const opts of [{ baseDelayMs: 0 }, { maxKeys: 0 }, { windowMs: 1.5 }, { freeFailures: -1 }]) {
    assert.throws(
      () => new AuthThrottle(opts),
      (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
    );
  }
});

void test('addresses are keyed per IPv4 host and per IPv6 /64', () => {
  assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2::99'), '2001:db8:1:2::/64');
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey('/tmp/.s.PGSQL.5432'), '/tmp/.s.PGSQL.5432');
  const t = new AuthThrottle({ now: clock().now, freeFailures: 1 });
  t.failure('2001:db8:1:2::1', 'a');
  t.failure('2001:db8:1:2::2', 'b');
  assert.equal(t.delayMs('2001:db8:1:2:ffff::3', 'c'), 500);
  assert.equal(t.delayMs('2001:db8:1:3::1', 'c'), 0);
});

void test('at most maxWaitingPerAddress slowed attempts wait per address; releases are idempotent', () => {
  const t = new AuthThrottle({ maxWaitingPerAddress: 2 });
  const a = t.enterDelay('192.0.2.1');
  const b = t.enterDelay('::ffff:192.0.2.1'); // the same address, IPv4-mapped
  assert.ok(a && b);
  assert.equal(t.enterDelay('192.0.2.1'), null);
  const other = t.enterDelay('192.0.2.2');
  assert.ok(other, 'another address is not affected');
  other();
  a();
  a(); // a second release must not free a second slot
  const c = t.enterDelay('192.0.2.1');
  assert.ok(c);
  assert.equal(t.enterDelay('192.0.2.1'), null);
  b();
  c();
  assert.ok(t.enterDelay('192.0.2.1'));
});
