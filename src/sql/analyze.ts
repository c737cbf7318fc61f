// SQL statement analyser: parses PostgreSQL SQL with the real parser and reduces each statement to a plain StatementSummary (relations, columns, functions, settings).
//
// Design: a generic, schema-driven walk over the whole parse tree (field shapes come from node-fields.generated.ts),
// with semantic handlers for the node types that carry access (FROM items, column references, function calls,
// statements). Every node type is either handled, in the GENERIC allow-list, or makes the statement `unsupported`.
// INVARIANT: fail closed. Whatever the analyser does not fully understand sets `unsupported`; the policy denies it.
//
// Name resolution follows the pinned search_path `pg_catalog, <searchPath...>, pg_temp`: an unqualified name that
// exists in pg_catalog (catalog.generated.ts) resolves there, any other to searchPath[0]; CTE names are not relations.
// @see https://www.postgresql.org/docs/15/ddl-schemas.html#DDL-SCHEMAS-PATH
import type {
  FunctionCall,
  Operation,
  QualifiedName,
  RelationAccess,
  SettingChange,
  StatementSummary,
} from '../core/access.js';
import { PG_CATALOG_FUNCTIONS, PG_CATALOG_RELATIONS } from './catalog.generated.js';
import { NODE_FIELDS } from './node-fields.generated.js';
import { initSqlParser, isPlainObject, parsePlpgsql, parseSql, scanSql, unwrap } from './parser.js';
import type { NodeBody } from './parser.js';

export interface AnalyzeOptions {
  /** The schemas after pg_catalog in the pinned search_path, in order. */
  readonly searchPath: readonly string[];
}

export interface Analysis {
  readonly statements: readonly StatementSummary[];
  /** Parse error (message and position): the whole string is denied. */
  readonly error?: string;
}

/** Loads the parser (WASM). Call once at start-up; `analyze` is synchronous afterwards. */
export function initSqlAnalyser(): Promise<void> {
  return initSqlParser();
}

// ---------------------------------------------------------------------------------------------------------------
// Allow-lists

/**
 * Node types the analyser understands as plain containers: walking their fields (by NODE_FIELDS) finds every
 * relation, column and function inside. Anything not here and not handled explicitly is `unsupported`.
 */
const GENERIC = new Set<string>([
  // values and literals
  'A_Const',
  'Integer',
  'Float',
  'Boolean',
  'String',
  'BitString',
  'List',
  'A_Star',
  'ParamRef',
  'A_Indices',
  // expressions
  'A_Expr',
  'BoolExpr',
  'TypeCast',
  'TypeName',
  'NullTest',
  'BooleanTest',
  'CaseExpr',
  'CaseWhen',
  'CoalesceExpr',
  'MinMaxExpr',
  'SQLValueFunction',
  'A_ArrayExpr',
  'RowExpr',
  'CollateClause',
  'NamedArgExpr',
  'GroupingSet',
  'GroupingFunc',
  'XmlExpr',
  'XmlSerialize',
  'SetToDefault',
  'CurrentOfExpr',
  'MultiAssignRef',
  'ResTarget',
  'SortBy',
  'WindowDef',
  'ReturningClause',
  'ReturningOption',
  'MergeSupportFunc',
  // SQL/JSON
  'JsonFormat',
  'JsonReturning',
  'JsonValueExpr',
  'JsonOutput',
  'JsonKeyValue',
  'JsonObjectConstructor',
  'JsonArrayConstructor',
  'JsonArrayQueryConstructor',
  'JsonAggConstructor',
  'JsonObjectAgg',
  'JsonArrayAgg',
  'JsonIsPredicate',
  'JsonParseExpr',
  'JsonScalarExpr',
  'JsonSerializeExpr',
  'JsonFuncExpr',
  'JsonBehavior',
  'JsonArgument',
  'JsonTablePathSpec',
  'JsonTableColumn',
  // clauses inside statements
  'Alias',
  'DefElem',
  'RoleSpec',
  'ObjectWithArgs',
  'FunctionParameter',
  'ColumnDef',
  'Constraint',
  'IndexElem',
  'InferClause',
  'AccessPriv',
  'VacuumRelation',
  'PartitionSpec',
  'PartitionElem',
  'PartitionBoundSpec',
  'PartitionRangeDatum',
  'PartitionCmd',
  'AlterTableCmd',
  'TableLikeClause',
  'StatsElem',
  'ReturnStmt',
  'TriggerTransition',
  'RangeTableFuncCol',
  'CreateOpClassItem',
  'AlterTSConfigurationStmt',
  'PublicationObjSpec',
  'PublicationTable',
  'ATAlterConstraint',
  'TableSampleClause',
]);

/** Utility statements: understood, no relation access; the policy decides them by `kind`. */
const UTILITY_STATEMENTS = new Set<string>([
  'TransactionStmt',
  'VariableShowStmt',
  'ListenStmt',
  'UnlistenStmt',
  'NotifyStmt',
  'ClosePortalStmt',
  'FetchStmt',
  'DeallocateStmt',
  'CheckPointStmt',
  'LoadStmt',
  'ConstraintsSetStmt',
  'DiscardStmt',
]);

/** TransactionStmt kinds of two-phase commit, always refused. */
const TWO_PHASE_KINDS = new Set([
  'TRANS_STMT_PREPARE',
  'TRANS_STMT_COMMIT_PREPARED',
  'TRANS_STMT_ROLLBACK_PREPARED',
]);

/** DDL statements analysed by a generic walk; relation names found inside get the given operation. */
const DDL_STATEMENTS: Readonly<Record<string, Operation>> = {
  AlterTableStmt: 'alter',
  RenameStmt: 'alter',
  AlterObjectSchemaStmt: 'alter',
  AlterOwnerStmt: 'alter',
  CommentStmt: 'alter',
  SecLabelStmt: 'alter',
  AlterSeqStmt: 'alter',
  CreateSeqStmt: 'create',
  IndexStmt: 'create',
  CreateStmt: 'create',
  CreateForeignTableStmt: 'create',
  ViewStmt: 'create',
  RuleStmt: 'create',
  CreateTrigStmt: 'create',
  CreatePolicyStmt: 'create',
  AlterPolicyStmt: 'alter',
  CreateStatsStmt: 'create',
  AlterStatsStmt: 'alter',
  RefreshMatViewStmt: 'alter',
  ReindexStmt: 'alter',
  ClusterStmt: 'alter',
  VacuumStmt: 'alter',
  GrantStmt: 'alter',
  GrantRoleStmt: 'alter',
  AlterDefaultPrivilegesStmt: 'alter',
  CreateSchemaStmt: 'create',
  CreateFunctionStmt: 'create',
  AlterFunctionStmt: 'alter',
  CreateDomainStmt: 'create',
  AlterDomainStmt: 'alter',
  CompositeTypeStmt: 'create',
  CreateEnumStmt: 'create',
  AlterEnumStmt: 'alter',
  CreateRangeStmt: 'create',
  DefineStmt: 'create',
  CreateExtensionStmt: 'create',
  AlterExtensionStmt: 'alter',
  CreateRoleStmt: 'create',
  AlterRoleStmt: 'alter',
  AlterRoleSetStmt: 'alter',
  DropRoleStmt: 'drop',
  CreatedbStmt: 'create',
  DropdbStmt: 'drop',
  AlterDatabaseStmt: 'alter',
  AlterDatabaseSetStmt: 'alter',
  ReassignOwnedStmt: 'alter',
  DropOwnedStmt: 'drop',
  CreateCastStmt: 'create',
  CreateConversionStmt: 'create',
  CreateEventTrigStmt: 'create',
  AlterEventTrigStmt: 'alter',
  CreateTableSpaceStmt: 'create',
  DropTableSpaceStmt: 'drop',
  CreatePublicationStmt: 'create',
  AlterPublicationStmt: 'alter',
  CreateSubscriptionStmt: 'create',
  AlterSubscriptionStmt: 'alter',
  DropSubscriptionStmt: 'drop',
  CreateFdwStmt: 'create',
  CreateForeignServerStmt: 'create',
  CreateUserMappingStmt: 'create',
  ImportForeignSchemaStmt: 'create',
  CreateOpClassStmt: 'create',
  CreateOpFamilyStmt: 'create',
  AlterOpFamilyStmt: 'alter',
  CreateTransformStmt: 'create',
  CreatePLangStmt: 'create',
  CreateAmStmt: 'create',
  AlterSystemStmt: 'alter',
  AlterTableMoveAllStmt: 'alter',
  AlterCollationStmt: 'alter',
  AlterTypeStmt: 'alter',
};

