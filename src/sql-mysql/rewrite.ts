// MySQL/MariaDB mask and row-filter rewriter: replaces every read of a protected table by a derived table of masked, filtered rows.
//
// `FROM customers c` becomes `FROM (SELECT id, <mask> AS ssn, ... FROM app.customers WHERE <filter>) AS c`, so every
// way of naming a column can only see the masked value. UPDATE/DELETE of a protected table: the row filter is ANDed
// into WHERE, and a statement that reads a masked column of it is refused. INSERT ... ON DUPLICATE KEY UPDATE and
// REPLACE into a protected table are refused (they would change rows the filter hides).
// INVARIANT: the output is analysed again and must show the same accesses to unprotected tables and protected
// tables only inside the derived tables built here; otherwise rewriteMysql throws and the hook denies.

import nodeSqlParser from 'node-sql-parser';
import { WardenError } from '../core/errors.js';
import type { MaskSpec } from '../policy/masks.js';
import { isTextType } from '../policy/masks.js';
import { renderMaskTemplate } from '../policy/template.js';
import { PARSER_OPTIONS, analyzeMysql } from './analyze.js';
import type { AnalyzedStatement, AstNode, MysqlAnalysis } from './analyze.js';

const { Parser } = nodeSqlParser;
const parser = new Parser();

export interface MysqlTableProtection {
  /** The table's full, ordered column list (lower case). */
  readonly columns: readonly string[];
  /** Column → MySQL expression over the table's columns that replaces it. */
  readonly masks: ReadonlyMap<string, string>;
  /** MySQL boolean expression over the table's columns; rows where it is not true are invisible. */
  readonly rowFilter?: string;
}

/** The largest LIMIT: keeps every row, but makes MySQL and MariaDB materialise the derived table. */
const MATERIALISE = '18446744073709551615';

function refuse(message: string): WardenError {
  return new WardenError('INSUFFICIENT_PRIVILEGE', message);
}

/** Quotes a MySQL identifier with backticks. */
export function quoteMysqlIdent(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A MySQL string literal (backslash escapes on, as the lexer assumes). */
export function mysqlLiteral(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\0/g, '\\0') + "'";
}

/** The MySQL expression that shows a masked column (the MySQL form of src/policy/masks.ts maskSql). */
export function mysqlMaskSql(spec: MaskSpec, column: string): string {
  const c = quoteMysqlIdent(column);
  const asText = `CAST(${c} AS CHAR)`;
  switch (spec.kind) {
    case 'redact':
      return spec.type === undefined || isTextType(spec.type)
        ? `CASE WHEN ${c} IS NULL THEN NULL ELSE '***' END`
        : 'NULL';
    case 'null':
      return 'NULL';
    case 'hash': {
      const input = spec.salt === undefined ? asText : `CONCAT(${mysqlLiteral(spec.salt)}, ${asText})`;
      return `SHA2(${input}, 256)`;
    }
    case 'partial': {
      const keep = spec.keepFirst + spec.keepLast;
      const len = `CHAR_LENGTH(${asText})`;
      const shown: string[] = [];
      if (spec.keepFirst > 0) shown.push(`LEFT(${asText}, ${spec.keepFirst})`);
      shown.push(`REPEAT('*', ${len} - ${keep})`);
      if (spec.keepLast > 0) shown.push(`RIGHT(${asText}, ${spec.keepLast})`);
      return (
        `CASE WHEN ${c} IS NULL THEN NULL WHEN ${len} <= ${keep} THEN REPEAT('*', ${len}) ` +
        `ELSE CONCAT(${shown.join(', ')}) END`
      );
    }
    case 'expr':
      return renderMaskTemplate(spec.template, c);
  }
}

function astify(sql: string, what: string): AstNode {
  try {
    const a = parser.astify(sql, PARSER_OPTIONS) as unknown;
    const one = Array.isArray(a) ? (a.length === 1 ? a[0] : undefined) : a;
    if (one === undefined || one === null || typeof one !== 'object') throw new Error('not one statement');
    return one as AstNode;
  } catch (e) {
    throw new WardenError(
      'CONFIG_INVALID',
      `${what} is not valid MySQL (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`,
    );
  }
}

