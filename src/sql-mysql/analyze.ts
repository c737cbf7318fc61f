// MySQL/MariaDB statement analyser: pre-lexes, parses each statement with node-sql-parser (MariaDB dialect) and walks the tree into StatementSummary.
//
// Summaries use PostgreSQL's statement kind names (SelectStmt, InsertStmt, ...) so that one policy evaluator
// decides both databases; the MySQL database plays the part of the schema. Statements the evaluator must never
// allow, whatever the policy says (files, sleeps, sql_mode, ...), come back as a hard `denied` with a rule.
// INVARIANT: default deny. Lexer refusals, parse failures, node types the walker does not know, and any
// disagreement between the parser's own table list and the walk are errors or `unsupported`, never allows.

import nodeSqlParser from 'node-sql-parser';
import type {
  FunctionCall,
  Operation,
  RelationAccess,
  SettingChange,
  StatementSummary,
} from '../core/access.js';
import { lexStatements } from './lexer.js';
import type { LexedStatement, Token } from './lexer.js';
import {
  MYSQL_DENIED_FUNCTIONS,
  MYSQL_FORBIDDEN_SETTINGS,
  MYSQL_HARMLESS_SETTINGS,
  MYSQL_READABLE_VARIABLES,
  MYSQL_SAFE_CHARSETS,
  MYSQL_SAFE_FUNCTIONS,
} from './functions.js';

const { Parser } = nodeSqlParser;
const parser = new Parser();
export const PARSER_OPTIONS = { database: 'MySQL' } as const;

/** A parse-tree node of node-sql-parser (loosely typed by the library). */
export type AstNode = Record<string, unknown>;

export interface MysqlAnalyzeOptions {
  /** The session's current database: unqualified names resolve here. */
  readonly database: string;
}

/** A rule and reason for a construct that is always denied. */
export interface HardDenial {
  readonly rule: string;
  readonly reason: string;
}

export interface AnalyzedStatement {
  readonly summary: StatementSummary;
  readonly lexed: LexedStatement;
  /** The parse tree, when the statement went through the parser. */
  readonly ast?: AstNode;
}

export interface MysqlAnalysis {
  /** Set when the text could not be tokenised or parsed: the hook denies with 42601. */
  readonly error?: string;
  /** Set when a construct is always denied: the hook denies naming this rule. */
  readonly denied?: HardDenial;
  readonly statements: readonly AnalyzedStatement[];
}

/** Schemas no statement may touch, whatever the policy grants. */
export const MYSQL_SYSTEM_SCHEMAS: ReadonlyMap<string, string> = new Map([
  ['mysql', 'holds accounts, password hashes and server state'],
  ['performance_schema', "shows other sessions' statements and server internals"],
  ['sys', "shows other sessions' statements and server internals"],
]);

class Deny extends Error {
  constructor(
    readonly rule: string,
    readonly reason: string,
  ) {
    super(`denied by ${rule}: ${reason}`);
  }
}
class Unsupported extends Error {}

const lower = (s: string): string => s.toLowerCase();
/** A string field of a tree node, or '' when it is absent or not a string. */
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function nameOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object') {
    const o = v as AstNode;
    if (typeof o['value'] === 'string') return o['value'];
  }
  return undefined;
}

interface TableRef {
  readonly db: string;
  readonly name: string;
}
type ScopeEntry = { kind: 'table'; ref: TableRef } | { kind: 'derived' };
interface Scope {
  readonly entries: Map<string, ScopeEntry>;
  readonly parent?: Scope;
  /** CTE names visible here. */
  readonly ctes: Set<string>;
}

/** Leaf expression node types: literals and placeholders that read nothing. */
const LEAF_TYPES = new Set([
  'number',
  'bigint',
  'bool',
  'boolean',
  'null',
  'single_quote_string',
  'double_quote_string',
  'natural_string',
  'hex_string',
  'full_hex_string',
  'bit_string',
  'string',
  'date',
  'time',
  'timestamp',
  'datetime',
  'origin',
  'default',
  'star',
  'param',
  'backticks_quote_string',
  'regex_string',
]);
/** Composite expression node types whose children are walked generically. */
const COMPOSITE_TYPES = new Set([
  'binary_expr',
  'unary_expr',
  'expr_list',
  'case',
  'when',
  'else',
  'cast',
  'interval',
  'extract',
  'window',
  'array',
  'json',
  'column_definition',
  'convert',
]);

class Walker {
  readonly accesses = new Map<string, { rel: TableRef; op: Operation; columns: Set<string> | 'all' }>();
  readonly functions: FunctionCall[] = [];
  readonly settings: SettingChange[] = [];
  /** Every real table the walk met, "db.name" (for the cross-check with the parser's list). */
  readonly seen = new Set<string>();
  hasWhere: boolean | undefined;

  constructor(private readonly database: string) {}

  resolve(dbName: unknown, table: unknown): TableRef {
    const t = nameOf(table);
    if (t === undefined || t === '') throw new Unsupported('a table name the analyser cannot read');
    const d = nameOf(dbName);
    const ref = { db: lower(d ?? this.database), name: lower(t) };
    const why = MYSQL_SYSTEM_SCHEMAS.get(ref.db);
    if (why !== undefined) throw new Deny(`catalog:${ref.db}.${ref.name}`, `${ref.db} ${why}`);
    if (ref.db === '') throw new Unsupported('no current database to resolve an unqualified table name');
    return ref;
  }

  access(rel: TableRef, op: Operation, columns?: Iterable<string> | 'all'): void {
    this.seen.add(`${rel.db}.${rel.name}`);
    const key = `${op}:${rel.db}.${rel.name}`;
    let a = this.accesses.get(key);
    if (a === undefined) {
      a = { rel, op, columns: new Set() };
      this.accesses.set(key, a);
    }
    if (columns === undefined) return;
    if (columns === 'all') a.columns = 'all';
    else if (a.columns !== 'all') for (const c of columns) a.columns.add(lower(c));
  }

