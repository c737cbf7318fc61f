// Tests for canonical entry encoding: exact bytes, strict decoding, every kind, and a round-trip property.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  EntryError,
  canonicalJson,
  decodeEntry,
  encodeEntry,
  encodeEntryReference,
  makeEntry,
} from './entry.js';
import type { AuditEntry, StatementBindEntry, StatementEntry } from './entry.js';

const time = new Date('2024-05-06T07:08:09.010Z');
const principal = { name: 'alice', kind: 'human', groups: ['dba'] } as const;

const statement = makeEntry<StatementEntry>({
  kind: 'statement',
  id: 's1',
  time,
  sessionId: 'sess1',
  principal,
  target: 'prod',
  text: 'SELECT "é"\n',
  paramsHash: null,
  path: 'simple',
  decision: { effect: 'allow', rules: ['r1'], reasons: [] },
  policyVersion: 3,
});

void test('canonical bytes: sorted keys, no whitespace, UTF-8', () => {
  const s = Buffer.from(encodeEntry(statement)).toString('utf8');
  assert.equal(
    s,
    '{"decision":{"effect":"allow","reasons":[],"rules":["r1"]},"id":"s1","kind":"statement","paramsHash":null,' +
      '"path":"simple","policyVersion":3,"principal":{"groups":["dba"],"kind":"human","name":"alice"},' +
      '"sessionId":"sess1","target":"prod","text":"SELECT \\"é\\"\\n","time":"2024-05-06T07:08:09.010Z","v":1}',
  );
  assert.equal(
    Buffer.from(canonicalJson({ b: 1, a: [true, null, 'x'] })).toString(),
    '{"a":[true,null,"x"],"b":1}',
  );
});

void test('every kind encodes and decodes to the same value and bytes', () => {
  const all: AuditEntry[] = [
    statement,
    makeEntry({
      kind: 'session.open',
      time,
      sessionId: 's',
      principal,
      protocol: 'postgres',
      target: 't',
      environment: 'prod',
      sourceAddress: '10.0.0.1',
      tls: true,
      applicationName: 'psql',
    }),
    makeEntry({ kind: 'session.close', time, sessionId: 's', reason: 'client closed' }),
    makeEntry({
      kind: 'auth.success',
      time,
      sessionId: 's',
      principal,
      method: 'scram-sha-256',
      target: 't',
      sourceAddress: '::1',
    }),
    makeEntry({
      kind: 'auth.failure',
      time,
      user: 'mallory',
      target: 't',
      sourceAddress: '::1',
      reason: 'bad password',
    }),
    makeEntry({
      kind: 'statement.outcome',
      time,
      statementId: 's1',
      sessionId: 's',
      rows: 3,
      sqlstate: null,
      durationMs: 12,
      tags: ['SELECT 3'],
    }),
    makeEntry({ kind: 'approval.granted', time, requestId: 'r', actor: 'bob', data: { n: 1, list: ['a'] } }),
    makeEntry({ kind: 'config.activated', time, actor: 'carol', data: { version: 4 } }),
  ];
  for (const e of all) {
    const bytes = encodeEntry(e);
    assert.deepEqual(decodeEntry(bytes), e);
    assert.deepEqual(encodeEntry(decodeEntry(bytes)), bytes);
  }
});

void test('encoding refuses floats, NaN, unknown kinds, missing and extra fields, bad times', () => {
  const bad: unknown[] = [
    { ...statement, policyVersion: 1.5 },
    { ...statement, policyVersion: NaN },
    { ...statement, policyVersion: 2 ** 60 },
    { ...statement, kind: 'statement.weird' },
    { ...statement, v: 2 },
    { ...statement, extra: 1 },
    { ...statement, time: '2024-05-06T07:08:09Z' },
    { ...statement, time: '2024-02-30T07:08:09.000Z' },
    { ...statement, decision: { effect: 'maybe', rules: [], reasons: [] } },
    { ...statement, path: 'telnet' },
    { ...statement, principal: { ...principal, password: 'x' } },
    { ...statement, id: '' },
    { kind: 'approval.', v: 1, id: 'x', time: statement.time, requestId: 'r', actor: 'a', data: {} },
    { kind: 'config.x', v: 1, id: 'x', time: statement.time, actor: 'a', data: { f: 0.5 } },
  ];
  for (const b of bad) assert.throws(() => encodeEntry(b as AuditEntry), EntryError, JSON.stringify(b));
  const { text: _t, ...missing } = statement;
  assert.throws(() => encodeEntry(missing as unknown as AuditEntry), EntryError);
});

