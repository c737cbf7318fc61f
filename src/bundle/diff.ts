// Line diffs in unified format, for `warden bundle diff` (policy files and settings of two bundles).
// @see https://www.gnu.org/software/diffutils/manual/html_node/Detailed-Unified.html

/** One line of an edit script; `line` keeps its newline, if it had one. */
export interface DiffOp {
  readonly op: ' ' | '-' | '+';
  readonly line: string;
}

/** Lines with their terminators; the last one may lack '\n'. */
export function splitLines(text: string): string[] {
  const out = text.match(/[^\n]*\n|[^\n]+$/g);
  return out ?? [];
}

/** Above this many cells, the LCS table is not built and the middle is shown as removed then added. */
const MAX_LCS_CELLS = 4_000_000;

/**
 * An edit script turning `a` into `b`: a longest common subsequence after trimming the common head and tail.
 * INVARIANT: the ' ' and '-' lines spell `a`; the ' ' and '+' lines spell `b`.
 */
export function diffLines(a: readonly string[], b: readonly string[]): DiffOp[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (
    tail < a.length - head &&
    tail < b.length - head &&
    a[a.length - 1 - tail] === b[b.length - 1 - tail]
  )
    tail++;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const mid: DiffOp[] = [];
  if (x.length * y.length > MAX_LCS_CELLS) {
    for (const line of x) mid.push({ op: '-', line });
    for (const line of y) mid.push({ op: '+', line });
  } else {
    const n = x.length;
    const m = y.length;
    // lcs[i][j] = LCS length of x[i..] and y[j..], stored row-major.
    const lcs = new Uint32Array((n + 1) * (m + 1));
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        lcs[i * (m + 1) + j] =
          x[i] === y[j]
            ? lcs[(i + 1) * (m + 1) + j + 1]! + 1
            : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!);
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) {
        mid.push({ op: ' ', line: x[i]! });
        i++;
        j++;
      } else if (i < n && (j === m || lcs[(i + 1) * (m + 1) + j]! >= lcs[i * (m + 1) + j + 1]!)) {
        mid.push({ op: '-', line: x[i]! });
        i++;
      } else {
        mid.push({ op: '+', line: y[j]! });
        j++;
      }
    }
  }
  return [
    ...a.slice(0, head).map((line) => ({ op: ' ' as const, line })),
    ...mid,
    ...a.slice(a.length - tail).map((line) => ({ op: ' ' as const, line })),
  ];
}

/** GNU diff writes `start` alone when the range has one line. */
const range = (start: number, count: number): string => (count === 1 ? `${start}` : `${start},${count}`);

function renderLine(op: DiffOp): string {
  return op.line.endsWith('\n') ? `${op.op}${op.line}` : `${op.op}${op.line}\n\\ No newline at end of file\n`;
}

/** A unified diff of two texts with `context` lines around each change; '' when they are equal. */
export function unifiedDiff(oldName: string, newName: string, a: string, b: string, context = 3): string {
  if (a === b) return '';
  const ops = diffLines(splitLines(a), splitLines(b));
  const pos: { o: number; n: number }[] = [];
  let o = 0;
  let n = 0;
  for (const op of ops) {
    pos.push({ o, n });
    if (op.op !== '+') o++;
    if (op.op !== '-') n++;
  }
  const changed = ops.map((op, i) => (op.op === ' ' ? -1 : i)).filter((i) => i >= 0);
  let out = `--- ${oldName}\n+++ ${newName}\n`;
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, changed[k]! - context);
    let end = changed[k]! + 1;
    while (k < changed.length && changed[k]! - end <= 2 * context) {
      end = changed[k]! + 1;
      k++;
    }
    end = Math.min(ops.length, end + context);
    const slice = ops.slice(start, end);
    const oc = slice.filter((x) => x.op !== '+').length;
    const nc = slice.filter((x) => x.op !== '-').length;
    const os = oc === 0 ? pos[start]!.o : pos[start]!.o + 1;
    const ns = nc === 0 ? pos[start]!.n : pos[start]!.n + 1;
    out += `@@ -${range(os, oc)} +${range(ns, nc)} @@\n`;
    for (const op of slice) out += renderLine(op);
  }
  return out;
}

/** What a bundle diff compares: the parts of a bundle payload that change behaviour. */
export interface DiffableBundle {
  readonly version: number;
  readonly policy: Readonly<Record<string, string>>;
  readonly settings: Readonly<Record<string, unknown>>;
}

function sortedJson(v: unknown): string {
  const sort = (x: unknown): unknown =>
    Array.isArray(x)
      ? x.map(sort)
      : typeof x === 'object' && x !== null
        ? Object.fromEntries(
            Object.keys(x)
              .sort()
              .map((k) => [k, sort((x as Record<string, unknown>)[k])]),
          )
        : x;
  return JSON.stringify(sort(v), null, 2) + '\n';
}

/**
 * What `next` changes against `running` (undefined: nothing runs yet): a unified diff per policy file (added,
 * removed or changed) and of the settings rendered as sorted JSON. '' when nothing changes.
 */
export function diffBundles(running: DiffableBundle | undefined, next: DiffableBundle): string {
  const a = running?.policy ?? {};
  const paths = [...new Set([...Object.keys(a), ...Object.keys(next.policy)])].sort();
  let out = '';
  for (const p of paths) {
    const before = Object.hasOwn(a, p) ? a[p] : undefined;
    const after = Object.hasOwn(next.policy, p) ? next.policy[p] : undefined;
    out += unifiedDiff(
      before === undefined ? '/dev/null' : `a/policy/${p}`,
      after === undefined ? '/dev/null' : `b/policy/${p}`,
      before ?? '',
      after ?? '',
    );
  }
  out += unifiedDiff(
    'a/settings.json',
    'b/settings.json',
    running === undefined ? '' : sortedJson(running.settings),
    sortedJson(next.settings),
  );
  return out;
}
