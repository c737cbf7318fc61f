// The audit recorder: puts the audit log on the statement path (write-ahead, fail closed) and records session events.
//
// Life of a statement: the session calls the wrapped hook's check() -> the inner hook (policy) decides -> the
// recorder appends a `statement` entry with the decision and awaits its durability (group commit batches the
// appends of concurrent sessions) -> only then is the verdict returned and the statement forwarded. When the
// statement has run, outcome() appends a `statement.outcome` entry linked by the statement entry's id.
import { ERRORS, WardenError, isWardenError } from '../core/errors.js';
import type {
  BindRequest,
  SessionContext,
  SessionEvents,
  StatementHook,
  StatementOutcome,
  StatementRequest,
  StatementVerdict,
} from '../core/context.js';
import { makeEntry } from './entry.js';
import type { AuditEntry, DecisionRecord, EntryInput, PrincipalRecord } from './entry.js';

/** What the recorder needs from a log: `AuditLog` satisfies it. */
export interface AuditAppender {
  /** MUST NOT resolve until the entry is durable; rejects if it cannot be. */
  append(entry: AuditEntry): Promise<{ index: number }>;
  /** The underlying store, if it can leave a failed state (FileAuditStore has `failed` and `recover()`). */
  readonly store?: unknown;
}

/** The message a client sees when its statement could not be recorded. */
export const AUDIT_REFUSAL_MESSAGE = 'the audit log could not record the statement, so it did not run';

/**
 * The id of the `statement` entry that recorded a verdict. The recorder sets it on every verdict it returns;
 * a symbol, so the verdict's own fields (`decision` above all) are left as the inner hook made them, and
 * object spreads of the verdict keep it.
 */
export const AUDIT_STATEMENT_ID: unique symbol = Symbol.for('warden.audit.statementId');

type AuditedVerdict = StatementVerdict & { readonly [AUDIT_STATEMENT_ID]?: string };

/** The statement entry id a verdict returned by `wrapHook` carries, if any. */
export function auditStatementId(verdict: StatementVerdict): string | undefined {
  return (verdict as AuditedVerdict)[AUDIT_STATEMENT_ID];
}

/** Prepared statement names remembered per session for linking Bind entries. */
const MAX_PREPARED_PER_SESSION = 1000;

export type AuditFailureKind = 'statement' | 'outcome' | 'event';

export interface AuditRecorderOptions {
  /** Told of every failed append (never given secrets). Default: one JSON line on stderr. */
  readonly onError?: (kind: AuditFailureKind, error: unknown) => void;
  /**
   * After a store failure, try `store.recover()` at most this often (ms), on the next statement. 0 disables
   * automatic recovery. Default 1000.
   */
  readonly recoverIntervalMs?: number;
  /** Clock for entry times (tests). */
  readonly now?: () => Date;
}

export interface AuditRecorderStats {
  /** Statements refused because their entry could not be made durable (allowed ones) or recorded (denied ones). */
  statementFailures: number;
  outcomeFailures: number;
  eventFailures: number;
  recoveries: number;
}

interface RecoverableStore {
  readonly failed: boolean;
  recover(): Promise<void>;
}

function recoverable(store: unknown): RecoverableStore | undefined {
  if (typeof store !== 'object' || store === null) return undefined;
  const s = store as Partial<RecoverableStore>;
  return typeof s.recover === 'function' && typeof s.failed === 'boolean'
    ? (store as RecoverableStore)
    : undefined;
}

const principalRecord = (s: SessionContext): PrincipalRecord => ({
  name: s.principal.name,
  kind: s.principal.kind,
  groups: [...s.principal.groups],
});

const isStrings = (v: unknown): v is readonly string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string');

