// Literal fast path: statements that differ only in the values of plain literals share one analysis and one decision cache key, so pgbench-style inlined literals do not parse cold every time.
//
// How. A small, deliberately conservative lexer (`literalShape`) accepts only plain ASCII SQL: identifiers,
// keywords, quoted identifiers, operators, integers, decimals and plain '...' strings. It gives up (no fast path)
// on anything else: backslashes, E'' U&'' B'' X'' N'' strings, $-quoting and $n parameters, comments, control or
// non-ASCII characters, numbers with exponents or trailing junk, more than one statement, long texts. The shape
// key is the text with each literal replaced by a marker of its lexical class, everything else byte for byte.
//
// Why a shape determines the analysis. Two texts with the same key lex to the same token stream except for the
// values of literals of the same class (integers are split at 2^31 exactly as PostgreSQL's lexer splits ICONST
// from FCONST), so they parse to the same tree except for A_Const values. Numbers right inside the parentheses of
// a word (`float(53)`, `numeric(10, 2)`, `abs(-1)`) are kept in the key verbatim: the grammar checks some of those
// values (`float(54)` is a syntax error). The analyser reads literal values only through `constString`, which
// `analyze` tracks (readsLiteralValues).
// INVARIANT: an analysis is shared only when a cold analysis of the first text of the shape (the template)
//   - parsed, holds exactly one SELECT, INSERT, UPDATE or DELETE, with no `unsupported` reason, no settings, no
//     prepared-statement name, and calls only functions of a small pg_catalog allow-list;
//   - read no literal value (readsLiteralValues) and equals (all but its text) the cold analyses of two copies
//     with the literals replaced (all distinct, then all equal), so value-dependent analysis is caught even if a
//     future analyser reads literals without constString;
//   - has a statement text that the same rule as the parser's (trimmed, up to the final `;`) reproduces.
// Anything else is analysed by text as before. A shared analysis carries the new statement's own text.
// The lexer `literalShape` follows PostgreSQL's rules (standard strings, "..." identifiers). Never use it for
// another dialect: in MySQL `#` starts a comment and "..." is a string, so one shape could hide different statements.
// The template machinery (ShapeTemplates) is shared: MySQL plugs in its own lexer and analyser
// (src/sql-mysql/fast-path.ts).

import type { StatementSummary } from '../core/access.js';
import { analyze, analyzeCached, readsLiteralValues } from './analyze.js';
import type { Analysis, AnalyzeOptions } from './analyze.js';

/** Texts longer than this take the ordinary path. */
export const FAST_PATH_MAX_LENGTH = 4096;

/** Lexical class of a literal: int32 integer, larger integer, decimal, plain string. */
export type LiteralClass = 'i' | 'b' | 'd' | 's';

export interface LiteralSpan {
  readonly start: number;
  /** Exclusive. For a string, the span includes its quotes. */
  readonly end: number;
  readonly cls: LiteralClass;
}

export interface LiteralShape {
  /** The text with each abstracted literal replaced by \u0001 and its class letter; all else verbatim. */
  readonly key: string;
  readonly literals: readonly LiteralSpan[];
  /** The statement text by the parser's rule: trimmed, without the final `;`. */
  readonly statementText: string;
}

const C_TAB = 9;
const C_LF = 10;
const C_CR = 13;
const C_SPACE = 32;
const C_QUOTE = 39; // '
const C_DQUOTE = 34; // "
const C_DOLLAR = 36;
const C_AMP = 38;
const C_LPAREN = 40;
const C_RPAREN = 41;
const C_STAR = 42;
const C_MINUS = 45;
const C_DOT = 46;
const C_SLASH = 47;
const C_SEMI = 59;
const C_BACKSLASH = 92;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

function isIdentChar(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === C_DOLLAR;
}

function isSpace(c: number): boolean {
  return c === C_SPACE || c === C_TAB || c === C_LF || c === C_CR;
}

/** Characters allowed inside quotes: printable ASCII and whitespace, no backslash. */
function plainInQuotes(c: number): boolean {
  return (c >= 32 && c <= 126 && c !== C_BACKSLASH) || isSpace(c);
}

/**
 * Words after which `(` groups rather than calls or types: numbers directly inside such parentheses are abstracted.
 * Any other word before `(` may be a type name with modifiers the grammar checks, so its numbers stay verbatim.
 */
export const GROUPING_WORDS: ReadonlySet<string> = new Set([
  'values',
  'in',
  'and',
  'or',
  'not',
  'where',
  'select',
  'on',
  'when',
  'then',
  'else',
  'set',
  'by',
  'having',
  'returning',
  'limit',
  'offset',
  'any',
  'all',
  'some',
  'exists',
  'as',
  'is',
  'like',
  'between',
]);

