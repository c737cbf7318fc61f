// Mask and row-filter rewriter: replaces every read of a protected table by a derived table that only exposes masked, filtered rows.
//
// `FROM customers c` becomes `FROM (SELECT id, <mask> AS ssn, ... FROM public.customers WHERE <filter>) AS c`, so
// every way of naming a column (`c.ssn`, `(c).ssn`, `row_to_json(c)`, `c`, `*`, casts, aggregates, unions) can only
// ever see the masked value. UPDATE/DELETE targets cannot be derived tables: the row filter is ANDed into WHERE,
// and a statement that reads a masked column of such a target (WHERE, SET values, RETURNING) is refused.
// INVARIANT: the output either re-parses into the same number of statements or rewrite() throws; it never
// returns SQL that reads a protected table outside a derived table it built.
import { deparse } from 'pgsql-deparser';
import { WardenError } from '../core/errors.js';
import { analyzeCached } from './analyze.js';
import { PG_CATALOG_RELATIONS } from './catalog.generated.js';
import { NODE_FIELDS } from './node-fields.generated.js';
import { isPlainObject, parseSql, unwrap } from './parser.js';
import type { NodeBody } from './parser.js';

export interface TableProtection {
  /** The table's full, ordered column list. */
  readonly columns: readonly string[];
  /** Column → SQL expression over the table's columns that replaces it, e.g. `'***'` or `left(ssn, 3) || '-**-****'`. */
  readonly masks: ReadonlyMap<string, string>;
  /** SQL boolean expression over the table's columns; rows where it is not true are invisible. */
  readonly rowFilter?: string;
}

export interface RewriteOptions {
  readonly searchPath: readonly string[];
}

/** Statement kinds the rewriter can make safe; any other kind that reads a protected table is refused. */
const REWRITABLE = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'CopyStmt',
  'ExplainStmt',
  'PrepareStmt',
  'DeclareCursorStmt',
  'CreateTableAsStmt',
  'ViewStmt',
]);

function deny(message: string, detail?: string): WardenError {
  return new WardenError('INSUFFICIENT_PRIVILEGE', message, detail === undefined ? undefined : { detail });
}

/** Parses a configured SQL expression into a tree; rejects anything that is not exactly one expression. */
function parseExpression(expr: string, what: string): NodeBody {
  const parsed = parseSql(`SELECT ${expr}`);
  const bad = (): WardenError => new WardenError('CONFIG_INVALID', `${what} is not a single SQL expression`);
  if (!parsed.ok || parsed.statements.length !== 1) throw bad();
  const u = unwrap(parsed.statements[0]?.node);
  if (!u || u[0] !== 'SelectStmt') throw bad();
  const { targetList, ...rest } = u[1];
  const others = Object.keys(rest).filter((k) => k !== 'limitOption' && k !== 'op');
  if (
    others.length > 0 ||
    rest.op !== 'SETOP_NONE' ||
    !Array.isArray(targetList) ||
    targetList.length !== 1
  ) {
    throw bad();
  }
  const rt = unwrap(targetList[0]);
  if (!rt || rt[0] !== 'ResTarget' || rt[1].name !== undefined || !isPlainObject(rt[1].val)) throw bad();
  return rt[1].val;
}

interface Compiled {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  readonly masks: ReadonlyMap<string, NodeBody>;
  readonly filter?: NodeBody;
}

function compile(key: string, p: TableProtection): Compiled {
  const dot = key.indexOf('.');
  if (dot <= 0) throw new WardenError('CONFIG_INVALID', `protected table key ${key} is not "schema.table"`);
  for (const c of p.masks.keys()) {
    if (!p.columns.includes(c))
      throw new WardenError('CONFIG_INVALID', `mask for unknown column ${key}.${c}`);
  }
  const masks = new Map<string, NodeBody>();
  for (const [c, e] of p.masks) masks.set(c, parseExpression(e, `mask for ${key}.${c}`));
  const base = { schema: key.slice(0, dot), name: key.slice(dot + 1), columns: p.columns, masks };
  return p.rowFilter === undefined
    ? base
    : { ...base, filter: parseExpression(p.rowFilter, `row filter for ${key}`) };
}

