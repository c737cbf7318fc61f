// Injection-proof SQL templates for row filters and mask expressions: `{{ user.tenant | int }}` placeholders become SQL literals.
// @see https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-CONSTANTS

import type { Principal } from '../core/context.js';

/** What a placeholder reads. */
export type PlaceholderSource =
  | { readonly kind: 'attribute'; readonly name: string }
  | { readonly kind: 'principal'; readonly field: 'name' | 'kind' }
  | { readonly kind: 'column' };

export type Segment =
  | { readonly text: string }
  | { readonly source: PlaceholderSource; readonly as: 'text' | 'int'; readonly raw: string };

export interface Template {
  readonly source: string;
  readonly segments: readonly Segment[];
}

export type TemplateFlavour = 'filter' | 'mask';

const PLACEHOLDER =
  /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*(?:\|\s*([a-z]+)\s*)?\}\}/;
// Characters that may not touch a placeholder: they could merge a literal into an identifier, a prefixed string
// (E'', U&'', B'', X''), a dollar quote, another literal, or (for '-' or '/' before a negative number) a comment.
const BAD_BEFORE = /[A-Za-z0-9_'"$&.\\}-]/;
const BAD_AFTER = /[A-Za-z0-9_'"${]/;

/**
 * Parses a template. Placeholders may only appear in plain SQL (never inside a string literal, quoted identifier,
 * dollar quote or comment), and the template may hold no comment and no `;`, so that a rendered filter is always one
 * self-contained expression the rewriter can parenthesise.
 * Returns an error message instead of throwing.
 */
export function parseTemplate(source: string, flavour: TemplateFlavour): Template | string {
  const segments: Segment[] = [];
  let text = '';
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === '{' && next === '{') {
      const m = PLACEHOLDER.exec(source.slice(i));
      if (m === null) return `unparsable placeholder at offset ${i}: expected {{ user.<attribute> }}`;
      const ref = m[1] as string;
      const filter = m[2];
      let src: PlaceholderSource;
      if (flavour === 'mask') {
        if (ref !== 'column' || filter !== undefined)
          return `a mask expression only accepts {{ column }}, not "${m[0]}"`;
        src = { kind: 'column' };
      } else if (ref.startsWith('user.')) {
        src = { kind: 'attribute', name: ref.slice(5) };
      } else if (ref === 'principal.name' || ref === 'principal.kind') {
        src = { kind: 'principal', field: ref === 'principal.name' ? 'name' : 'kind' };
      } else {
        return `unknown placeholder "${ref}": use user.<attribute>, principal.name or principal.kind`;
      }
      if (filter !== undefined && filter !== 'int' && filter !== 'text') {
        return `unknown placeholder filter "${filter}": use int or text`;
      }
      const before = text.length > 0 ? text[text.length - 1] : segments.length > 0 ? '}' : undefined;
      const after = source[i + m[0].length];
      if (
        (before !== undefined && BAD_BEFORE.test(before)) ||
        (after !== undefined && BAD_AFTER.test(after))
      ) {
        return `placeholder "${m[0]}" must be separated from neighbouring tokens by a space or an operator`;
      }
      if (text.length > 0) segments.push({ text });
      text = '';
      segments.push({ source: src, as: filter === 'int' ? 'int' : 'text', raw: m[0] });
      i += m[0].length;
      continue;
    }
    if (c === '}' && next === '}') return `unmatched "}}" at offset ${i}`;
    if (c === ';') return 'a template may not contain ";"';
    if ((c === '-' && next === '-') || (c === '/' && next === '*'))
      return 'a template may not contain a comment';
    // Skip over quoted material; any "{{" inside it is an error.
    let end = -1;
    if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(source[i - 1] as string);
      let j = i + 1;
      while (j < n) {
        const d = source[j];
        if (escapes && d === '\\') j += 2;
        else if (d === "'" && source[j + 1] === "'") j += 2;
        else if (d === "'") break;
        else j++;
      }
      end = j;
    } else if (c === '"') {
      let j = i + 1;
      while (j < n) {
        if (source[j] === '"' && source[j + 1] === '"') j += 2;
        else if (source[j] === '"') break;
        else j++;
      }
      end = j;
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(source.slice(i));
      if (m !== null && !(i > 0 && /[A-Za-z0-9_]/.test(source[i - 1] as string))) {
        const close = source.indexOf(m[0], i + m[0].length);
        end = close < 0 ? n : close + m[0].length - 1;
      }
    }
    if (end >= 0) {
      if (end >= n) return `unterminated quote starting at offset ${i}`;
      const quoted = source.slice(i, end + 1);
      if (quoted.includes('{{')) return 'a placeholder may not appear inside a quoted string or identifier';
      text += quoted;
      i = end + 1;
      continue;
    }
    text += c;
    i++;
  }
  if (text.length > 0) segments.push({ text });
  if (flavour === 'mask' && !segments.some((s) => 'source' in s)) {
    return 'a mask expression must use the {{ column }} placeholder';
  }
  return { source, segments };
}

/**
 * Quotes a value as a SQL string literal. With a backslash present it uses the E'' form (backslashes doubled), which
 * reads the same whatever standard_conforming_strings says.
 * INVARIANT: the result is exactly one string-literal token whose value equals `value`.
 */
export function sqlLiteral(value: string): string {
  const q = value.replace(/'/g, "''");
  if (value.includes('\\')) return `E'${q.replace(/\\/g, '\\\\')}'`;
  return `'${q}'`;
}

/** Quotes an identifier (always, so that case and reserved words are preserved). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const INT = /^-?(0|[1-9][0-9]{0,17})$/;

export type RenderResult =
  { readonly ok: true; readonly sql: string } | { readonly ok: false; readonly reason: string };

/**
 * Renders a filter template for a principal. A missing attribute, a non-integer value for `| int`, or a value with a
 * NUL character is a failure (the caller denies), never an empty string.
 */
export function renderTemplate(
  t: Template,
  principal: Principal,
  attributes: Readonly<Record<string, string>>,
): RenderResult {
  let out = '';
  for (const s of t.segments) {
    if ('text' in s) {
      out += s.text;
      continue;
    }
    let value: string | undefined;
    let label: string;
    if (s.source.kind === 'attribute') {
      label = `user.${s.source.name}`;
      value = Object.prototype.hasOwnProperty.call(attributes, s.source.name)
        ? attributes[s.source.name]
        : undefined;
    } else if (s.source.kind === 'principal') {
      label = `principal.${s.source.field}`;
      value = principal[s.source.field];
    } else {
      return { ok: false, reason: 'a column placeholder cannot be rendered as a filter' };
    }
    if (typeof value !== 'string')
      return { ok: false, reason: `attribute ${label} is missing for ${principal.name}` };
    if (value.includes('\u0000')) return { ok: false, reason: `attribute ${label} holds a NUL character` };
    if (s.as === 'int') {
      if (!INT.test(value)) return { ok: false, reason: `attribute ${label} is not an integer` };
      // A negative number is parenthesised so that no neighbouring '-' can turn it into a comment.
      out += value.startsWith('-') ? `(${value})` : value;
    } else {
      out += sqlLiteral(value);
    }
  }
  return { ok: true, sql: out };
}

/** Renders a mask expression around a column reference (already quoted/qualified SQL). */
export function renderMaskTemplate(t: Template, columnSql: string): string {
  return t.segments.map((s) => ('text' in s ? s.text : `(${columnSql})`)).join('');
}