const nameOf = (v: unknown): string | undefined =>
  typeof v === 'string'
    ? v
    : v !== null && typeof v === 'object' && typeof (v as AstNode)['value'] === 'string'
      ? ((v as AstNode)['value'] as string)
      : undefined;

class Rewriter {
  derived = 0;
  /** The derived tables built here: never walked again. */
  private readonly built = new WeakSet<object>();
  constructor(
    private readonly protections: ReadonlyMap<string, MysqlTableProtection>,
    private readonly database: string,
  ) {}

  key(db: unknown, table: unknown): string | undefined {
    const t = nameOf(table);
    if (t === undefined) return undefined;
    const d = nameOf(db) ?? this.database;
    return `${d.toLowerCase()}.${t.toLowerCase()}`;
  }

  /** `(SELECT ... FROM db.t WHERE filter) AS alias` as a FROM item. */
  derivedItem(key: string, item: AstNode): AstNode {
    const p = this.protections.get(key) as MysqlTableProtection;
    const dot = key.indexOf('.');
    const cols = p.columns.map((c) => {
      const m = p.masks.get(c);
      return m === undefined ? quoteMysqlIdent(c) : `(${m}) AS ${quoteMysqlIdent(c)}`;
    });
    const where = p.rowFilter === undefined ? '' : ` WHERE (${p.rowFilter})`;
    // INVARIANT: the derived table is materialised, never merged into the outer query and never given pushed-down
    // outer conditions (a LIMIT forbids both): otherwise the optimizer may evaluate the client's conditions on rows
    // the filter hides (e.g. by primary key), and their conversion warnings would show those rows' values.
    const sql = `SELECT ${cols.join(', ')} FROM ${quoteMysqlIdent(key.slice(0, dot))}.${quoteMysqlIdent(key.slice(dot + 1))}${where} LIMIT ${MATERIALISE}`;
    const ast = astify(sql, `the masks or row filter of ${key}`);
    this.derived++;
    const alias = nameOf(item['as']) ?? nameOf(item['table']) ?? key.slice(dot + 1);
    const out: AstNode = { expr: { ast, parentheses: true }, as: alias };
    this.built.add(out);
    for (const k of ['join', 'on', 'using']) if (item[k] !== undefined && item[k] !== null) out[k] = item[k];
    return out;
  }

  /** Replaces protected tables in every FROM list reachable from `node` (SELECTs, subqueries, derived tables, CTEs). */
  walk(node: unknown, ctes: ReadonlySet<string>): void {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) this.walk(n, ctes);
      return;
    }
    const o = node as AstNode;
    if (this.built.has(o)) return;
    let inner = ctes;
    if (Array.isArray(o['with'])) {
      const names = new Set(ctes);
      for (const w of o['with'] as AstNode[]) {
        const n = (nameOf(w['name']) ?? '').toLowerCase();
        // A CTE shadowing a protected table's name makes "which customers?" depend on scoping rules (its own
        // body still reads the real table): refused rather than reasoned about.
        if (this.protections.has(`${this.database.toLowerCase()}.${n}`)) {
          throw refuse(`a WITH query named like the protected table ${n} cannot be masked or filtered`);
        }
        names.add(n);
      }
      inner = names;
    }
    if (o['type'] === 'select' && Array.isArray(o['from'])) {
      o['from'] = (o['from'] as AstNode[]).map((f) => {
        if (f === null || typeof f !== 'object' || (f['expr'] !== undefined && f['expr'] !== null)) return f;
        const k = this.key(f['db'], f['table']);
        if (k === undefined) return f;
        const bare =
          (f['db'] === null || f['db'] === undefined) && inner.has((nameOf(f['table']) ?? '').toLowerCase());
        if (bare) return f;
        return this.protections.has(k) ? this.derivedItem(k, f) : f;
      });
    }
    for (const [k, v] of Object.entries(o)) {
      if (k === 'tableList' || k === 'columnList') continue;
      this.walk(v, inner);
    }
  }
}