/** pg_catalog functions that run SQL given as text (or read whole tables by name): their effect cannot be analysed. */
const DYNAMIC_SQL_FUNCTIONS = new Set<string>([
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'ts_stat',
  'ts_rewrite',
]);

/** PL/pgSQL statement and datum node types understood (everything else, including dynamic EXECUTE, is unsupported). */
const PLPGSQL_NODES = new Set<string>([
  'PLpgSQL_function',
  'PLpgSQL_var',
  'PLpgSQL_row',
  'PLpgSQL_rec',
  'PLpgSQL_recfield',
  'PLpgSQL_type',
  'PLpgSQL_stmt_block',
  'PLpgSQL_stmt_assign',
  'PLpgSQL_stmt_if',
  'PLpgSQL_if_elsif',
  'PLpgSQL_stmt_case',
  'PLpgSQL_case_when',
  'PLpgSQL_stmt_loop',
  'PLpgSQL_stmt_while',
  'PLpgSQL_stmt_fori',
  'PLpgSQL_stmt_fors',
  'PLpgSQL_stmt_forc',
  'PLpgSQL_stmt_foreach_a',
  'PLpgSQL_stmt_exit',
  'PLpgSQL_stmt_return',
  'PLpgSQL_stmt_return_next',
  'PLpgSQL_stmt_return_query',
  'PLpgSQL_stmt_raise',
  'PLpgSQL_raise_option',
  'PLpgSQL_stmt_assert',
  'PLpgSQL_stmt_execsql',
  'PLpgSQL_stmt_perform',
  'PLpgSQL_stmt_call',
  'PLpgSQL_stmt_commit',
  'PLpgSQL_stmt_rollback',
  'PLpgSQL_stmt_getdiag',
  'PLpgSQL_diag_item',
  'PLpgSQL_stmt_open',
  'PLpgSQL_stmt_fetch',
  'PLpgSQL_stmt_close',
  'PLpgSQL_exception_block',
  'PLpgSQL_exception',
  'PLpgSQL_condition',
  'PLpgSQL_nsitem',
]);

/** Relation kinds of DROP whose objects are relations named by a qualified name list. */
const RELATION_OBJECT_TYPES = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_INDEX',
  'OBJECT_SEQUENCE',
  'OBJECT_FOREIGN_TABLE',
]);

// ---------------------------------------------------------------------------------------------------------------
// Accumulation

/** Columns touched: a set of names, or ALL (null) for the whole row. */
type Cols = Set<string> | null;
const ALL = null;

interface RelRecord {
  schema: string;
  name: string;
  operation: Operation;
  cols: Cols;
}

class Accumulator {
  readonly rels = new Map<string, RelRecord>();
  readonly funcs = new Map<string, FunctionCall>();
  readonly settings: SettingChange[] = [];
  readonly unsupported: string[] = [];
  /** AND over every UPDATE/DELETE in the statement; undefined when there is none. */
  hasWhere: boolean | undefined;
  preparedName: string | undefined;

  addRel(q: QualifiedName, operation: Operation, cols: readonly string[] | typeof ALL): void {
    const key = `${q.schema}\u0000${q.name}\u0000${operation}`;
    let rec = this.rels.get(key);
    if (!rec) {
      rec = { schema: q.schema, name: q.name, operation, cols: new Set() };
      this.rels.set(key, rec);
    }
    if (cols === ALL) rec.cols = ALL;
    else if (rec.cols !== ALL) for (const c of cols) rec.cols.add(c);
  }

  addFunc(f: FunctionCall): void {
    this.funcs.set(`${f.schema}\u0000${f.name}`, f);
  }

  fail(reason: string): void {
    if (!this.unsupported.includes(reason)) this.unsupported.push(reason);
  }

  noteWhere(present: boolean): void {
    this.hasWhere = (this.hasWhere ?? true) && present;
  }