const str = (s: string): NodeBody => ({ String: { sval: s } });
const colRef = (...fields: string[]): NodeBody => ({ ColumnRef: { fields: fields.map(str) } });

/** `(SELECT c1, <mask> AS c2, ... FROM schema.table WHERE <filter>) AS alias` */
function derivedTable(p: Compiled, rv: NodeBody): NodeBody {
  const targetList = p.columns.map((c) => {
    const mask = p.masks.get(c);
    return mask === undefined
      ? { ResTarget: { val: colRef(c) } }
      : { ResTarget: { name: c, val: structuredClone(mask) } };
  });
  const select: NodeBody = {
    targetList,
    fromClause: [
      { RangeVar: { schemaname: p.schema, relname: p.name, inh: rv.inh !== false, relpersistence: 'p' } },
    ],
    limitOption: 'LIMIT_OPTION_DEFAULT',
    op: 'SETOP_NONE',
  };
  if (p.filter) select.whereClause = structuredClone(p.filter);
  const alias: NodeBody = isPlainObject(rv.alias)
    ? structuredClone(rv.alias)
    : { aliasname: typeof rv.relname === 'string' ? rv.relname : p.name };
  return { RangeSubselect: { subquery: { SelectStmt: select }, alias } };
}

/** Qualifies the filter's unqualified references to the table's columns with the target's name (outside subqueries). */
function qualify(node: unknown, refname: string, columns: readonly string[]): void {
  if (Array.isArray(node)) {
    for (const x of node) qualify(x, refname, columns);
    return;
  }
  if (!isPlainObject(node)) return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'SubLink') continue;
    if (k === 'ColumnRef' && isPlainObject(v) && Array.isArray(v.fields) && v.fields.length === 1) {
      const f = unwrap(v.fields[0]);
      if (f?.[0] === 'String' && typeof f[1].sval === 'string' && columns.includes(f[1].sval)) {
        v.fields = [str(refname), str(f[1].sval)];
      }
      continue;
    }
    qualify(v, refname, columns);
  }
}

function andInto(where: unknown, filter: NodeBody): NodeBody {
  if (where === undefined) return filter;
  return { BoolExpr: { boolop: 'AND_EXPR', args: [filter, where] } };
}

/** Whether a column reference (fields, '*' for A_Star) may denote a masked column or the whole row of the target. */
function mayReadMasked(f: readonly string[], refname: string, p: Compiled): boolean {
  const last = f[f.length - 1] ?? '';
  if (f.length === 1) return last === '*' || last === refname || p.masks.has(last);
  if (f.length === 2 && f[0] === 'excluded') return false; // the proposed row, not stored data
  if (f[f.length - 2] === refname && (last === '*' || p.masks.has(last))) return true;
  // refname.column.field
  return f.length >= 3 && f[f.length - 3] === refname && p.masks.has(f[f.length - 2] ?? '');
}

/** Throws if `node` (outside excluded.*) may read a masked column or the whole row of a protected target. */
function assertNoMaskedRead(node: unknown, refname: string, p: Compiled, where: string): void {
  if (p.masks.size === 0) return;
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const x of n) visit(x);
      return;
    }
    if (!isPlainObject(n)) return;
    for (const [k, v] of Object.entries(n)) {
      if (k === 'ColumnRef' && isPlainObject(v) && Array.isArray(v.fields)) {
        const f = v.fields.map((x) => {
          const u = unwrap(x);
          return u?.[0] === 'String' ? String(u[1].sval) : '*';
        });
        if (mayReadMasked(f, refname, p)) {
          throw deny(
            `statement reads a masked column of ${p.schema}.${p.name} in ${where}`,
            'masked columns of an UPDATE, DELETE or INSERT target cannot be used in WHERE, SET, ON CONFLICT or RETURNING',
          );
        }
        continue;
      }
      visit(v);
    }
  };
  visit(node);
}