function protectedKeysOf(s: AnalyzedStatement, protections: ReadonlyMap<string, unknown>): Set<string> {
  const out = new Set<string>();
  for (const r of s.summary.relations) {
    const k = `${r.schema}.${r.name}`;
    if (protections.has(k)) out.add(k);
  }
  return out;
}

/** Counts FROM items that name a protected table outside the derived tables (which are SELECTs of exactly one). */
function countProtectedRefs(node: unknown, r: Rewriter, protections: ReadonlyMap<string, unknown>): number {
  if (node === null || typeof node !== 'object') return 0;
  if (Array.isArray(node)) return node.reduce<number>((n, x) => n + countProtectedRefs(x, r, protections), 0);
  const o = node as AstNode;
  let n = 0;
  if ('table' in o && !('column' in o) && o['type'] !== 'column_ref') {
    const tables = Array.isArray(o['table']) ? (o['table'] as AstNode[]) : [o];
    for (const t of tables) {
      const k = t !== null && typeof t === 'object' ? r.key(t['db'], t['table']) : undefined;
      if (k !== undefined && protections.has(k)) n++;
    }
  }
  for (const [k, v] of Object.entries(o))
    if (k !== 'tableList' && k !== 'columnList') n += countProtectedRefs(v, r, protections);
  return n;
}

function accessKeys(a: MysqlAnalysis, skip: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const s of a.statements) {
    for (const r of s.summary.relations) {
      if (skip.has(`${r.schema}.${r.name}`)) continue;
      // Columns are left out: the derived tables add unqualified names that count against enclosing tables.
      out.push(`${r.operation}:${r.schema}.${r.name}`);
    }
    for (const f of s.summary.functions) out.push(`fn:${f.schema}.${f.name}`);
  }
  return [...new Set(out)].sort();
}

