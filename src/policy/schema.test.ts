// Tests for the policy schema and loader: the published JSON Schema matches its TS source, and every problem is reported with its line.

import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isWardenError } from '../core/errors.js';
import {
  loadPolicy,
  loadPolicyFromObject,
  loadPolicyFromString,
  loadPolicyFromStrings,
  PolicyError,
} from './load.js';
import { POLICY_SCHEMA, validateDocument } from './schema.js';
import type { PolicyProblem } from './source.js';

const FIXTURES = new URL('../../test/fixtures/policy/', import.meta.url);

function problemsOf(fn: () => unknown): readonly PolicyProblem[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof PolicyError, `expected PolicyError, got ${String(e)}`);
    assert.ok(isWardenError(e, 'CONFIG_INVALID'));
    return e.problems;
  }
  assert.fail('policy was accepted');
}

function find(problems: readonly PolicyProblem[], text: string): PolicyProblem {
  const p = problems.find((x) => x.message.includes(text));
  assert.ok(
    p !== undefined,
    `no problem mentioning "${text}" in:\n${problems.map((x) => x.message).join('\n')}`,
  );
  return p;
}

void test('schema/policy.schema.json is the generated schema (run: node --import tsx src/policy/schema.ts --write)', () => {
  const published: unknown = JSON.parse(
    readFileSync(new URL('../../schema/policy.schema.json', import.meta.url), 'utf8'),
  );
  assert.deepEqual(published, JSON.parse(JSON.stringify(POLICY_SCHEMA)));
});

void test('the demo policy validates and loads from its folder', () => {
  const p = loadPolicy(new URL('demo', FIXTURES).pathname);
  assert.deepEqual([...p.users.keys()].sort(), ['alice', 'bob', 'carol', 'svc_reporting']);
  assert.deepEqual(p.users.get('alice')?.roles, ['analyst']);
  assert.ok(p.appendOnly.has('public.ledger'));
  assert.equal(p.sources.length, 3);
});

void test('schema errors carry the file, line and column of the offending value', () => {
  const file = new URL('bad/schema-errors.yaml', FIXTURES).pathname;
  const problems = problemsOf(() => loadPolicy([file]));
  assert.ok(problems.every((p) => p.file === file));
  const kind = find(problems, 'must be one of: human, service');
  assert.deepEqual([kind.line, kind.col], [5, 11]);
  const op = find(problems, 'must be one of: select');
  assert.equal(op.line, 12);
  assert.equal(op.pointer, '/roles/0/grants/0/operations/1');
  const extra = find(problems, 'unknown property "colour"');
  assert.deepEqual([extra.line, extra.col], [13, 9]);
});

void test('semantic errors carry lines: unknown role and group, duplicates, CIDR, time zone, time, template', () => {
  const file = new URL('bad/semantic-errors.yaml', FIXTURES).pathname;
  const problems = problemsOf(() => loadPolicy(file));
  assert.equal(find(problems, 'unknown group "nobody"').line, 5);
  assert.equal(find(problems, 'unknown role "ghost"').line, 6);
  assert.equal(find(problems, 'bad CIDR').line, 14);
  assert.equal(find(problems, 'bad time "25:00"').line, 16);
  assert.equal(find(problems, 'bad time zone "Mars/Olympus"').line, 17);
  assert.equal(find(problems, 'unparsable template').line, 20);
  const dup = find(problems, 'duplicate role "analyst"');
  assert.equal(dup.line, 21);
  assert.match(dup.message, /first defined at .*semantic-errors\.yaml:8/);
  // Sorted by line for the reader.
  const lines = problems.map((p) => p.line);
  assert.deepEqual(
    lines,
    [...lines].sort((a, b) => a - b),
  );
});

void test('YAML syntax errors are reported with their line', () => {
  const problems = problemsOf(() =>
    loadPolicyFromString('version: 1\nusers:\n  - name: [unclosed\n', 'x.yaml'),
  );
  assert.ok(problems.length > 0);
  assert.equal(problems[0]?.file, 'x.yaml');
  assert.ok((problems[0]?.line ?? 0) >= 3);
});