/** The decision as recorded: the inner hook's decision when it has the policy engine's shape, else the verdict. */
export function decisionRecord(verdict: StatementVerdict): DecisionRecord {
  const d = verdict.decision as { effect?: unknown; rules?: unknown; reasons?: unknown } | undefined;
  if (
    typeof d === 'object' &&
    d !== null &&
    (d.effect === 'allow' || d.effect === 'deny' || d.effect === 'approval')
  ) {
    const rules = isStrings(d.rules) ? [...d.rules] : [];
    const reasons = isStrings(d.reasons) ? [...d.reasons] : [];
    // INVARIANT: a denied verdict is never recorded as an allow, whatever the decision object says.
    if (verdict.action === 'deny' && d.effect === 'allow') {
      return { effect: 'deny', rules, reasons: [...reasons, verdict.message] };
    }
    return { effect: d.effect, rules, reasons };
  }
  return verdict.action === 'allow'
    ? { effect: 'allow', rules: [], reasons: [] }
    : { effect: 'deny', rules: [], reasons: [verdict.message] };
}

function defaultOnError(kind: AuditFailureKind, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
  process.stderr.write(
    `${JSON.stringify({ level: 'error', msg: 'audit append failed', kind, error: message, ...(cause !== undefined ? { cause } : {}) })}\n`,
  );
}

export class AuditRecorder {
  readonly stats: AuditRecorderStats = {
    statementFailures: 0,
    outcomeFailures: 0,
    eventFailures: 0,
    recoveries: 0,
  };
  private readonly pending = new Set<Promise<unknown>>();
  private readonly onError: (kind: AuditFailureKind, error: unknown) => void;
  private readonly now: () => Date;
  private readonly recoverIntervalMs: number;
  private lastRecoveryAttempt = Number.NEGATIVE_INFINITY;
  private recovering: Promise<void> | undefined;

  constructor(
    private readonly log: AuditAppender,
    opts: AuditRecorderOptions = {},
  ) {
    this.onError = opts.onError ?? defaultOnError;
    this.now = opts.now ?? (() => new Date());
    this.recoverIntervalMs = opts.recoverIntervalMs ?? 1000;
  }

  /**
   * Wraps a statement hook so that every statement, allowed or denied, is recorded before its verdict is returned.
   * INVARIANT: an `allow` is returned only after the statement entry is durable; if the append fails the answer
   * is a deny with SQLSTATE 58030 (AUDIT_UNAVAILABLE), so nothing runs unrecorded.
   */
  wrapHook(inner: StatementHook, opts: { policyVersion: () => string | number }): StatementHook {
    const hook: StatementHook = {
      check: (req) => this.check(inner, opts, req),
      outcome: (o) => {
        this.recordOutcome(o);
        try {
          inner.outcome?.(o);
        } catch {
          // an inner outcome sink never breaks the session (as the session itself treats it)
        }
      },
      bind: (req) => this.bind(inner, req),
      sessionClosed: (id) => {
        this.prepared.delete(id);
        inner.sessionClosed?.(id);
      },
    };
    return hook;
  }

  private async check(
    inner: StatementHook,
    opts: { policyVersion: () => string | number },
    req: StatementRequest,
  ): Promise<StatementVerdict> {
    let verdict: StatementVerdict;
    try {
      verdict = await inner.check(req);
    } catch (e) {
      // The same fail-closed mapping as the session's, so that the denial is recorded as the client sees it.
      verdict = isWardenError(e)
        ? { action: 'deny', sqlstate: e.sqlstate, message: e.message }
        : { action: 'deny', sqlstate: '42501', message: 'denied: the statement could not be decided' };
    }
    let id: string;
    try {
      await this.maybeRecover();
      const s = req.session;
      const entry = makeEntry<AuditEntry>({
        kind: 'statement',
        sessionId: s.sessionId,
        principal: principalRecord(s),
        target: s.target,
        text: req.sql,
        // Parameters arrive later, in Bind: each Bind has its own `statement.bind` entry linked to this one.
        paramsHash: null,
        path: req.path,
        decision: decisionRecord(verdict),
        policyVersion: opts.policyVersion(),
        time: this.now(),
      });
      await this.log.append(entry);
      id = entry.id;
      this.notePrepare(req, verdict, id);
    } catch (e) {
      this.stats.statementFailures++;
      this.report('statement', e);
      if (verdict.action === 'deny') return verdict;
      const err = new WardenError('AUDIT_UNAVAILABLE', AUDIT_REFUSAL_MESSAGE, { cause: e });
      return {
        action: 'deny',
        sqlstate: err.sqlstate,
        message: err.message,
        hint: 'the statement was not forwarded; retry when the audit store is available again',
        ...(verdict.decision !== undefined ? { decision: verdict.decision } : {}),
      };
    }
    return { ...verdict, [AUDIT_STATEMENT_ID]: id } as AuditedVerdict;
  }