void test('statement.bind: without the optional approvalRequestId the bytes are as before; with it, sorted in', () => {
  const bind = makeEntry<StatementBindEntry>({
    kind: 'statement.bind',
    id: 'b1',
    time,
    statementId: 's1',
    sessionId: 'sess1',
    statementName: '',
    paramsHash: 'ab',
  });
  // Pinned bytes: a log written before the optional field existed still verifies byte for byte.
  assert.equal(
    Buffer.from(encodeEntry(bind)).toString('utf8'),
    '{"id":"b1","kind":"statement.bind","paramsHash":"ab","sessionId":"sess1","statementId":"s1",' +
      '"statementName":"","time":"2024-05-06T07:08:09.010Z","v":1}',
  );
  const approved: StatementBindEntry = { ...bind, approvalRequestId: 'ar_0123456789abcdef' };
  const bytes = encodeEntry(approved);
  assert.equal(
    Buffer.from(bytes).toString('utf8'),
    '{"approvalRequestId":"ar_0123456789abcdef","id":"b1","kind":"statement.bind","paramsHash":"ab",' +
      '"sessionId":"sess1","statementId":"s1","statementName":"","time":"2024-05-06T07:08:09.010Z","v":1}',
  );
  assert.deepEqual(decodeEntry(bytes), approved);
  assert.deepEqual(Buffer.from(encodeEntryReference(approved)), Buffer.from(bytes));
  // The optional field has a type, and belongs to statement.bind only.
  for (const bad of [null, 1, undefined, ['x']]) {
    assert.throws(
      () => encodeEntry({ ...bind, approvalRequestId: bad } as unknown as AuditEntry),
      /approvalRequestId/,
    );
  }
  assert.throws(
    () => encodeEntry({ ...statement, approvalRequestId: 'ar_1' } as unknown as AuditEntry),
    /unexpected field approvalRequestId in statement/,
  );
});

void test('decoding refuses non-canonical bytes of a valid entry', () => {
  const s = Buffer.from(encodeEntry(statement)).toString('utf8');
  const variants = [
    s.replace('"policyVersion":3', '"policyVersion":3.0'),
    s.replace('"policyVersion":3', '"policyVersion":3e0'),
    s.replace('{"decision"', '{ "decision"'),
    s.replace('"id":"s1",', '"id":"s0","id":"s1",'), // duplicate key
    s.replace('"id":"s1","kind"', '"kind":"statement","id":"s1","kindx"'),
    s.replace('é', '\\u00e9'),
    s + '\n',
  ];
  for (const v of variants) assert.throws(() => decodeEntry(Buffer.from(v, 'utf8')), EntryError, v);
  assert.throws(() => decodeEntry(Buffer.from([0x7b, 0xff, 0x7d])), EntryError);
});

void test('property: arbitrary statement texts and data round-trip byte for byte', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), fc.jsonValue(), (text, data) => {
      const e = { ...statement, text };
      assert.deepEqual(decodeEntry(encodeEntry(e)), e);
      const c = makeEntry({ kind: 'config.x', time, actor: 'a', data: { data: data as never } });
      let bytes: Uint8Array;
      try {
        bytes = encodeEntry(c);
      } catch (err) {
        // Only non-integers (and -0) are refused.
        assert.ok(err instanceof EntryError && /integer/.test(err.message), String(err));
        return;
      }
      assert.deepEqual(encodeEntry(decodeEntry(bytes)), bytes);
    }),
  );
});

void test('policyVersion: a bundle number or a non-empty identifier string (e.g. a policy content hash)', () => {
  const hashed = { ...statement, policyVersion: 'sha256:0a1b' };
  assert.deepEqual(decodeEntry(encodeEntry(hashed)), hashed);
  for (const bad of ['', 'x'.repeat(201), -1, true, null]) {
    assert.throws(
      () => encodeEntry({ ...statement, policyVersion: bad } as unknown as AuditEntry),
      EntryError,
    );
  }
});