class Rewriter {
  changed = false;
  /** Derived tables built here: never walked again (their inner FROM names the protected table itself). */
  private readonly built = new WeakSet<object>();
  constructor(
    private readonly protections: ReadonlyMap<string, Compiled>,
    private readonly searchPath: readonly string[],
  ) {}

  /** The protection of a RangeVar, if it names a protected table (CTE names in `ctes` are not tables). */
  protectionOf(rv: NodeBody, ctes: ReadonlySet<string>): Compiled | undefined {
    const relname = typeof rv.relname === 'string' ? rv.relname : '';
    const schemaname = typeof rv.schemaname === 'string' ? rv.schemaname : undefined;
    if (schemaname === undefined && ctes.has(relname)) return undefined;
    const schema =
      schemaname ?? (PG_CATALOG_RELATIONS.has(relname) ? 'pg_catalog' : (this.searchPath[0] ?? ''));
    return this.protections.get(`${schema}.${relname}`);
  }

  /** Walks any node; `ctes` holds the CTE names visible here. Mutates the tree in place. */
  walk(node: unknown, ctes: ReadonlySet<string>, parentType = '', key = ''): unknown {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = this.walk(node[i], ctes, parentType, key);
      return node;
    }
    if (!isPlainObject(node) || this.built.has(node)) return node;
    const u = unwrap(node);
    if (u && u[0] === 'RangeVar' && this.isReadPosition(parentType, key)) {
      const p = this.protectionOf(u[1], ctes);
      if (!p) return node;
      return this.derived(p, u[1]);
    }
    if (u) {
      this.node(u[0], u[1], ctes);
      return node;
    }
    // An unwrapped struct (e.g. SelectStmt.larg, which is itself a SelectStmt): its type comes from the field shape.
    const shape = NODE_FIELDS[parentType]?.[key];
    if (shape !== undefined && shape !== 'node' && shape !== 'list') {
      this.node(shape, node, ctes);
      return node;
    }
    for (const [k, v] of Object.entries(node)) node[k] = this.walk(v, ctes, '', k);
    return node;
  }

  /** "schema.table" of replaced references that had no alias: `schema.table.col` must become `table.col`. */
  readonly unaliased = new Set<string>();

  derived(p: Compiled, rv: NodeBody): NodeBody {
    if (!isPlainObject(rv.alias)) this.unaliased.add(`${p.schema}.${p.name}`);
    const d = derivedTable(p, rv);
    this.built.add(d);
    this.changed = true;
    return d;
  }

  isReadPosition(parentType: string, key: string): boolean {
    if (key === 'fromClause' || key === 'usingClause') return true;
    if (parentType === 'JoinExpr' && (key === 'larg' || key === 'rarg')) return true;
    if (parentType === 'MergeStmt' && key === 'sourceRelation') return true;
    return false;
  }

  node(type: string, body: NodeBody, outer: ReadonlySet<string>): void {
    let ctes = outer;
    if (isPlainObject(body.withClause)) ctes = this.withClause(body.withClause, outer);
    switch (type) {
      case 'RangeTableSample': {
        const rv = unwrap(body.relation);
        if (rv?.[0] === 'RangeVar' && this.protectionOf(rv[1], ctes)) {
          throw deny('TABLESAMPLE on a protected table is not supported');
        }
        break;
      }
      case 'UpdateStmt':
      case 'DeleteStmt':
        this.target(type, body, ctes);
        break;
      case 'InsertStmt':
        this.insertTarget(body, ctes);
        break;
      case 'MergeStmt':
        if (isPlainObject(body.relation) && this.protectionOf(body.relation, ctes)) {
          throw deny('MERGE into a protected table is not supported');
        }
        break;
      case 'CopyStmt':
        this.copy(body, ctes);
        break;
      default:
        break;
    }
    for (const [k, v] of Object.entries(body)) {
      if (k === 'withClause') continue;
      if (type === 'LockingClause' && k === 'lockedRels') continue;
      body[k] = this.walk(v, ctes, type, k);
    }
  }

  /** Walks the CTE bodies with exactly the names each one can see; returns the names visible to the statement. */
  withClause(w: NodeBody, outer: ReadonlySet<string>): ReadonlySet<string> {
    const ctes = (Array.isArray(w.ctes) ? w.ctes : []).map(unwrap);
    const all = new Set(outer);
    for (const c of ctes) if (c && typeof c[1].ctename === 'string') all.add(c[1].ctename);
    const visible = new Set(outer);
    for (const c of ctes) {
      if (!c || c[0] !== 'CommonTableExpr') throw deny('unexpected node in WITH clause');
      c[1].ctequery = this.walk(
        c[1].ctequery,
        w.recursive === true ? all : new Set(visible),
        'CommonTableExpr',
        'ctequery',
      );
      if (typeof c[1].ctename === 'string') visible.add(c[1].ctename);
    }
    return visible;
  }

  target(type: string, body: NodeBody, ctes: ReadonlySet<string>): void {
    if (!isPlainObject(body.relation)) return;
    const p = this.protectionOf(body.relation, ctes);
    if (!p) return;
    const refname = isPlainObject(body.relation.alias)
      ? String(body.relation.alias.aliasname)
      : String(body.relation.relname);
    const what = type === 'UpdateStmt' ? 'UPDATE' : 'DELETE';
    assertNoMaskedRead(body.whereClause, refname, p, `${what} WHERE`);
    assertNoMaskedRead(body.returningClause, refname, p, `${what} RETURNING`);
    if (type === 'UpdateStmt') {
      for (const t of Array.isArray(body.targetList) ? body.targetList : []) {
        assertNoMaskedRead(unwrap(t)?.[1].val, refname, p, 'UPDATE SET');
      }
    }
    if (p.filter) {
      const f = structuredClone(p.filter);
      qualify(f, refname, p.columns);
      body.whereClause = andInto(body.whereClause, f);
      this.changed = true;
    }
  }

  insertTarget(body: NodeBody, ctes: ReadonlySet<string>): void {
    if (!isPlainObject(body.relation)) return;
    const p = this.protectionOf(body.relation, ctes);
    if (!p) return;
    const refname = isPlainObject(body.relation.alias)
      ? String(body.relation.alias.aliasname)
      : String(body.relation.relname);
    assertNoMaskedRead(body.returningClause, refname, p, 'INSERT RETURNING');
    const oc = body.onConflictClause;
    if (isPlainObject(oc) && oc.action === 'ONCONFLICT_UPDATE') {
      assertNoMaskedRead(oc.whereClause, refname, p, 'ON CONFLICT WHERE');
      for (const t of Array.isArray(oc.targetList) ? oc.targetList : []) {
        assertNoMaskedRead(unwrap(t)?.[1].val, refname, p, 'ON CONFLICT SET');
      }
      if (p.filter) {
        const f = structuredClone(p.filter);
        qualify(f, refname, p.columns);
        oc.whereClause = andInto(oc.whereClause, f);
        this.changed = true;
      }
    }
  }

  /** `COPY protected [(cols)] TO STDOUT` becomes `COPY (SELECT cols FROM <derived>) TO STDOUT`. */
  copy(body: NodeBody, ctes: ReadonlySet<string>): void {
    if (body.is_from === true || !isPlainObject(body.relation)) return;
    const p = this.protectionOf(body.relation, ctes);
    if (!p) return;
    const cols = (Array.isArray(body.attlist) ? body.attlist : []).map((a) => String(unwrap(a)?.[1].sval));
    const targetList =
      cols.length > 0
        ? cols.map((c) => ({ ResTarget: { val: colRef(c) } }))
        : [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }];
    body.query = {
      SelectStmt: {
        targetList,
        fromClause: [this.derived(p, body.relation)],
        limitOption: 'LIMIT_OPTION_DEFAULT',
        op: 'SETOP_NONE',
      },
    };
    delete body.relation;
    delete body.attlist;
    this.changed = true;
  }
}

