// Tests for the literal fast path: the lexer's bail-outs and classes, template eligibility, and differential properties (fast path = cold path, for the analysis and for the hook's verdicts).

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Principal, StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicy } from '../policy/index.js';
import { CatalogCache } from '../enforce/catalog-cache.js';
import { createPolicyHook } from '../enforce/policy-hook.js';
import type { PolicyHook } from '../enforce/policy-hook.js';
import { analyze, clearAnalysisCache, initSqlAnalyser } from './analyze.js';
import { analyzeShaped, clearShapeCache, literalShape } from './fast-path.js';

const OPTS = { searchPath: ['public'] };

before(async () => {
  await initSqlAnalyser();
});

describe('literalShape', () => {
  it('abstracts the literals of pgbench statements and keeps everything else verbatim', () => {
    const a = literalShape('UPDATE pgbench_accounts SET abalance = abalance + -4211 WHERE aid = 88123;');
    const b = literalShape('UPDATE pgbench_accounts SET abalance = abalance + -7 WHERE aid = 1;');
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.key, b.key);
    assert.equal(a.key, 'UPDATE pgbench_accounts SET abalance = abalance + -\u0001i WHERE aid = \u0001i;');
    assert.equal(
      a.statementText,
      'UPDATE pgbench_accounts SET abalance = abalance + -4211 WHERE aid = 88123',
    );
    assert.deepEqual(
      a.literals.map((l) => l.cls),
      ['i', 'i'],
    );
    const s = literalShape("SELECT name FROM customers WHERE email = 'a''b--c/*d;e' AND id IN (1, 2.50)");
    assert.equal(s?.key, 'SELECT name FROM customers WHERE email = \u0001s AND id IN (\u0001i, \u0001d)');
  });

  it('tells texts that differ in anything but literal values apart', () => {
    const k = (sql: string): string | undefined => literalShape(sql)?.key;
    assert.notEqual(k('SELECT 1 FROM t'), k('SELECT  1 FROM t'));
    assert.notEqual(k('SELECT a FROM t WHERE a = 1'), k('SELECT a FROM t WHERE a = b'));
    assert.notEqual(k('SELECT a FROM t WHERE a = 1'), k("SELECT a FROM t WHERE a = '1'"));
    assert.notEqual(k('SELECT a FROM t WHERE a = 1'), k('SELECT a FROM t WHERE a = 1.0'));
    assert.notEqual(k('SELECT "x" FROM t'), k('SELECT "y" FROM t'));
  });

  it('splits integers where PostgreSQL splits ICONST from FCONST', () => {
    const cls = (sql: string): string | undefined => literalShape(sql)?.literals[0]?.cls;
    assert.equal(cls('SELECT 2147483647'), 'i');
    assert.equal(cls('SELECT 0002147483647'), 'i');
    assert.equal(cls('SELECT 2147483648'), 'b');
    assert.equal(cls('SELECT 99999999999999999999999'), 'b');
    assert.equal(cls('SELECT 0'), 'i');
    assert.equal(cls('SELECT 3.25'), 'd');
  });

  it('keeps numbers inside the parentheses of a word verbatim (type modifiers the grammar checks)', () => {
    const a = literalShape('SELECT 1::float(53)');
    assert.equal(a?.key, 'SELECT \u0001i::float(53)');
    assert.equal(literalShape('SELECT abs(-5)')?.key, 'SELECT abs(-5)');
    assert.equal(literalShape('SELECT 1::"numeric"(10, 2)')?.key, 'SELECT \u0001i::"numeric"(10, 2)');
    // Grouping parentheses: abstracted.
    assert.equal(literalShape('SELECT a FROM t WHERE (a = 1)')?.key, 'SELECT a FROM t WHERE (a = \u0001i)');
    assert.equal(literalShape('INSERT INTO t (a) VALUES (1)')?.key, 'INSERT INTO t (a) VALUES (\u0001i)');
  });

  it('bails out on everything that is not plain', () => {
    const bail = [
      "SELECT E'a\\nb'",
      "SELECT e'x'",
      "SELECT U&'d\\0061t'",
      'SELECT U&"a"',
      "SELECT B'0101'",
      "SELECT X'1F'",
      "SELECT N'x'",
      "SELECT 'a\\'",
      'SELECT $$x$$',
      'SELECT $tag$x$tag$',
      'SELECT a FROM t WHERE a = $1',
      'SELECT 1 -- comment',
      'SELECT /* c */ 1',
      'SELECT 1; SELECT 2',
      'SELECT 1;;',
      "SELECT 'é'",
      'SELECT "é"',
      'SELECT 1\fFROM t',
      'SELECT 1e5',
      'SELECT 0x1F',
      'SELECT 1_000',
      'SELECT 12abc',
      'SELECT .5',
      'SELECT 1.',
      'SELECT 1..2',
      "SELECT 'unterminated",
      'SELECT "unterminated',
      'SELECT a$b FROM t',
      'SELECT (1))',
      `SELECT ${'1+'.repeat(3000)}1`,
      '',
    ];
    for (const sql of bail) assert.equal(literalShape(sql), undefined, sql);
  });
});

