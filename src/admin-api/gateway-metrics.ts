// Feeds the gateway's standard metrics from its own paths: session events (opened/closed) and a statement hook wrapper (decisions, latency).

import type { SessionEvents, StatementHook, StatementVerdict } from '../core/context.js';
import { decisionRecord } from '../audit/recorder.js';
import type { WardenMetrics } from './metrics.js';

/** The decision label of a verdict: the policy engine's effect when it has one (allow | deny | approval). */
export function decisionLabel(verdict: StatementVerdict): string {
  return decisionRecord(verdict).effect;
}

/**
 * Session events that count sessions: `warden_sessions_total{protocol}` on authentication and the
 * `warden_sessions_active` gauge up and down. INVARIANT: only authenticated sessions are counted, and each
 * counted session is uncounted once at close (a close without a prior authentication is ignored).
 */
export function sessionMetricsEvents(m: WardenMetrics): SessionEvents {
  const open = new Set<string>();
  return {
    authenticated(s) {
      if (open.has(s.sessionId)) return;
      open.add(s.sessionId);
      m.sessionsTotal.inc({ protocol: s.protocol });
      m.sessionsActive.inc();
    },
    closed(s) {
      if (!open.delete(s.sessionId)) return;
      m.sessionsActive.dec();
    },
  };
}

/**
 * Wraps the outermost statement hook of a target: every verdict counts once in `warden_statements_total{decision}`
 * (denials included, also those the audit recorder turns into 58030), and every outcome observes its latency in
 * `warden_statement_duration_seconds{decision}`. The wrapper forwards `bind` only when the inner hook has one, as
 * the session treats a hook without `bind` differently.
 */
export function meteredHook(inner: StatementHook, m: WardenMetrics): StatementHook {
  const count = (v: StatementVerdict): StatementVerdict => {
    m.statements.inc({ decision: decisionLabel(v) });
    return v;
  };
  const hook: StatementHook = {
    check(req) {
      let v: Promise<StatementVerdict> | StatementVerdict;
      try {
        v = inner.check(req);
      } catch (e) {
        // The session denies on a throw; count it as it will be seen.
        m.statements.inc({ decision: 'deny' });
        throw e;
      }
      if (v instanceof Promise) {
        return v.then(count, (e: unknown) => {
          m.statements.inc({ decision: 'deny' });
          throw e;
        });
      }
      return count(v);
    },
    outcome(o) {
      try {
        m.statementSeconds.observe(Math.max(0, o.durationMs) / 1000, { decision: decisionLabel(o.verdict) });
      } catch {
        // metrics never break a session
      }
      inner.outcome?.(o);
    },
    sessionClosed(id) {
      inner.sessionClosed?.(id);
    },
  };
  if (inner.bind !== undefined) {
    const bind = inner.bind.bind(inner);
    return { ...hook, bind };
  }
  return hook;
}

/** What `timedAppender` wraps: the recorder's view of the audit log. */
export interface AppendTarget<E> {
  append(entry: E): Promise<{ index: number }>;
  readonly store?: unknown;
}

/**
 * The recorder's appender with `warden_audit_append_lag_seconds` set to the time from queueing an entry to its
 * durable append (the last one that completed). Failures pass through unchanged.
 */
export function timedAppender<E>(log: AppendTarget<E>, m: WardenMetrics): AppendTarget<E> {
  return {
    store: log.store,
    async append(entry) {
      const t0 = performance.now();
      const r = await log.append(entry);
      m.auditAppendLagSeconds.set((performance.now() - t0) / 1000);
      return r;
    },
  };
}