/**
 * Rewrites `sql` so that protected tables are only read through masked, filtered derived tables.
 * Throws WardenError INSUFFICIENT_PRIVILEGE when the statement cannot be made safe, SYNTAX_ERROR when it does not
 * parse, CONFIG_INVALID when a mask or filter is not a single expression. Returns `sql` unchanged when nothing
 * protected is read.
 */
/**
 * A replaced table is visible under its bare name only, so `schema.table.column` (and `schema.table.*`)
 * references to it lose the schema. Regression: bypass corpus identifiers-026 (an allowed query failed with 42P01).
 */
function dropSchemaQualifiers(node: unknown, replaced: ReadonlySet<string>): void {
  if (Array.isArray(node)) {
    for (const x of node) dropSchemaQualifiers(x, replaced);
    return;
  }
  if (!isPlainObject(node)) return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'ColumnRef' && isPlainObject(v) && Array.isArray(v.fields) && v.fields.length === 3) {
      const [schema, table] = v.fields.map((f) =>
        isPlainObject(f) && isPlainObject(f.String) ? f.String.sval : undefined,
      );
      if (typeof schema === 'string' && typeof table === 'string' && replaced.has(`${schema}.${table}`)) {
        v.fields = v.fields.slice(1);
      }
    }
    dropSchemaQualifiers(v, replaced);
  }
}

