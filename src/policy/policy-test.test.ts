// Tests for the YAML policy test runner: the demo cases pass, wrong expectations fail, SQL cases use the injected analyser.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { StatementSummary } from '../core/access.js';
import { loadPolicy } from './load.js';
import { loadPolicyTests, parsePolicyTests, runPolicyTests } from './policy-test.js';

const DIR = new URL('../../test/fixtures/policy/demo/', import.meta.url).pathname;
const DEMO = loadPolicy(DIR);

void test('the demo policy passes its own test cases', async () => {
  const results = await runPolicyTests(DEMO, loadPolicyTests(`${DIR}demo.tests.yaml`));
  assert.ok(results.length >= 9);
  for (const r of results) assert.ok(r.passed, `${r.name}: ${r.message}`);
});

void test('a wrong expectation or a wrong rule fails the case', async () => {
  const cases = parsePolicyTests(`
cases:
  - name: wrong effect
    user: alice
    statements: [{ relations: [{ schema: public, name: ledger, operation: select }] }]
    expect: allow
  - name: wrong rule
    user: bob
    statements: [{ kind: DeleteStmt, relations: [{ schema: public, name: ledger, operation: delete }] }]
    expect: deny
    rule: default-deny
  - name: outside the time given
    user: alice
    at: not-a-date
    statements: [{ relations: [{ schema: public, name: orders, operation: select }] }]
    expect: allow
`);
  const results = await runPolicyTests(DEMO, cases);
  assert.deepEqual(
    results.map((r) => r.passed),
    [false, false, false],
  );
  assert.match(results[0]?.message ?? '', /expected allow, got deny/);
  assert.match(results[1]?.message ?? '', /append_only:public\.ledger/);
});

void test('sql cases go through the injected analyser, and fail without one', async () => {
  const cases = parsePolicyTests(`
cases:
  - { name: via sql, user: bob, sql: "DELETE FROM ledger", expect: deny, rule: append_only:public.ledger }
`);
  const seen: string[] = [];
  const analyze = (sql: string): StatementSummary[] => {
    seen.push(sql);
    return [
      {
        kind: 'DeleteStmt',
        text: sql,
        relations: [{ schema: 'public', name: 'ledger', operation: 'delete' }],
        functions: [],
        settings: [],
        hasWhere: false,
      },
    ];
  };
  const ok = await runPolicyTests(DEMO, cases, { analyze });
  assert.equal(ok[0]?.passed, true, ok[0]?.message);
  assert.deepEqual(seen, ['DELETE FROM ledger']);
  const without = await runPolicyTests(DEMO, cases);
  assert.equal(without[0]?.passed, false);
});

void test('malformed test files are refused', () => {
  assert.throws(() => parsePolicyTests('nope: 1'), /cases/);
  assert.throws(() => parsePolicyTests('cases: [{ name: x, user: y, expect: maybe, sql: "x" }]'), /expect/);
  assert.throws(() => parsePolicyTests('cases: [{ name: x, user: y, expect: allow }]'), /exactly one/);
});