  /** Declares the FROM list of a SELECT (or UPDATE/DELETE) in a new scope; walks derived tables and join conditions. */
  fromScope(from: unknown, parent: Scope | undefined, ctes: Set<string>, op: Operation = 'select'): Scope {
    const scope: Scope = { entries: new Map(), ctes, ...(parent ? { parent } : {}) };
    if (from === null || from === undefined) return scope;
    if (!Array.isArray(from)) throw new Unsupported('unexpected FROM clause shape');
    const conditions: unknown[] = [];
    for (const f of from as AstNode[]) {
      if (f === null || typeof f !== 'object') throw new Unsupported('unexpected FROM item');
      if (f['type'] === 'dual') continue;
      const known = new Set([
        'db',
        'table',
        'as',
        'join',
        'on',
        'using',
        'expr',
        'addition',
        'surround',
        'operator',
        'prefix',
        'index_hint',
        'schema',
      ]);
      for (const k of Object.keys(f)) {
        if (!known.has(k) && f[k] !== null && f[k] !== undefined)
          throw new Unsupported(`FROM item with ${k}`);
      }
      if (f['index_hint'] !== null && f['index_hint'] !== undefined) throw new Unsupported('index hints');
      if (f['expr'] !== undefined && f['expr'] !== null) {
        const e = f['expr'] as AstNode;
        const sub = e['ast'] as AstNode | undefined;
        if (sub === undefined) throw new Unsupported('a FROM item that is not a table or a subquery');
        // A derived table cannot see its siblings (no LATERAL here), but conservatively it sees the parent.
        this.statement(sub, parent, ctes);
        const alias = nameOf(f['as']);
        if (alias === undefined) throw new Unsupported('derived table without alias');
        scope.entries.set(lower(alias), { kind: 'derived' });
      } else {
        const tname = nameOf(f['table']);
        if (tname === undefined) throw new Unsupported('FROM item without a table');
        const alias = lower(nameOf(f['as']) ?? tname);
        const cteName = (f['db'] === null || f['db'] === undefined) && visibleCte(scope, lower(tname));
        if (cteName) scope.entries.set(alias, { kind: 'derived' });
        else {
          const ref = this.resolve(f['db'], f['table']);
          if (scope.entries.has(alias)) throw new Unsupported(`duplicate table alias ${alias}`);
          scope.entries.set(alias, { kind: 'table', ref });
          this.access(ref, op);
        }
      }
      if (f['on'] !== null && f['on'] !== undefined) conditions.push(f['on']);
      if (Array.isArray(f['using'])) {
        for (const u of f['using'] as unknown[]) {
          const c = nameOf(u);
          if (c === undefined) throw new Unsupported('USING column');
          this.unqualifiedColumn(scope, c);
        }
      }
    }
    for (const c of conditions) this.expr(c, scope);
    return scope;
  }

  unqualifiedColumn(scope: Scope, column: string): void {
    // Unqualified: MySQL resolves it to the innermost table that has the column, which the analyser cannot know
    // without the catalog, so it counts as read from every table in this scope and every enclosing one.
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      for (const e of s.entries.values())
        if (e.kind === 'table') this.access(e.ref, 'select', column === '*' ? 'all' : [column]);
      if (column === '*') break;
    }
  }

  columnRef(node: AstNode, scope: Scope | undefined): void {
    let column = node['column'];
    if (column !== null && typeof column === 'object') {
      const inner = (column as AstNode)['expr'];
      column = nameOf(inner) ?? nameOf(column);
    }
    if (typeof column !== 'string') throw new Unsupported('a column reference the analyser cannot read');
    const qualifier = nameOf(node['table']);
    const db = nameOf(node['db']);
    if (scope === undefined) {
      // No FROM anywhere: a bare name here is a keyword-like value the parser turned into a column.
      throw new Unsupported(`column ${column} outside any FROM clause`);
    }
    if (qualifier === undefined || qualifier === '') {
      this.unqualifiedColumn(scope, column);
      return;
    }
    const q = lower(qualifier);
    for (let s: Scope | undefined = scope; s !== undefined; s = s.parent) {
      for (const [alias, e] of s.entries) {
        const match =
          db === undefined ? alias === q : e.kind === 'table' && e.ref.db === lower(db) && e.ref.name === q;
        if (!match) continue;
        if (e.kind === 'table') this.access(e.ref, 'select', column === '*' ? 'all' : [column]);
        return;
      }
    }
    throw new Unsupported(`column ${qualifier}.${column} names no table of the statement`);
  }

  functionCall(node: AstNode, scope: Scope | undefined): void {
    let name: string | undefined;
    let schema: string | undefined;
    if (node['type'] === 'aggr_func') name = nameOf(node['name']);
    else {
      const n = node['name'] as AstNode | undefined;
      const parts = n !== undefined && Array.isArray(n['name']) ? (n['name'] as unknown[]) : [];
      if (parts.length !== 1) throw new Unsupported('a function name the analyser cannot read');
      name = nameOf(parts[0]);
      schema = nameOf(n?.['schema']);
    }
    if (name === undefined) throw new Unsupported('a function name the analyser cannot read');
    const fn = lower(name);
    if (schema !== undefined) {
      const ref = this.resolve(schema, fn);
      this.functions.push({ schema: ref.db, name: fn });
    } else {
      const why = MYSQL_DENIED_FUNCTIONS.get(fn);
      if (why !== undefined) throw new Deny(`function:${fn}`, `function ${fn} ${why}`);
      if (!MYSQL_SAFE_FUNCTIONS.has(fn)) {
        throw new Deny(
          `function:${fn}`,
          `function ${fn} is not a known pure built-in; unqualified names may resolve to loadable (UDF) ` +
            `functions, so call stored functions as database.function`,
        );
      }
    }
    for (const [k, v] of Object.entries(node)) {
      if (k === 'name' || k === 'type') continue;
      this.expr(v, scope);
    }
  }

  variable(node: AstNode): void {
    const prefix = node['prefix'];
    if (prefix === '@') return; // user variable: per session, read-only here
    if (prefix !== '@@') throw new Unsupported('a variable reference the analyser cannot read');
    const base = lower(nameOf(node['name']) ?? '');
    const members = Array.isArray(node['members'])
      ? (node['members'] as unknown[]).map((m) => lower(String(m)))
      : [];
    let name = base;
    if (['session', 'local', 'global'].includes(base) && members.length === 1) name = members[0] as string;
    else if (members.length > 0) throw new Unsupported('a system variable name the analyser cannot read');
    if (!MYSQL_READABLE_VARIABLES.has(name)) {
      throw new Deny(`variable:${name}`, `system variable ${name} is not on the readable list`);
    }
  }

  expr(node: unknown, scope: Scope | undefined): void {
    if (node === null || node === undefined || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const n of node) this.expr(n, scope);
      return;
    }
    const o = node as AstNode;
    if (o['ast'] !== undefined && o['ast'] !== null) {
      this.statement(o['ast'] as AstNode, scope, scope?.ctes ?? new Set());
      return;
    }
    const type = o['type'];
    if (type === 'select') {
      this.statement(o, scope, scope?.ctes ?? new Set());
      return;
    }
    if (typeof type === 'string') {
      if (type === 'column_ref') return this.columnRef(o, scope);
      if (type === 'function' || type === 'aggr_func') return this.functionCall(o, scope);
      if (type === 'var') return this.variable(o);
      if (LEAF_TYPES.has(type)) return;
      if (!COMPOSITE_TYPES.has(type)) throw new Unsupported(`expression of type ${type}`);
    }
    if ('table' in o && !('column' in o) && type !== 'column_ref') {
      throw new Unsupported('a table reference inside an expression');
    }
    for (const v of Object.values(o)) this.expr(v, scope);
  }

  /** Walks a SELECT (with its UNION chain). */
  select(ast: AstNode, parent: Scope | undefined, outerCtes: Set<string>): void {
    const ctes = new Set(outerCtes);
    if (Array.isArray(ast['with'])) {
      for (const w of ast['with'] as AstNode[]) {
        const name = nameOf(w['name']);
        if (name === undefined) throw new Unsupported('CTE name');
        if (w['recursive'] === true) throw new Unsupported('recursive CTE');
        const stmt = (w['stmt'] as AstNode | undefined)?.['ast'] as AstNode | undefined;
        if (stmt === undefined) throw new Unsupported('CTE body');
        this.statement(stmt, parent, ctes);
        ctes.add(lower(name));
      }
    }
    const into = ast['into'] as AstNode | null | undefined;
    if (into !== null && into !== undefined && into['type'] !== undefined && into['type'] !== null) {
      const kw = lower(str(into['keyword']));
      if (kw === 'outfile' || kw === 'dumpfile')
        throw new Deny(
          'into-outfile',
          `SELECT ... INTO ${kw.toUpperCase()} writes files on the database server`,
        );
      throw new Deny('select-into', 'SELECT ... INTO variables is not supported');
    }
    const known = new Set([
      'with',
      'type',
      'options',
      'distinct',
      'columns',
      'into',
      'from',
      'where',
      'groupby',
      'having',
      'orderby',
      'collate',
      'limit',
      'locking_read',
      'window',
      '_next',
      'set_op',
      'parentheses_symbol',
      '_orderby',
      '_limit',
      'tableList',
      'columnList',
    ]);
    for (const k of Object.keys(ast)) {
      if (!known.has(k) && ast[k] !== null && ast[k] !== undefined) throw new Unsupported(`SELECT with ${k}`);
    }
    if (ast['options'] !== null && ast['options'] !== undefined) {
      const opts = (ast['options'] as unknown[]).map((x) => String(x).toUpperCase());
      for (const x of opts) {
        if (
          ![
            'SQL_CALC_FOUND_ROWS',
            'SQL_NO_CACHE',
            'SQL_CACHE',
            'STRAIGHT_JOIN',
            'HIGH_PRIORITY',
            'ALL',
            'DISTINCTROW',
          ].includes(x)
        )
          throw new Unsupported(`SELECT option ${x}`);
      }
    }
    const lock = ast['locking_read'];
    const scope = this.fromScope(ast['from'], parent, ctes);
    if (lock !== null && lock !== undefined) {
      // FOR UPDATE / FOR SHARE lock rows as a write would: counted as update of every table read here.
      for (const e of scope.entries.values()) if (e.kind === 'table') this.access(e.ref, 'update');
    }
    for (const c of (ast['columns'] as unknown[] | null) ?? []) {
      const col = c as AstNode;
      if (col['expr'] !== undefined) this.expr(col['expr'], scope);
      else this.expr(col, scope);
    }
    this.expr(ast['where'], scope);
    const gb = ast['groupby'] as AstNode | null | undefined;
    if (gb !== null && gb !== undefined) this.expr(gb['columns'] ?? gb, scope);
    this.expr(ast['having'], scope);
    for (const o of [ast['orderby'], ast['_orderby']]) {
      if (Array.isArray(o)) for (const item of o as AstNode[]) this.expr(item['expr'], scope);
    }
    for (const l of [ast['limit'], ast['_limit']]) {
      if (l !== null && l !== undefined) this.expr((l as AstNode)['value'], scope);
    }
    if (ast['window'] !== null && ast['window'] !== undefined) throw new Unsupported('named windows');
    const next = ast['_next'] as AstNode | undefined | null;
    if (next !== null && next !== undefined) this.statement(next, parent, outerCtes);
  }

  /** Any statement tree that can appear nested (SELECT, or a parenthesised union). */
  statement(ast: AstNode, parent: Scope | undefined, ctes: Set<string>): void {
    if (ast['type'] === 'select') this.select(ast, parent, ctes);
    else throw new Unsupported(`nested ${String(ast['type'])} statement`);
  }
}

