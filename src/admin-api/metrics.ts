// A small Prometheus metrics registry (counters, gauges, histograms with labels) rendered in the text exposition format.

/**
 * @see https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 * INVARIANT: a metric name is registered once; label names are fixed at registration and every observation gives
 * exactly those labels, so a series can never be split by a misspelt label.
 */

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(pairs: readonly (readonly [string, string])[]): string {
  if (pairs.length === 0) return '';
  return `{${pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  /** The series key for `labels`; throws if labels are missing, extra or not strings. */
  protected key(labels: Labels | undefined): string {
    const given = labels ?? {};
    const keys = Object.keys(given);
    if (
      keys.length !== this.labelNames.length ||
      !this.labelNames.every((n) => typeof given[n] === 'string')
    ) {
      throw new TypeError(
        `metric ${this.name}: labels must be exactly {${this.labelNames.join(', ')}}, got {${keys.join(', ')}}`,
      );
    }
    return JSON.stringify(this.labelNames.map((n) => given[n]));
  }

  protected pairs(key: string): [string, string][] {
    const values = JSON.parse(key) as string[];
    return this.labelNames.map((n, i) => [n, values[i] ?? '']);
  }

  abstract samples(): string[];
}

export class Counter extends Metric {
  readonly type = 'counter';
  private readonly values = new Map<string, number>();

  /** Adds `by` (default 1, must be >= 0: a counter only goes up). */
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) throw new RangeError(`counter ${this.name}: cannot add ${by}`);
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels?: Labels): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  samples(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${labelText(this.pairs(k))} ${formatValue(v)}`);
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  private readonly values = new Map<string, number>();

  set(value: number, labels?: Labels): void {
    this.values.set(this.key(labels), value);
  }

  inc(labels?: Labels, by = 1): void {
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  dec(labels?: Labels, by = 1): void {
    this.inc(labels, -by);
  }

  get(labels?: Labels): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  samples(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${labelText(this.pairs(k))} ${formatValue(v)}`);
  }
}

interface HistogramSeries {
  readonly counts: number[];
  sum: number;
  count: number;
}

/** Default latency buckets in seconds, from 1 ms to 10 s. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export class Histogram extends Metric {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    if (labelNames.includes('le')) throw new TypeError(`histogram ${name}: "le" is a reserved label`);
    const sorted = [...buckets].filter((b) => b !== Infinity);
    if (
      sorted.length === 0 ||
      sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= (sorted[i - 1] ?? 0)))
    ) {
      throw new TypeError(`histogram ${name}: buckets must be finite and strictly increasing`);
    }
    this.buckets = sorted;
  }

  observe(value: number, labels?: Labels): void {
    if (Number.isNaN(value)) return;
    const k = this.key(labels);
    let s = this.series.get(k);
    if (s === undefined) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    // Counts are stored per bucket and made cumulative when rendered.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count += 1;
  }

  /** Starts a timer; calling the returned function observes the elapsed seconds. */
  startTimer(labels?: Labels): () => number {
    const t0 = process.hrtime.bigint();
    return () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.observe(seconds, labels);
      return seconds;
    };
  }

  snapshot(labels?: Labels): { count: number; sum: number } {
    const s = this.series.get(this.key(labels));
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  samples(): string[] {
    const out: string[] = [];
    for (const [k, s] of this.series) {
      const pairs = this.pairs(k);
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += s.counts[i] ?? 0;
        out.push(`${this.name}_bucket${labelText([...pairs, ['le', formatValue(b)]])} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${labelText([...pairs, ['le', '+Inf']])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(pairs)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelText(pairs)} ${s.count}`);
    }
    return out;
  }
}

/** The content type of the rendered text. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class Metrics {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors: (() => void)[] = [];

  private register<M extends Metric>(m: M): M {
    if (!NAME_RE.test(m.name)) throw new TypeError(`invalid metric name ${JSON.stringify(m.name)}`);
    for (const l of m.labelNames) {
      if (!LABEL_RE.test(l) || l.startsWith('__'))
        throw new TypeError(`metric ${m.name}: invalid label name ${JSON.stringify(l)}`);
    }
    if (new Set(m.labelNames).size !== m.labelNames.length)
      throw new TypeError(`metric ${m.name}: duplicate label name`);
    if (this.metrics.has(m.name)) throw new TypeError(`metric ${m.name} is already registered`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(new Gauge(name, help, labelNames));
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets: readonly number[] = DEFAULT_BUCKETS,
  ): Histogram {
    return this.register(new Histogram(name, help, labelNames, buckets));
  }

  /** Runs `fn` before each render (e.g. to set a gauge from live state). A throwing collector is skipped. */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  /** The registry in the Prometheus text format, metrics in registration order. */
  render(): string {
    for (const c of this.collectors) {
      try {
        c();
      } catch {
        // A failing collector must not break the scrape; its metric keeps its last value.
      }
    }
    const lines: string[] = [];
    for (const m of this.metrics.values()) {
      lines.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`, ...m.samples());
    }
    return lines.join('\n') + '\n';
  }
}

/** The gateway's standard metrics, registered on one registry; the gateway updates them, /metrics renders them. */
export interface WardenMetrics {
  readonly registry: Metrics;
  /** Open client sessions now. */
  readonly sessionsActive: Gauge;
  /** Sessions opened since start, by protocol. */
  readonly sessionsTotal: Counter;
  /** Statements decided, by decision (allow | deny | approval). */
  readonly statements: Counter;
  /** Statement latency in seconds (hook to outcome), by decision. */
  readonly statementSeconds: Histogram;
  /** Seconds between an audit entry being queued and its durable append (last batch). */
  readonly auditAppendLagSeconds: Gauge;
  /** Admin API requests, by method, route template and status. */
  readonly apiRequests: Counter;
}

export function createWardenMetrics(registry = new Metrics()): WardenMetrics {
  return {
    registry,
    sessionsActive: registry.gauge('warden_sessions_active', 'Client sessions currently open.'),
    sessionsTotal: registry.counter('warden_sessions_total', 'Client sessions opened.', ['protocol']),
    statements: registry.counter('warden_statements_total', 'Statements decided, by decision.', ['decision']),
    statementSeconds: registry.histogram(
      'warden_statement_duration_seconds',
      'Statement latency from hook to outcome.',
      ['decision'],
    ),
    auditAppendLagSeconds: registry.gauge(
      'warden_audit_append_lag_seconds',
      'Delay between queueing an audit entry and its durable append.',
    ),
    apiRequests: registry.counter('warden_admin_api_requests_total', 'Admin API requests.', [
      'method',
      'route',
      'status',
    ]),
  };
}