/** 2147483647 as digits: integers up to this are ICONST in PostgreSQL's lexer, larger ones FCONST. */
const INT32_MAX = '2147483647';

function intClass(digits: string): LiteralClass {
  const d = digits.replace(/^0+(?=\d)/, '');
  if (d.length < INT32_MAX.length) return 'i';
  if (d.length > INT32_MAX.length) return 'b';
  return d <= INT32_MAX ? 'i' : 'b';
}

/**
 * The literal shape of a text, or undefined when the text is not plain enough for the fast path (see the file
 * comment). Pure and cheap: one pass, no regular expressions on the hot path.
 */
export function literalShape(sql: string): LiteralShape | undefined {
  const n = sql.length;
  if (n === 0 || n > FAST_PATH_MAX_LENGTH) return undefined;
  const literals: LiteralSpan[] = [];
  let key = '';
  let copied = 0;
  /** Per open parenthesis: whether numbers directly inside are abstracted. */
  const parens: boolean[] = [];
  /** The previous word (lower case) if the previous token was a word, else ''. */
  let lastWord = '';
  let end = n; // end of the statement (before a final ';')
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c < 32 || c > 126 || c === C_BACKSLASH || c === C_DOLLAR) return undefined;
    if (c === C_SEMI) {
      // Only a final `;` followed by nothing but whitespace.
      for (let j = i + 1; j < n; j++) if (!isSpace(sql.charCodeAt(j))) return undefined;
      end = i;
      break;
    }
    if (isIdentStart(c)) {
      const s = i;
      while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      if (i < n && sql.charCodeAt(i) === C_QUOTE) return undefined; // E'', B'', X'', N'', typed prefixes glued on
      lastWord = sql.slice(s, i).toLowerCase();
      if (lastWord.includes('$')) return undefined;
      continue;
    }
    if (c === C_DQUOTE) {
      if (i > 0 && sql.charCodeAt(i - 1) === C_AMP) return undefined; // U&"..."
      i++;
      for (;;) {
        if (i >= n || !plainInQuotes(sql.charCodeAt(i))) return undefined;
        if (sql.charCodeAt(i) === C_DQUOTE) {
          if (i + 1 < n && sql.charCodeAt(i + 1) === C_DQUOTE) {
            i += 2;
            continue;
          }
          i++;
          break;
        }
        i++;
      }
      if (i < n && sql.charCodeAt(i) === C_QUOTE) return undefined;
      lastWord = '"'; // a quoted name before `(` may be a type name: its numbers stay verbatim
      continue;
    }
    if (c === C_QUOTE) {
      if (i > 0) {
        const p = sql.charCodeAt(i - 1);
        if (isIdentChar(p) || p === C_AMP || p === C_QUOTE) return undefined;
      }
      const s = i;
      i++;
      for (;;) {
        if (i >= n || !plainInQuotes(sql.charCodeAt(i))) return undefined;
        if (sql.charCodeAt(i) === C_QUOTE) {
          if (i + 1 < n && sql.charCodeAt(i + 1) === C_QUOTE) {
            i += 2;
            continue;
          }
          i++;
          break;
        }
        i++;
      }
      if (i < n && (isIdentChar(sql.charCodeAt(i)) || sql.charCodeAt(i) === C_DQUOTE)) return undefined;
      key += `${sql.slice(copied, s)}\u0001s`;
      copied = i;
      literals.push({ start: s, end: i, cls: 's' });
      lastWord = '';
      continue;
    }
    if (isDigit(c) || (c === C_DOT && i + 1 < n && isDigit(sql.charCodeAt(i + 1)))) {
      if (c === C_DOT) return undefined; // `.5`: keep the lexer small
      if (i > 0 && sql.charCodeAt(i - 1) === C_DOT) return undefined;
      const s = i;
      while (i < n && isDigit(sql.charCodeAt(i))) i++;
      let cls: LiteralClass = intClass(sql.slice(s, i));
      if (i < n && sql.charCodeAt(i) === C_DOT) {
        i++;
        if (i >= n || !isDigit(sql.charCodeAt(i))) return undefined; // `1.` and `1..2`
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        cls = 'd';
      }
      if (i < n) {
        const t = sql.charCodeAt(i);
        if (isIdentChar(t) || t === C_DOT || t === C_QUOTE || t === C_DQUOTE) return undefined; // 1e5, 0x1F, 1_000, 12abc
      }
      const abstract = parens.length === 0 || parens[parens.length - 1] === true;
      if (abstract) {
        key += `${sql.slice(copied, s)}\u0001${cls}`;
        copied = i;
        literals.push({ start: s, end: i, cls });
      }
      lastWord = '';
      continue;
    }
    // Operators and punctuation, verbatim; comments start the slow path.
    if (c === C_MINUS && i + 1 < n && sql.charCodeAt(i + 1) === C_MINUS) return undefined;
    if (c === C_SLASH && i + 1 < n && sql.charCodeAt(i + 1) === C_STAR) return undefined;
    if (c === C_LPAREN) {
      parens.push(lastWord === '' || GROUPING_WORDS.has(lastWord));
      if (parens.length > 64) return undefined;
    } else if (c === C_RPAREN) {
      if (parens.pop() === undefined) return undefined;
    }
    lastWord = '';
    i++;
  }
  key += sql.slice(copied);
  return { key, literals, statementText: sql.slice(0, end).trim() };
}