function visibleCte(scope: Scope, name: string): boolean {
  return scope.ctes.has(name);
}

/** Builds the summary of one walked statement. */
function summaryOf(
  kind: string,
  text: string,
  w: Walker,
  extra: Partial<StatementSummary> = {},
): StatementSummary {
  const relations: RelationAccess[] = [];
  for (const a of w.accesses.values()) {
    const base = { schema: a.rel.db, name: a.rel.name, operation: a.op };
    const cols = a.columns;
    if (cols === 'all') relations.push(base);
    else if (cols.size > 0) relations.push({ ...base, columns: [...cols].sort() });
    else if (a.op !== 'select')
      relations.push(base); // a write naming no column: the whole row
    else if (kind === 'SelectStmt' || kind === 'ExplainStmt') relations.push({ ...base, columns: [] }); // COUNT(*)
    // else: a write statement's target named in FROM but no column of it read: no read access.
  }
  return {
    kind,
    text,
    relations,
    functions: w.functions,
    settings: w.settings,
    ...(w.hasWhere === undefined ? {} : { hasWhere: w.hasWhere }),
    ...extra,
  };
}

/** The parser's own table list, as "op::db.table" → normalised to "db.table". */
function parserTables(sql: string, database: string): Set<string> {
  const out = new Set<string>();
  for (const t of parser.tableList(sql, PARSER_OPTIONS)) {
    const parts = t.split('::');
    if (parts.length !== 3) throw new Unsupported(`parser table list entry ${t}`);
    const db = parts[1] === 'null' || parts[1] === undefined ? database : parts[1];
    out.add(`${lower(db)}.${lower(parts[2] as string)}`);
  }
  return out;
}

function parseOne(clean: string): AstNode {
  let ast: unknown;
  try {
    ast = parser.astify(clean, PARSER_OPTIONS);
  } catch (e) {
    throw new ParseFailure(
      e instanceof Error ? (e.message.split('\n')[0] ?? 'syntax error') : 'syntax error',
    );
  }
  if (Array.isArray(ast)) {
    if (ast.length !== 1) throw new ParseFailure('expected exactly one statement');
    ast = ast[0];
  }
  if (ast === null || typeof ast !== 'object') throw new ParseFailure('no statement');
  return ast as AstNode;
}
class ParseFailure extends Error {}

const words = (s: LexedStatement): string[] =>
  s.tokens.map((t) => (t.kind === 'word' ? t.value : `\u0000${t.kind}`));

function identAt(t: Token | undefined): string | undefined {
  if (t === undefined) return undefined;
  if (t.kind === 'ident') return t.value;
  if (t.kind === 'word') return lower(t.value);
  return undefined;
}

/** Statement kinds always refused, by first word(s): named so the denial says what it was. */
const REFUSED_FIRST_WORDS = new Set([
  'HANDLER',
  'DO',
  'LOCK',
  'UNLOCK',
  'GRANT',
  'REVOKE',
  'FLUSH',
  'KILL',
  'SHUTDOWN',
  'INSTALL',
  'UNINSTALL',
  'XA',
  'CHANGE',
  'PURGE',
  'RESET',
  'OPTIMIZE',
  'ANALYZE',
  'CHECK',
  'REPAIR',
  'CHECKSUM',
  'CACHE',
  'BINLOG',
  'BACKUP',
  'HELP',
  'SIGNAL',
  'RESIGNAL',
  'GET',
  'TABLE',
  'VALUES',
  'IMPORT',
  'CLONE',
  'RESTART',
  'START_SLAVE',
  'STOP',
  'SLAVE',
  'REPLICA',
  'BEGIN_NOT_ATOMIC',
  'DECLARE',
  'ITERATE',
  'LEAVE',
  'LOOP',
  'REPEAT',
  'RETURN',
  'WHILE',
  'CASE',
  'IF',
  'OPEN',
  'CLOSE',
  'FETCH',
]);

