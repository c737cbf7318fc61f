// Policy source files: YAML parsing with positions, and mapping of a JSON path (ajv's instancePath) to file:line:column.
// @see https://eemeli.org/yaml/#documents (parseDocument, LineCounter)

import { isMap, isPair, isScalar, LineCounter, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';
import { WardenError } from '../core/errors.js';

export type PathSegment = string | number;

export interface SourceFile {
  readonly path: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
}

/** One problem in a policy, located in its source. */
export interface PolicyProblem {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
  /** JSON pointer of the offending value, e.g. /roles/0/grants/1/operations. */
  readonly pointer: string;
  readonly message: string;
}

/** A policy that failed to load. `problems` lists every problem found, each with its file and line. */
export class PolicyError extends WardenError {
  readonly problems: readonly PolicyProblem[];
  constructor(unsorted: readonly PolicyProblem[]) {
    const problems = [...unsorted].sort(
      (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col,
    );
    const shown = problems.slice(0, 20).map(formatProblem);
    const more = problems.length > 20 ? [`... and ${problems.length - 20} more`] : [];
    super('CONFIG_INVALID', `invalid policy:\n${[...shown, ...more].join('\n')}`);
    this.name = 'PolicyError';
    this.problems = problems;
  }
}

export function formatProblem(p: PolicyProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}${p.pointer === '' ? '' : ` (at ${p.pointer})`}`;
}

/** Parses YAML text; syntax errors become problems with positions. */
export function parseSource(path: string, text: string): { file: SourceFile; problems: PolicyProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    keepSourceTokens: true,
    uniqueKeys: true,
    prettyErrors: false,
  });
  const file: SourceFile = { path, doc, lines };
  const problems: PolicyProblem[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    const pos = lines.linePos(e.pos[0]);
    problems.push({
      file: path,
      line: pos.line,
      col: pos.col,
      pointer: '',
      message: e.message.split('\n')[0] ?? e.code,
    });
  }
  return { file, problems };
}

export function pointerToPath(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

export function pathToPointer(path: readonly PathSegment[]): string {
  return path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

function child(node: unknown, seg: PathSegment): { key?: Node; value?: unknown } | undefined {
  if (isMap(node)) {
    for (const item of node.items) {
      if (isPair(item) && isScalar(item.key) && String(item.key.value) === String(seg)) {
        return { key: item.key, value: item.value };
      }
    }
    return undefined;
  }
  if (
    node !== null &&
    typeof node === 'object' &&
    'items' in node &&
    Array.isArray(node.items) &&
    typeof seg === 'number'
  ) {
    const v: unknown = node.items[seg];
    return v === undefined ? undefined : { value: v };
  }
  return undefined;
}

function rangeStart(node: unknown): number | undefined {
  if (node !== null && typeof node === 'object' && 'range' in node && Array.isArray(node.range)) {
    const r: unknown = node.range[0];
    return typeof r === 'number' ? r : undefined;
  }
  return undefined;
}

/**
 * Line and column of the value at `path` (or of its key when `atKey`). When the path does not exist (a missing
 * property), the deepest existing ancestor is reported.
 */
export function locate(
  file: SourceFile,
  path: readonly PathSegment[],
  atKey = false,
): { line: number; col: number } {
  let node: unknown = file.doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const c = child(node, path[i] as PathSegment);
    if (c === undefined) break;
    const last = i === path.length - 1;
    const start =
      last && atKey && c.key !== undefined ? rangeStart(c.key) : (rangeStart(c.value) ?? rangeStart(c.key));
    if (start !== undefined) offset = start;
    node = c.value;
  }
  const pos = file.lines.linePos(offset);
  return { line: pos.line, col: pos.col };
}

export function problemAt(
  file: SourceFile,
  path: readonly PathSegment[],
  message: string,
  atKey = false,
): PolicyProblem {
  const { line, col } = locate(file, path, atKey);
  return { file: file.path, line, col, pointer: pathToPointer(path), message };
}