  /** Per session: prepared statement name → the id of its statement entry (bounded; cleared at session close). */
  private readonly prepared = new Map<string, Map<string, string>>();

  /**
   * Links later Binds / executes to a prepare, protocol-neutrally: any statement that names a prepared statement
   * (PostgreSQL Parse, MySQL COM_STMT_PREPARE whose name is the statement id the client gets) is remembered under
   * session + name once allowed. A refused PostgreSQL Parse is replaced upstream by an unnamed Parse that fails,
   * which drops the unnamed statement: its link goes too (MySQL has no unnamed statement, and a refused prepare's
   * id is never given to the client).
   */
  private notePrepare(req: StatementRequest, verdict: StatementVerdict, id: string): void {
    const prepares = req.statementName !== undefined || req.path === 'parse';
    if (!prepares) return;
    if (verdict.action === 'allow') this.rememberPrepared(req.session.sessionId, req.statementName ?? '', id);
    else if (req.path === 'parse') this.prepared.get(req.session.sessionId)?.delete('');
  }

  private rememberPrepared(sessionId: string, name: string, id: string): void {
    let m = this.prepared.get(sessionId);
    if (m === undefined) {
      m = new Map();
      this.prepared.set(sessionId, m);
    }
    m.delete(name);
    m.set(name, id);
    if (m.size > MAX_PREPARED_PER_SESSION) m.delete(m.keys().next().value as string);
  }

  /**
   * A Bind: the hash of its parameters is made durable, linked to the Parse's statement entry, before the Bind
   * is forwarded. If it cannot be recorded the Bind is refused (58030), so no parameters run unrecorded.
   */
  private async bind(inner: StatementHook, req: BindRequest): Promise<StatementVerdict | undefined> {
    let verdict: StatementVerdict | undefined;
    try {
      verdict = await inner.bind?.(req);
    } catch (e) {
      verdict = isWardenError(e)
        ? { action: 'deny', sqlstate: e.sqlstate, message: e.message }
        : { action: 'deny', sqlstate: '42501', message: 'denied: the parameters could not be decided' };
    }
    try {
      await this.maybeRecover();
      const sessionId = req.session.sessionId;
      // The approval request the Bind runs under, when the hook approved it for these parameters (only on an
      // allow: a refused Bind ran under nothing, its request is in the approval entries).
      const requestId = verdict?.action === 'allow' ? verdict.approvalRequestId : undefined;
      await this.log.append(
        makeEntry<AuditEntry>({
          kind: 'statement.bind',
          statementId: this.prepared.get(sessionId)?.get(req.statementName) ?? null,
          sessionId,
          statementName: req.statementName,
          paramsHash: req.paramsHash,
          ...(typeof requestId === 'string' && requestId !== '' ? { approvalRequestId: requestId } : {}),
          time: this.now(),
        }),
      );
    } catch (e) {
      this.stats.statementFailures++;
      this.report('statement', e);
      this.refusedBind(req);
      if (verdict?.action === 'deny') return verdict;
      return { action: 'deny', sqlstate: ERRORS.AUDIT_UNAVAILABLE.sqlstate, message: AUDIT_REFUSAL_MESSAGE };
    }
    if (verdict?.action === 'deny') this.refusedBind(req);
    return verdict;
  }