function kindName(word: string): string {
  return `Mysql${word.charAt(0)}${word.slice(1).toLowerCase()}Stmt`;
}

/** Analyses a whole COM_QUERY / COM_STMT_PREPARE text. */
export function analyzeMysql(sql: string, opts: MysqlAnalyzeOptions): MysqlAnalysis {
  const lexed = lexStatements(sql);
  if (!lexed.ok) {
    if (/executable comment|optimizer hint|DELIMITER|NUL byte/.test(lexed.error)) {
      return { denied: { rule: 'mysql-lexer', reason: lexed.error }, statements: [] };
    }
    return { error: lexed.error, statements: [] };
  }
  if (lexed.statements.length === 0) return { error: 'empty statement', statements: [] };
  const out: AnalyzedStatement[] = [];
  for (const s of lexed.statements) {
    try {
      out.push(analyzeOne(s, opts.database));
    } catch (e) {
      if (e instanceof Deny) return { denied: { rule: e.rule, reason: e.reason }, statements: out };
      if (e instanceof ParseFailure) return { error: e.message, statements: out };
      if (e instanceof Unsupported) {
        out.push({ lexed: s, summary: unsupported(s.text, e.message) });
        continue;
      }
      out.push({
        lexed: s,
        summary: unsupported(s.text, `analyser error: ${e instanceof Error ? e.message : String(e)}`),
      });
    }
  }
  return { statements: out };
}

function unsupported(text: string, why: string): StatementSummary {
  return { kind: 'Unsupported', text, relations: [], functions: [], settings: [], unsupported: why };
}

function simple(kind: string, text: string, extra: Partial<StatementSummary> = {}): StatementSummary {
  return { kind, text, relations: [], functions: [], settings: [], ...extra };
}

function analyzeOne(s: LexedStatement, database: string): AnalyzedStatement {
  const w = words(s);
  const first = w[0] ?? '';
  const text = s.text;
  const done = (summary: StatementSummary): AnalyzedStatement => ({ summary, lexed: s });

  if (REFUSED_FIRST_WORDS.has(first)) return done(simple(kindName(first), text));
  switch (first) {
    case 'PREPARE': {
      const name = identAt(s.tokens[1]);
      if (name === undefined || w[2] !== 'FROM') throw new Unsupported('PREPARE syntax');
      const body = s.tokens[3];
      if (body === undefined || body.kind !== 'string' || s.tokens.length !== 4) {
        throw new Deny(
          'prepare:dynamic',
          'PREPARE from anything but a string literal (dynamic SQL) is not allowed',
        );
      }
      const inner = analyzeMysql(body.value, { database });
      if (inner.denied !== undefined) throw new Deny(inner.denied.rule, inner.denied.reason);
      if (inner.error !== undefined) throw new ParseFailure(`in the prepared text: ${inner.error}`);
      if (inner.statements.length !== 1) throw new Unsupported('PREPARE of more than one statement');
      const body0 = (inner.statements[0] as AnalyzedStatement).summary;
      // PREPARE is decided as its body (like PostgreSQL's PrepareStmt, whose accesses are the body's).
      return done({ ...body0, kind: 'PrepareStmt', text, preparedName: lower(name) });
    }
    case 'EXECUTE': {
      const name = identAt(s.tokens[1]);
      if (name === undefined) throw new Unsupported('EXECUTE syntax');
      if (s.tokens.length > 2) {
        if (w[2] !== 'USING') throw new Unsupported('EXECUTE syntax');
        // Only user variables as parameters: values, never text.
        for (let i = 3; i < s.tokens.length; i++) {
          const t = s.tokens[i] as Token;
          const ok =
            i % 2 === 1 ? t.kind === 'var' && !t.value.startsWith('@@') : t.kind === 'op' && t.value === ',';
          if (!ok) throw new Unsupported('EXECUTE ... USING takes user variables only');
        }
      }
      return done(simple('ExecuteStmt', text, { preparedName: lower(name) }));
    }
    case 'DEALLOCATE':
    case 'DROP':
      if (w[1] === 'PREPARE') {
        const name = identAt(s.tokens[2]);
        if (name === undefined || s.tokens.length !== 3) throw new Unsupported('DEALLOCATE syntax');
        return done(simple('DeallocateStmt', text, { preparedName: lower(name) }));
      }
      if (first === 'DEALLOCATE') throw new Unsupported('DEALLOCATE syntax');
      break;
    case 'USE': {
      const db = identAt(s.tokens[1]);
      if (db === undefined || s.tokens.length !== 2) throw new Unsupported('USE syntax');
      if (lower(db) !== lower(database)) {
        throw new Deny('use-database', `USE may only name the target's database ${database}`);
      }
      return done(simple('TransactionStmt', text));
    }
    case 'BEGIN':
    case 'COMMIT':
    case 'ROLLBACK':
    case 'SAVEPOINT':
    case 'RELEASE':
    case 'START': {
      if (first === 'START' && w[1] !== 'TRANSACTION') break;
      const allowed = new Set([
        'BEGIN',
        'WORK',
        'COMMIT',
        'ROLLBACK',
        'SAVEPOINT',
        'RELEASE',
        'START',
        'TRANSACTION',
        'TO',
        'READ',
        'ONLY',
        'WRITE',
        'WITH',
        'CONSISTENT',
        'SNAPSHOT',
        'AND',
        'NO',
        'CHAIN',
      ]);
      for (let i = 0; i < s.tokens.length; i++) {
        const t = s.tokens[i] as Token;
        const isName =
          (w[i - 1] === 'SAVEPOINT' || (w[i - 1] === 'TO' && first === 'ROLLBACK')) &&
          (t.kind === 'word' || t.kind === 'ident');
        if (!isName && !(t.kind === 'word' && allowed.has(t.value)))
          throw new Unsupported('transaction statement syntax');
      }
      return done(simple('TransactionStmt', text));
    }
    case 'SHOW':
      return done(show(s, database));
    case 'DESCRIBE':
    case 'DESC':
    case 'EXPLAIN': {
      const t1 = s.tokens[1];
      if (
        t1 !== undefined &&
        (t1.kind === 'ident' ||
          (t1.kind === 'word' &&
            ![
              'SELECT',
              'EXTENDED',
              'FORMAT',
              'PARTITIONS',
              'ANALYZE',
              'INSERT',
              'UPDATE',
              'DELETE',
              'REPLACE',
              'WITH',
              '(',
            ].includes(t1.value)))
      ) {
        const wk = new Walker(database);
        const ref = tableNameTokens(s.tokens.slice(1), wk, database);
        if (ref === undefined) throw new Unsupported('DESCRIBE syntax');
        wk.access({ db: 'information_schema', name: 'columns' }, 'select');
        wk.seen.add(`${ref.db}.${ref.name}`);
        return done(summaryOf('SelectStmt', text, wk));
      }
      if (first !== 'EXPLAIN' && w[1] !== 'SELECT') throw new Unsupported('DESCRIBE syntax');
      break;
    }
    case 'SET':
      return done(setStatement(s, database));
    case 'LOAD':
      return done(loadData(s, database));
    case 'CREATE': {
      const second = w[1] === 'TEMPORARY' ? w[2] : w[1];
      const idx = w[1] === 'UNIQUE' || w[1] === 'FULLTEXT' || w[1] === 'SPATIAL' ? w[2] : w[1];
      if (second !== 'TABLE' && idx !== 'INDEX')
        return done(simple(kindName(`CREATE_${w[1] ?? ''}`.replace(/_$/, '')), text));
      if (w.includes('SELECT') || w.includes('IGNORE') || w.includes('REPLACE')) {
        throw new Unsupported('CREATE TABLE ... SELECT / IGNORE / REPLACE');
      }
      break;
    }
    case 'ALTER':
      if (w[1] !== 'TABLE' && !(w[1] === 'ONLINE' && w[2] === 'TABLE') && w[1] !== 'IGNORE')
        return done(simple(kindName(`ALTER_${w[1] ?? ''}`), text));
      if (w.includes('EXCHANGE') || w.includes('DISCARD') || w.includes('IMPORT'))
        throw new Unsupported('ALTER TABLE that moves tablespaces or partitions between tables');
      break;
    case 'RENAME':
      if (w[1] !== 'TABLE' && w[1] !== 'TABLES') return done(simple(kindName(`RENAME_${w[1] ?? ''}`), text));
      break;
    default:
      break;
  }
  if (first === 'DROP' && !['TABLE', 'VIEW', 'INDEX', 'TEMPORARY'].includes(w[1] ?? '')) {
    return done(simple(kindName(`DROP_${w[1] ?? ''}`), text));
  }
  if (
    ![
      'SELECT',
      'INSERT',
      'UPDATE',
      'DELETE',
      'REPLACE',
      'WITH',
      'TRUNCATE',
      'CREATE',
      'DROP',
      'ALTER',
      'RENAME',
      'CALL',
      'EXPLAIN',
      '\u0000op',
    ].includes(first)
  ) {
    return done(simple(kindName(first.startsWith('\u0000') ? 'Unknown' : first), text));
  }
  if (first === '\u0000op' && s.tokens[0]?.value !== '(') throw new ParseFailure('syntax error');
  const ast = parseOne(s.clean);
  const summary = fromAst(ast, s, database);
  return { summary, lexed: s, ast };
}

