// Tests for the MySQL literal fast path: the lexer's bail-outs and classes, template eligibility, and differential properties (fast path = cold path, for the analysis and for the policy hook's verdicts).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { Principal, StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicy } from '../policy/index.js';
import { CatalogCache } from '../enforce/catalog-cache.js';
import { mysqlDialect } from '../enforce/mysql-dialect.js';
import { createPolicyHook } from '../enforce/policy-hook.js';
import { analyzeMysql } from './analyze.js';
import { mysqlLiteralShape } from './fast-path.js';

const DB = 'wcorpus';

/** What the hook reads of a cold analysis (as the dialect presents it). */
function coldView(sql: string): unknown {
  const a = analyzeMysql(sql, { database: DB });
  const statements = a.statements.map((s) => s.summary);
  return {
    analysis: a.error !== undefined ? { statements, error: a.error } : { statements },
    ...(a.denied !== undefined ? { denied: a.denied } : {}),
  };
}

describe('mysqlLiteralShape', () => {
  it('abstracts the literals of the benchmark statements and keeps everything else verbatim', () => {
    const a = mysqlLiteralShape('SELECT abalance FROM bench_accounts WHERE aid = 81234;');
    const b = mysqlLiteralShape('SELECT abalance FROM bench_accounts WHERE aid = 7;');
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.key, b.key);
    assert.equal(a.key, 'SELECT abalance FROM bench_accounts WHERE aid = \u0001i;');
    assert.equal(a.statementText, 'SELECT abalance FROM bench_accounts WHERE aid = 81234');
    const s = mysqlLiteralShape("SELECT `name` FROM t WHERE e = 'a -- b /* c ; d' AND id IN (1, 2.50)");
    assert.equal(s?.key, 'SELECT `name` FROM t WHERE e = \u0001s AND id IN (\u0001i, \u0001d)');
  });

  it('tells texts that differ in anything but literal values apart', () => {
    const k = (sql: string): string | undefined => mysqlLiteralShape(sql)?.key;
    assert.notEqual(k('SELECT 1 FROM t'), k('SELECT  1 FROM t'));
    assert.notEqual(k('SELECT a FROM t WHERE a = 1'), k('SELECT a FROM t WHERE a = b'));
    assert.notEqual(k('SELECT a FROM t WHERE a = 1'), k("SELECT a FROM t WHERE a = '1'"));
    assert.notEqual(k('SELECT a FROM t WHERE a = 1'), k('SELECT a FROM t WHERE a = 1.0'));
    assert.notEqual(k('SELECT `x` FROM t'), k('SELECT `y` FROM t'));
    // Numbers inside the parentheses of a function or type stay verbatim.
    assert.notEqual(k('SELECT LEFT(a, 3) FROM t'), k('SELECT LEFT(a, 4) FROM t'));
    assert.notEqual(
      k('SELECT CAST(a AS DECIMAL(10, 2)) FROM t'),
      k('SELECT CAST(a AS DECIMAL(65, 2)) FROM t'),
    );
    assert.equal(k('SELECT a FROM t WHERE a IN (1, 2)'), k('SELECT a FROM t WHERE a IN (3, 4)'));
  });

  it('gives up on everything the server may read differently or that smuggles', () => {
    for (const sql of [
      'SELECT 1 # comment',
      'SELECT 1 -- comment',
      'SELECT 1 --1',
      'SELECT 1 /* c */',
      'SELECT /*!50000 1 */',
      'SELECT "x"',
      "SELECT 'a\\'b'",
      "SELECT 'a''b'",
      "SELECT 'a\\b'",
      "SELECT a FROM t WHERE a IN ('\\', (SELECT ssn FROM customers), '')",
      "SELECT 'a' 'b'",
      "SELECT x'1F'",
      "SELECT X'1F'",
      "SELECT b'01'",
      "SELECT N'x'",
      "SELECT _utf8mb4'x'",
      "SELECT _latin1 'x'",
      'SELECT 0x1F',
      'SELECT 0b01',
      'SELECT 007',
      'SELECT 1e5',
      'SELECT .5',
      'SELECT 1.',
      'SELECT 1234567890',
      'SELECT @a',
      'SELECT @@version',
      'SELECT a FROM t WHERE a = ?',
      'SELECT $1',
      'SELECT {d 1}',
      "SELECT 'é'",
      'SELECT `é`',
      'SELECT `a``b`',
      'SELECT 1; SELECT 2',
      'SELECT 1;;',
      'SELECT\u000b1',
      `SELECT ${'1 + '.repeat(2000)}1`,
      'SELECT (1',
      'SELECT 1)',
    ]) {
      assert.equal(mysqlLiteralShape(sql), undefined, sql);
    }
  });
});

