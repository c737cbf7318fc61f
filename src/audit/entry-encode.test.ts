// The encoding fast path against the reference (validateEntry + generic canonical JSON): same bytes, same refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EntryError, decodeEntry, encodeEntry, encodeEntryReference, encodeFast } from './entry.js';
import type { AuditEntry } from './entry.js';

/**
 * Both paths either give identical bytes or both throw an EntryError with the same message. With `fast`, a valid
 * entry must also have been encoded by the fast path itself (not by its fallback).
 */
function same(e: unknown, fast = false): void {
  let ref: Uint8Array | Error;
  let got: Uint8Array | Error;
  try {
    ref = encodeEntryReference(e as AuditEntry);
  } catch (x) {
    ref = x as Error;
  }
  try {
    got = encodeEntry(e as AuditEntry);
  } catch (x) {
    got = x as Error;
  }
  if (ref instanceof Error) {
    assert.ok(got instanceof Error, `fast path accepted what the reference refuses: ${ref.message}`);
    assert.ok(got instanceof EntryError);
    assert.equal(got.message, ref.message);
  } else {
    assert.ok(!(got instanceof Error), `fast path refused a valid entry: ${(got as Error).message}`);
    assert.deepEqual(Buffer.from(got), Buffer.from(ref));
    if (fast) assert.equal(encodeFast(e), Buffer.from(ref).toString('utf8'));
  }
}

// Strings with every kind of code point, lone surrogates and characters JSON must escape included.
const str = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('"', '\\', '\n', '\u0000', '\u2028', '\ud800', '\udfff', 'a', 'é', '😀'),
  }),
);
const strs = fc.array(str, { maxLength: 4 });
const int = fc.oneof(fc.nat(), fc.constant(0), fc.constant(-0), fc.constant(Number.MAX_SAFE_INTEGER));
const time = fc
  .date({
    min: new Date('1970-01-01T00:00:00.000Z'),
    max: new Date('9999-12-31T23:59:59.999Z'),
    noInvalidDate: true,
  })
  .map((d) => d.toISOString());
const principal = fc.record({
  name: str,
  kind: fc.constantFrom('human', 'service'),
  groups: strs,
});
const decision = fc.record({
  effect: fc.constantFrom('allow', 'deny', 'approval'),
  rules: strs,
  reasons: strs,
});
const json: fc.Arbitrary<unknown> = fc.jsonValue();
const base = { v: fc.constant(1), id: str.filter((s) => s.length > 0 && s.length <= 200), time };

const entries: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({
    ...base,
    kind: fc.constant('statement'),
    sessionId: str,
    principal,
    target: str,
    text: str,
    paramsHash: fc.option(str, { nil: null }),
    path: fc.constantFrom('simple', 'parse', 'mysql-query', 'mysql-prepare'),
    decision,
    policyVersion: fc.oneof(int, str),
  }),
  fc.record({
    ...base,
    kind: fc.constant('session.open'),
    sessionId: str,
    principal,
    protocol: fc.constantFrom('postgres', 'mysql'),
    target: str,
    environment: str,
    sourceAddress: str,
    tls: fc.boolean(),
    applicationName: str,
  }),
  // statement.bind, with and without its optional approvalRequestId (absent, not undefined, when left out).
  fc.record(
    {
      ...base,
      kind: fc.constant('statement.bind'),
      statementId: fc.option(str, { nil: null }),
      sessionId: str,
      statementName: str,
      paramsHash: str,
      approvalRequestId: str,
    },
    { requiredKeys: ['v', 'id', 'time', 'kind', 'statementId', 'sessionId', 'statementName', 'paramsHash'] },
  ),
  fc.record({
    ...base,
    kind: fc.constant('statement.outcome'),
    statementId: str,
    sessionId: str,
    rows: int,
    sqlstate: fc.option(str, { nil: null }),
    durationMs: int,
    tags: strs,
  }),
  fc.record({
    ...base,
    kind: fc.constantFrom('approval.granted', 'approval.requested', 'approval'),
    requestId: str,
    actor: str,
    data: fc.dictionary(str, json),
  }),
  fc.record({ ...base, kind: fc.constantFrom('config.changed'), actor: str, data: fc.dictionary(str, json) }),
  fc.record({
    ...base,
    kind: fc.constant('audit.redaction'),
    index: int,
    leafHash: str,
    reason: str,
    actor: str,
    lawfulErasure: fc.boolean(),
  }),
);