/** Reads `name` or `db.name` from tokens; returns undefined unless that is all the tokens hold. */
function tableNameTokens(ts: readonly Token[], w: Walker, database: string): TableRef | undefined {
  const a = identAt(ts[0]);
  if (a === undefined) return undefined;
  if (ts.length === 1) return w.resolve(null, a);
  if (ts.length === 3 && ts[1]?.kind === 'op' && ts[1].value === '.') {
    const b = identAt(ts[2]);
    if (b === undefined) return undefined;
    return w.resolve(a, b);
  }
  void database;
  return undefined;
}

/** SHOW: only metadata forms that information_schema would also answer; `SHOW WARNINGS` / `ERRORS` are utilities. */
function show(s: LexedStatement, database: string): StatementSummary {
  const w = words(s);
  const rest = w.slice(1).filter((x) => x !== 'FULL');
  const wk = new Walker(database);
  const text = s.text;
  const info = (name: string): StatementSummary => {
    wk.access({ db: 'information_schema', name }, 'select');
    return summaryOf('SelectStmt', text, wk);
  };
  if ((rest[0] === 'WARNINGS' || rest[0] === 'ERRORS') && rest.length === 1)
    return simple('VariableShowStmt', text);
  if (rest[0] === 'COUNT' && s.tokens.length === 6) return simple('VariableShowStmt', text);
  if (rest[0] === 'DATABASES' || rest[0] === 'SCHEMAS') {
    if (rest.length === 1) return info('schemata');
  }
  if (rest[0] === 'TABLES' && rest.length === 1) return info('tables');
  if ((rest[0] === 'COLUMNS' || rest[0] === 'FIELDS') && (rest[1] === 'FROM' || rest[1] === 'IN')) {
    const start = w.indexOf(rest[1]) + 1;
    const ref = tableNameTokens(s.tokens.slice(start), wk, database);
    if (ref !== undefined) {
      wk.seen.add(`${ref.db}.${ref.name}`);
      return info('columns');
    }
  }
  if (rest[0] === 'CREATE' && rest[1] === 'TABLE') {
    const ref = tableNameTokens(s.tokens.slice(3), wk, database);
    if (ref !== undefined) return info('tables');
  }
  return simple(kindName('SHOW'), text, {
    unsupported: `SHOW ${rest.slice(0, 2).join(' ')} is not supported (use information_schema)`,
  });
}

/**
 * MySQL's names of the statement timeout (MariaDB `max_statement_time`, MySQL 8 `max_execution_time`). A SET of
 * either is reported to the policy as the setting `statement_timeout`, so the one rule that decides PostgreSQL's
 * statement_timeout decides them too: allowed like any harmless setting, refused by the bundle guard while a signed
 * bundle pins `statement_timeout_ms` (src/bundle/guard.ts).
 */
export const MYSQL_STATEMENT_TIMEOUT_SETTINGS: ReadonlySet<string> = new Set([
  'max_statement_time',
  'max_execution_time',
]);

