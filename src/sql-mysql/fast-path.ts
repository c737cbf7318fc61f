// MySQL/MariaDB literal fast path: a conservative MySQL literal lexer and the eligibility rules that plug the MySQL analyser into the shared shape templates of src/sql/fast-path.ts.
//
// The lexer (`mysqlLiteralShape`) accepts only plain ASCII: words, `backtick` identifiers (no doubled backticks),
// operators, integers of up to 9 digits, decimals of up to 9+9 digits, and plain '...' strings (no backslash, no
// doubled quote, not next to another string). It gives up on everything whose reading depends on the server or
// is a classic smuggling vector: comments of any kind (`#`, `--`, `/* */`), "..." (a string, or an identifier under
// ANSI_QUOTES), backslashes, prefixed literals (x'', b'', N'', _charset, 0x, 0b), `@` variables, `?`
// placeholders, `$`, `{}` escapes, `:`, non-ASCII and control characters, exponents, multi-statements, long texts.
// INVARIANT: as for PostgreSQL, a template serves its shape only when the cold analysis of its first text has one
// plain SELECT/INSERT/UPDATE/DELETE with no denial, error, unsupported part, setting, prepared name or stored
// function call (built-ins are checked by name by the analyser and are not listed), and equals (all but its text)
// the cold analyses of two copies with the literals replaced (all distinct, then all equal). The MySQL analyser
// has no literal-read tracking: the two perturbations are the check.

import type { StatementSummary } from '../core/access.js';
import { FAST_PATH_MAX_LENGTH, GROUPING_WORDS, ShapeTemplates, summaryIneligible } from '../sql/fast-path.js';
import type { LiteralClass, LiteralShape, LiteralSpan, ShapedLookup } from '../sql/fast-path.js';
import { analyzeMysql } from './analyze.js';
import type { MysqlAnalysis } from './analyze.js';

const C_TAB = 9;
const C_LF = 10;
const C_CR = 13;
const C_SPACE = 32;
const C_QUOTE = 39; // '
const C_BACKTICK = 96;
const C_LPAREN = 40;
const C_RPAREN = 41;
const C_STAR = 42;
const C_MINUS = 45;
const C_DOT = 46;
const C_SLASH = 47;
const C_SEMI = 59;
const C_UNDERSCORE = 95;

