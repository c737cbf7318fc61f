// Tests for filter and mask templates: placement rules, and (property-based, through PostgreSQL's own parser) injection-proof literals.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { parse } from 'libpg-query';
import type { Principal } from '../core/context.js';
import { maskSql } from './masks.js';
import { parseTemplate, renderTemplate, sqlLiteral } from './template.js';
import type { Template } from './template.js';

const P: Principal = { name: 'p', kind: 'human', groups: [], attributes: {} };

function tpl(s: string): Template {
  const t = parseTemplate(s, 'filter');
  assert.ok(typeof t !== 'string', `template refused: ${typeof t === 'string' ? t : ''}`);
  return t;
}

function render(t: Template, attrs: Record<string, string>): string {
  const r = renderTemplate(t, P, attrs);
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.sql;
}

async function whereOf(filter: string): Promise<Record<string, unknown>> {
  const tree = (await parse(`SELECT 1 FROM t WHERE (${filter}) AND ok`)) as {
    stmts: { stmt: { SelectStmt: { whereClause: unknown } } }[];
  };
  assert.equal(tree.stmts.length, 1);
  return tree.stmts[0]?.stmt.SelectStmt.whereClause as Record<string, unknown>;
}

void test('placeholders are refused inside quotes, identifiers, dollar quotes; comments and ";" are refused', () => {
  const refused = [
    "tenant = '{{ user.t }}'",
    'tenant = "{{ user.t }}"',
    'tenant = $x${{ user.t }}$x$',
    'tenant = {{ user.t }} -- c',
    'tenant = {{ user.t }} /* c */',
    'tenant = {{ user.t }}; drop table x',
    'tenant = {{ user.t',
    'tenant = }}',
    'tenant = {{ nobody.t }}',
    'tenant = {{ user.t | upper }}',
    'tenant = x{{ user.t }}',
    'tenant = E{{ user.t }}',
    'tenant = -{{ user.t | int }}',
    'tenant = {{ user.a }}{{ user.b }}',
    "tenant = 'unterminated",
  ];
  for (const s of refused) assert.equal(typeof parseTemplate(s, 'filter'), 'string', s);
  for (const s of [
    "a = {{ user.t }} AND b = '{x}'",
    'owner = {{ principal.name }}',
    't = ({{ user.t | int }})',
    "x = 'it''s' OR y = {{ user.y }}",
  ]) {
    assert.notEqual(typeof parseTemplate(s, 'filter'), 'string', s);
  }
  assert.equal(typeof parseTemplate('upper({{ user.t }})', 'mask'), 'string');
  assert.notEqual(typeof parseTemplate("left({{ column }}, 2) || '…'", 'mask'), 'string');
});

void test('sqlLiteral: any string (quotes, backslashes, unicode) parses back to itself as one constant', async () => {
  const t = tpl('region = {{ user.r }}');
  await fc.assert(
    fc.asyncProperty(
      fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => !s.includes('\u0000')),
      async (s) => {
        const where = await whereOf(render(t, { r: s }));
        const and = where.BoolExpr as { args: Record<string, unknown>[] };
        const eq = and.args[0]?.A_Expr as { rexpr: { A_Const: { sval?: { sval?: string } } } };
        assert.equal(eq.rexpr.A_Const.sval?.sval ?? '', s);
      },
    ),
    { numRuns: 150 },
  );
  for (const evil of ["' OR 1=1 --", "\\' OR 1=1 --", "x'); DROP TABLE t; --", '$$ OR 1=1 $$']) {
    const where = await whereOf(render(t, { r: evil }));
    assert.ok('BoolExpr' in where, evil);
  }
  assert.equal(sqlLiteral("a'b"), "'a''b'");
  assert.equal(sqlLiteral('a\\b'), "E'a\\\\b'");
});

void test('| int accepts integers only; negatives are parenthesised', async () => {
  const t = tpl('tenant_id = {{ user.t | int }}');
  await fc.assert(
    fc.asyncProperty(fc.integer(), async (n) => {
      const sql = render(t, { t: String(n) });
      const where = await whereOf(sql);
      assert.ok('BoolExpr' in where);
      assert.ok(sql.endsWith(n < 0 ? `(${n})` : String(n)));
    }),
    { numRuns: 50 },
  );
  for (const bad of ['1 OR 1=1', '1.5', '', ' 1', '0x10', '1e3', '--1', '99999999999999999999']) {
    const r = renderTemplate(t, P, { t: bad });
    assert.equal(r.ok, false, bad);
  }
});

void test('missing attributes fail; principal fields render; own-property lookup only', () => {
  const t = tpl('a = {{ user.toString }}');
  assert.equal(renderTemplate(t, P, {}).ok, false);
  assert.equal(render(tpl('owner = {{ principal.name }}'), {}), "owner = 'p'");
});

void test('mask SQL of every kind parses as an expression', async () => {
  const col = '"c"';
  const specs = [
    maskSql({ kind: 'redact' }, col),
    maskSql({ kind: 'redact', type: 'integer' }, col),
    maskSql({ kind: 'null', type: 'numeric(10,2)' }, col),
    maskSql({ kind: 'null' }, col),
    maskSql({ kind: 'hash', salt: "s'alt" }, col),
    maskSql({ kind: 'partial', keepFirst: 1, keepLast: 4 }, col),
    maskSql(
      { kind: 'expr', template: parseTemplate("left({{ column }}, 1) || '***'", 'mask') as Template },
      col,
    ),
  ];
  for (const s of specs) {
    const tree = (await parse(`SELECT ${s} AS c FROM t`)) as { stmts: unknown[] };
    assert.equal(tree.stmts.length, 1, s);
  }
  assert.equal(specs[1], 'CAST(NULL AS integer)');
  assert.match(specs[4] ?? '', /'s''alt' \|\|/);
});
