// MySQL/MariaDB pre-lexer: tokenises statement text the way the server does, refuses what the parser would misread, and splits multi-statements.
// @see https://mariadb.com/kb/en/comment-syntax/ and https://dev.mysql.com/doc/refman/8.0/en/string-literals.html
//
// INVARIANT: any text this lexer cannot tokenise exactly as the server would is refused (an error), never guessed:
// executable comments (`/*! */`, `/*M! */`), optimizer hints (`/*+ */`, which MySQL 8 executes as SET_VAR and
// more), NUL bytes, unterminated quotes or comments, stray characters. The lexer assumes the server's sql_mode has
// neither ANSI_QUOTES nor NO_BACKSLASH_ESCAPES (the analyser denies changing sql_mode).

export type TokenKind = 'word' | 'number' | 'string' | 'ident' | 'op' | 'semicolon' | 'param' | 'var';

export interface Token {
  readonly kind: TokenKind;
  /** Offset of the token's first character in the text. */
  readonly start: number;
  /** Offset just past the token. */
  readonly end: number;
  /** Decoded value: the unquoted string or identifier, the upper-cased word, or the raw text otherwise. */
  readonly value: string;
}

export interface LexedStatement {
  /** The statement's text as sent, without the terminating `;`, trimmed. */
  readonly text: string;
  /** The same text with comments blanked: what the parser reads (and what a rewrite starts from). */
  readonly clean: string;
  readonly tokens: readonly Token[];
}

export type LexResult =
  | { readonly ok: true; readonly statements: readonly LexedStatement[] }
  | { readonly ok: false; readonly error: string };

const OPS = ['<=>', '<<', '>>', '<=', '>=', '<>', '!=', ':=', '&&', '||', '->>', '->'];
const SINGLE_OPS = '+-*/%=<>!&|^~(),.:{}';

/** What may follow `--` for it to start a comment: whitespace or a control character. */
function isCommentGap(c: string): boolean {
  return /\s/.test(c) || c.charCodeAt(0) < 0x20;
}

function isWordStart(c: string): boolean {
  return /[A-Za-z_$\u0080-\uffff]/.test(c);
}
function isWordChar(c: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(c);
}

const ESCAPES: Record<string, string> = {
  '0': '\0',
  "'": "'",
  '"': '"',
  b: '\b',
  n: '\n',
  r: '\r',
  t: '\t',
  Z: '\x1a',
  '\\': '\\',
  '%': '\\%',
  _: '\\_',
};

/** Reads a quoted string or identifier starting at `i` (the opening quote). Returns the decoded value and end. */
function readQuoted(text: string, i: number): { value: string; end: number } | undefined {
  const q = text[i] as string;
  let out = '';
  let j = i + 1;
  while (j < text.length) {
    const c = text[j] as string;
    if (c === '\\' && q !== '`') {
      const n = text[j + 1];
      if (n === undefined) return undefined;
      out += ESCAPES[n] ?? n;
      j += 2;
      continue;
    }
    if (c === q) {
      if (text[j + 1] === q) {
        out += q;
        j += 2;
        continue;
      }
      return { value: out, end: j + 1 };
    }
    out += c;
    j++;
  }
  return undefined;
}