/** Damage: drop a field, add one, or replace a value with something of another type. */
const damaged = fc
  .tuple(
    entries,
    fc.nat(),
    fc.constantFrom('drop', 'add', 'replace', 'replace-nested'),
    fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.constant(1.5),
      fc.constant(-1),
      fc.constant(Number.NaN),
      fc.constant('x'),
      fc.constant(''),
      fc.constant(true),
      fc.constant([]),
      fc.constant({}),
      fc.constant(new Date(0)),
      fc.constant(['a', 1]),
      fc.constant('2024-01-01T00:00:00Z'),
    ),
  )
  .map(([e, n, how, value]) => {
    const keys = Object.keys(e);
    const k = keys[n % keys.length]!;
    const copy: Record<string, unknown> = { ...e };
    if (how === 'drop') delete copy[k];
    else if (how === 'add') copy[`extra${n % 3}`] = value;
    else if (how === 'replace') copy[k] = value;
    else {
      const inner = copy[k];
      if (typeof inner === 'object' && inner !== null && !Array.isArray(inner)) {
        const ik = Object.keys(inner);
        copy[k] = { ...inner, [ik[n % Math.max(1, ik.length)] ?? 'extra']: value };
      } else copy[k] = value;
    }
    return copy;
  });

void test('fast path: valid entries of every kind give the reference bytes', () => {
  fc.assert(
    fc.property(entries, (e) => same(e, true)),
    { numRuns: 3000 },
  );
});

void test('fast path: damaged entries are refused exactly as the reference refuses them', () => {
  fc.assert(
    fc.property(damaged, (e) => same(e)),
    { numRuns: 3000 },
  );
});

void test('fast path: unusual objects fall back to the general path', () => {
  const ok = {
    v: 1,
    kind: 'session.close',
    id: 'a',
    time: '2024-01-02T03:04:05.678Z',
    sessionId: 's',
    reason: 'r',
  };
  same(ok, true);
  same(Object.assign(Object.create(null) as object, ok), true);
  class Foo {
    v = 1;
  }
  same(Object.assign(new Foo(), ok));
  // A sparse array passes validateEntry (every skips holes) but has no canonical encoding.
  const tags: string[] = ['a'];
  tags[2] = 'c';
  same({
    v: 1,
    kind: 'statement.outcome',
    id: 'a',
    time: '2024-01-02T03:04:05.678Z',
    statementId: 's',
    sessionId: 's',
    rows: 1,
    sqlstate: null,
    durationMs: 0,
    tags,
  });
  // An inherited field is not an own field: the reference decides.
  const proto = { reason: 'r' };
  const child: Partial<Record<string, unknown>> = Object.assign(Object.create(proto) as object, ok);
  delete child.reason;
  assert.equal(child.reason, 'r');
  same(child);
  same({ ...ok, time: '2024-02-30T03:04:05.678Z' });
  same({ ...ok, v: 2 });
  same({ ...ok, kind: 'approval' });
});

void test('decoding: canonical bytes decode; any other spelling of the same entry is refused', () => {
  fc.assert(
    fc.property(entries, (e) => {
      let bytes: Uint8Array;
      try {
        bytes = encodeEntryReference(e as unknown as AuditEntry);
      } catch {
        return; // not a valid entry (e.g. a float in data): nothing to decode
      }
      assert.deepEqual(decodeEntry(bytes), JSON.parse(Buffer.from(bytes).toString('utf8')));
      const text = Buffer.from(bytes).toString('utf8');
      const variants = [
        `\ufeff${text}`,
        `${text} `,
        text.replace('"v":1}', '"v": 1}'),
        `{ ${text.slice(1)}`,
        text.replace('"v":1', '"v":1.0'),
        text.replace('"kind":', '"\\u006bind":'),
        text.replace(/^\{"([a-z]+)"/, '{"$1" '),
      ].filter((v) => v !== text);
      for (const v of variants) {
        let parsed = true;
        try {
          JSON.parse(v);
        } catch {
          parsed = false;
        }
        assert.throws(
          () => decodeEntry(Buffer.from(v, 'utf8')),
          EntryError,
          `${parsed ? 'valid JSON ' : ''}${v}`,
        );
      }
    }),
    { numRuns: 500 },
  );
});