describe('MySQL templates', () => {
  it('shares the analysis of a shape from its second text on, with each text as its own', () => {
    const d = mysqlDialect({ database: DB }, { checkSqlMode: false });
    const q = (n: number): string => `SELECT id, amount FROM orders WHERE id = ${n}`;
    assert.equal(d.analyze(q(1)).key, `mt${q(1)}`);
    assert.equal(d.analyze(q(2)).key.startsWith('ms'), true);
    const third = d.analyze(q(3));
    assert.equal(third.key, d.analyze(q(4)).key);
    assert.deepEqual(third.analysis, (coldView(q(3)) as { analysis: unknown }).analysis);
    assert.equal(third.analysis.statements[0]?.text, q(3));
    // fastPath: false keys by text.
    assert.equal(d.analyze(q(5), { fastPath: false }).key, `mt${q(5)}`);
  });

  it('keeps value-dependent, denied and non-plain statements on the ordinary path', () => {
    const d = mysqlDialect({ database: DB }, { checkSqlMode: false });
    for (const q of [
      (n: number) => `DELETE FROM orders WHERE id + ${n} = id + ${n + 1}`, // tautology test reads values
      (n: number) => `SELECT SLEEP(${n})`, // always denied
      (n: number) => `SELECT wcorpus.order_total(${n})`, // stored function
      (n: number) => `SET @@session.max_statement_time = ${n}`, // settings
      (n: number) => `SELECT id FROM orders WHERE id = ${n} INTO OUTFILE '/tmp/x${n}'`,
    ]) {
      for (let n = 1; n <= 4; n++) {
        const r = d.analyze(q(n));
        assert.ok(r.key.startsWith('mt'), `${q(n)}: ${r.key}`);
        assert.deepEqual({ ...r, key: undefined }, { ...(coldView(q(n)) as object), key: undefined }, q(n));
      }
    }
  });
});

// --- Differential properties ---------------------------------------------------------------------------------

/** A statement skeleton: text parts and literal slots (null). */
type Skeleton = (string | null)[];

const { expr } = fc.letrec<{ expr: Skeleton }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<Skeleton>([null]),
    fc.constantFrom<Skeleton>(['id'], ['amount'], ['`amount`'], ['NULL'], ['TRUE'], ['CURRENT_DATE']),
    fc
      .tuple(
        tie('expr'),
        fc.constantFrom(
          ' = ',
          ' + ',
          ' - ',
          ' * ',
          ' < ',
          ' <> ',
          ' AND ',
          ' OR ',
          ' XOR ',
          ' LIKE ',
          ' DIV ',
        ),
        tie('expr'),
      )
      .map(([a, op, b]) => [...a, op, ...b]),
    tie('expr').map((a) => ['(', ...a, ')']),
    tie('expr').map((a) => ['- ', ...a]),
    tie('expr').map((a) => ['NOT ', ...a]),
    tie('expr').map((a) => [...a, ' IS NULL']),
    tie('expr').map((a) => ['CAST(', ...a, ' AS DECIMAL(', null, ', ', null, '))']),
    tie('expr').map((a) => ['LEFT(', ...a, ', ', null, ')']),
    fc
      .tuple(
        fc.constantFrom(
          'abs',
          'lower',
          'count',
          'coalesce',
          'length',
          'round',
          'sleep',
          'load_file',
          'wcorpus.order_total',
        ),
        tie('expr'),
      )
      .map(([f, a]) => [`${f}(`, ...a, ')']),
    fc
      .tuple(tie('expr'), tie('expr'), tie('expr'))
      .map(([a, b, c]) => [...a, ' IN (', ...b, ', ', ...c, ')']),
    fc
      .tuple(tie('expr'), tie('expr'), tie('expr'))
      .map(([a, b, c]) => [...a, ' BETWEEN ', ...b, ' AND ', ...c]),
    fc
      .tuple(tie('expr'), tie('expr'), tie('expr'))
      .map(([a, b, c]) => ['CASE WHEN ', ...a, ' THEN ', ...b, ' ELSE ', ...c, ' END']),
    fc.constantFrom<Skeleton>(['DATE ', null], ['INTERVAL ', null, ' DAY + CURRENT_DATE']),
  ),
}));

