// Tests for local-time computation and window membership, including DST changes and windows that cross midnight.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { inWindow, isValidTimeZone, localTime, parseClock } from './time.js';
import type { TimeWindow } from './time.js';

void test('local time follows the zone and its DST rules', () => {
  assert.deepEqual(localTime(new Date('2024-03-31T00:59:00Z'), 'Europe/Paris'), {
    day: 0,
    minute: 1 * 60 + 59,
  });
  assert.deepEqual(localTime(new Date('2024-03-31T01:00:00Z'), 'Europe/Paris'), { day: 0, minute: 3 * 60 }); // 02:00 skipped
  assert.deepEqual(localTime(new Date('2024-10-27T00:30:00Z'), 'Europe/Paris'), {
    day: 0,
    minute: 2 * 60 + 30,
  });
  assert.deepEqual(localTime(new Date('2024-10-27T01:30:00Z'), 'Europe/Paris'), {
    day: 0,
    minute: 2 * 60 + 30,
  }); // repeated hour
  assert.deepEqual(localTime(new Date('2024-01-01T00:00:00Z'), 'Asia/Kolkata'), {
    day: 1,
    minute: 5 * 60 + 30,
  });
  assert.deepEqual(localTime(new Date('2024-01-01T00:00:00Z'), 'UTC'), { day: 1, minute: 0 });
});

void test('windows: plain, whole day, crossing midnight, day masks', () => {
  const w = (from: number, to: number, days: number[]): TimeWindow => ({
    dayMask: days.reduce((m, d) => m | (1 << d), 0),
    from,
    to,
    tz: 'UTC',
    text: '',
  });
  const office = w(480, 1080, [1, 2, 3, 4, 5]);
  assert.ok(inWindow(office, { day: 1, minute: 480 }));
  assert.ok(!inWindow(office, { day: 1, minute: 1080 }));
  assert.ok(!inWindow(office, { day: 6, minute: 600 }));
  const all = w(0, 1440, [0]);
  assert.ok(inWindow(all, { day: 0, minute: 1439 }));
  assert.ok(!inWindow(all, { day: 1, minute: 0 }));
  const night = w(1320, 360, [0]); // sun 22:00 - mon 06:00
  assert.ok(inWindow(night, { day: 0, minute: 1320 }));
  assert.ok(inWindow(night, { day: 1, minute: 359 }));
  assert.ok(!inWindow(night, { day: 1, minute: 360 }));
  assert.ok(!inWindow(night, { day: 0, minute: 100 })); // Sunday early morning belongs to Saturday's window
  const satNight = w(1320, 360, [6]);
  assert.ok(inWindow(satNight, { day: 0, minute: 100 }));
  assert.ok(!inWindow(office, { day: -1, minute: -1 }));
});

void test('clock parsing and zone validation', () => {
  assert.equal(parseClock('08:30', false), 510);
  assert.equal(parseClock('24:00', true), 1440);
  for (const bad of ['24:00', '8:30', '08:60', '25:00', '0830', ''])
    assert.equal(parseClock(bad, false), undefined, bad);
  assert.equal(parseClock('24:01', true), undefined);
  assert.ok(isValidTimeZone('Europe/Paris'));
  assert.ok(!isValidTimeZone('Mars/Olympus'));
});
