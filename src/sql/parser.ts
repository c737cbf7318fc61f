// The one place that loads and calls the PostgreSQL parser (libpg-query, WASM): parse results as plain JSON trees, byte offsets turned into text slices.
import { loadModule, parseSync, parsePlPgSQLSync, scanSync } from 'libpg-query';
import { WardenError } from '../core/errors.js';

/** A parse-tree node body: the value under a node-type key, e.g. the `{...}` in `{ SelectStmt: {...} }`. */
export type NodeBody = Record<string, unknown>;

let loading: Promise<void> | undefined;
let loaded = false;

/** Loads the parser once. Every other function here throws INTERNAL until this has resolved. */
export function initSqlParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    loaded = true;
  });
  return loading;
}

function assertLoaded(): void {
  if (!loaded) throw new WardenError('INTERNAL', 'SQL parser not initialised: await initSqlAnalyser() first');
}

export function isPlainObject(v: unknown): v is NodeBody {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Splits a wrapped node `{ Type: body }` into [type, body]; undefined if it is not a wrapped node. */
export function unwrap(node: unknown): [string, NodeBody] | undefined {
  if (!isPlainObject(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const type = keys[0] as string;
  const body = node[type];
  if (!isPlainObject(body)) return undefined;
  return [type, body];
}

export interface ParsedStatement {
  /** The wrapped statement node, e.g. `{ SelectStmt: {...} }`. */
  readonly node: NodeBody;
  /** The statement's own text, sliced from the original by the parser's byte offsets, trimmed. */
  readonly text: string;
}

export type ParseOutcome =
  | { readonly ok: true; readonly statements: readonly ParsedStatement[] }
  | { readonly ok: false; readonly error: string };

/** Character (UTF-16) position, 1-based, of a 0-based UTF-8 byte offset into `sql`. */
function charPosition(buf: Buffer, byteOffset: number): number {
  return buf.subarray(0, Math.max(0, byteOffset)).toString('utf8').length + 1;
}

function parseErrorMessage(e: unknown, buf: Buffer): string {
  const err = e as { message?: unknown; sqlDetails?: { message?: string; cursorPosition?: number } };
  const message = err.sqlDetails?.message ?? (typeof err.message === 'string' ? err.message : String(e));
  const pos = err.sqlDetails?.cursorPosition;
  return typeof pos === 'number' && pos >= 0 ? `${message} (at position ${charPosition(buf, pos)})` : message;
}

/**
 * Parses a (possibly multi-statement) SQL string.
 * INVARIANT: a string the parser rejects yields `ok: false`, never a partial list of statements.
 */
export function parseSql(sql: string): ParseOutcome {
  assertLoaded();
  const buf = Buffer.from(sql, 'utf8');
  let tree: { stmts?: { stmt?: unknown; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = parseSync(sql);
  } catch (e) {
    return { ok: false, error: parseErrorMessage(e, buf) };
  }
  const statements: ParsedStatement[] = [];
  for (const raw of tree.stmts ?? []) {
    if (!isPlainObject(raw.stmt)) return { ok: false, error: 'parser returned a statement without a node' };
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len === undefined || raw.stmt_len === 0 ? buf.length : start + raw.stmt_len;
    statements.push({ node: raw.stmt, text: buf.subarray(start, end).toString('utf8').trim() });
  }
  return { ok: true, statements };
}

/** Parses a DO block or CREATE FUNCTION statement's PL/pgSQL body; throws with the parser's message. */
export function parsePlpgsql(sql: string): unknown {
  assertLoaded();
  try {
    return parsePlPgSQLSync(sql);
  } catch (e) {
    throw new Error(parseErrorMessage(e, Buffer.from(sql, 'utf8')), { cause: e });
  }
}

export interface Token {
  readonly text: string;
  readonly tokenName: string;
  /** Byte offsets. */
  readonly start: number;
  readonly end: number;
}

/** Lexes SQL into tokens (offsets in UTF-8 bytes). */
export function scanSql(sql: string): readonly Token[] {
  assertLoaded();
  return scanSync(sql).tokens;
}