/** Characters that always send a text to the ordinary path (see the file comment). */
const REFUSED = new Set('"#@?$\\{}[]:'.split('').map((c) => c.charCodeAt(0)));

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isIdentStart = (c: number): boolean =>
  (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === C_UNDERSCORE;
const isIdentChar = (c: number): boolean => isIdentStart(c) || isDigit(c);
const isSpace = (c: number): boolean => c === C_SPACE || c === C_TAB || c === C_LF || c === C_CR;
/** Inside quotes: printable ASCII and whitespace, never a backslash. */
const plainInQuotes = (c: number): boolean => ((c >= 32 && c <= 126) || isSpace(c)) && c !== 92;

/** Digits of a number part: 1 to 9 digits, no leading zero (except `0` itself); undefined otherwise. */
function plainDigits(sql: string, i: number): number | undefined {
  const n = sql.length;
  let j = i;
  while (j < n && isDigit(sql.charCodeAt(j))) j++;
  const len = j - i;
  if (len === 0 || len > 9) return undefined;
  return j;
}

/**
 * The literal shape of a MySQL text, or undefined when it is not plain enough for the fast path. The key is the
 * text with each abstracted literal replaced by \u0001 and its class letter ('i' integer, 'd' decimal, 's'
 * string), everything else byte for byte. Numbers directly inside the parentheses of a word that is not a
 * grouping keyword (`CHAR(10)`, `DECIMAL(10, 2)`, `LEFT(x, 3)`) stay in the key verbatim.
 */
export function mysqlLiteralShape(sql: string): LiteralShape | undefined {
  const n = sql.length;
  if (n === 0 || n > FAST_PATH_MAX_LENGTH) return undefined;
  const literals: LiteralSpan[] = [];
  let key = '';
  let copied = 0;
  const parens: boolean[] = [];
  let lastWord = '';
  let lastWasString = false;
  let end = n;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c < 32 || c > 126 || REFUSED.has(c)) return undefined;
    if (c === C_SEMI) {
      for (let j = i + 1; j < n; j++) if (!isSpace(sql.charCodeAt(j))) return undefined;
      end = i;
      break;
    }
    if (isIdentStart(c)) {
      if (c === C_UNDERSCORE) return undefined; // `_utf8mb4 'x'`: a charset introducer, even with a space
      const s = i;
      while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      if (i < n) {
        const t = sql.charCodeAt(i);
        if (t === C_QUOTE || t === C_BACKTICK) return undefined; // x'', b'', N'', glued names
      }
      lastWord = sql.slice(s, i).toLowerCase();
      lastWasString = false;
      continue;
    }
    if (c === C_BACKTICK) {
      i++;
      for (;;) {
        if (i >= n) return undefined;
        const t = sql.charCodeAt(i);
        if (!plainInQuotes(t)) return undefined;
        i++;
        if (t === C_BACKTICK) break;
      }
      if (sql.charCodeAt(i - 2) === C_BACKTICK) return undefined; // empty name ``
      if (i < n) {
        const t = sql.charCodeAt(i);
        if (t === C_BACKTICK || t === C_QUOTE || isIdentChar(t)) return undefined; // doubled backtick, glued
      }
      lastWord = '`'; // a quoted name before `(` may be a function or type: its numbers stay verbatim
      lastWasString = false;
      continue;
    }
    if (c === C_QUOTE) {
      if (lastWasString) return undefined; // 'a' 'b' concatenates
      if (i > 0) {
        const p = sql.charCodeAt(i - 1);
        if (isIdentChar(p) || p === C_BACKTICK || p === C_QUOTE) return undefined;
      }
      const s = i;
      i++;
      for (;;) {
        if (i >= n) return undefined;
        const t = sql.charCodeAt(i);
        if (!plainInQuotes(t)) return undefined;
        i++;
        if (t === C_QUOTE) break;
      }
      if (i < n) {
        const t = sql.charCodeAt(i);
        if (t === C_QUOTE || t === C_BACKTICK || isIdentChar(t)) return undefined; // doubled quote, glued
      }
      key += `${sql.slice(copied, s)}\u0001s`;
      copied = i;
      literals.push({ start: s, end: i, cls: 's' });
      lastWord = '';
      lastWasString = true;
      continue;
    }
    lastWasString = false;
    if (isDigit(c)) {
      if (i > 0 && sql.charCodeAt(i - 1) === C_DOT) return undefined; // `t.1`, `1.2.3`
      const s = i;
      const intEnd = plainDigits(sql, i);
      if (intEnd === undefined) return undefined;
      if (c === 48 && intEnd - s > 1) return undefined; // leading zeros, 0x.., 0b..
      i = intEnd;
      let cls: LiteralClass = 'i';
      if (i < n && sql.charCodeAt(i) === C_DOT) {
        const fracEnd = plainDigits(sql, i + 1);
        if (fracEnd === undefined) return undefined; // `1.`, `1..2`, long fractions
        i = fracEnd;
        cls = 'd';
      }
      if (i < n) {
        const t = sql.charCodeAt(i);
        if (isIdentChar(t) || isDigit(t) || t === C_DOT || t === C_QUOTE || t === C_BACKTICK)
          return undefined;
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
    if (c === C_DOT && i + 1 < n && isDigit(sql.charCodeAt(i + 1))) return undefined; // `.5`
    if (c === C_MINUS && i + 1 < n && sql.charCodeAt(i + 1) === C_MINUS) return undefined; // `-- ` and `--1`
    if (c === C_SLASH && i + 1 < n && sql.charCodeAt(i + 1) === C_STAR) return undefined;
    if (c === C_STAR && i + 1 < n && sql.charCodeAt(i + 1) === C_SLASH) return undefined;
    if (c === C_LPAREN) {
      parens.push(lastWord === '' || GROUPING_WORDS.has(lastWord));
      if (parens.length > 64) return undefined;
    } else if (c === C_RPAREN) {
      if (parens.pop() === undefined) return undefined;
    }
    lastWord = '';
    i++;
  }
  if (parens.length !== 0) return undefined;
  key += sql.slice(copied);
  return { key, literals, statementText: sql.slice(0, end).trim() };
}

/** Why a MySQL cold analysis cannot serve other texts of its shape, or undefined if it can. */
export function mysqlIneligible(a: MysqlAnalysis): string | undefined {
  if (a.error !== undefined) return 'parse error';
  if (a.denied !== undefined) return 'denied';
  if (a.statements.length !== 1) return 'not exactly one statement';
  // Unqualified built-ins are allowed by name inside the analyser and not listed; a listed function is a stored
  // (database-qualified) one, whose body Warden cannot see.
  return summaryIneligible((a.statements[0] as { summary: StatementSummary }).summary, () => false);
}

/** A literal of class `cls`, different for every `index` (or the same for all when `same`). */
function sample(span: LiteralSpan, index: number, same: boolean): string {
  const k = same ? 0 : index + 1;
  if (span.cls === 's') return `'w${k}'`;
  if (span.cls === 'd') return `${1000 + k}.5`;
  return String(1000 + k);
}

/** The MySQL fast path of one target: templates scoped to its database. */
export class MysqlShapes {
  private readonly templates: ShapeTemplates<MysqlAnalysis, string>;

  /** `cached` is the dialect's analysis cached by text (used for every text this path does not share). */
  constructor(cached: (sql: string) => MysqlAnalysis) {
    this.templates = new ShapeTemplates<MysqlAnalysis, string>({
      shape: mysqlLiteralShape,
      cached: (sql) => cached(sql),
      cold: (sql, database) => analyzeMysql(sql, { database }),
      ineligible: mysqlIneligible,
      summary: (a) => (a.statements[0] as { summary: StatementSummary }).summary,
      sample,
    });
  }

  lookup(sql: string, database: string): ShapedLookup<MysqlAnalysis> {
    return this.templates.lookup(sql, database, database);
  }

  clear(): void {
    this.templates.clear();
  }
}