/** Tokenises `text`, refusing anything the server could read differently. */
export function lex(
  text: string,
): { ok: true; tokens: Token[]; clean: string } | { ok: false; error: string } {
  const tokens: Token[] = [];
  // The text with every comment blanked (same length, so offsets hold): what the parser is given.
  const clean = text.split('');
  const blank = (from: number, to: number): void => {
    for (let k = from; k < to; k++) if (clean[k] !== '\n') clean[k] = ' ';
  };
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i] as string;
    if (c === '\0') return { ok: false, error: 'NUL byte in statement text' };
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (
      c === '#' ||
      (c === '-' && text[i + 1] === '-' && (i + 2 >= n || isCommentGap(text[i + 2] as string)))
    ) {
      const nl = text.indexOf('\n', i);
      const end = nl < 0 ? n : nl + 1;
      if (text.slice(i, end).includes('\0')) return { ok: false, error: 'NUL byte in a comment' };
      blank(i, end);
      i = end;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const after = text.slice(i + 2, i + 4);
      if (after.startsWith('!'))
        return { ok: false, error: 'executable comments (/*! ... */) are not allowed' };
      if (/^M!/i.test(after))
        return { ok: false, error: 'executable comments (/*M! ... */) are not allowed' };
      if (after.startsWith('+')) return { ok: false, error: 'optimizer hints (/*+ ... */) are not allowed' };
      const close = text.indexOf('*/', i + 2);
      if (close < 0) return { ok: false, error: 'unterminated comment' };
      if (text.slice(i, close).includes('\0')) return { ok: false, error: 'NUL byte in a comment' };
      blank(i, close + 2);
      i = close + 2;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') {
      const r = readQuoted(text, i);
      if (r === undefined) return { ok: false, error: `unterminated ${c === '`' ? 'identifier' : 'string'}` };
      if (c === '`' && r.value.length === 0) return { ok: false, error: 'empty quoted identifier' };
      tokens.push({ kind: c === '`' ? 'ident' : 'string', start: i, end: r.end, value: r.value });
      i = r.end;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n && /[0-9A-Za-z_.$]/.test(text[j] as string)) {
        // 1e+5 / 1e-5
        if (
          /[eE]/.test(text[j] as string) &&
          /[+-]/.test(text[j + 1] ?? '') &&
          /[0-9]/.test(text[j + 2] ?? '')
        )
          j += 2;
        j++;
      }
      tokens.push({ kind: 'number', start: i, end: j, value: text.slice(i, j) });
      i = j;
      continue;
    }
    if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordChar(text[j] as string)) j++;
      tokens.push({ kind: 'word', start: i, end: j, value: text.slice(i, j).toUpperCase() });
      i = j;
      continue;
    }
    if (c === '@') {
      let j = i + 1;
      if (text[j] === '@') j++;
      if (text[j] === '`' || text[j] === "'" || text[j] === '"') {
        const r = readQuoted(text, j);
        if (r === undefined) return { ok: false, error: 'unterminated variable name' };
        j = r.end;
      } else while (j < n && /[A-Za-z0-9_$.]/.test(text[j] as string)) j++;
      tokens.push({ kind: 'var', start: i, end: j, value: text.slice(i, j) });
      i = j;
      continue;
    }
    if (c === '?') {
      tokens.push({ kind: 'param', start: i, end: i + 1, value: '?' });
      i++;
      continue;
    }
    if (c === ';') {
      tokens.push({ kind: 'semicolon', start: i, end: i + 1, value: ';' });
      i++;
      continue;
    }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (op !== undefined) {
      tokens.push({ kind: 'op', start: i, end: i + op.length, value: op });
      i += op.length;
      continue;
    }
    if (c === '{' || c === '}') return { ok: false, error: 'ODBC escape braces are not allowed' };
    if (SINGLE_OPS.includes(c)) {
      tokens.push({ kind: 'op', start: i, end: i + 1, value: c });
      i++;
      continue;
    }
    return { ok: false, error: `unexpected character ${JSON.stringify(c)} at offset ${i}` };
  }
  return { ok: true, tokens, clean: clean.join('') };
}

/**
 * Tokenises and splits at top-level `;` (the server's multi-statement split). Empty statements are dropped.
 * `DELIMITER` is a command of the mysql client, never of the server: a statement starting with it is refused.
 */
export function lexStatements(text: string): LexResult {
  const r = lex(text);
  if (!r.ok) return r;
  const statements: LexedStatement[] = [];
  let current: Token[] = [];
  const flush = (): void => {
    if (current.length === 0) return;
    const first = current[0] as Token;
    const last = current[current.length - 1] as Token;
    const base = first.start;
    statements.push({
      text: text.slice(first.start, last.end),
      clean: r.clean.slice(first.start, last.end),
      tokens: current.map((t) => ({ ...t, start: t.start - base, end: t.end - base })),
    });
    current = [];
  };
  for (const t of r.tokens) {
    if (t.kind === 'semicolon') flush();
    else current.push(t);
  }
  flush();
  for (const s of statements) {
    if (s.tokens[0]?.kind === 'word' && s.tokens[0].value === 'DELIMITER') {
      return { ok: false, error: 'DELIMITER is a command of the mysql client, not SQL' };
    }
  }
  return { ok: true, statements };
}
