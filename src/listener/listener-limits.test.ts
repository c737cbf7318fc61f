// Tests of the listener limits shared by both front ends: the per-address startup cap and graceful drain.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { drainSessions, tooManyStarting, type LimitedSession } from './listener-limits.js';

class FakeSession implements LimitedSession {
  drainAsked = false;
  cut = false;
  constructor(
    readonly sourceAddress: string,
    readonly sessionContext: unknown,
    private readonly set: Set<LimitedSession>,
    private readonly idle: boolean,
  ) {
    set.add(this);
  }
  beginDrain(): void {
    this.drainAsked = true;
    if (this.idle) this.set.delete(this);
  }
  shutdown(): void {
    this.cut = true;
    this.set.delete(this);
  }
}

describe('listener limits', () => {
  it('counts only sessions still logging in, per address (IPv6 per /64, IPv4-mapped as IPv4)', () => {
    const set = new Set<LimitedSession>();
    new FakeSession('10.0.0.1', null, set, true);
    new FakeSession('::ffff:10.0.0.1', null, set, true);
    new FakeSession('10.0.0.1', { ready: true }, set, true);
    new FakeSession('2001:db8:1:2::5', null, set, true);
    assert.equal(tooManyStarting(set, '10.0.0.1', 2), true);
    assert.equal(tooManyStarting(set, '10.0.0.1', 3), false);
    assert.equal(tooManyStarting(set, '10.0.0.2', 1), false);
    assert.equal(tooManyStarting(set, '2001:db8:1:2::99', 1), true);
    assert.equal(tooManyStarting(set, '2001:db8:1:3::5', 1), false);
  });

  it('drain: idle sessions leave at once, the rest are cut at the deadline', async () => {
    const set = new Set<LimitedSession>();
    const idle = new FakeSession('a', {}, set, true);
    const busy = new FakeSession('b', {}, set, false);
    const started = Date.now();
    await drainSessions(set, 150);
    assert.ok(Date.now() - started >= 140);
    assert.equal(idle.drainAsked && !idle.cut, true);
    assert.equal(busy.drainAsked && busy.cut, true);
    assert.equal(set.size, 0);
  });

  it('drain returns as soon as every session has left', async () => {
    const set = new Set<LimitedSession>();
    new FakeSession('a', {}, set, true);
    const started = Date.now();
    await drainSessions(set, 5000);
    assert.ok(Date.now() - started < 1000);
  });
});
