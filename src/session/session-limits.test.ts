// Tests of the idle-session clock shared by the PostgreSQL and MySQL sessions (real timers, short timeouts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IdleWatch } from './session-limits.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function watch(o: { ms?: number; busy?: () => boolean }): {
  w: IdleWatch;
  expired: number[];
  set: (ms?: number) => void;
} {
  let ms = o.ms;
  const expired: number[] = [];
  const w = new IdleWatch({
    timeoutMs: () => ms,
    busy: o.busy ?? (() => false),
    expire: (x) => expired.push(x),
  });
  return { w, expired, set: (x) => (ms = x) };
}

describe('IdleWatch', () => {
  it('expires once after the timeout without activity, with the timeout in force', async () => {
    const { w, expired } = watch({ ms: 60 });
    w.touch();
    await sleep(200);
    assert.deepEqual(expired, [60]);
    w.stop();
  });

  it('activity pushes the expiry back; a busy session never expires', async () => {
    let busy = false;
    const { w, expired } = watch({ ms: 300, busy: () => busy });
    w.touch();
    for (let i = 0; i < 5; i++) {
      await sleep(50);
      w.touch();
    }
    assert.deepEqual(expired, []);
    busy = true;
    await sleep(700);
    assert.deepEqual(expired, []);
    busy = false;
    w.touch();
    await sleep(1000);
    assert.deepEqual(expired, [300]);
    w.stop();
  });

  it('does nothing without a timeout, and re-reads it (a new bundle) at each expiry', async () => {
    const { w, expired, set } = watch({});
    w.touch();
    await sleep(100);
    assert.deepEqual(expired, []);
    set(50);
    w.touch();
    set(undefined); // the bundle changed before the timer fired: no expiry
    await sleep(150);
    assert.deepEqual(expired, []);
    w.stop();
  });

  it('stop() cancels a pending expiry', async () => {
    const { w, expired } = watch({ ms: 40 });
    w.touch();
    w.stop();
    await sleep(120);
    assert.deepEqual(expired, []);
  });
});