/** The text with every literal of `shape` replaced by `pick(span, index)` (a literal of the same class). */
export function substituteLiterals(
  sql: string,
  shape: LiteralShape,
  pick: (span: LiteralSpan, index: number) => string,
): string {
  let out = '';
  let copied = 0;
  shape.literals.forEach((span, index) => {
    out += sql.slice(copied, span.start) + pick(span, index);
    copied = span.end;
  });
  return out + sql.slice(copied);
}

/** Functions whose calls do not make a template ineligible: built-ins whose arguments name nothing. */
const SAFE_FUNCTIONS = new Set([
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'now',
  'lower',
  'upper',
  'length',
  'abs',
  'round',
  'floor',
  'ceil',
  'date_trunc',
  'timezone',
  'btrim',
  'ltrim',
  'rtrim',
  'substring',
  'concat',
]);

/**
 * Why a single statement summary cannot serve other texts of its shape, or undefined if it can: the checks both
 * dialects share (plain SELECT/INSERT/UPDATE/DELETE, fully understood, no settings, no prepared name, functions
 * only from the dialect's allow-list).
 */
export function summaryIneligible(
  s: StatementSummary,
  functionAllowed: (f: StatementSummary['functions'][number]) => boolean,
): string | undefined {
  if (!['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt'].includes(s.kind)) return `kind ${s.kind}`;
  if (s.unsupported !== undefined) return 'unsupported';
  if (s.settings.length > 0) return 'settings';
  if (s.preparedName !== undefined) return 'prepared name';
  if (!s.functions.every(functionAllowed)) return 'functions';
  return undefined;
}

/** Why a PostgreSQL cold analysis cannot serve other texts of its shape, or undefined if it can. */
function ineligible(a: Analysis): string | undefined {
  if (a.error !== undefined) return 'parse error';
  if (a.statements.length !== 1) return 'not exactly one statement';
  const why = summaryIneligible(
    a.statements[0] as StatementSummary,
    (f) => f.schema === 'pg_catalog' && SAFE_FUNCTIONS.has(f.name),
  );
  if (why !== undefined) return why;
  if (readsLiteralValues(a)) return 'reads literal values';
  return undefined;
}

/** A summary without its text, as a comparable string. */
function withoutText(s: StatementSummary): string {
  return JSON.stringify({ ...s, text: '' });
}

/** A literal of class `cls`, different for every `index` (or the same for all when `same`). */
function sample(span: LiteralSpan, index: number, same: boolean): string {
  const k = same ? 0 : index + 1;
  switch (span.cls) {
    case 'i':
      return String(1000 + k);
    case 'b':
      return String(3_000_000_000 + k);
    case 'd':
      return `${1000 + k}.5`;
    case 's':
      return `'w${k}'`;
  }
}

/** What a dialect plugs into the shared template machinery (ShapeTemplates). */
export interface ShapeRules<A, C> {
  /** The dialect's conservative literal lexer: undefined when the text must take the ordinary path. */
  readonly shape: (sql: string) => LiteralShape | undefined;
  /** The ordinary analysis of a text (cached by text). */
  readonly cached: (sql: string, ctx: C) => A;
  /** A cold analysis of a perturbed copy (need not be cached). */
  readonly cold: (sql: string, ctx: C) => A;
  /** Why an analysis cannot serve every text of its shape; undefined when it can (then it has one statement). */
  readonly ineligible: (a: A) => string | undefined;
  /** The one statement of an eligible analysis. */
  readonly summary: (a: A) => StatementSummary;
  /** A literal of the span's class, distinct per index, or one value for all when `same`. */
  readonly sample: (span: LiteralSpan, index: number, same: boolean) => string;
}

/** The result of a shaped lookup: the text's own analysis, or the shape's shared summary (with this text). */
export type ShapedLookup<A> =
  | { readonly shared: false; readonly analysis: A; readonly key: string }
  | { readonly shared: true; readonly summary: StatementSummary; readonly key: string };