void test('duplicate keys in one mapping are refused', () => {
  const problems = problemsOf(() => loadPolicyFromString('version: 1\nversion: 1\n', 'dup.yaml'));
  assert.equal(problems[0]?.line, 2);
});

void test('definitions merge across files; a duplicate across files names both places', () => {
  const a = { path: 'a.yaml', text: 'version: 1\nroles:\n  - name: r\n' };
  const b = { path: 'b.yaml', text: 'version: 1\nusers:\n  - name: u\n    roles: [r]\n' };
  const p = loadPolicyFromStrings([a, b]);
  assert.deepEqual(p.users.get('u')?.roles, ['r']);
  const c = { path: 'c.yaml', text: 'version: 1\n\nroles:\n  - name: r\n' };
  const dup = find(
    problemsOf(() => loadPolicyFromStrings([a, c])),
    'duplicate role "r"',
  );
  assert.equal(dup.file, 'c.yaml');
  assert.equal(dup.line, 4);
  assert.match(dup.message, /a\.yaml:3/);
});

void test('grant shape rules: table operations need schema and table; execute needs functions', () => {
  const problems = problemsOf(() =>
    loadPolicyFromObject({
      version: 1,
      roles: [
        {
          name: 'r',
          grants: [
            { operations: ['select'] },
            { operations: ['execute'] },
            { operations: ['select'], schema: 's', table: 't', functions: ['s.f'] },
          ],
        },
      ],
    }),
  );
  find(problems, 'needs "schema" and "table"');
  assert.equal(problems.filter((p) => p.message.includes('execute operation and "functions"')).length, 2);
});

void test('mask rules: unknown exempt role, missing parameters, parameters of another kind, bad type hint', () => {
  const problems = problemsOf(() =>
    loadPolicyFromObject({
      version: 1,
      masks: [
        { table: 's.t', column: 'a', mask: 'partial', unmasked_for: ['ghost'] },
        { table: 's.t', column: 'b', mask: 'hash', keep_last: 2 },
        { table: 's.t', column: 'c', mask: 'redact', type: 'int; drop table x' },
        { table: 's.t', column: 'd', mask: 'expr', expr: 'upper(x)' },
        { table: 's.t', column: 'd', mask: 'null' },
      ],
    }),
  );
  find(problems, 'unknown role "ghost"');
  find(problems, 'needs keep_first or keep_last');
  find(problems, '"keep_last" does not apply to a hash mask');
  find(problems, 'bad type hint');
  find(problems, 'must use the {{ column }} placeholder');
  find(problems, 'duplicate mask "s.t.d"');
});

void test('approval rules must name known groups; forbidden settings cannot be allowed', () => {
  const problems = problemsOf(() =>
    loadPolicyFromObject({
      version: 1,
      approvals: [
        { name: 'a', match: { operations: ['delete'] }, approvers: [{ group: 'nobody', count: 1 }] },
      ],
      settings: { allow: ['work_mem', 'search_path'] },
    }),
  );
  find(problems, 'unknown group "nobody"');
  find(problems, 'setting "search_path" can never be allowed');
});

void test('time windows: from equal to to is refused; a valid window loads', () => {
  const mk = (from: string, to: string) => ({
    version: 1,
    roles: [
      {
        name: 'r',
        grants: [
          { schema: 's', table: 't', operations: ['select'], when: { time: { from, to, tz: 'UTC' } } },
        ],
      },
    ],
  });
  find(
    problemsOf(() => loadPolicyFromObject(mk('08:00', '08:00'))),
    'same time',
  );
  assert.equal(loadPolicyFromObject(mk('22:00', '06:00')).usesTime, true);
});

void test('validateDocument rejects a missing version and unknown top-level keys', () => {
  assert.ok(validateDocument({}).some((e) => e.keyword === 'required'));
  assert.ok(validateDocument({ version: 1, rules: [] }).some((e) => e.keyword === 'additionalProperties'));
  assert.deepEqual(validateDocument({ version: 1 }), []);
});