/** SET: user variables (their expressions walked), harmless session variables, the rest reported or denied. */
function setStatement(s: LexedStatement, database: string): StatementSummary {
  const w = words(s);
  const text = s.text;
  if (
    ['GLOBAL', 'PERSIST', 'PERSIST_ONLY'].includes(w[1] ?? '') ||
    s.tokens.some((t) => t.kind === 'var' && /^@@(global|persist|persist_only)\./i.test(t.value))
  ) {
    throw new Deny('setting:global', 'changing global server variables is never allowed');
  }
  if (w[1] === 'STATEMENT')
    throw new Deny('setting:statement', 'SET STATEMENT ... FOR changes variables behind the analyser');
  if (w[1] === 'PASSWORD' || w[1] === 'ROLE' || (w[1] === 'DEFAULT' && w[2] === 'ROLE')) {
    throw new Deny(
      `setting:${lower(w[1] === 'DEFAULT' ? 'default_role' : w[1])}`,
      'changes accounts or roles',
    );
  }
  if (w[1] === 'NAMES' || w[1] === 'CHARSET' || (w[1] === 'CHARACTER' && w[2] === 'SET')) {
    const at = w[1] === 'CHARACTER' ? 3 : 2;
    const cs = s.tokens[at];
    const name = cs === undefined ? '' : lower(cs.kind === 'word' ? cs.value : cs.value);
    const tail = s.tokens.length - at - 1;
    const collate = tail === 2 && w[at + 1] === 'COLLATE';
    if (
      (tail !== 0 && !collate) ||
      !MYSQL_SAFE_CHARSETS.has(name) ||
      (collate && !lower(s.tokens[at + 2]?.value ?? '').startsWith(name))
    ) {
      throw new Deny(
        'setting:names',
        `character set ${name || '?'} is not one of ${[...MYSQL_SAFE_CHARSETS].join(', ')}`,
      );
    }
    return simple('VariableSetStmt', text);
  }
  const sessionScoped = w[1] === 'SESSION' || w[1] === 'LOCAL';
  if (w[sessionScoped ? 2 : 1] === 'TRANSACTION') {
    const ok = new Set([
      'SET',
      'SESSION',
      'LOCAL',
      'TRANSACTION',
      'ISOLATION',
      'LEVEL',
      'READ',
      'UNCOMMITTED',
      'COMMITTED',
      'REPEATABLE',
      'SERIALIZABLE',
      'WRITE',
      'ONLY',
    ]);
    if (
      !s.tokens.every((t) => (t.kind === 'word' && ok.has(t.value)) || (t.kind === 'op' && t.value === ','))
    ) {
      throw new Unsupported('SET TRANSACTION syntax');
    }
    return simple('VariableSetStmt', text);
  }
  const ast = parseOne(s.clean);
  if (ast['type'] !== 'set' || !Array.isArray(ast['expr'])) throw new Unsupported('SET syntax');
  const wk = new Walker(database);
  const scope: Scope = { entries: new Map(), ctes: new Set() };
  for (const a of ast['expr'] as AstNode[]) {
    if (a['type'] !== 'assign') throw new Unsupported('SET item');
    const left = a['left'] as AstNode;
    if (left['type'] !== 'var') throw new Unsupported('SET target');
    const prefix = left['prefix'];
    const base = lower(nameOf(left['name']) ?? '');
    const members = Array.isArray(left['members'])
      ? (left['members'] as unknown[]).map((m) => lower(String(m)))
      : [];
    if (prefix === '@') {
      if (members.length > 0) throw new Unsupported('user variable name');
      wk.expr(a['right'], scope);
      continue;
    }
    let name = base;
    if (prefix === '@@' && ['session', 'local'].includes(base) && members.length === 1)
      name = members[0] as string;
    else if (prefix === '@@' && base === 'global')
      throw new Deny('setting:global', 'changing global server variables is never allowed');
    else if (members.length > 0 || (prefix !== null && prefix !== '@@'))
      throw new Unsupported('variable name');
    const forbidden = MYSQL_FORBIDDEN_SETTINGS.get(name);
    if (forbidden !== undefined) throw new Deny(`setting:${name}`, `setting ${name} ${forbidden}`);
    const right = a['right'] as AstNode;
    if (
      right === null ||
      typeof right !== 'object' ||
      !LEAF_TYPES.has(String(right['type'])) ||
      right['type'] === 'origin'
    ) {
      if (!(right?.['type'] === 'origin' && /^(DEFAULT|ON|OFF|TRUE|FALSE)$/i.test(String(right['value'])))) {
        throw new Deny(`setting:${name}`, `setting ${name} may only be set to a constant`);
      }
    }
    if (MYSQL_STATEMENT_TIMEOUT_SETTINGS.has(name)) {
      wk.settings.push({ name: 'statement_timeout' });
      continue;
    }
    if (MYSQL_HARMLESS_SETTINGS.has(name)) continue;
    wk.settings.push({ name, value: nameOf(right) ?? str(right['value']) });
  }
  return summaryOf('VariableSetStmt', text, wk);
}

/** LOAD DATA: server files are never read; LOCAL (the client's own data) is an insert into the target. */
function loadData(s: LexedStatement, database: string): StatementSummary {
  const w = words(s);
  if (w[1] === 'XML') return simple(kindName('LOAD_XML'), s.text);
  if (w[1] !== 'DATA') throw new Unsupported('LOAD syntax');
  const ast = parseOne(s.clean);
  if (ast['type'] !== 'load_data') throw new Unsupported('LOAD DATA syntax');
  if (lower(str(ast['local'])) !== 'local') {
    throw new Deny('load-data', 'LOAD DATA without LOCAL reads files on the database server');
  }
  const wk = new Walker(database);
  const table = ast['table'] as AstNode | undefined;
  if (table === undefined || table === null) throw new Unsupported('LOAD DATA without a table');
  // The parser's table list misses LOAD DATA targets: the target comes from the tree here.
  const ref = wk.resolve(table['db'], table['table']);
  if (ast['set'] !== null && ast['set'] !== undefined) throw new Unsupported('LOAD DATA ... SET');
  // The column list: `(a, b)` arrives as one expression list of column references; anything else (user
  // variables, expressions) is not understood.
  let cols: string[] | undefined;
  if (Array.isArray(ast['column'])) {
    cols = [];
    for (const item of ast['column'] as AstNode[]) {
      const list = (item?.['expr'] as AstNode | undefined)?.['value'];
      const refs = Array.isArray(list) ? (list as AstNode[]) : [item];
      for (const r of refs) {
        if (r?.['type'] !== 'column_ref' || nameOf(r['table']) !== undefined)
          throw new Unsupported('LOAD DATA column list');
        const c = nameOf(r['column']);
        if (c === undefined || c.startsWith('@')) throw new Unsupported('LOAD DATA column list');
        cols.push(c);
      }
    }
  }
  wk.access(ref, 'copy_from', cols === undefined ? 'all' : cols);
  const mode = lower(str(ast['replace_ignore']));
  if (mode === 'replace') wk.access(ref, 'delete', 'all');
  return summaryOf('CopyStmt', s.text, wk);
}

function colName(c: unknown): string {
  const n =
    nameOf(c) ??
    nameOf((c as AstNode | null)?.['column']) ??
    nameOf(((c as AstNode | null)?.['column'] as AstNode | null)?.['expr']);
  if (n === undefined) throw new Unsupported('a column name the analyser cannot read');
  return n;
}

