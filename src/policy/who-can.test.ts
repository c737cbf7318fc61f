// Tests for the access matrix of one table.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { loadPolicy } from './load.js';
import { whoCan } from './who-can.js';

const DEMO = loadPolicy(new URL('../../test/fixtures/policy/demo', import.meta.url).pathname);

void test('who can reach public.customers: grants, columns, masks and row filters per principal', () => {
  const rows = whoCan(DEMO, 'public.customers');
  const alice = rows.find((r) => r.principal === 'alice');
  assert.ok(alice !== undefined);
  assert.deepEqual(alice.operations, ['select']);
  assert.equal(alice.columns, '*');
  assert.equal(alice.rowFilter, 'tenant_id = {{ user.tenant | int }}');
  assert.deepEqual(alice.masks, { ssn: 'partial(keep_first=0, keep_last=4)', email: 'hash' });
  const bob = rows.find((r) => r.principal === 'bob');
  assert.deepEqual(bob?.columns, ['id', 'name', 'email', 'ssn']);
  assert.equal(bob?.rowFilter, undefined);
  assert.ok(!rows.some((r) => r.principal === 'carol' || r.principal === 'svc_reporting'));
  assert.ok(rows.some((r) => r.principal === 'group:analysts' && r.role === 'analyst'));
});

void test('append-only tables never list the operations they refuse; conditions are spelled out', () => {
  const ledger = whoCan(DEMO, 'public.ledger');
  assert.ok(ledger.length > 0);
  for (const r of ledger) for (const op of r.operations) assert.ok(op === 'select' || op === 'insert', op);
  const svc = whoCan(DEMO, 'public.orders').find((r) => r.principal === 'svc_reporting');
  assert.deepEqual(svc?.conditions, ['from 127.0.0.0/8, ::1', 'principal service']);
  assert.deepEqual(whoCan(DEMO, 'public.nothing'), []);
});