function rewriteStatement(
  s: AnalyzedStatement,
  protections: ReadonlyMap<string, MysqlTableProtection>,
  database: string,
): string {
  const touched = protectedKeysOf(s, protections);
  if (touched.size === 0) return s.lexed.text;
  const kind = s.summary.kind;
  if (kind === 'PrepareStmt') {
    const body = s.lexed.tokens[3];
    if (body === undefined || body.kind !== 'string') throw refuse('PREPARE body');
    const inner = rewriteMysql(analyzeMysql(body.value, { database }), protections, database) ?? body.value;
    const name = s.summary.preparedName as string;
    return `PREPARE ${quoteMysqlIdent(name)} FROM ${mysqlLiteral(inner)}`;
  }
  if (s.ast === undefined) throw refuse(`${kind} on a protected table cannot be masked or filtered`);
  const ast = structuredClone(s.ast);
  const r = new Rewriter(protections, database);
  const type = String(ast['type']);
  for (const rel of s.summary.relations) {
    const k = `${rel.schema}.${rel.name}`;
    if (!touched.has(k) || rel.operation === 'select') continue;
    if (kind === 'InsertStmt' && rel.operation === 'insert') continue;
    if (kind === 'CopyStmt' && rel.operation === 'copy_from') continue;
    if (
      (kind === 'UpdateStmt' && rel.operation === 'update') ||
      (kind === 'DeleteStmt' && rel.operation === 'delete')
    )
      continue;
    throw refuse(`${rel.operation} of protected table ${k} cannot be masked or filtered (${kind})`);
  }
  if (type === 'select' || type === 'explain') {
    r.walk(type === 'explain' ? ast['expr'] : ast, new Set());
  } else if (type === 'insert') {
    r.walk(ast['values'], new Set());
  } else if (type === 'update' || type === 'delete') {
    const list = (type === 'update' ? ast['table'] : ast['from']) as AstNode[];
    const targets = list.filter((t) => {
      const k = r.key(t['db'], t['table']);
      return t['expr'] === undefined && k !== undefined && touched.has(k);
    });
    if (targets.length > 0) {
      if (list.length !== 1)
        throw refuse(`${type.toUpperCase()} joining a protected table cannot be filtered`);
      const k = r.key(targets[0]?.['db'], targets[0]?.['table']) as string;
      const p = protections.get(k) as MysqlTableProtection;
      for (const rel of s.summary.relations) {
        if (`${rel.schema}.${rel.name}` !== k) continue;
        const cols = rel.columns;
        if (
          p.masks.size > 0 &&
          (cols === undefined ? rel.operation !== 'delete' : cols.some((c) => p.masks.has(c)))
        ) {
          throw refuse(`${type.toUpperCase()} reads or writes a masked column of ${k}`);
        }
      }
      if (p.rowFilter !== undefined) {
        const filter = astify(`SELECT 1 FROM t WHERE (${p.rowFilter})`, `the row filter of ${k}`)['where'];
        ast['where'] =
          ast['where'] === null || ast['where'] === undefined
            ? filter
            : {
                type: 'binary_expr',
                operator: 'AND',
                left: filter,
                right: { ...(ast['where'] as AstNode), parentheses: true },
              };
      }
    }
    r.walk(ast['where'], new Set());
    if (type === 'update')
      for (const item of (ast['set'] as AstNode[]) ?? []) r.walk(item['value'], new Set());
  } else {
    throw refuse(`${kind} on a protected table cannot be masked or filtered`);
  }
  let out: string;
  try {
    out = parser.sqlify(ast as never, PARSER_OPTIONS);
  } catch (e) {
    throw refuse(
      `the rewritten statement could not be produced (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  // INVARIANT: check the output, not the rewriting: same accesses to unprotected tables, and protected tables
  // only inside the derived tables built here (plus UPDATE/DELETE targets, filtered above).
  const again = analyzeMysql(out, { database });
  if (again.error !== undefined || again.denied !== undefined || again.statements.length !== 1) {
    throw refuse(
      `the rewritten statement does not analyse (${again.error ?? again.denied?.reason ?? 'statement count'})`,
    );
  }
  if (again.statements.some((x) => x.summary.unsupported !== undefined)) {
    throw refuse(
      `the rewritten statement is not understood (${again.statements[0]?.summary.unsupported ?? ''})`,
    );
  }
  // Placeholders bind by position: the rewrite must keep their number (and sqlify keeps clause order).
  const params = (x: AnalyzedStatement | undefined): number =>
    x?.lexed.tokens.filter((t) => t.kind === 'param').length ?? -1;
  if (params(again.statements[0]) !== params(s)) {
    throw refuse('the rewritten statement has a different number of parameters');
  }
  const skip = new Set(protections.keys());
  if (accessKeys(again, skip).join('|') !== accessKeys({ statements: [s] }, skip).join('|')) {
    throw refuse('the rewritten statement accesses other tables than the original');
  }
  // Each protected FROM item became a derived table holding exactly one reference to it; write targets stay.
  const before = countProtectedRefs(s.ast, r, protections);
  const after = countProtectedRefs(again.statements[0]?.ast, r, protections);
  if (after !== before) throw refuse('a protected table is read outside its masked derived table');
  if (r.derived === 0 && type !== 'update' && type !== 'delete') {
    throw refuse('a protected table was found by the analysis but not by the rewriter');
  }
  return out;
}

/**
 * Rewrites an analysed text so protected tables are read only through masked, filtered derived tables.
 * Returns undefined when no statement touches a protected table (forward the text as sent). Throws (deny) when it cannot.
 */
export function rewriteMysql(
  analysis: MysqlAnalysis,
  protections: ReadonlyMap<string, MysqlTableProtection>,
  database: string,
): string | undefined {
  if (analysis.error !== undefined || analysis.denied !== undefined)
    throw refuse('statement was not analysed');
  const parts: string[] = [];
  let changed = false;
  for (const s of analysis.statements) {
    if (s.summary.unsupported !== undefined)
      throw refuse(`statement not supported: ${s.summary.unsupported}`);
    const out = rewriteStatement(s, protections, database);
    if (out !== s.lexed.text) changed = true;
    parts.push(out);
  }
  return changed ? parts.join(';\n') : undefined;
}
