// Tests for address parsing and CIDR matching, including IPv4-mapped IPv6 normalisation.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { cidrContains, parseCidr, parseIp } from './net.js';
import type { Cidr } from './net.js';

const cidr = (s: string): Cidr => {
  const c = parseCidr(s);
  assert.ok(typeof c !== 'string', typeof c === 'string' ? c : '');
  return c;
};
const inRange = (range: string, addr: string): boolean => {
  const a = parseIp(addr);
  return a !== undefined && cidrContains(cidr(range), a);
};

void test('parses IPv4 and IPv6 forms; refuses malformed ones', () => {
  assert.deepEqual([...(parseIp('10.1.2.3')?.bytes ?? [])], [10, 1, 2, 3]);
  assert.equal(parseIp('::1')?.version, 6);
  assert.equal(parseIp('2001:db8::')?.bytes[2], 0x0d);
  assert.equal(parseIp('::ffff:10.1.2.3')?.version, 4);
  assert.equal(parseIp('::ffff:0a01:0203')?.version, 4);
  for (const bad of [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1::2::3',
    'g::1',
    '1:2:3:4:5:6:7:8:9',
    'x',
  ]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

void test('CIDR: v4 and v6 ranges, bare hosts, mapped ranges, host bits and bad prefixes refused', () => {
  assert.ok(inRange('10.0.0.0/8', '10.255.0.1'));
  assert.ok(!inRange('10.0.0.0/8', '11.0.0.1'));
  assert.ok(inRange('0.0.0.0/0', '1.2.3.4'));
  assert.ok(inRange('192.168.1.128/25', '192.168.1.200'));
  assert.ok(!inRange('192.168.1.128/25', '192.168.1.100'));
  assert.ok(inRange('127.0.0.1', '127.0.0.1'));
  assert.ok(!inRange('127.0.0.1', '127.0.0.2'));
  assert.ok(inRange('fd00::/8', 'fd12:3456::1'));
  assert.ok(!inRange('fd00::/8', 'fe80::1'));
  assert.ok(inRange('::ffff:10.0.0.0/104', '10.9.9.9'));
  assert.equal(cidr('::ffff:10.0.0.0/104').version, 4);
  assert.ok(inRange('10.0.0.0/8', '::ffff:10.1.1.1'));
  assert.ok(!inRange('::1/128', '127.0.0.1'));
  for (const bad of [
    '10.0.0.1/8',
    '10.0.0.0/33',
    '10.0.0.0/-1',
    '::/129',
    'fe80::1%eth0/128',
    'nope/8',
    '10.0.0.0/08',
  ]) {
    assert.equal(typeof parseCidr(bad), 'string', bad);
  }
});

void test('property: an IPv4 address and its mapped IPv6 form match the same ranges', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 32 }), (addr, base, len) => {
      const b = parseIp(base)?.bytes as Uint8Array;
      const net = new Uint8Array(b);
      for (let bit = len; bit < 32; bit++)
        net[bit >> 3] = (net[bit >> 3] as number) & ~(1 << (7 - (bit & 7)));
      const range = `${[...net].join('.')}/${len}`;
      assert.equal(inRange(range, addr), inRange(range, `::ffff:${addr}`));
      assert.equal(inRange(range, addr), inRange(`::ffff:${[...net].join('.')}/${96 + len}`, addr));
    }),
  );
});