/** Maps a parsed DML/DDL statement to its summary. */
function fromAst(ast: AstNode, s: LexedStatement, database: string): StatementSummary {
  const wk = new Walker(database);
  const type = String(ast['type']);
  const text = s.text;
  let kind: string;
  let crossCheck = true;
  switch (type) {
    case 'select':
      kind = 'SelectStmt';
      wk.select(ast, undefined, new Set());
      break;
    case 'insert':
    case 'replace': {
      kind = 'InsertStmt';
      const tables = ast['table'] as AstNode[];
      if (!Array.isArray(tables) || tables.length !== 1) throw new Unsupported('INSERT target');
      const t = tables[0] as AstNode;
      const ref = wk.resolve(t['db'], t['table']);
      if (ast['partition'] !== null && ast['partition'] !== undefined)
        throw new Unsupported('INSERT ... PARTITION');
      if (ast['returning'] !== null && ast['returning'] !== undefined)
        throw new Unsupported('INSERT ... RETURNING');
      let cols: string[] | 'all' = 'all';
      if (Array.isArray(ast['columns'])) cols = (ast['columns'] as unknown[]).map(colName);
      const scope: Scope = { entries: new Map(), ctes: new Set() };
      if (Array.isArray(ast['set'])) {
        cols = [];
        for (const item of ast['set'] as AstNode[]) {
          cols.push(colName(item['column']));
          wk.expr(item['value'], scope);
        }
      }
      wk.access(ref, 'insert', cols);
      // REPLACE deletes the rows it collides with before inserting.
      if (type === 'replace') wk.access(ref, 'delete', 'all');
      const values = ast['values'] as AstNode | null | undefined;
      if (values !== null && values !== undefined) {
        if (values['type'] === 'values') wk.expr(values['values'], scope);
        else if (values['type'] === 'select') wk.select(values, undefined, new Set());
        else throw new Unsupported('INSERT source');
      } else if (!Array.isArray(ast['set'])) throw new Unsupported('INSERT without values');
      const odku = ast['on_duplicate_update'] as AstNode | null | undefined;
      if (odku !== null && odku !== undefined) {
        if (type === 'replace') throw new Unsupported('REPLACE ... ON DUPLICATE KEY UPDATE');
        const tscope: Scope = { entries: new Map([[ref.name, { kind: 'table', ref }]]), ctes: new Set() };
        const updated: string[] = [];
        for (const item of (odku['set'] as AstNode[] | undefined) ?? []) {
          updated.push(colName(item['column']));
          wk.expr(item['value'], tscope);
        }
        if (updated.length === 0) throw new Unsupported('ON DUPLICATE KEY UPDATE without columns');
        wk.access(ref, 'update', updated);
      }
      break;
    }
    case 'update': {
      kind = 'UpdateStmt';
      const known = new Set(['with', 'type', 'table', 'set', 'where', 'orderby', 'limit', 'returning']);
      for (const k of Object.keys(ast))
        if (!known.has(k) && ast[k] !== null) throw new Unsupported(`UPDATE with ${k}`);
      if (ast['with'] !== null && ast['with'] !== undefined) throw new Unsupported('UPDATE with WITH');
      if (ast['returning'] !== null && ast['returning'] !== undefined)
        throw new Unsupported('UPDATE ... RETURNING');
      const scope = wk.fromScope(ast['table'], undefined, new Set());
      const tables = [...scope.entries.entries()].filter(([, e]) => e.kind === 'table') as [
        string,
        { kind: 'table'; ref: TableRef },
      ][];
      for (const item of (ast['set'] as AstNode[] | undefined) ?? []) {
        const col = colName(item['column']);
        const q = nameOf(item['table']);
        const targets =
          q === undefined || q === null
            ? tables.length === 1
              ? tables
              : tables
            : tables.filter(([a]) => a === lower(q));
        if (targets.length === 0) throw new Unsupported(`SET column ${q ?? ''}.${col} names no table`);
        for (const [, e] of targets) wk.access(e.ref, 'update', [col]);
        wk.expr(item['value'], scope);
      }
      wk.expr(ast['where'], scope);
      for (const o of Array.isArray(ast['orderby']) ? (ast['orderby'] as AstNode[]) : [])
        wk.expr(o['expr'], scope);
      if (ast['limit'] !== null && ast['limit'] !== undefined)
        wk.expr((ast['limit'] as AstNode)['value'], scope);
      wk.hasWhere = restrictsRows(ast['where'], tableAliases(scope));
      break;
    }
    case 'delete': {
      kind = 'DeleteStmt';
      const known = new Set(['with', 'type', 'table', 'from', 'where', 'orderby', 'limit', 'returning']);
      for (const k of Object.keys(ast))
        if (!known.has(k) && ast[k] !== null) throw new Unsupported(`DELETE with ${k}`);
      if (ast['with'] !== null && ast['with'] !== undefined) throw new Unsupported('DELETE with WITH');
      if (ast['returning'] !== null && ast['returning'] !== undefined)
        throw new Unsupported('DELETE ... RETURNING');
      const scope = wk.fromScope(ast['from'], undefined, new Set());
      const targets = (ast['table'] as AstNode[] | undefined) ?? [];
      if (targets.length === 0) throw new Unsupported('DELETE without target');
      for (const t of targets) {
        const name = lower(nameOf(t['table']) ?? '');
        const byAlias = t['db'] === null || t['db'] === undefined ? scope.entries.get(name) : undefined;
        if (byAlias !== undefined) {
          if (byAlias.kind !== 'table') throw new Unsupported('DELETE from a derived table');
          wk.access(byAlias.ref, 'delete', 'all');
        } else {
          const ref = wk.resolve(t['db'], t['table']);
          const inFrom = [...scope.entries.values()].some(
            (e) => e.kind === 'table' && e.ref.db === ref.db && e.ref.name === ref.name,
          );
          if (!inFrom) throw new Unsupported(`DELETE target ${ref.db}.${ref.name} is not in FROM`);
          wk.access(ref, 'delete', 'all');
        }
      }
      wk.expr(ast['where'], scope);
      for (const o of Array.isArray(ast['orderby']) ? (ast['orderby'] as AstNode[]) : [])
        wk.expr(o['expr'], scope);
      wk.hasWhere = restrictsRows(ast['where'], tableAliases(scope));
      break;
    }
    case 'truncate': {
      kind = 'TruncateStmt';
      for (const t of (ast['name'] as AstNode[] | undefined) ?? [])
        wk.access(wk.resolve(t['db'], t['table']), 'truncate', 'all');
      break;
    }
    case 'create': {
      const keyword = lower(str(ast['keyword']));
      if (keyword === 'table') {
        kind = 'CreateStmt';
        if (ast['replace'] || ast['ignore_replace'] || ast['query_expr'] || ast['as'])
          throw new Unsupported('CREATE TABLE ... SELECT / OR REPLACE');
        for (const t of (ast['table'] as AstNode[] | undefined) ?? [])
          wk.access(wk.resolve(t['db'], t['table']), 'create', 'all');
        const like = ast['like'] as AstNode | undefined;
        if (like !== undefined && like !== null) {
          for (const t of (like['table'] as AstNode[] | undefined) ?? [])
            wk.access(wk.resolve(t['db'], t['table']), 'select', 'all');
        }
        const defs = JSON.stringify(ast['create_definitions'] ?? null);
        if (/"reference_definition"|"references"/i.test(defs))
          throw new Unsupported('foreign keys in CREATE TABLE');
      } else if (keyword === 'index') {
        kind = 'IndexStmt';
        crossCheck = false; // the parser lists no table for CREATE INDEX
        const t = ast['table'] as AstNode;
        wk.access(wk.resolve(t['db'], t['table']), 'alter', 'all');
      } else throw new Unsupported(`CREATE ${keyword}`);
      break;
    }
    case 'drop': {
      const keyword = lower(str(ast['keyword']));
      kind = 'DropStmt';
      crossCheck = false; // the parser lists no table for DROP VIEW / INDEX
      if (keyword === 'table' || keyword === 'view') {
        for (const t of (ast['name'] as AstNode[] | undefined) ?? [])
          wk.access(wk.resolve(t['db'], t['table']), 'drop', 'all');
      } else if (keyword === 'index') {
        const t = ast['table'] as AstNode;
        wk.access(wk.resolve(t['db'], t['table']), 'alter', 'all');
      } else throw new Unsupported(`DROP ${keyword}`);
      break;
    }
    case 'alter': {
      kind = 'AlterTableStmt';
      const tables = (ast['table'] as AstNode[] | undefined) ?? [];
      if (tables.length !== 1) throw new Unsupported('ALTER TABLE target');
      const t = tables[0] as AstNode;
      const ref = wk.resolve(t['db'], t['table']);
      wk.access(ref, 'alter', 'all');
      for (const e of (ast['expr'] as AstNode[] | undefined) ?? []) {
        if (e['action'] === 'rename' && e['resource'] === 'table') {
          const target = e['table'];
          const parts = typeof target === 'string' ? target.split('.') : [nameOf(target) ?? ''];
          const to = parts.length === 2 ? wk.resolve(parts[0], parts[1]) : wk.resolve(null, parts[0]);
          wk.access(to, 'create', 'all');
          crossCheck = false;
        }
        if (
          JSON.stringify(e).includes('"references"') ||
          JSON.stringify(e).includes('reference_definition')
        ) {
          throw new Unsupported('foreign keys in ALTER TABLE');
        }
      }
      break;
    }
    case 'rename': {
      kind = 'RenameStmt';
      crossCheck = false;
      for (const pair of (ast['table'] as AstNode[][] | undefined) ?? []) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new Unsupported('RENAME TABLE syntax');
        const [a, b] = pair as [AstNode, AstNode];
        wk.access(wk.resolve(a['db'], a['table']), 'alter', 'all');
        wk.access(wk.resolve(b['db'], b['table']), 'create', 'all');
      }
      if (wk.accesses.size === 0) throw new Unsupported('RENAME TABLE syntax');
      break;
    }
    case 'call': {
      kind = 'CallStmt';
      const e = ast['expr'] as AstNode;
      const n = e['name'] as AstNode;
      const parts = Array.isArray(n?.['name']) ? (n['name'] as unknown[]) : [];
      const name = parts.length === 1 ? nameOf(parts[0]) : undefined;
      if (name === undefined) throw new Unsupported('CALL syntax');
      const ref = wk.resolve(nameOf(n['schema']) ?? null, name);
      wk.functions.push({ schema: ref.db, name: ref.name });
      wk.expr(e['args'], { entries: new Map(), ctes: new Set() });
      break;
    }
    case 'explain': {
      kind = 'ExplainStmt';
      const inner = ast['expr'] as AstNode;
      if (inner?.['type'] !== 'select') throw new Unsupported('EXPLAIN of anything but SELECT');
      wk.select(inner, undefined, new Set());
      break;
    }
    default:
      throw new Unsupported(`statement type ${type}`);
  }
  if (crossCheck) {
    // INVARIANT: the parser's own table list and the walk must agree, or the statement is not understood.
    const theirs = parserTables(s.clean, database);
    const ctes = new Set<string>();
    collectCteNames(ast, ctes);
    for (const c of ctes) theirs.delete(`${lower(database)}.${c}`);
    const mine = wk.seen;
    const missing = [...theirs].filter((t) => !mine.has(t));
    const extra = [...mine].filter((t) => !theirs.has(t));
    if (missing.length > 0 || extra.length > 0) {
      throw new Unsupported(
        `the parser's table list and the analysis disagree (${[...missing, ...extra].join(', ')})`,
      );
    }
  }
  return summaryOf(kind, text, wk);
}