describe('analyzeShaped', () => {
  it('shares the analysis of eligible shapes, with the statement text of each text', () => {
    clearShapeCache();
    clearAnalysisCache();
    // A shape's first text is analysed on its own; the template is built when the shape comes back.
    const once = analyzeShaped('SELECT abalance FROM pgbench_accounts WHERE aid = 7;', OPTS);
    assert.equal(once.shared, false);
    assert.equal(once.key, 'tSELECT abalance FROM pgbench_accounts WHERE aid = 7;');
    const first = analyzeShaped('SELECT abalance FROM pgbench_accounts WHERE aid = 1;', OPTS);
    assert.equal(first.shared, false);
    assert.ok(first.key.startsWith('s'));
    const second = analyzeShaped('SELECT abalance FROM pgbench_accounts WHERE aid = 99;', OPTS);
    assert.equal(second.shared, true);
    assert.equal(second.key, first.key);
    assert.deepEqual(second.analysis, analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 99;', OPTS));
    assert.equal(second.analysis.statements[0]?.text, 'SELECT abalance FROM pgbench_accounts WHERE aid = 99');
  });

  it('refuses templates whose analysis depends on literals or is not a plain DML statement', () => {
    clearShapeCache();
    const notShared = [
      ["SELECT set_config('search_path', 'evil', false)", "SELECT set_config('role', 'x', false)"],
      ["SELECT pg_read_file('/etc/passwd')", "SELECT pg_read_file('/etc/shadow')"],
      ["SELECT nextval('seq_a')", "SELECT nextval('seq_b')"],
      ["SET search_path = 'a'", "SET search_path = 'b'"],
      ["SHOW 'x'", "SHOW 'y'"],
      ['SELECT 1::float(53)', 'SELECT 1::float(54)'],
      ["COPY t TO 'a'", "COPY t TO 'b'"],
      [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2'",
      ],
      ["DO 'BEGIN NULL; END'", "DO 'BEGIN PERFORM 1; END'"],
      ['SELECT a FROM nonsense WHERE', 'SELECT a FROM nonsense WHERE'],
    ];
    for (const [a, b] of notShared) {
      const x = analyzeShaped(a as string, OPTS);
      const y = analyzeShaped(b as string, OPTS);
      assert.equal(y.shared, false, b);
      assert.ok(y.key === `t${b}` || x.key !== y.key, b);
      assert.deepEqual(y.analysis, analyze(b as string, OPTS), b);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Differential properties

/** Adversarial string contents: quotes, comment and statement separators, backslashes, dollars, non-ASCII. */
const stringContent = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    "'",
    "''",
    '--',
    '/*',
    '*/',
    ';',
    '\\',
    "\\'",
    '$$',
    '$1',
    'é',
    '😀',
    '\n',
    '\u0000x',
    'x"y',
    "'; DROP TABLE t; --",
  ),
  fc
    .array(fc.constantFrom("'", '-', '*', '/', ';', 'a', ' ', '\\', 'é', '$', '"'), { maxLength: 8 })
    .map((a) => a.join('')),
);

/** A SQL string literal written in one of several ways (plain, E'', with escapes); the content is hostile. */
const stringLiteral = fc.oneof(
  { weight: 6, arbitrary: stringContent.map((s) => `'${s.replace(/'/g, "''")}'`) },
  { weight: 1, arbitrary: stringContent.map((s) => `E'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`) },
  { weight: 1, arbitrary: stringContent.map((s) => `$$${s.replace(/\$/g, '')}$$`) },
);

const intLiteral = fc.oneof(
  fc.integer({ min: 0, max: 100_000 }).map(String),
  fc.integer({ min: 2147483640, max: 2147483656 }).map(String),
  fc.bigInt({ min: 0n, max: 10n ** 25n }).map(String),
  fc.constantFrom('0', '00', '007', '-1', '- 1', '1e3', '0x10', '1_0', '.5', '1.', '3.14'),
);

const decimalLiteral = fc
  .tuple(fc.integer({ min: 0, max: 99999 }), fc.integer({ min: 0, max: 999 }))
  .map(([a, b]) => `${a}.${b}`);

const anyLiteral = fc.oneof(intLiteral, decimalLiteral, stringLiteral, fc.constantFrom('NULL', 'true', '$1'));

type Gen = (lits: readonly string[]) => string;

/** Statement templates (pgbench's and corpus-like ones); each `L[i]` is a literal slot. */
const TEMPLATES: readonly { slots: number; lit: fc.Arbitrary<string>; sql: Gen }[] = [
  {
    slots: 2,
    lit: intLiteral,
    sql: ([d, a]) => `UPDATE pgbench_accounts SET abalance = abalance + ${d} WHERE aid = ${a};`,
  },
  { slots: 1, lit: intLiteral, sql: ([a]) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${a};` },
  {
    slots: 4,
    lit: intLiteral,
    sql: ([t, b, a, d]) =>
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${t}, ${b}, ${a}, ${d}, CURRENT_TIMESTAMP);`,
  },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT id, amount FROM orders WHERE id = ${x}` },
  {
    slots: 2,
    lit: anyLiteral,
    sql: ([x, y]) => `SELECT name, ssn FROM customers WHERE name = ${x} OR email = ${y}`,
  },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `SELECT email FROM customers WHERE id IN (${x}, ${y})` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `UPDATE orders SET amount = ${x} WHERE id = ${y}` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `UPDATE orders SET amount = ${x} WHERE ${y} = ${y}` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `UPDATE orders SET amount = ${x}` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `DELETE FROM orders WHERE id = ${x}` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `DELETE FROM orders WHERE ${x} = ${y}` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `INSERT INTO ledger (account, amount) VALUES (${x}, ${y})` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `UPDATE ledger SET amount = ${x} WHERE id = ${y}` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `SELECT * FROM ledger WHERE amount > ${x} LIMIT ${y}` },
  {
    slots: 1,
    lit: anyLiteral,
    sql: ([x]) => `SELECT count(*) FROM orders WHERE created_at > now() - interval ${x}`,
  },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `SELECT set_config(${x}, ${y}, false)` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT current_setting(${x})` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT pg_read_file(${x})` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `SELECT ${x}::float(${y})` },
  { slots: 2, lit: anyLiteral, sql: ([x, y]) => `SELECT ${x}::numeric(${y}, 2) FROM orders` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SET search_path = ${x}` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT ${x}; SELECT ssn FROM customers` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT name FROM customers ORDER BY ${x}` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT ${x} FROM customers` },
  {
    slots: 1,
    lit: anyLiteral,
    sql: ([x]) => `SELECT name FROM customers c WHERE c.tenant_id = ${x} FOR UPDATE`,
  },
  {
    slots: 1,
    lit: anyLiteral,
    sql: ([x]) => `WITH w AS (SELECT id FROM orders WHERE amount > ${x}) SELECT * FROM w`,
  },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `SELECT name FROM customers WHERE ssn LIKE ${x} --${x}` },
  { slots: 1, lit: anyLiteral, sql: ([x]) => `COPY (SELECT ${x}) TO STDOUT` },
];

/** One template, then several literal tuples for it (so later texts meet the template the first one built). */
const batch = fc.integer({ min: 0, max: TEMPLATES.length - 1 }).chain((t) => {
  const tpl = TEMPLATES[t] as (typeof TEMPLATES)[number];
  return fc
    .array(fc.array(tpl.lit, { minLength: tpl.slots, maxLength: tpl.slots }), { minLength: 3, maxLength: 7 })
    .map((tuples) => tuples.map((lits) => tpl.sql(lits)));
});

/** A statement skeleton: text parts with literal slots (null), filled later with several literal tuples. */
type Skeleton = readonly (string | null)[];

/** Random expressions over literal slots, columns, operators, casts (with checked type modifiers) and calls. */
const { expr } = fc.letrec<{ expr: Skeleton }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant<Skeleton>([null]),
    fc.constantFrom<Skeleton>(
      ['amount'],
      ['id'],
      ['orders.id'],
      ['"amount"'],
      ['NULL'],
      ['true'],
      ['CURRENT_DATE'],
    ),
    fc
      .tuple(
        tie('expr'),
        fc.constantFrom(
          ' = ',
          ' + ',
          '-',
          ' * ',
          ' < ',
          ' <> ',
          ' AND ',
          ' OR ',
          ' || ',
          ' LIKE ',
          '::text || ',
        ),
        tie('expr'),
      )
      .map(([a, op, b]) => [...a, op, ...b]),
    tie('expr').map((a) => ['(', ...a, ')']),
    tie('expr').map((a) => ['- ', ...a]),
    tie('expr').map((a) => ['NOT ', ...a]),
    tie('expr').map((a) => ['(', ...a, ')::float(', null, ')']),
    tie('expr').map((a) => ['(', ...a, ')::numeric(', null, ', ', null, ')']),
    tie('expr').map((a) => [...a, ' IS NULL']),
    fc
      .tuple(
        tie('expr'),
        fc.constantFrom(
          'int',
          'float(10)',
          'float(53)',
          'float(54)',
          'numeric(10, 2)',
          'varchar(3)',
          'int[2]',
          'bool',
          'text',
          'date',
          'interval',
        ),
      )
      .map(([a, t]) => ['(', ...a, `)::${t}`]),
    fc
      .tuple(
        fc.constantFrom('abs', 'lower', 'count', 'coalesce', 'nextval', 'current_setting', 'length', 'round'),
        tie('expr'),
      )
      .map(([f, a]) => [`${f}(`, ...a, ')']),
    fc.tuple(tie('expr'), tie('expr')).map(([a, b]) => ['set_config(', ...a, ', ', ...b, ', false)']),
    fc.tuple(tie('expr'), tie('expr')).map(([a, b]) => ['ARRAY[', ...a, ', ', ...b, ']']),
    fc
      .tuple(tie('expr'), tie('expr'), tie('expr'))
      .map(([a, b, c]) => [...a, ' IN (', ...b, ', ', ...c, ')']),
    fc
      .tuple(tie('expr'), tie('expr'), tie('expr'))
      .map(([a, b, c]) => [...a, ' BETWEEN ', ...b, ' AND ', ...c]),
    fc
      .tuple(tie('expr'), tie('expr'), tie('expr'))
      .map(([a, b, c]) => ['CASE WHEN ', ...a, ' THEN ', ...b, ' ELSE ', ...c, ' END']),
    fc.constantFrom('date ', 'interval ', 'float(54) ', 'int ').map((t) => [t, null]),
  ),
}));

const skeleton: fc.Arbitrary<Skeleton> = fc.oneof(
  fc.tuple(expr, expr).map(([a, b]) => ['SELECT ', ...a, ' FROM orders WHERE ', ...b]),
  fc.tuple(expr, expr).map(([a, b]) => ['UPDATE orders SET amount = ', ...a, ' WHERE ', ...b, ';']),
  expr.map((a) => ['DELETE FROM orders WHERE ', ...a]),
  fc.tuple(expr, expr).map(([a, b]) => ['INSERT INTO orders (id, amount) VALUES (', ...a, ', ', ...b, ')']),
  fc.tuple(expr, expr).map(([a, b]) => ['SELECT name FROM customers WHERE ', ...a, ' LIMIT ', ...b]),
);

/** Mostly plain literals (so shapes are shared), the rest of every kind. */
const slotLiteral = fc.oneof(
  { weight: 3, arbitrary: fc.oneof(fc.integer({ min: 0, max: 60 }).map(String), decimalLiteral) },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }).map((x) => `'${x.replace(/'/g, "''")}'`) },
  { weight: 2, arbitrary: anyLiteral },
);

/** A skeleton and several fillings of its slots (numbers of every class and hostile strings). */
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

describe('fast path = cold path (differential)', () => {
  it('analyzeShaped gives exactly the analysis of a cold parse, for every text', () => {
    clearShapeCache();
    clearAnalysisCache();
    let shared = 0;
    fc.assert(
      fc.property(batch, (texts) => {
        for (const sql of texts) {
          const fast = analyzeShaped(sql, OPTS);
          if (fast.shared) shared++;
          assert.deepEqual(fast.analysis, analyze(sql, OPTS), sql);
        }
      }),
      { numRuns: 400 },
    );
    // The property must exercise the shared path, not only the fallbacks.
    assert.ok(shared > 100, `only ${shared} shared analyses`);
  });

  it('holds for random expressions (casts with checked modifiers, calls, tautologies, hostile literals)', () => {
    clearShapeCache();
    clearAnalysisCache();
    let shared = 0;
    fc.assert(
      fc.property(filled, (texts) => {
        for (const sql of texts) {
          const fast = analyzeShaped(sql, OPTS);
          if (fast.shared) shared++;
          assert.deepEqual(fast.analysis, analyze(sql, OPTS), sql);
        }
      }),
      { numRuns: 600 },
    );
    assert.ok(shared > 15, `only ${shared} shared analyses`);
    process.stdout.write(`# ${shared} shared analyses\n`);
  });

  it('the hook gives the same verdict (decision and forwarded SQL) with and without the fast path', async () => {
    const policy = loadPolicy(new URL('../../demo/policy', import.meta.url).pathname);
    const columns: Record<string, string[]> = {
      'public.customers': ['id', 'name', 'email', 'ssn', 'tenant_id'],
      'public.orders': ['id', 'customer_id', 'amount', 'created_at'],
      'public.ledger': ['id', 'account', 'amount', 'created_at'],
    };
    const catalog = (): CatalogCache =>
      new CatalogCache('demo', (s, t) => Promise.resolve(columns[`${s}.${t}`] ?? []));
    const target: TargetConfig = {
      name: 'demo',
      host: '127.0.0.1',
      port: 1,
      database: 'postgres',
      environment: 'demo',
      tls: { mode: 'disable' },
      searchPath: ['public'],
      logins: new Map([['app', { user: 'app' }]]),
      policy: { kind: 'folder', path: 'unused' },
    };
    clearShapeCache();
    clearAnalysisCache();
    const fast = await createPolicyHook(target, policy, { catalog: catalog() });
    const cold = await createPolicyHook(target, policy, { catalog: catalog(), fastPath: false });
    const at = new Date('2024-01-15T12:00:00Z');
    const request = (user: string, sql: string): StatementRequest => {
      const principal: Principal = { name: user, kind: 'human', groups: [], attributes: {} };
      return {
        session: {
          sessionId: `diff-${user}`,
          protocol: 'postgres',
          principal,
          target: 'demo',
          environment: 'demo',
          database: 'postgres',
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
      };
    };
    const comparable = (v: StatementVerdict): unknown => {
      const d = v.decision as Record<string, unknown> | undefined;
      const { cached: _cached, ...rest } = d ?? {};
      return { ...v, decision: rest };
    };
    const hooks: PolicyHook[] = [fast, cold];
    let allowsRewritten = 0;
    try {
      await fc.assert(
        fc.asyncProperty(batch, fc.constantFrom('alice', 'bob', 'carol', 'mallory'), async (texts, user) => {
          for (const sql of texts) {
            const a = await fast.check(request(user, sql));
            const b = await cold.check(request(user, sql));
            assert.deepEqual(comparable(a), comparable(b), `${user}: ${sql}`);
            if (a.action === 'allow' && a.sql !== undefined) allowsRewritten++;
          }
        }),
        { numRuns: 300 },
      );
    } finally {
      for (const h of hooks) await h.close();
    }
    assert.ok(allowsRewritten > 0, 'no masked statement was generated');
  });
});