  summary(kind: string, text: string): StatementSummary {
    const relations: RelationAccess[] = [...this.rels.values()].map((r) =>
      Object.freeze(
        r.cols === ALL
          ? { schema: r.schema, name: r.name, operation: r.operation }
          : {
              schema: r.schema,
              name: r.name,
              operation: r.operation,
              columns: Object.freeze([...r.cols].sort()),
            },
      ),
    );
    const s: {
      -readonly [K in keyof StatementSummary]: StatementSummary[K];
    } = {
      kind,
      text,
      relations: Object.freeze(relations),
      functions: Object.freeze([...this.funcs.values()].map((f) => Object.freeze(f))),
      settings: Object.freeze(this.settings.map((x) => Object.freeze(x))),
    };
    if (this.hasWhere !== undefined) s.hasWhere = this.hasWhere;
    if (this.preparedName !== undefined) s.preparedName = this.preparedName;
    if (this.unsupported.length > 0) s.unsupported = this.unsupported.join('; ');
    return Object.freeze(s);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scopes

/** One FROM-clause item visible to column references. */
interface Entry {
  /** Alias, or the relation/CTE/function name. */
  readonly refname: string;
  /** Schema written in front of the relation, for `schema.table.column` references. */
  readonly schemaQualifier?: string;
  /** The real relation behind the entry (absent for subqueries, CTEs, functions). */
  readonly rel?: QualifiedName;
  /** For a join with an alias: the entries it covers. */
  readonly members?: readonly Entry[];
}

class Scope {
  readonly entries: Entry[] = [];
  readonly ctes = new Set<string>();
  constructor(readonly parent: Scope | undefined) {}

  isCte(name: string): boolean {
    return this.ctes.has(name) || (this.parent?.isCte(name) ?? false);
  }
}

interface Ctx {
  readonly acc: Accumulator;
  readonly searchPath: readonly string[];
  /** Operation for a RangeVar met by the generic walk (DDL); undefined: such a RangeVar is unsupported. */
  readonly ddlOp?: Operation;
  /** Text of the statement being analysed (for PL/pgSQL re-parsing). */
  readonly text: string;
  readonly depth: number;
}

const MAX_NESTED_DEPTH = 8;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function obj(v: unknown): NodeBody | undefined {
  return isPlainObject(v) ? v : undefined;
}

function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Names from a list of `{ String: { sval } }` nodes; undefined if any item is not a String. */
function names(v: unknown): string[] | undefined {
  const out: string[] = [];
  for (const item of list(v)) {
    const u = unwrap(item);
    if (!u || u[0] !== 'String') return undefined;
    out.push(str(u[1].sval) ?? '');
  }
  return out;
}

function firstSchema(ctx: Ctx): string {
  const s = ctx.searchPath[0];
  if (s === undefined) {
    ctx.acc.fail('an unqualified name cannot be resolved with an empty search path');
    return '';
  }
  return s;
}

/** Resolves an existing relation named by a RangeVar body. */
function resolveRel(ctx: Ctx, rv: NodeBody): QualifiedName {
  const name = str(rv.relname) ?? '';
  const schema = str(rv.schemaname);
  if (str(rv.catalogname) !== undefined)
    ctx.acc.fail(`three-part relation name ${str(rv.catalogname)}.${schema}.${name}`);
  if (schema !== undefined) return { schema, name };
  if (PG_CATALOG_RELATIONS.has(name)) return { schema: 'pg_catalog', name };
  return { schema: firstSchema(ctx), name };
}

/** Resolves the name of a relation being created. */
function resolveNewRel(ctx: Ctx, rv: NodeBody): QualifiedName {
  const name = str(rv.relname) ?? '';
  const schema = str(rv.schemaname);
  if (schema !== undefined) return { schema, name };
  if (rv.relpersistence === 't') return { schema: 'pg_temp', name };
  return { schema: firstSchema(ctx), name };
}

/** Resolves a function (or other non-relation object) name list. */
function resolveFuncName(ctx: Ctx, parts: readonly string[]): FunctionCall {
  const name = parts[parts.length - 1] ?? '';
  if (parts.length >= 3) ctx.acc.fail(`three-part function name ${parts.join('.')}`);
  if (parts.length >= 2) return { schema: parts[parts.length - 2] ?? '', name };
  if (PG_CATALOG_FUNCTIONS.has(name)) return { schema: 'pg_catalog', name };
  return { schema: firstSchema(ctx), name };
}

function resolveObjectName(ctx: Ctx, parts: readonly string[]): QualifiedName {
  const name = parts[parts.length - 1] ?? '';
  if (parts.length >= 2) return { schema: parts[parts.length - 2] ?? '', name };
  return { schema: firstSchema(ctx), name };
}

/**
 * Counts reads of literal values (every constString call). `analyze` compares it before and after, so callers can
 * tell whether an analysis may depend on the values of literals (see readsLiteralValues).
 */
let literalReads = 0;

function constString(node: unknown): string | undefined {
  literalReads++;
  const u = unwrap(node);
  if (!u) return undefined;
  if (u[0] === 'A_Const') {
    const c = u[1];
    if (isPlainObject(c.sval)) return str(c.sval.sval) ?? '';
    if (isPlainObject(c.ival)) return typeof c.ival.ival === 'number' ? String(c.ival.ival) : '0';
    if (isPlainObject(c.fval)) return str(c.fval.fval);
    if (isPlainObject(c.boolval)) return c.boolval.boolval === true ? 'true' : 'false';
    return undefined;
  }
  if (u[0] === 'TypeCast') return constString(u[1].arg);
  if (u[0] === 'String') return str(u[1].sval);
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Generic walk

function visitWrapped(ctx: Ctx, node: unknown, scope: Scope): void {
  // The parser writes an absent node inside a list as `{}` (e.g. a missing column definition list).
  if (isPlainObject(node) && Object.keys(node).length === 0) return;
  const u = unwrap(node);
  if (!u) {
    ctx.acc.fail('malformed parse tree node');
    return;
  }
  visit(ctx, u[0], u[1], scope);
}

function visitList(ctx: Ctx, v: unknown, scope: Scope): void {
  for (const item of list(v)) visitWrapped(ctx, item, scope);
}

function visitOpt(ctx: Ctx, v: unknown, scope: Scope): void {
  if (v !== undefined && v !== null) visitWrapped(ctx, v, scope);
}

/** Walks every field of a node by its declared shape. Unknown object-valued fields are unsupported. */
function walkFields(ctx: Ctx, type: string, body: NodeBody, scope: Scope, skip?: ReadonlySet<string>): void {
  const spec = NODE_FIELDS[type];
  if (!spec) {
    ctx.acc.fail(`unknown node type ${type}`);
    return;
  }
  for (const [key, value] of Object.entries(body)) {
    if (value === null || typeof value !== 'object' || skip?.has(key)) continue;
    const shape = spec[key];
    if (shape === 'node') visitWrapped(ctx, value, scope);
    else if (shape === 'list') visitList(ctx, value, scope);
    else if (shape !== undefined && isPlainObject(value)) visit(ctx, shape, value, scope);
    else ctx.acc.fail(`unexpected field ${type}.${key}`);
  }
}

/** Dispatches one node (type and body). */
function visit(ctx: Ctx, type: string, body: NodeBody, scope: Scope): void {
  switch (type) {
    case 'ColumnRef':
      columnRef(ctx, body, scope);
      return;
    case 'FuncCall':
      funcCall(ctx, body, scope);
      return;
    case 'A_Indirection':
      indirection(ctx, body, scope);
      return;
    case 'SubLink':
      visitOpt(ctx, body.testexpr, scope);
      visitList(ctx, body.operName, scope);
      query(ctx, body.subselect, scope);
      return;
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      query(ctx, { [type]: body }, scope);
      return;
    case 'RangeVar':
      if (ctx.ddlOp === undefined) ctx.acc.fail('relation reference in an unexpected position');
      else ctx.acc.addRel(resolveRel(ctx, body), ctx.ddlOp, ALL);
      walkFields(ctx, type, body, scope);
      return;
    case 'LockingClause':
      // lockedRels name FROM items already reported; FOR UPDATE adds no access of its own here.
      walkFields(ctx, type, body, scope, new Set(['lockedRels']));
      return;
    case 'IntoClause':
      if (isPlainObject(body.rel)) ctx.acc.addRel(resolveNewRel(ctx, body.rel), 'create', ALL);
      walkFields(ctx, type, body, scope, new Set(['rel']));
      return;
    default:
      if (GENERIC.has(type)) walkFields(ctx, type, body, scope);
      else ctx.acc.fail(`unsupported node type ${type}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Columns

/** Relation entries an unqualified column could belong to: every relation visible at any query level. */
function candidates(scope: Scope): Entry[] {
  const out: Entry[] = [];
  for (let s: Scope | undefined = scope; s; s = s.parent) for (const e of s.entries) out.push(...flatten(e));
  return out;
}

function flatten(e: Entry): Entry[] {
  if (e.members) return e.members.flatMap(flatten);
  return e.rel ? [e] : [];
}

function findEntry(scope: Scope, refname: string, schema?: string): Entry | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    for (let i = s.entries.length - 1; i >= 0; i--) {
      const e = s.entries[i] as Entry;
      if (e.refname === refname && (schema === undefined || e.schemaQualifier === schema)) return e;
    }
  }
  return undefined;
}

function touch(ctx: Ctx, e: Entry, cols: readonly string[] | typeof ALL): void {
  for (const r of flatten(e)) if (r.rel) ctx.acc.addRel(r.rel, 'select', cols);
}

function touchAll(ctx: Ctx, entries: readonly Entry[], cols: readonly string[] | typeof ALL): void {
  for (const e of entries) touch(ctx, e, cols);
}

function columnRef(ctx: Ctx, body: NodeBody, scope: Scope): void {
  /** Field names; '*' stands for A_Star. */
  const fields: string[] = [];
  for (const f of list(body.fields)) {
    const u = unwrap(f);
    if (u?.[0] === 'String') fields.push(str(u[1].sval) ?? '');
    else if (u?.[0] === 'A_Star') fields.push('*');
    else {
      ctx.acc.fail('unsupported column reference');
      return;
    }
  }
  const [a, b, c, d] = fields;
  if (fields.length === 1) {
    if (a === '*') {
      // `SELECT *`: every entry of this query level, whole row.
      touchAll(ctx, scope.entries, ALL);
      return;
    }
    // Tried as a column first, then as a whole-row reference to a FROM item: report both (conservative).
    touchAll(ctx, candidates(scope), [a as string]);
    const e = findEntry(scope, a as string);
    if (e) touch(ctx, e, ALL);
    return;
  }
  if (fields.length === 2) {
    const e = findEntry(scope, a as string);
    if (e) touch(ctx, e, b === '*' ? ALL : [b as string]);
    else touchAll(ctx, candidates(scope), ALL);
    return;
  }
  // Three or four parts: schema.table.column, (catalog.)schema.table.column, or table.column.field.
  let found = false;
  const tryEntry = (ref: string | undefined, col: string | undefined, schema?: string): void => {
    if (ref === undefined || ref === '*') return;
    const e = findEntry(scope, ref, schema);
    if (e) {
      found = true;
      touch(ctx, e, col === undefined || col === '*' ? ALL : [col]);
    }
  };
  if (fields.length === 3) {
    tryEntry(b, c, a);
    tryEntry(a, b);
  } else {
    tryEntry(c, d, b);
    tryEntry(b, c, a);
  }
  if (!found) touchAll(ctx, candidates(scope), ALL);
}

/** `(c).ssn`, `(c).*`, `(expr).field`, `arr[1]`. */
function indirection(ctx: Ctx, body: NodeBody, scope: Scope): void {
  const arg = unwrap(body.arg);
  const ind = list(body.indirection);
  const first = unwrap(ind[0]);
  if (arg?.[0] === 'ColumnRef' && first?.[0] === 'String') {
    const f = names(arg[1].fields);
    if (f?.length === 1) {
      const name = f[0] as string;
      touchAll(ctx, candidates(scope), [name]);
      const e = findEntry(scope, name);
      if (e) touch(ctx, e, [str(first[1].sval) ?? '']);
      visitList(ctx, ind.slice(1), scope);
      return;
    }
  }
  walkFields(ctx, 'A_Indirection', body, scope);
}

// ---------------------------------------------------------------------------------------------------------------
// Functions

function funcCall(ctx: Ctx, body: NodeBody, scope: Scope): void {
  const parts = names(body.funcname);
  if (!parts || parts.length === 0) {
    ctx.acc.fail('function name is not a plain name');
  } else {
    const f = resolveFuncName(ctx, parts);
    ctx.acc.addFunc(f);
    if (f.schema === 'pg_catalog' && DYNAMIC_SQL_FUNCTIONS.has(f.name)) {
      ctx.acc.fail(`function ${f.schema}.${f.name} runs SQL that cannot be analysed`);
    }
    if (f.schema === 'pg_catalog' && f.name === 'set_config') {
      const first = list(body.args)[0];
      ctx.acc.settings.push({ name: (constString(first) ?? '<dynamic>').toLowerCase() });
    }
  }
  walkFields(ctx, 'FuncCall', body, scope, new Set(['funcname']));
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

/** Analyses a (wrapped) query node: SELECT, INSERT, UPDATE, DELETE or MERGE, in the given outer scope. */
function query(ctx: Ctx, node: unknown, outer: Scope): void {
  const u = unwrap(node);
  if (!u) {
    ctx.acc.fail('missing query');
    return;
  }
  const [type, body] = u;
  switch (type) {
    case 'SelectStmt':
      select(ctx, body, outer);
      return;
    case 'InsertStmt':
      insert(ctx, body, outer);
      return;
    case 'UpdateStmt':
      update(ctx, body, outer);
      return;
    case 'DeleteStmt':
      del(ctx, body, outer);
      return;
    case 'MergeStmt':
      merge(ctx, body, outer);
      return;
    default:
      ctx.acc.fail(`unsupported query node ${type}`);
  }
}

/** Declares the CTEs of a WITH clause and analyses their bodies; returns the scope in which they are visible. */
function withClause(ctx: Ctx, w: unknown, outer: Scope): Scope {
  if (!isPlainObject(w)) return outer;
  const scope = new Scope(outer);
  const ctes = list(w.ctes)
    .map(unwrap)
    .filter((x): x is [string, NodeBody] => x?.[0] === 'CommonTableExpr');
  if (ctes.length !== list(w.ctes).length) ctx.acc.fail('unexpected node in WITH clause');
  if (w.recursive === true) for (const [, c] of ctes) scope.ctes.add(str(c.ctename) ?? '');
  for (const [, c] of ctes) {
    query(ctx, c.ctequery, scope);
    walkFields(ctx, 'CommonTableExpr', c, scope, new Set(['ctequery']));
    scope.ctes.add(str(c.ctename) ?? '');
  }
  return scope;
}

function select(ctx: Ctx, s: NodeBody, outer: Scope): void {
  const sc = withClause(ctx, s.withClause, outer);
  const handled = new Set(['withClause', 'fromClause', 'larg', 'rarg']);
  if (s.op !== undefined && s.op !== 'SETOP_NONE') {
    if (isPlainObject(s.larg)) select(ctx, s.larg, sc);
    if (isPlainObject(s.rarg)) select(ctx, s.rarg, sc);
    walkFields(ctx, 'SelectStmt', s, new Scope(sc), handled);
    return;
  }
  const level = new Scope(sc);
  for (const item of list(s.fromClause)) fromItem(ctx, item, level);
  walkFields(ctx, 'SelectStmt', s, level, handled);
}

function aliasOf(body: NodeBody): NodeBody | undefined {
  return obj(body.alias);
}

/** Adds a relation entry for a RangeVar read in a FROM position. */
function rangeVarEntry(ctx: Ctx, rv: NodeBody, level: Scope): Entry {
  const relname = str(rv.relname) ?? '';
  const alias = aliasOf(rv);
  const refname = str(alias?.aliasname) ?? relname;
  if (str(rv.schemaname) === undefined && level.isCte(relname)) {
    const e: Entry = { refname };
    level.entries.push(e);
    return e;
  }
  const rel = resolveRel(ctx, rv);
  // Column aliases (`t AS c(x, y)`) rename columns by position: names no longer identify columns, so read all.
  ctx.acc.addRel(rel, 'select', list(alias?.colnames).length > 0 ? ALL : []);
  const schemaQualifier = str(rv.schemaname);
  const e: Entry = schemaQualifier === undefined ? { refname, rel } : { refname, rel, schemaQualifier };
  level.entries.push(e);
  return e;
}

function fromItem(ctx: Ctx, node: unknown, level: Scope): void {
  const u = unwrap(node);
  if (!u) {
    ctx.acc.fail('malformed FROM item');
    return;
  }
  const [type, body] = u;
  const outerOnly = level.parent ?? level;
  switch (type) {
    case 'RangeVar':
      rangeVarEntry(ctx, body, level);
      return;
    case 'RangeSubselect': {
      const lateral = body.lateral === true;
      query(ctx, body.subquery, lateral ? level : outerOnly);
      level.entries.push({ refname: str(aliasOf(body)?.aliasname) ?? '' });
      return;
    }
    case 'JoinExpr': {
      const start = level.entries.length;
      fromItem(ctx, body.larg, level);
      const mid = level.entries.length;
      fromItem(ctx, body.rarg, level);
      const left = level.entries.slice(start, mid);
      const right = level.entries.slice(mid);
      const using = names(body.usingClause) ?? [];
      touchAll(ctx, [...left, ...right], using);
      if (body.isNatural === true) touchAll(ctx, [...left, ...right], ALL);
      visitOpt(ctx, body.quals, level);
      const alias = aliasOf(body);
      if (alias) {
        const members = level.entries.slice(start);
        if (list(alias.colnames).length > 0) touchAll(ctx, members, ALL);
        level.entries.push({ refname: str(alias.aliasname) ?? '', members });
      }
      if (isPlainObject(body.join_using_alias)) {
        level.entries.push({
          refname: str(body.join_using_alias.aliasname) ?? '',
          members: [...left, ...right],
        });
      }
      return;
    }
    case 'RangeFunction':
      walkFields(ctx, type, body, level, new Set(['alias']));
      level.entries.push({ refname: str(aliasOf(body)?.aliasname) ?? '' });
      return;
    case 'RangeTableSample': {
      fromItem(ctx, body.relation, level);
      const method = names(body.method);
      if (method && method.length > 0) ctx.acc.addFunc(resolveFuncName(ctx, method));
      visitList(ctx, body.args, level);
      visitOpt(ctx, body.repeatable, level);
      return;
    }
    case 'RangeTableFunc':
    case 'JsonTable':
      walkFields(ctx, type, body, level, new Set(['alias']));
      level.entries.push({ refname: str(aliasOf(body)?.aliasname) ?? '' });
      return;
    default:
      ctx.acc.fail(`unsupported FROM item ${type}`);
  }
}

/** Scope holding the target table of an INSERT/UPDATE/DELETE/MERGE: its columns are read lazily (not on entry). */
function targetEntry(ctx: Ctx, rv: NodeBody, scope: Scope): Entry {
  const rel = resolveRel(ctx, rv);
  const relname = str(rv.relname) ?? '';
  const e: Entry = { refname: str(aliasOf(rv)?.aliasname) ?? relname, rel };
  scope.entries.push(e);
  if (rel.schema === 'pg_catalog' && rel.name === 'pg_settings')
    ctx.acc.settings.push({ name: '<pg_settings>' });
  return e;
}

/** Column names written by a target list of ResTarget nodes (`SET a = ..`, `INSERT (a, b)`). */
function targetColumns(ctx: Ctx, targets: unknown, scope: Scope, visitValues: boolean): string[] {
  const out: string[] = [];
  for (const t of list(targets)) {
    const u = unwrap(t);
    if (u?.[0] !== 'ResTarget') {
      ctx.acc.fail('unexpected target list item');
      continue;
    }
    out.push(str(u[1].name) ?? '');
    visitList(ctx, u[1].indirection, scope);
    if (visitValues) visitOpt(ctx, u[1].val, scope);
  }
  return out;
}

function returning(ctx: Ctx, r: unknown, scope: Scope): void {
  if (isPlainObject(r)) walkFields(ctx, 'ReturningClause', r, scope);
}

function insert(ctx: Ctx, s: NodeBody, outer: Scope): void {
  const sc = withClause(ctx, s.withClause, outer);
  if (!isPlainObject(s.relation)) return ctx.acc.fail('INSERT without a target');
  const level = new Scope(sc);
  const target = targetEntry(ctx, s.relation, level);
  const cols = targetColumns(ctx, s.cols, level, false);
  ctx.acc.addRel(target.rel as QualifiedName, 'insert', cols.length > 0 ? cols : ALL);
  if (s.selectStmt !== undefined) query(ctx, s.selectStmt, sc);
  const oc = obj(s.onConflictClause);
  if (oc) {
    const ocScope = new Scope(sc);
    ocScope.entries.push(target, { refname: 'excluded' });
    if (isPlainObject(oc.infer)) {
      for (const el of list(oc.infer.indexElems)) {
        const ie = unwrap(el);
        if (ie?.[0] === 'IndexElem' && str(ie[1].name) !== undefined)
          touch(ctx, target, [str(ie[1].name) as string]);
        else if (ie) walkFields(ctx, ie[0], ie[1], ocScope);
      }
      visitOpt(ctx, oc.infer.whereClause, ocScope);
    }
    if (oc.action === 'ONCONFLICT_UPDATE') {
      const set = targetColumns(ctx, oc.targetList, ocScope, true);
      ctx.acc.addRel(target.rel as QualifiedName, 'update', set);
    }
    visitOpt(ctx, oc.whereClause, ocScope);
  }
  returning(ctx, s.returningClause, level);
}

/**
 * Whether a WHERE clause can restrict the target's rows: it must reference a column of the target (an unqualified
 * column outside subqueries, or one qualified with the target's alias or name). `WHERE true`, `WHERE 1 = 1` or
 * `WHERE EXISTS (SELECT 1)` do not, so a rule about statements without WHERE still applies to them. A tautology
 * over the target's own columns (`WHERE id = id`) is not detected.
 */
function restrictsTarget(where: unknown, relation: unknown): boolean {
  if (where === undefined || where === null) return false;
  // A condition the analyser can show to be always true (or true for every non-NULL value) restricts nothing.
  if (truthOf(where) === true) return false;
  const rel = isPlainObject(relation) ? relation : {};
  const names = new Set<string>();
  if (typeof rel.relname === 'string') names.add(rel.relname);
  if (isPlainObject(rel.alias) && typeof rel.alias.aliasname === 'string') names.add(rel.alias.aliasname);
  const visit = (node: unknown, inSubquery: boolean): boolean => {
    if (Array.isArray(node)) return node.some((x) => visit(x, inSubquery));
    if (!isPlainObject(node)) return false;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'ColumnRef' && isPlainObject(v) && Array.isArray(v.fields)) {
        const first = v.fields[0];
        const firstName = isPlainObject(first) && isPlainObject(first.String) ? first.String.sval : undefined;
        if (v.fields.length === 1 && !inSubquery) return true;
        if (v.fields.length >= 2 && typeof firstName === 'string' && names.has(firstName)) return true;
        continue;
      }
      if (k === 'SubLink' && isPlainObject(v)) {
        // The left side of `x IN (...)` is at this level; only the subquery itself is a new scope.
        if (visit(v.testexpr, inSubquery) || visit(v.subselect, true)) return true;
        continue;
      }
      if (visit(v, inSubquery)) return true;
    }
    return false;
  };
  return visit(where, false);
}

/**
 * The truth of a WHERE condition when it is recognisably constant, else undefined. Recognised: boolean literals;
 * NOT, AND, OR over recognised parts; OR holding both `e` and `NOT e`; comparisons of two literals; an expression
 * compared with itself (`a = a`, `a >= a`, `a IS NOT DISTINCT FROM a`, `a BETWEEN a AND a`: true, `a <> a`:
 * false; NULLs aside, which is the safe direction for approval rules); `e IS NULL OR e IS NOT NULL`; `e IS TRUE`
 * and friends over a recognised `e`. Anything else, however obviously true to a person (`id > 0` on a serial key,
 * `id = id + 0`, a subquery), is undefined: a heuristic, documented in docs/policy.md.
 * Literal values are read through constString, so the fast path (src/sql/fast-path.ts) sees the dependence.
 */
function truthOf(node: unknown, depth = 0): boolean | undefined {
  if (depth > 64) return undefined;
  const u = unwrap(node);
  if (!u) return undefined;
  const [kind, b] = u;
  if (kind === 'A_Const') {
    if (!isPlainObject(b.boolval)) return undefined;
    return constString(node) === 'true';
  }
  if (kind === 'TypeCast') {
    const tn = isPlainObject(b.typeName) ? list(b.typeName.names) : [];
    const last = tn.length > 0 ? unwrap(tn[tn.length - 1]) : undefined;
    const name = last?.[0] === 'String' ? str(last[1].sval) : undefined;
    if (name !== 'bool' && name !== 'boolean') return undefined;
    const v = constString(b.arg)?.trim().toLowerCase();
    if (v === undefined) return truthOf(b.arg, depth + 1);
    if (['t', 'true', 'y', 'yes', 'on', '1'].includes(v)) return true;
    if (['f', 'false', 'n', 'no', 'off', '0'].includes(v)) return false;
    return undefined;
  }
  if (kind === 'BoolExpr') {
    const args = list(b.args);
    if (b.boolop === 'NOT_EXPR') {
      const t = truthOf(args[0], depth + 1);
      return t === undefined ? undefined : !t;
    }
    const parts = args.map((a) => truthOf(a, depth + 1));
    if (b.boolop === 'AND_EXPR') {
      if (parts.some((t) => t === false)) return false;
      return parts.every((t) => t === true) ? true : undefined;
    }
    if (b.boolop === 'OR_EXPR') {
      if (parts.some((t) => t === true)) return true;
      if (complementary(args)) return true;
      return parts.every((t) => t === false) ? false : undefined;
    }
    return undefined;
  }
  if (kind === 'BooleanTest') {
    const t = truthOf(b.arg, depth + 1);
    if (t === undefined) return undefined;
    switch (b.booltesttype) {
      case 'IS_TRUE':
      case 'IS_NOT_FALSE':
        return t;
      case 'IS_FALSE':
      case 'IS_NOT_TRUE':
        return !t;
      default:
        return undefined;
    }
  }
  if (kind === 'A_Expr') {
    const op = operatorOf(b);
    if (b.kind === 'AEXPR_NOT_DISTINCT' && sameExpr(b.lexpr, b.rexpr)) return true;
    if (b.kind === 'AEXPR_DISTINCT' && sameExpr(b.lexpr, b.rexpr)) return false;
    if (b.kind === 'AEXPR_BETWEEN' || b.kind === 'AEXPR_BETWEEN_SYM') {
      const range = isPlainObject(b.rexpr) && isPlainObject(b.rexpr.List) ? list(b.rexpr.List.items) : [];
      if (range.length === 2 && range.every((r) => sameExpr(b.lexpr, r))) return true;
      return undefined;
    }
    if (b.kind !== 'AEXPR_OP' || op === undefined) return undefined;
    if (sameExpr(b.lexpr, b.rexpr)) {
      if (op === '=' || op === '<=' || op === '>=') return true;
      if (op === '<>' || op === '!=' || op === '<' || op === '>') return false;
      return undefined;
    }
    return compareLiterals(b.lexpr, b.rexpr, op);
  }
  return undefined;
}

function operatorOf(b: NodeBody): string | undefined {
  const names = list(b.name);
  if (names.length !== 1) return undefined;
  const n = unwrap(names[0]);
  return n?.[0] === 'String' ? str(n[1].sval) : undefined;
}

/** Two literals compared: the result when both are numbers, or both the same text; else undefined. */
function compareLiterals(l: unknown, r: unknown, op: string): boolean | undefined {
  const lu = unwrap(l);
  const ru = unwrap(r);
  if (lu?.[0] !== 'A_Const' || ru?.[0] !== 'A_Const') return undefined;
  const a = constString(l);
  const b = constString(r);
  if (a === undefined || b === undefined) return undefined;
  const num = (x: NodeBody): boolean => isPlainObject(x.ival) || isPlainObject(x.fval);
  let cmp: number;
  if (num(lu[1]) && num(ru[1])) {
    const x = Number(a);
    const y = Number(b);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return undefined;
    cmp = x === y ? 0 : x < y ? -1 : 1;
  } else if (a === b && isPlainObject(lu[1].sval) === isPlainObject(ru[1].sval)) {
    cmp = 0;
  } else {
    // Text ordering depends on the collation; only equality of identical text is certain.
    if (isPlainObject(lu[1].sval) && isPlainObject(ru[1].sval) && (op === '=' || op === '<>' || op === '!='))
      return op !== '=';
    return undefined;
  }
  switch (op) {
    case '=':
      return cmp === 0;
    case '<>':
    case '!=':
      return cmp !== 0;
    case '<':
      return cmp < 0;
    case '<=':
      return cmp <= 0;
    case '>':
      return cmp > 0;
    case '>=':
      return cmp >= 0;
    default:
      return undefined;
  }
}

/** `e IS NULL` with `e IS NOT NULL`, or `e` with `NOT e`, among the arms of an OR. */
function complementary(args: readonly unknown[]): boolean {
  const nulls: unknown[] = [];
  const notNulls: unknown[] = [];
  const plain: unknown[] = [];
  const negated: unknown[] = [];
  for (const a of args) {
    const u = unwrap(a);
    if (u?.[0] === 'NullTest') (u[1].nulltesttype === 'IS_NULL' ? nulls : notNulls).push(u[1].arg);
    else if (u?.[0] === 'BoolExpr' && u[1].boolop === 'NOT_EXPR') negated.push(list(u[1].args)[0]);
    else plain.push(a);
  }
  const meet = (xs: unknown[], ys: unknown[]): boolean => xs.some((x) => ys.some((y) => sameExpr(x, y)));
  return meet(nulls, notNulls) || meet(plain, negated);
}

/** Structural equality of two expressions, positions ignored (a literal's value counts as a read of it). */
function sameExpr(a: unknown, b: unknown): boolean {
  if (a === undefined || a === null || b === undefined || b === null) return false;
  const strip = (k: string, v: unknown): unknown => (k === 'location' ? undefined : v);
  const x = JSON.stringify(a, strip);
  if (x.includes('"A_Const"')) literalReads++;
  return x === JSON.stringify(b, strip);
}

function update(ctx: Ctx, s: NodeBody, outer: Scope): void {
  const sc = withClause(ctx, s.withClause, outer);
  if (!isPlainObject(s.relation)) return ctx.acc.fail('UPDATE without a target');
  const level = new Scope(sc);
  const target = targetEntry(ctx, s.relation, level);
  for (const item of list(s.fromClause)) fromItem(ctx, item, level);
  const set = targetColumns(ctx, s.targetList, level, true);
  ctx.acc.addRel(target.rel as QualifiedName, 'update', set);
  ctx.acc.noteWhere(restrictsTarget(s.whereClause, s.relation));
  visitOpt(ctx, s.whereClause, level);
  returning(ctx, s.returningClause, level);
}

function del(ctx: Ctx, s: NodeBody, outer: Scope): void {
  const sc = withClause(ctx, s.withClause, outer);
  if (!isPlainObject(s.relation)) return ctx.acc.fail('DELETE without a target');
  const level = new Scope(sc);
  const target = targetEntry(ctx, s.relation, level);
  ctx.acc.addRel(target.rel as QualifiedName, 'delete', ALL);
  for (const item of list(s.usingClause)) fromItem(ctx, item, level);
  ctx.acc.noteWhere(restrictsTarget(s.whereClause, s.relation));
  visitOpt(ctx, s.whereClause, level);
  returning(ctx, s.returningClause, level);
}

function merge(ctx: Ctx, s: NodeBody, outer: Scope): void {
  const sc = withClause(ctx, s.withClause, outer);
  if (!isPlainObject(s.relation)) return ctx.acc.fail('MERGE without a target');
  const level = new Scope(sc);
  const target = targetEntry(ctx, s.relation, level);
  const rel = target.rel as QualifiedName;
  ctx.acc.addRel(rel, 'merge', ALL);
  fromItem(ctx, s.sourceRelation, level);
  visitOpt(ctx, s.joinCondition, level);
  for (const w of list(s.mergeWhenClauses)) {
    const u = unwrap(w);
    if (u?.[0] !== 'MergeWhenClause') {
      ctx.acc.fail('unexpected MERGE clause');
      continue;
    }
    const c = u[1];
    visitOpt(ctx, c.condition, level);
    switch (c.commandType) {
      case 'CMD_UPDATE':
        ctx.acc.addRel(rel, 'update', targetColumns(ctx, c.targetList, level, true));
        break;
      case 'CMD_DELETE':
        ctx.acc.addRel(rel, 'delete', ALL);
        break;
      case 'CMD_INSERT': {
        const cols = targetColumns(ctx, c.targetList, level, false);
        ctx.acc.addRel(rel, 'insert', cols.length > 0 ? cols : ALL);
        visitList(ctx, c.values, level);
        break;
      }
      case 'CMD_NOTHING':
        break;
      default:
        ctx.acc.fail(`unsupported MERGE action ${String(c.commandType)}`);
    }
  }
  returning(ctx, s.returningClause, level);
}

// ---------------------------------------------------------------------------------------------------------------
// Statements

/** Analyses one top-level (or EXPLAIN/PREPARE-nested) statement into the accumulator. */
function statement(ctx: Ctx, type: string, body: NodeBody): void {
  const root = new Scope(undefined);
  switch (type) {
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      query(ctx, { [type]: body }, root);
      return;
    case 'ExplainStmt':
    case 'PrepareStmt':
    case 'DeclareCursorStmt': {
      const inner = unwrap(body.query);
      if (!inner) return ctx.acc.fail(`${type} without a statement`);
      if (type === 'PrepareStmt') ctx.acc.preparedName = str(body.name) ?? '';
      walkFields(ctx, type, body, root, new Set(['query']));
      statement(ctx, inner[0], inner[1]);
      return;
    }
    case 'ExecuteStmt':
      ctx.acc.preparedName = str(body.name) ?? '';
      visitList(ctx, body.params, root);
      return;
    case 'DeallocateStmt':
      if (typeof body.name === 'string') ctx.acc.preparedName = body.name;
      return;
    case 'CreateTableAsStmt':
      if (isPlainObject(body.into)) visit(ctx, 'IntoClause', body.into, root);
      statement(ctx, unwrap(body.query)?.[0] ?? '', unwrap(body.query)?.[1] ?? {});
      return;
    case 'CopyStmt':
      return copy(ctx, body, root);
    case 'CallStmt': {
      const fc = obj(body.funccall);
      if (!fc) return ctx.acc.fail('CALL without a procedure');
      const parts = names(fc.funcname);
      if (parts && parts.length > 0) ctx.acc.addRel(resolveFuncName(ctx, parts), 'execute', ALL);
      funcCall(ctx, fc, root);
      return;
    }
    case 'DoStmt':
      return doBlock(ctx, body);
    case 'VariableSetStmt':
      return variableSet(ctx, body, root);
    case 'TruncateStmt':
      for (const r of list(body.relations)) {
        const u = unwrap(r);
        if (u?.[0] === 'RangeVar') ctx.acc.addRel(resolveRel(ctx, u[1]), 'truncate', ALL);
        else ctx.acc.fail('unexpected TRUNCATE item');
      }
      return;
    case 'LockStmt': {
      // ACCESS SHARE (mode 1) needs SELECT; every stronger mode needs a write privilege in PostgreSQL.
      const op: Operation = body.mode === 1 ? 'select' : 'update';
      for (const r of list(body.relations)) {
        const u = unwrap(r);
        if (u?.[0] === 'RangeVar') ctx.acc.addRel(resolveRel(ctx, u[1]), op, ALL);
        else ctx.acc.fail('unexpected LOCK item');
      }
      return;
    }
    case 'DropStmt':
      return drop(ctx, body);
    case 'DiscardStmt':
      // DISCARD ALL runs RESET ALL, which resets search_path.
      if (body.target === 'DISCARD_ALL') ctx.acc.settings.push({ name: 'search_path' });
      return;
    default:
      break;
  }
  if (type === 'TransactionStmt' && TWO_PHASE_KINDS.has(String(body['kind']))) {
    // A prepared transaction outlives the session, holds its locks, and can be finished by anyone.
    return ctx.acc.fail(
      'two-phase commit (PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED) is not allowed through Warden',
    );
  }
  if (UTILITY_STATEMENTS.has(type)) {
    walkFields(ctx, type, body, root);
    return;
  }
  const op = DDL_STATEMENTS[type];
  if (op === undefined) return ctx.acc.fail(`unsupported statement type ${type}`);
  ddl(ctx, type, body, op);
}

function ddl(ctx: Ctx, type: string, body: NodeBody, op: Operation): void {
  const dctx: Ctx = { ...ctx, ddlOp: op };
  const root = new Scope(undefined);
  switch (type) {
    case 'CreateStmt':
    case 'CreateForeignTableStmt': {
      const base = type === 'CreateStmt' ? body : (obj(body.base) ?? {});
      if (isPlainObject(base.relation)) ctx.acc.addRel(resolveNewRel(ctx, base.relation), 'create', ALL);
      // Parents (INHERITS, PARTITION OF) gain rows visible through them: that alters them.
      const pctx: Ctx = { ...ctx, ddlOp: 'alter' };
      visitList(pctx, base.inhRelations, root);
      const rest = { ...base };
      delete rest.relation;
      delete rest.inhRelations;
      walkFields(dctx, 'CreateStmt', rest, root);
      if (type === 'CreateForeignTableStmt') walkFields(dctx, type, body, root, new Set(['base']));
      return;
    }
    case 'ViewStmt':
      if (isPlainObject(body.view)) ctx.acc.addRel(resolveNewRel(ctx, body.view), 'create', ALL);
      query(ctx, body.query, root);
      walkFields(dctx, type, body, root, new Set(['view', 'query']));
      return;
    case 'CreateSeqStmt':
      if (isPlainObject(body.sequence)) ctx.acc.addRel(resolveNewRel(ctx, body.sequence), 'create', ALL);
      walkFields(dctx, type, body, root, new Set(['sequence']));
      return;
    case 'RuleStmt':
    case 'CreateTrigStmt': {
      if (!isPlainObject(body.relation)) return ctx.acc.fail(`${type} without a table`);
      const scope = new Scope(undefined);
      const t = targetEntry(ctx, body.relation, scope);
      ctx.acc.addRel(t.rel as QualifiedName, 'create', ALL);
      scope.entries.push(
        { refname: 'new', rel: t.rel as QualifiedName },
        { refname: 'old', rel: t.rel as QualifiedName },
      );
      if (type === 'CreateTrigStmt') {
        const fn = names(body.funcname);
        if (fn && fn.length > 0) ctx.acc.addFunc(resolveFuncName(ctx, fn));
        visitOpt(ctx, body.whenClause, scope);
        walkFields(dctx, type, body, scope, new Set(['relation', 'funcname', 'whenClause']));
      } else {
        visitOpt(ctx, body.whereClause, scope);
        for (const a of list(body.actions)) {
          const u = unwrap(a);
          if (u) statement({ ...ctx, depth: ctx.depth + 1 }, u[0], u[1]);
        }
        walkFields(dctx, type, body, scope, new Set(['relation', 'whereClause', 'actions']));
      }
      return;
    }
    case 'IndexStmt': {
      if (!isPlainObject(body.relation)) return ctx.acc.fail('CREATE INDEX without a table');
      const scope = new Scope(undefined);
      const t = targetEntry(ctx, body.relation, scope);
      ctx.acc.addRel(t.rel as QualifiedName, 'create', ALL);
      walkFields(dctx, type, body, scope, new Set(['relation']));
      return;
    }
    case 'CreateFunctionStmt':
      return createFunction(ctx, dctx, body);
    case 'CreateSchemaStmt': {
      const schema = str(body.schemaname) ?? str(obj(body.authrole)?.rolename) ?? '';
      ctx.acc.addRel({ schema, name: '*' }, 'create', ALL);
      const inner: Ctx = { ...ctx, searchPath: [schema, ...ctx.searchPath] };
      for (const el of list(body.schemaElts)) {
        const u = unwrap(el);
        if (u) statement(inner, u[0], u[1]);
      }
      walkFields(dctx, type, body, root, new Set(['schemaElts']));
      return;
    }
    case 'AlterSystemStmt': {
      const set = obj(body.setstmt);
      if (set) variableSet(ctx, set, root);
      ctx.acc.fail('ALTER SYSTEM changes the server configuration');
      return;
    }
    default:
      walkFields(dctx, type, body, root);
  }
}

function copy(ctx: Ctx, body: NodeBody, root: Scope): void {
  const isFrom = body.is_from === true;
  if (str(body.filename) !== undefined || body.is_program === true) {
    // INVARIANT: COPY to or from a server file or program is never allowed (it reads/writes the server's disk or runs a shell).
    ctx.acc.fail(`COPY ${isFrom ? 'FROM' : 'TO'} a server ${body.is_program === true ? 'program' : 'file'}`);
  }
  if (isPlainObject(body.relation)) {
    const cols = names(body.attlist) ?? [];
    const rel = resolveRel(ctx, body.relation);
    ctx.acc.addRel(rel, isFrom ? 'copy_from' : 'copy_to', cols.length > 0 ? cols : ALL);
    if (!isFrom) ctx.acc.addRel(rel, 'select', cols.length > 0 ? cols : ALL);
    if (body.whereClause !== undefined) {
      const scope = new Scope(undefined);
      scope.entries.push({ refname: str(body.relation.relname) ?? '', rel });
      visitOpt(ctx, body.whereClause, scope);
    }
  } else if (body.query !== undefined) {
    // COPY (query) TO: every relation the query reads is also exported in bulk.
    const before = new Set(ctx.acc.rels.keys());
    query(ctx, body.query, root);
    for (const [key, r] of [...ctx.acc.rels]) {
      if (r.operation === 'select' && !before.has(key))
        ctx.acc.addRel(r, 'copy_to', r.cols === ALL ? ALL : [...r.cols]);
    }
  } else {
    ctx.acc.fail('COPY without a table or query');
  }
  for (const o of list(body.options)) walkFields(ctx, 'DefElem', unwrap(o)?.[1] ?? {}, root);
}

function drop(ctx: Ctx, body: NodeBody): void {
  const type = str(body.removeType) ?? '';
  for (const o of list(body.objects)) {
    const u = unwrap(o);
    if (!u) {
      ctx.acc.fail('malformed DROP object');
      continue;
    }
    const [t, b] = u;
    if (t === 'List') {
      const parts = names(b.items);
      if (!parts) {
        ctx.acc.fail('malformed DROP object name');
        continue;
      }
      if (RELATION_OBJECT_TYPES.has(type)) {
        const rv: NodeBody = { relname: parts[parts.length - 1] };
        if (parts.length >= 2) rv.schemaname = parts[parts.length - 2];
        if (parts.length >= 3) rv.catalogname = parts[parts.length - 3];
        ctx.acc.addRel(resolveRel(ctx, rv), 'drop', ALL);
      } else {
        ctx.acc.addRel(resolveObjectName(ctx, parts), 'drop', ALL);
      }
    } else if (t === 'ObjectWithArgs') {
      const parts = names(b.objname) ?? [];
      ctx.acc.addRel(resolveObjectName(ctx, parts), 'drop', ALL);
    } else if (t === 'String') {
      // Schemas, extensions, languages, ...: unqualified objects. A schema is reported as `<schema>.*`.
      const n = str(b.sval) ?? '';
      ctx.acc.addRel(
        type === 'OBJECT_SCHEMA' ? { schema: n, name: '*' } : { schema: '', name: n },
        'drop',
        ALL,
      );
    } else if (t === 'TypeName') {
      ctx.acc.addRel(resolveObjectName(ctx, names(b.names) ?? []), 'drop', ALL);
    } else {
      ctx.acc.fail(`unsupported DROP object ${t}`);
    }
  }
}

function variableSet(ctx: Ctx, body: NodeBody, root: Scope): void {
  const kind = str(body.kind);
  // GUC names are case-insensitive.
  const name = (str(body.name) ?? (kind === 'VAR_RESET_ALL' ? 'all' : '')).toLowerCase();
  const args = list(body.args);
  if (kind === 'VAR_SET_MULTI') {
    for (const a of args) {
      const u = unwrap(a);
      if (u?.[0] === 'DefElem') {
        const v = constString(u[1].arg);
        ctx.acc.settings.push(
          v === undefined
            ? { name: str(u[1].defname) ?? name }
            : { name: str(u[1].defname) ?? name, value: v },
        );
      }
    }
    if (args.length === 0) ctx.acc.settings.push({ name });
    return;
  }
  const values = args.map(constString);
  if (values.some((v) => v === undefined)) walkFields(ctx, 'VariableSetStmt', body, root);
  const value = values.filter((v): v is string => v !== undefined).join(', ');
  ctx.acc.settings.push(kind === 'VAR_SET_VALUE' ? { name, value } : { name });
  // RESET ALL resets search_path too (role and session_authorization are exempt in PostgreSQL).
  if (kind === 'VAR_RESET_ALL') ctx.acc.settings.push({ name: 'search_path' });
}

function defElems(v: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (const d of list(v)) {
    const u = unwrap(d);
    if (u?.[0] === 'DefElem') m.set(str(u[1].defname) ?? '', u[1].arg);
  }
  return m;
}

function createFunction(ctx: Ctx, dctx: Ctx, body: NodeBody): void {
  const root = new Scope(undefined);
  const fname = names(body.funcname) ?? [];
  ctx.acc.addRel(resolveObjectName(ctx, fname), 'create', ALL);
  walkFields(dctx, 'CreateFunctionStmt', body, root, new Set(['funcname', 'sql_body', 'options']));
  const opts = defElems(body.options);
  const language = (constString(opts.get('language')) ?? 'sql').toLowerCase();
  if (body.sql_body !== undefined) {
    visitWrapped(ctx, body.sql_body, root);
    return;
  }
  const as = unwrap(opts.get('as'));
  const src =
    as?.[0] === 'List' ? names(as[1].items)?.[0] : as?.[0] === 'String' ? str(as[1].sval) : undefined;
  if (src === undefined) return;
  // Bodies are analysed so their accesses are visible to policy; dynamic SQL inside a function body is not
  // run now (it runs under the caller's policy-checked call), so it does not make CREATE FUNCTION unsupported.
  if (language === 'sql') nested(ctx, src, 'function body');
  else if (language === 'plpgsql') plpgsql(ctx, ctx.text, false);
}

// ---------------------------------------------------------------------------------------------------------------
// Nested SQL: function bodies and PL/pgSQL

/** Analyses SQL text embedded in the statement (function body, PL/pgSQL), merging its accesses. */
function nested(ctx: Ctx, sql: string, where: string): void {
  if (ctx.depth >= MAX_NESTED_DEPTH) return ctx.acc.fail(`${where}: nesting too deep`);
  const parsed = parseSql(sql);
  if (!parsed.ok) return ctx.acc.fail(`${where} does not parse: ${parsed.error}`);
  for (const st of parsed.statements) {
    const u = unwrap(st.node);
    if (!u) {
      ctx.acc.fail(`${where}: malformed statement`);
      continue;
    }
    statement({ acc: ctx.acc, searchPath: ctx.searchPath, text: st.text, depth: ctx.depth + 1 }, u[0], u[1]);
  }
}

function doBlock(ctx: Ctx, body: NodeBody): void {
  const opts = defElems(body.args);
  const language = (constString(opts.get('language')) ?? 'plpgsql').toLowerCase();
  if (language !== 'plpgsql') return ctx.acc.fail(`DO block in language ${language}`);
  plpgsql(ctx, ctx.text, true);
}

/** Walks a PL/pgSQL parse; every embedded SQL expression is analysed. Dynamic SQL is unsupported when `strict`. */
function plpgsql(ctx: Ctx, text: string, strict: boolean): void {
  let tree: unknown;
  try {
    tree = parsePlpgsql(text);
  } catch (e) {
    return ctx.acc.fail(`PL/pgSQL does not parse: ${(e as Error).message}`);
  }
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    if (!isPlainObject(v)) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'PLpgSQL_expr') {
        plExpr(ctx, x);
      } else if (k === 'PLpgSQL_stmt_dynexecute' || k === 'PLpgSQL_stmt_dynfors' || k === 'dynquery') {
        if (strict) ctx.acc.fail('dynamic SQL (EXECUTE) in a DO block cannot be analysed');
        else walk(x);
      } else if (k.startsWith('PLpgSQL_') && !PLPGSQL_NODES.has(k)) {
        ctx.acc.fail(`unsupported PL/pgSQL construct ${k}`);
      } else {
        walk(x);
      }
    }
  };
  walk(tree);
}

function plExpr(ctx: Ctx, e: unknown): void {
  const body = obj(e);
  const q = str(body?.query);
  if (q === undefined) return;
  const mode = typeof body?.parseMode === 'number' ? body.parseMode : 0;
  if (mode === 0) return nested(ctx, q, 'PL/pgSQL statement');
  if (mode === 1 || mode === 2) return nested(ctx, `SELECT ${q}`, 'PL/pgSQL expression');
  // Assignment (`target := expr`): analyse both sides as expressions (subscripts may hold queries).
  const buf = Buffer.from(q, 'utf8');
  let depth = 0;
  for (const t of scanSql(q)) {
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0 && (t.text === ':=' || t.text === '=')) {
      nested(ctx, `SELECT ${buf.subarray(0, t.start).toString('utf8')}`, 'PL/pgSQL assignment target');
      nested(ctx, `SELECT ${buf.subarray(t.end).toString('utf8')}`, 'PL/pgSQL assignment');
      return;
    }
  }
  ctx.acc.fail('PL/pgSQL assignment without an assignment operator');
}

// ---------------------------------------------------------------------------------------------------------------
// Entry points

function analyzeStatement(node: NodeBody, text: string, searchPath: readonly string[]): StatementSummary {
  const acc = new Accumulator();
  const u = unwrap(node);
  const kind = u?.[0] ?? 'Unknown';
  try {
    if (!u) acc.fail('malformed statement');
    else statement({ acc, searchPath, text, depth: 0 }, u[0], u[1]);
  } catch (e) {
    // INVARIANT: an analyser failure is a denial, never an allow.
    acc.fail(`analyser error: ${e instanceof Error ? e.message : String(e)}`);
  }
  return acc.summary(kind, text);
}

/** Analyses a SQL string (one or more statements). Synchronous; requires `await initSqlAnalyser()` once. */
export function analyze(sql: string, opts: AnalyzeOptions): Analysis {
  const parsed = parseSql(sql);
  if (!parsed.ok) return Object.freeze({ statements: Object.freeze([]), error: parsed.error });
  const reads = literalReads;
  const result: Analysis = Object.freeze({
    statements: Object.freeze(
      parsed.statements.map((s) => analyzeStatement(s.node, s.text, opts.searchPath)),
    ),
  });
  if (literalReads !== reads) literalDependent.add(result);
  return result;
}

/** Analyses during which the analyser read the value of a literal (set_config's name, a LANGUAGE, ...). */
const literalDependent = new WeakSet<Analysis>();

/**
 * Whether producing this analysis read the value of any literal. The literal fast path (fast-path.ts) shares an
 * analysis between texts that differ only in literals, and only when this is false.
 */
export function readsLiteralValues(a: Analysis): boolean {
  return literalDependent.has(a);
}

// ---------------------------------------------------------------------------------------------------------------
// Cache

const CACHE_MAX_ENTRIES = 2000;
/** Statements longer than this are analysed every time (they would crowd the cache). */
const CACHE_MAX_SQL_LENGTH = 16_384;
const cache = new Map<string, Analysis>();

/**
 * `analyze` with a bounded LRU cache keyed by (searchPath, sql). Results are deeply frozen, so sharing is safe.
 */
export function analyzeCached(sql: string, opts: AnalyzeOptions): Analysis {
  if (sql.length > CACHE_MAX_SQL_LENGTH) return analyze(sql, opts);
  const key = `${opts.searchPath.join('\u0000')}\u0001${sql}`;
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const result = analyze(sql, opts);
  cache.set(key, result);
  if (cache.size > CACHE_MAX_ENTRIES) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  return result;
}

/** Empties the analysis cache (e.g. after the catalog changes). */
export function clearAnalysisCache(): void {
  cache.clear();
}