  /** A PostgreSQL session replaces a refused Bind with an unnamed Parse that fails: the unnamed statement is gone. */
  private refusedBind(req: BindRequest): void {
    if (req.session.protocol === 'postgres') this.prepared.get(req.session.sessionId)?.delete('');
  }

  /** After a store failure, retries `recover()` on the statement path, at most once per interval. */
  private async maybeRecover(): Promise<void> {
    const store = recoverable(this.log.store);
    if (store === undefined || !store.failed || this.recoverIntervalMs <= 0) return;
    if (this.recovering === undefined) {
      const t = performance.now();
      if (t - this.lastRecoveryAttempt < this.recoverIntervalMs) return;
      this.lastRecoveryAttempt = t;
      this.recovering = store
        .recover()
        .then(() => {
          this.stats.recoveries++;
        })
        .catch(() => undefined)
        .finally(() => {
          this.recovering = undefined;
        });
    }
    await this.recovering;
  }

  private recordOutcome(o: StatementOutcome): void {
    const statementId = auditStatementId(o.verdict);
    if (statementId === undefined) return; // not a statement this recorder recorded
    const input: EntryInput = {
      kind: 'statement.outcome',
      statementId,
      sessionId: o.request.session.sessionId,
      rows: Math.max(0, Math.trunc(o.rows)),
      sqlstate: o.sqlstate ?? null,
      durationMs: Math.max(0, Math.round(o.durationMs)),
      tags: [...o.commandTags],
      time: this.now(),
    };
    void this.background('outcome', input); // never rejects: failures are counted and reported
  }

  /** Appends without making the caller wait; a failure is counted and reported, never left unhandled. */
  private background(kind: AuditFailureKind, input: EntryInput): Promise<void> {
    let p: Promise<void>;
    try {
      p = this.log.append(makeEntry(input)).then(() => undefined);
    } catch (e) {
      p = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    const done = p.catch((e: unknown) => {
      if (kind === 'outcome') this.stats.outcomeFailures++;
      else this.stats.eventFailures++;
      this.report(kind, e);
    });
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
    return done;
  }

  private report(kind: AuditFailureKind, e: unknown): void {
    try {
      this.onError(kind, e);
    } catch {
      // a failing error sink must not turn into an unhandled rejection
    }
  }

  /**
   * Session lifecycle events as audit entries: `session.open` and `auth.success` when a session is ready,
   * `auth.failure` (the claimed user name and a reason, never a password), `session.close`. The returned
   * promises resolve once the entries are durable or their failure was reported; they never reject.
   */
  sessionEvents(): SessionEvents {
    return {
      authenticated: async (s) => {
        const principal = principalRecord(s);
        const time = this.now();
        await Promise.all([
          this.background('event', {
            kind: 'session.open',
            sessionId: s.sessionId,
            principal,
            protocol: s.protocol,
            target: s.target,
            environment: s.environment,
            sourceAddress: s.sourceAddress,
            tls: s.tls,
            applicationName: s.applicationName,
            time,
          }),
          this.background('event', {
            kind: 'auth.success',
            sessionId: s.sessionId,
            principal,
            method: s.protocol === 'postgres' ? 'scram-sha-256' : 'mysql',
            target: s.target,
            sourceAddress: s.sourceAddress,
            time,
          }),
        ]);
      },
      authFailed: (info) =>
        this.background('event', {
          kind: 'auth.failure',
          user: info.user,
          target: info.target,
          sourceAddress: info.sourceAddress,
          reason: info.reason,
          time: this.now(),
        }),
      closed: (s, reason) =>
        this.background('event', {
          kind: 'session.close',
          sessionId: s.sessionId,
          reason,
          time: this.now(),
        }),
    };
  }

  /** Waits until every outcome and event append started so far has finished (durable or reported). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