export async function rewrite(
  sql: string,
  protections: ReadonlyMap<string, TableProtection>,
  opts: RewriteOptions,
): Promise<string> {
  if (protections.size === 0) return sql;
  const compiled = new Map<string, Compiled>();
  for (const [k, p] of protections) compiled.set(k, compile(k, p));

  const parsed = parseSql(sql);
  if (!parsed.ok) throw new WardenError('SYNTAX_ERROR', parsed.error);

  // Statements the rewriter cannot rewrite must not read protected tables at all (DO blocks, function bodies, ...).
  // The policy hook has just analysed this text with the same search path: a cache hit, not a second parse.
  const analysis = analyzeCached(sql, { searchPath: opts.searchPath });
  for (const s of analysis.statements) {
    if (s.unsupported !== undefined) throw deny(`statement not supported: ${s.unsupported}`);
    if (REWRITABLE.has(s.kind)) continue;
    for (const r of s.relations) {
      const reads = r.operation === 'select' || r.operation === 'copy_to';
      if (reads && s.kind !== 'LockStmt' && compiled.has(`${r.schema}.${r.name}`)) {
        throw deny(
          `${s.kind} reads protected table ${r.schema}.${r.name}, which cannot be masked in this statement`,
        );
      }
    }
  }

  const rw = new Rewriter(compiled, opts.searchPath);
  const stmts = parsed.statements.map((s) => rw.walk(structuredClone(s.node), new Set<string>()) as NodeBody);
  if (!rw.changed) return sql;
  if (rw.unaliased.size > 0) for (const stmt of stmts) dropSchemaQualifiers(stmt, rw.unaliased);
  const parts: string[] = [];
  for (const stmt of stmts)
    parts.push(await deparse({ version: 180000, stmts: [{ stmt }] } as never, { pretty: false }));
  const out = parts.join(';\n');
  const check = parseSql(out);
  if (!check.ok || check.statements.length !== parsed.statements.length) {
    throw new WardenError('INTERNAL', 'rewritten SQL does not re-parse', {
      detail: check.ok ? 'statement count' : check.error,
    });
  }
  return out;
}
