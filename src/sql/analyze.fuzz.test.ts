// Property-based fuzzing of the statement analyser with random and mutated real statements (the bypass corpus):
// it never throws, stays fast, and never returns a usable summary for a string the PostgreSQL parser rejects.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseSync } from 'libpg-query';
import { analyze, analyzeCached, initSqlAnalyser } from './analyze.js';
import { CASES } from '../../test/corpus/cases.js';

const RUNS = Number(process.env['WARDEN_FUZZ_RUNS'] ?? 2000);
const SP = { searchPath: ['public'] };
/** Per-statement time bound (the analyser is synchronous on the statement path: a slow input stalls a session). */
const MAX_MS = 1000;

const SEEDS: readonly string[] = [
  ...new Set(CASES.flatMap((c) => (typeof c.sql === 'string' ? [c.sql] : [...c.sql]))),
  'SELECT name, ssn FROM customers WHERE tenant_id = 1',
  "DO $$ BEGIN PERFORM 1; EXECUTE 'DELETE FROM ledger'; END $$",
  'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$',
  'WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x',
];

before(async () => {
  await initSqlAnalyser();
});

/** Whether libpg-query itself accepts the string. */
function parserAccepts(sql: string): boolean {
  try {
    parseSync(sql);
    return true;
  } catch {
    return false;
  }
}

/** Analyses `sql`, checking the properties every input must satisfy; returns the analysis. */
function check(sql: string): void {
  const t = performance.now();
  let a: ReturnType<typeof analyze>;
  try {
    a = analyze(sql, SP);
  } catch (e) {
    throw new Error(`analyze threw on ${JSON.stringify(sql.slice(0, 200))}: ${String(e)}`, { cause: e });
  }
  const took = performance.now() - t;
  assert.ok(took < MAX_MS, `analyze took ${took.toFixed(0)} ms on ${sql.length} chars`);
  if (a.error !== undefined) {
    // INVARIANT: a parse error yields no statement summaries at all (the whole string is denied).
    assert.equal(a.statements.length, 0, 'statements returned alongside a parse error');
    return;
  }
  // The analyser accepted the string: the real parser must accept it too (never "allow-able garbage").
  assert.ok(parserAccepts(sql), `analyser returned a summary for a string libpg-query rejects: ${sql}`);
  for (const s of a.statements) {
    assert.equal(typeof s.kind, 'string');
    assert.ok(Array.isArray(s.relations) && Array.isArray(s.functions) && Array.isArray(s.settings));
    for (const r of s.relations) assert.ok(r.name.length > 0, 'a relation without a name');
  }
}

const mutated: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...SEEDS),
    fc.array(
      fc.oneof(
        fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
        fc.record({ op: fc.constant('del' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
        fc.record({
          op: fc.constant('ins' as const),
          at: fc.nat(),
          s: fc.oneof(
            fc.constantFrom(
              ';',
              "'",
              '"',
              '$$',
              '$a$',
              '/*',
              '*/',
              '--',
              '\n',
              '(',
              ')',
              ',',
              '\\',
              "E'",
              'U&"',
              '::regclass',
              ' UNION SELECT * FROM secrets',
              '; DELETE FROM ledger',
              '\0',
              '\u00a0',
              '\ud800',
            ),
            fc.string({ maxLength: 6 }),
          ),
        }),
        fc.record({ op: fc.constant('dup' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 30 }) }),
        fc.record({ op: fc.constant('case' as const), at: fc.nat() }),
      ),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(([seed, ops]) => {
    let s = seed;
    for (const o of ops) {
      const at = s.length === 0 ? 0 : o.at % (s.length + 1);
      switch (o.op) {
        case 'cut':
          s = s.slice(0, at);
          break;
        case 'del':
          s = s.slice(0, at) + s.slice(at + o.n);
          break;
        case 'ins':
          s = s.slice(0, at) + o.s + s.slice(at);
          break;
        case 'dup':
          s = s.slice(0, at) + s.slice(at, at + o.n) + s.slice(at);
          break;
        case 'case':
          s = s.slice(0, at) + s.slice(at).toUpperCase();
          break;
      }
    }
    return s;
  });

describe('fuzz: the statement analyser', () => {
  test('the seeds are real statements (the parser accepts most of them)', () => {
    const accepted = SEEDS.filter(parserAccepts).length;
    assert.ok(SEEDS.length > 300 && accepted > SEEDS.length * 0.9, `${accepted}/${SEEDS.length}`);
  });

  test('random strings: never throws, bounded time, no summary for what the parser rejects', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 })),
        check,
      ),
      { numRuns: RUNS },
    );
  });

  test('mutated real statements: never throws, bounded time, no summary for what the parser rejects', () => {
    fc.assert(fc.property(mutated, check), { numRuns: RUNS });
  });

  test('pathological sizes: deep nesting, long lists, many statements, huge literals', () => {
    const inputs = [
      `SELECT ${'('.repeat(5000)}1${')'.repeat(5000)}`,
      `SELECT ${'('.repeat(200)}1${')'.repeat(200)}`,
      `SELECT * FROM t WHERE a IN (${Array.from({ length: 20000 }, (_, i) => i).join(',')})`,
      'SELECT 1;'.repeat(5000),
      `SELECT '${'x'.repeat(1 << 20)}'`,
      `SELECT ${Array.from({ length: 2000 }, (_, i) => `c${i}`).join(', ')} FROM t`,
      `SELECT * FROM ${Array.from({ length: 300 }, (_, i) => `t${i}`).join(' JOIN ')}`,
      `WITH ${Array.from({ length: 500 }, (_, i) => `c${i} AS (SELECT ${i})`).join(', ')} SELECT 1`,
      `SELECT ${'ARRAY['.repeat(3000)}1${']'.repeat(3000)}`,
      `SELECT 1 ${'+ 1 '.repeat(50000)}`,
      `DO $$ BEGIN ${'IF true THEN '.repeat(1000)} NULL; ${'END IF; '.repeat(1000)} END $$`,
    ];
    for (const sql of inputs) check(sql);
  });

  test('the cache gives the same answers as a fresh analysis', () => {
    fc.assert(
      fc.property(mutated, (sql) => {
        const a = analyzeCached(sql, SP);
        const b = analyze(sql, SP);
        assert.deepEqual(a, b);
      }),
      { numRuns: 300 },
    );
  });
});
