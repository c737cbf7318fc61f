// Shared benchmark helpers: statistics, micro-timing, plain and markdown tables, and the results file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Options every suite receives from bench/run.ts. */
export interface BenchOptions {
  /** Short runs (seconds instead of tens of seconds; fewer iterations). */
  readonly quick: boolean;
  /** Progress lines go here (stderr), so that stdout holds only the tables. */
  readonly log: (line: string) => void;
}

/** Median of a non-empty list (the mean of the two middle values for an even count). NaN for an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The p-th percentile (0..100) by nearest rank. NaN for an empty list. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank] as number;
}

/** a / b, or null when either side is missing or b is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
  return a / b;
}

/** A number with a fixed count of decimals, or '–' when absent. */
export function fmt(v: number | null | undefined, decimals = 0): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/** A ratio as e.g. "0.93×", or '–'. */
export function fmtRatio(v: number | null): string {
  return v === null ? '–' : `${v.toFixed(2)}×`;
}

/** Nanoseconds from a monotonic clock. */
export function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Microseconds elapsed since `start` (from nowNs()). */
export function microsSince(start: bigint): number {
  return Number(nowNs() - start) / 1000;
}

/**
 * Times `fn` in batches of `batch` calls and returns the median µs per call over `samples` batches, after
 * `warmup` untimed calls. For fast operations (well under a microsecond up to tens of µs).
 */
export function microsPerCall(
  fn: () => unknown,
  o: { readonly batch: number; readonly samples: number; readonly warmup?: number },
): number {
  let sink: unknown;
  for (let i = 0; i < (o.warmup ?? o.batch); i++) sink = fn();
  const perCall: number[] = [];
  for (let s = 0; s < o.samples; s++) {
    const t0 = nowNs();
    for (let i = 0; i < o.batch; i++) sink = fn();
    perCall.push(microsSince(t0) / o.batch);
  }
  keep(sink);
  return median(perCall);
}

/**
 * Times `run` once per sample, with `prepare` run untimed before each sample (e.g. to clear a cache), and
 * returns the median µs. For operations of a few µs and more, where a per-call clock read is negligible.
 */
export function microsEach(
  run: () => unknown,
  prepare: () => void,
  o: { readonly samples: number; readonly warmup?: number },
): number {
  let sink: unknown;
  for (let i = 0; i < (o.warmup ?? 20); i++) {
    prepare();
    sink = run();
  }
  const xs: number[] = [];
  for (let s = 0; s < o.samples; s++) {
    prepare();
    const t0 = nowNs();
    sink = run();
    xs.push(microsSince(t0));
  }
  keep(sink);
  return median(xs);
}

let blackhole = 0;
/** Keeps a result alive so the JIT cannot drop the work that produced it. */
function keep(v: unknown): void {
  if (v === blackhole) blackhole++;
}

export type Align = 'left' | 'right';

export interface Table {
  readonly title: string;
  readonly columns: readonly string[];
  /** Per column; default: the first column left, the others right. */
  readonly align?: readonly Align[];
  readonly rows: readonly (readonly string[])[];
  /** Lines printed under the table (notes, targets). */
  readonly notes?: readonly string[];
}

function alignOf(t: Table, i: number): Align {
  return t.align?.[i] ?? (i === 0 ? 'left' : 'right');
}

/** A table as aligned plain text, for the terminal. */
export function textTable(t: Table): string {
  const widths = t.columns.map((c, i) => Math.max(c.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => {
        const w = widths[i] ?? 0;
        return alignOf(t, i) === 'left' ? c.padEnd(w) : c.padStart(w);
      })
      .join('  ')
      .trimEnd();
  const out = [t.title, '', line(t.columns), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of t.rows) out.push(line(r));
  for (const n of t.notes ?? []) out.push(n);
  return out.join('\n');
}

/** A table as GitHub markdown, ready to paste into the README. */
export function markdownTable(t: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const out = [
    `| ${t.columns.map(esc).join(' | ')} |`,
    `| ${t.columns.map((_c, i) => (alignOf(t, i) === 'left' ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const r of t.rows) out.push(`| ${r.map(esc).join(' | ')} |`);
  return out.join('\n');
}

/** Prints a table as text, then as markdown. */
export function printTable(t: Table): void {
  process.stdout.write(`\n${textTable(t)}\n\nMarkdown:\n\n${markdownTable(t)}\n`);
}

/** The folder that holds the results (git-ignored). */
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

/** Writes `data` as pretty JSON to bench/results/<name> and returns the path. */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, name);
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  return path;
}