function tableAliases(scope: Scope): Set<string> {
  return new Set([...scope.entries].filter(([, e]) => e.kind === 'table').map(([a]) => a));
}

/** Whether an expression names a column of the target: unqualified (outside subqueries), or by a target alias. */
function namesTargetColumn(node: unknown, aliases: ReadonlySet<string>, inSubquery: boolean): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some((n) => namesTargetColumn(n, aliases, inSubquery));
  const o = node as AstNode;
  if (o['type'] === 'column_ref') {
    const q = nameOf(o['table']);
    if (q === undefined || q === '') return !inSubquery && nameOf(o['column']) !== '*';
    return aliases.has(lower(q));
  }
  const sub = o['ast'] !== undefined && o['ast'] !== null;
  return Object.entries(o).some(
    ([k, v]) => k !== 'tableList' && k !== 'columnList' && namesTargetColumn(v, aliases, inSubquery || sub),
  );
}

/**
 * Whether a WHERE restricts the rows of an UPDATE/DELETE, for approval rules with `without_where`: it must name a
 * column of the target, and recognisable tautologies (`a = a`, a branch of OR that names none) do not count.
 */
export function restrictsRows(where: unknown, aliases: ReadonlySet<string>): boolean {
  if (where === null || where === undefined || typeof where !== 'object') return false;
  const o = where as AstNode;
  const op = typeof o['operator'] === 'string' ? o['operator'].toUpperCase() : '';
  if (o['type'] === 'binary_expr' && (op === 'AND' || op === '&&')) {
    return restrictsRows(o['left'], aliases) || restrictsRows(o['right'], aliases);
  }
  if (o['type'] === 'binary_expr' && (op === 'OR' || op === '||' || op === 'XOR')) {
    return restrictsRows(o['left'], aliases) && restrictsRows(o['right'], aliases);
  }
  if (o['type'] === 'binary_expr' && JSON.stringify(o['left']) === JSON.stringify(o['right'])) return false;
  return namesTargetColumn(o, aliases, false);
}

function collectCteNames(node: unknown, out: Set<string>): void {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const n of node) collectCteNames(n, out);
    return;
  }
  const o = node as AstNode;
  if (Array.isArray(o['with']))
    for (const w of o['with'] as AstNode[]) out.add(lower(nameOf(w['name']) ?? ''));
  for (const v of Object.values(o)) collectCteNames(v, out);
}

/** The system variable a lone `SHOW VARIABLES LIKE 'warden.%'` asks for (the MySQL form of `SHOW warden.x`). */
export function wardenShowName(sql: string): 'warden.policy_version' | 'warden.policy_hash' | undefined {
  const lexed = lexStatements(sql);
  if (!lexed.ok || lexed.statements.length !== 1) return undefined;
  const t = (lexed.statements[0] as LexedStatement).tokens;
  const w = t.map((x) => (x.kind === 'word' ? x.value : ''));
  const at = w[1] === 'SESSION' || w[1] === 'GLOBAL' ? 2 : 1;
  if (w[0] !== 'SHOW' || w[at] !== 'VARIABLES' || w[at + 1] !== 'LIKE' || t.length !== at + 3)
    return undefined;
  const lit = t[at + 2];
  if (lit?.kind !== 'string') return undefined;
  const v = lit.value.toLowerCase();
  return v === 'warden.policy_version' || v === 'warden.policy_hash' ? v : undefined;
}