const skeleton: fc.Arbitrary<Skeleton> = fc.oneof(
  fc.tuple(expr, expr).map(([a, b]) => ['SELECT ', ...a, ' FROM orders WHERE ', ...b]),
  fc.tuple(expr, expr).map(([a, b]) => ['UPDATE orders SET amount = ', ...a, ' WHERE ', ...b, ';']),
  expr.map((a) => ['DELETE FROM orders WHERE ', ...a]),
  expr.map((a) => ['DELETE FROM ledger WHERE ', ...a]),
  fc.tuple(expr, expr).map(([a, b]) => ['INSERT INTO orders (id, amount) VALUES (', ...a, ', ', ...b, ')']),
  fc
    .tuple(expr, expr)
    .map(([a, b]) => ['SELECT name, ssn, email FROM customers WHERE ', ...a, ' LIMIT ', ...b]),
  fc.tuple(expr, expr).map(([a, b]) => ['SELECT * FROM customers c WHERE ', ...a, ' ORDER BY ', ...b]),
);

/** Literals of every kind, hostile ones included (most are refused by the lexer and must still agree). */
const hostileString = fc.oneof(
  fc.string({ maxLength: 8 }).map((x) => `'${x.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`),
  fc.string({ maxLength: 8 }).map((x) => `'${x.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`),
  fc.constantFrom(
    "'x'' OR 1=1 -- '",
    "'a\\' OR 1=1 #'",
    "'/*!50000 SLEEP(1) */'",
    "'; DROP TABLE orders; --'",
    "'`'",
    "'\"'",
    "'#'",
    "'--'",
    "'@@version'",
  ),
);
const anyLiteral = fc.oneof(
  fc.integer({ min: 0, max: 999_999_999 }).map(String),
  fc.bigInt({ min: 0n, max: 10n ** 22n }).map(String),
  fc.constantFrom(
    '0x1F',
    "x'1F'",
    "b'01'",
    "_utf8mb4'x'",
    "N'x'",
    '"dq"',
    '1e3',
    '.5',
    '007',
    '@v',
    '?',
    'NULL',
  ),
  hostileString,
);
const decimalLiteral = fc
  .tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 99 }))
  .map(([a, b]) => `${a}.${b}`);