/**
 * What is known of a shape: its template summary (shared), false when the shape takes the ordinary path, or 'seen'
 * after its first text. A template is built (two extra cold analyses) only when a shape comes back, so a stream
 * of one-off shapes costs no more than before.
 */
type Template = StatementSummary | false | 'seen';

const TEMPLATE_CACHE_MAX = 2000;

/**
 * The literal fast path of one dialect (see the file comment): a bounded cache of shape templates, built and
 * checked the same way for every dialect; only the lexer, the analyser and the eligibility rules differ.
 * Keys: `'s' + shape key` when the analysis is shared by the shape, else `'t' + the text`.
 */
export class ShapeTemplates<A, C> {
  private readonly templates = new Map<string, Template>();

  constructor(
    private readonly rules: ShapeRules<A, C>,
    private readonly max = TEMPLATE_CACHE_MAX,
  ) {}

  /**
   * The analysis of `sql` (its own, or its shape's template). `scope` names the name-resolution context (search
   * path, database) that `ctx` carries: templates never cross scopes.
   */
  lookup(sql: string, scope: string, ctx: C): ShapedLookup<A> {
    const r = this.rules;
    const shape = r.shape(sql);
    if (shape === undefined || shape.literals.length === 0) {
      return { shared: false, analysis: r.cached(sql, ctx), key: `t${sql}` };
    }
    const tkey = `${scope}\u0002${shape.key}`;
    const hit = this.templates.get(tkey);
    if (hit === false) return { shared: false, analysis: r.cached(sql, ctx), key: `t${sql}` };
    if (hit === undefined) {
      this.remember(tkey, 'seen');
      return { shared: false, analysis: r.cached(sql, ctx), key: `t${sql}` };
    }
    if (hit !== 'seen') {
      this.templates.delete(tkey);
      this.templates.set(tkey, hit);
      return {
        shared: true,
        summary: Object.freeze({ ...hit, text: shape.statementText }),
        key: `s${shape.key}`,
      };
    }
    const analysis = r.cached(sql, ctx);
    const template = this.build(sql, shape, analysis, ctx);
    this.remember(tkey, template);
    return { shared: false, analysis, key: template === false ? `t${sql}` : `s${shape.key}` };
  }

  /** Whether `first`'s cold analysis may serve every text of its shape (see the file comment). */
  private build(sql: string, shape: LiteralShape, first: A, ctx: C): Template {
    const r = this.rules;
    if (r.ineligible(first) !== undefined) return false;
    const s = r.summary(first);
    if (s.text !== shape.statementText) return false;
    const want = withoutText(s);
    for (const same of [false, true]) {
      const other = r.cold(
        substituteLiterals(sql, shape, (span, i) => r.sample(span, i, same)),
        ctx,
      );
      if (r.ineligible(other) !== undefined) return false;
      if (withoutText(r.summary(other)) !== want) return false;
    }
    return s;
  }

  private remember(tkey: string, t: Template): void {
    this.templates.delete(tkey);
    this.templates.set(tkey, t);
    if (this.templates.size > this.max) {
      const oldest = this.templates.keys().next();
      if (oldest.done !== true) this.templates.delete(oldest.value);
    }
  }

  /** Forgets every template (tests; after a catalog change). */
  clear(): void {
    this.templates.clear();
  }
}

/** The result of analyzeShaped: the analysis, and the key a decision for this text may be cached under. */
export interface ShapedAnalysis {
  readonly analysis: Analysis;
  /**
   * `'s' + shape key` when the analysis is shared by every text of the shape (a decision made from it holds for all
   * of them), else `'t' + the text`.
   */
  readonly key: string;
  /** Whether the analysis came from a shape template rather than this text's own parse. */
  readonly shared: boolean;
}

/** PostgreSQL's templates: one cache for every hook, scoped by search_path. */
const pgTemplates = new ShapeTemplates<Analysis, AnalyzeOptions>({
  shape: literalShape,
  cached: analyzeCached,
  cold: analyze,
  ineligible,
  summary: (a) => a.statements[0] as StatementSummary,
  sample,
});

/**
 * `analyzeCached`, except that a text whose literal shape has an eligible template reuses the template's analysis
 * (with its own statement text) without being parsed.
 */
export function analyzeShaped(sql: string, opts: AnalyzeOptions): ShapedAnalysis {
  const r = pgTemplates.lookup(sql, opts.searchPath.join('\u0000'), opts);
  if (!r.shared) return { analysis: r.analysis, key: r.key, shared: false };
  return {
    analysis: Object.freeze({ statements: Object.freeze([r.summary]) }),
    key: r.key,
    shared: true,
  };
}

/** Empties the template cache (tests; with clearAnalysisCache after a catalog change). */
export function clearShapeCache(): void {
  pgTemplates.clear();
}