const slotLiteral = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(fc.integer({ min: 0, max: 60 }).map(String), decimalLiteral) },
  { weight: 1, arbitrary: fc.stringMatching(/^[a-z %_.,;#*/-]{0,6}$/).map((x) => `'${x}'`) },
  { weight: 2, arbitrary: anyLiteral },
);

/** A skeleton and several fillings of its slots. */
const filled = skeleton.chain((sk) => {
  const slots = sk.filter((x) => x === null).length;
  return fc
    .array(fc.array(slotLiteral, { minLength: slots, maxLength: slots }), { minLength: 3, maxLength: 6 })
    .map((fillings) =>
      fillings.map((lits) => {
        let k = 0;
        return sk.map((x) => (x === null ? (lits[k++] as string) : x)).join('');
      }),
    );
});

describe('MySQL fast path = cold path (differential)', () => {
  it('the dialect gives exactly the analysis of a cold parse, for every text', () => {
    const d = mysqlDialect({ database: DB }, { checkSqlMode: false });
    let shared = 0;
    fc.assert(
      fc.property(filled, (texts) => {
        for (const sql of texts) {
          const fast = d.analyze(sql);
          if (fast.key.startsWith('ms')) shared++;
          const { key: _key, ...rest } = fast;
          assert.deepEqual(rest, coldView(sql), sql);
        }
      }),
      { numRuns: 400 },
    );
    assert.ok(shared > 15, `only ${shared} shape-keyed analyses`);
    process.stdout.write(`# ${shared} shape-keyed analyses\n`);
  });

  it('the hook gives the same verdict (decision and forwarded SQL) with and without the fast path', async () => {
    const policyDir = fileURLToPath(new URL('../../test/corpus-mysql/fixtures/policy/', import.meta.url));
    const policy = loadPolicy(policyDir);
    const columns: Record<string, string[]> = {
      'wcorpus.customers': ['id', 'name', 'email', 'ssn', 'tenant_id'],
      'wcorpus.orders': ['id', 'customer_id', 'amount', 'created_at'],
      'wcorpus.ledger': ['id', 'account', 'amount', 'created_at'],
    };
    const catalog = (): CatalogCache =>
      new CatalogCache(DB, (s, t) => Promise.resolve(columns[`${s}.${t}`] ?? []));
    const target: TargetConfig = {
      name: DB,
      engine: 'mysql',
      host: '127.0.0.1',
      port: 1,
      database: DB,
      environment: 'test',
      tls: { mode: 'disable' },
      searchPath: [],
      logins: new Map([['root', { user: 'root' }]]),
      policy: { kind: 'folder', path: policyDir },
    };
    const fast = await createPolicyHook(target, policy, {
      catalog: catalog(),
      dialect: mysqlDialect(target, { checkSqlMode: false }),
    });
    const cold = await createPolicyHook(target, policy, {
      catalog: catalog(),
      dialect: mysqlDialect(target, { checkSqlMode: false }),
      fastPath: false,
    });
    const at = new Date('2024-01-15T12:00:00Z');
    const principals: Record<string, Principal> = {
      alice: { name: 'alice', kind: 'human', groups: ['analysts'], attributes: { tenant: '1' } },
      bob: { name: 'bob', kind: 'human', groups: ['writers'], attributes: {} },
      svc: { name: 'svc', kind: 'service', groups: [], attributes: {} },
    };
    const request = (user: string, sql: string): StatementRequest => ({
      session: {
        sessionId: `diff-${user}`,
        protocol: 'mysql',
        principal: principals[user] as Principal,
        target: DB,
        environment: 'test',
        database: DB,
        sourceAddress: '127.0.0.1',
        tls: false,
        applicationName: 'test',
        startedAt: at,
      },
      sql,
      path: 'simple',
      receivedAt: at,
      notice: () => undefined,
      signal: new AbortController().signal,
    });
    const comparable = (v: StatementVerdict): unknown => {
      const dd = v.decision as Record<string, unknown> | undefined;
      const { cached: _cached, ...rest } = dd ?? {};
      return { ...v, decision: rest };
    };
    let allowsRewritten = 0;
    let allows = 0;
    try {
      await fc.assert(
        fc.asyncProperty(filled, fc.constantFrom('alice', 'bob', 'svc'), async (texts, user) => {
          for (const sql of texts) {
            const a = await fast.check(request(user, sql));
            const b = await cold.check(request(user, sql));
            assert.deepEqual(comparable(a), comparable(b), `${user}: ${sql}`);
            if (a.action === 'allow') allows++;
            if (a.action === 'allow' && a.sql !== undefined) allowsRewritten++;
          }
        }),
        { numRuns: 300 },
      );
    } finally {
      await fast.close();
      await cold.close();
    }
    assert.ok(allows > 0, 'no statement was allowed');
    assert.ok(allowsRewritten > 0, 'no masked statement was generated');
  });
});
