// The approvals service: statement approvals, just-in-time roles and break-glass over a durable store, with audit events and webhook announcements.
//
// Life of a change: the caller asks (approve, deny, requestRole, claim...) → under one lock, the record is checked
// by applying it to the current state (model.ts: the one place the rules live) → the audit event is recorded
// (awaited: if the audit log cannot take it, nothing changes) → the record is appended durably → the in-memory
// state is updated → waiters are woken and the webhook is told (best effort).
// Records written by another process (the `warden approvals` CLI) are picked up by `sync()`, audited by the
// process that owns the audit log, and marked `audited` in the store so a restart does not audit them twice.
// INVARIANT: a statement approval is claimed (its use recorded durably and audited) before the statement runs.
// INVARIANT: the requester never decides their own request; one person counts once (see quorum.ts).

import { randomBytes, randomUUID } from 'node:crypto';
import type { Principal } from '../core/context.js';
import { WardenError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import type { ApprovalRequirement, Policy } from '../policy/index.js';
import { bindingHash } from './binding.js';
import { Refusal, SYSTEM_ACTOR, activeAt, applyRecord, deadlineOf, quorumOf, usableAt } from './model.js';
import type { ApprovalRecord, ApprovalRequest, Json, RequestStatus } from './model.js';
import { FileApprovalStore, MemoryApprovalStore, StaleApprovalState } from './store.js';
import type { ApprovalStore } from './store.js';
import { Webhook } from './webhook.js';

/** One audit entry to append (kind matches `approval.*` of src/audit/entry.ts). */
export interface ApprovalAuditEvent {
  readonly kind: `approval.${string}`;
  readonly requestId: string;
  readonly actor: string;
  readonly data: { readonly [k: string]: Json };
  readonly time: Date;
}

/**
 * Where approval events go: the lead connects it to the AuditLog. MUST NOT resolve before the entry is durable;
 * a rejection refuses the change (nothing is stored, no statement runs).
 */
export interface ApprovalEvents {
  record(event: ApprovalAuditEvent): Promise<void>;
}

export interface ApprovalServiceOptions {
  /** Folder of the local store (approvals.jsonl). Ignored when `store` is given. */
  readonly dir?: string;
  readonly store?: ApprovalStore;
  readonly policy: Policy;
  readonly events?: ApprovalEvents;
  /** Slack-compatible webhook (`{ text }`) told of new requests and decisions. */
  readonly webhookUrl?: string;
  readonly now?: () => Date;
  /** Re-read the store for other writers at most this often on the statement path (ms, default 200). */
  readonly syncIntervalMs?: number;
  /** Record expiries on a timer this often (ms, default 30 000; 0 = only when the service is used). */
  readonly sweepIntervalMs?: number;
  /** How long a role request may wait for approvers (seconds, default 24 h). */
  readonly roleRequestTtlSeconds?: number;
  /** Where the loud break-glass line goes (default: stderr). */
  readonly alert?: (line: string) => void;
  /** Records from other writers are audited here (default: when `events` is set). */
  readonly auditForeign?: boolean;
}

/** Why an approvals action was refused; `reason` is stable for API callers. */
export class ApprovalError extends WardenError {
  constructor(
    readonly reason: 'not_found' | 'forbidden' | 'conflict' | 'invalid',
    message: string,
  ) {
    const code: ErrorCode =
      reason === 'forbidden'
        ? 'INSUFFICIENT_PRIVILEGE'
        : reason === 'invalid'
          ? 'CONFIG_INVALID'
          : 'INTERNAL';
    super(code, message);
    this.name = 'ApprovalError';
  }
}

/** Someone acting: a name (groups then come from the policy) or an authenticated principal. */
export type Actor = string | Principal;

export interface StatementApprovalInput {
  readonly principal: Principal;
  readonly target: string;
  readonly environment: string;
  readonly database: string;
  readonly sessionId: string;
  readonly sql: string;
  readonly path: string;
  readonly paramsHash?: string | null;
  /** The prepared statement a Bind names (extended protocol). */
  readonly statementName?: string;
  readonly requirement: ApprovalRequirement;
  readonly reasons: readonly string[];
}

export interface RoleRequestInput {
  readonly role: string;
  readonly durationSeconds: number;
  readonly reason: string;
  /** Emergency self-activation, if the policy allows it for the role. */
  readonly breakGlass?: boolean;
}

const KIND: Record<Exclude<ApprovalRecord['type'], 'audited'>, string> = {
  created: 'approval.request',
  vote: 'approval.vote',
  use: 'approval.use',
  expire: 'approval.expire',
  revoke: 'approval.revoke',
  review: 'approval.review',
};

const nameOf = (a: Actor): string => (typeof a === 'string' ? a : a.name);

export class ApprovalService {
  private readonly requests = new Map<string, ApprovalRequest>();
  private readonly applied = new Set<string>();
  /** Per request: how many of its records (audited markers excluded) this service has applied. */
  private readonly versions = new Map<string, number>();
  private readonly auditedRefs = new Set<string>();
  private readonly waiters = new Set<() => void>();
  private readonly webhook: Webhook | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private lastSync = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private policyNow: Policy;
  private closed = false;

  constructor(
    private readonly store: ApprovalStore,
    private readonly opts: ApprovalServiceOptions,
  ) {
    this.policyNow = opts.policy;
    this.webhook = opts.webhookUrl === undefined ? undefined : new Webhook({ url: opts.webhookUrl });
  }

  get policy(): Policy {
    return this.policyNow;
  }

  /** A new policy applies to new requests and to which roles count as active; decided requests keep their rules. */
  setPolicy(policy: Policy): void {
    this.policyNow = policy;
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  /** Runs `fn` alone: state checks, audit, append and apply never interleave. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /** @internal Replays the store and starts the sweep timer (createApprovalService calls it). */
  async start(): Promise<void> {
    await this.sync(true);
    const every = this.opts.sweepIntervalMs ?? 30_000;
    if (every > 0) {
      this.timer = setInterval(() => {
        this.sync(true).catch((e: unknown) => this.warn(`approvals sweep failed: ${String(e)}`));
      }, every);
      this.timer.unref();
    }
  }

  /**
   * Reads records other writers appended, audits them (when this process owns the audit log), and records the
   * expiries that are due. Throttled to `syncIntervalMs` unless `force`.
   */
  sync(force = false): Promise<void> {
    const t = performance.now();
    if (!force && t - this.lastSync < (this.opts.syncIntervalMs ?? 200)) return Promise.resolve();
    this.lastSync = t;
    return this.exclusive(async () => {
      await this.readLocked();
      await this.expireDue();
    });
  }

  /** Applies the records other writers appended (and audits those nobody audited). Must run inside `exclusive`. */
  private async readLocked(): Promise<void> {
    const fresh = await this.store.readNew();
    const foreign: ApprovalRecord[] = [];
    for (const rec of fresh) {
      if (this.applied.has(rec.rid)) continue;
      this.applied.add(rec.rid);
      if (rec.type !== 'audited')
        this.versions.set(rec.requestId, (this.versions.get(rec.requestId) ?? 0) + 1);
      if (rec.type === 'audited') {
        this.auditedRefs.add(rec.ref);
        continue;
      }
      const next = applyRecord(this.requests.get(rec.requestId), rec);
      if (next instanceof Refusal) {
        // Another writer checked it against a state we do not have: keep ours and say so.
        this.warn(`ignored approval record ${rec.rid}: ${next.message}`);
        continue;
      }
      this.requests.set(rec.requestId, next);
      if (!rec.audited) foreign.push(rec);
    }
    const auditHere = this.opts.auditForeign ?? this.opts.events !== undefined;
    if (auditHere && this.opts.events !== undefined) {
      for (const rec of foreign) {
        if (this.auditedRefs.has(rec.rid)) continue;
        await this.opts.events.record(this.eventFor(rec, { via: 'store' }));
        const marker: ApprovalRecord = {
          ...this.base(rec.requestId, SYSTEM_ACTOR, true),
          type: 'audited',
          ref: rec.rid,
        };
        await this.store.append(marker);
        this.applied.add(marker.rid);
        this.auditedRefs.add(rec.rid);
      }
    }
    if (fresh.length > 0) this.wake();
  }

  private async expireDue(): Promise<void> {
    const at = this.now();
    for (const r of [...this.requests.values()]) {
      const d = deadlineOf(r);
      if (d === undefined || Date.parse(d) > at.getTime()) continue;
      try {
        await this.commitLocked({ ...this.base(r.id, SYSTEM_ACTOR), type: 'expire' });
      } catch (e) {
        // Another replica closed it first (its record is now applied): nothing left to expire.
        if (!(e instanceof ApprovalError && e.reason === 'conflict')) throw e;
      }
    }
  }

  private base(requestId: string, actor: string, audited = this.opts.events !== undefined) {
    return { v: 1 as const, rid: randomUUID(), at: this.now().toISOString(), requestId, actor, audited };
  }

  /** The groups an actor holds: the authenticated principal's and those the policy declares for the name. */
  groupsOf(actor: Actor): string[] {
    const set = new Set<string>(typeof actor === 'string' ? [] : actor.groups);
    for (const g of this.policyNow.users.get(nameOf(actor))?.groups ?? []) set.add(g);
    return [...set].sort();
  }

  private eventFor(rec: ApprovalRecord, extra: Record<string, Json> = {}): ApprovalAuditEvent {
    const r = this.requests.get(rec.requestId);
    const data: Record<string, Json> = { ...extra, recordId: rec.rid, status: r?.status ?? null };
    let kind = rec.type === 'audited' ? 'approval.audited' : KIND[rec.type];
    switch (rec.type) {
      case 'created': {
        const q = rec.request;
        if (q.role?.breakGlass === true) kind = 'approval.break-glass';
        data['kind'] = q.kind;
        data['rule'] = q.rule;
        data['reason'] = q.reason;
        data['expiresAt'] = q.expiresAt;
        data['approvers'] = q.approvers.map((a) => ({ group: a.group, count: a.count }));
        if (q.statement !== undefined) {
          const s = q.statement;
          data['target'] = s.target;
          data['database'] = s.database;
          data['sql'] = s.sql;
          data['bindingHash'] = s.hash;
          data['paramsHash'] = s.paramsHash;
          data['sessionId'] = s.sessionId;
          data['mode'] = s.mode;
          data['uses'] = q.usesAllowed;
        }
        if (q.role !== undefined) {
          data['role'] = q.role.role;
          data['durationSeconds'] = q.role.durationSeconds;
          data['breakGlass'] = q.role.breakGlass;
        }
        break;
      }
      case 'vote':
        kind = rec.decision === 'approve' ? 'approval.approve' : 'approval.deny';
        data['groups'] = [...rec.groups];
        if (rec.reason !== undefined) data['reason'] = rec.reason;
        if (r?.validUntil !== undefined) data['validUntil'] = r.validUntil;
        break;
      case 'use':
        data['sessionId'] = rec.sessionId;
        data['usesLeft'] = r?.usesLeft ?? 0;
        // What ran: the statement entry (simple query) or the Bind entry (extended protocol) of this session
        // with this parameters' hash follows this entry in the log.
        data['paramsHash'] = r?.statement?.paramsHash ?? null;
        data['bindingHash'] = r?.statement?.hash ?? null;
        if (rec.statementName !== undefined) data['statementName'] = rec.statementName;
        break;
      case 'revoke':
      case 'review':
        if (rec.reason !== undefined) data['reason'] = rec.reason;
        break;
      default:
        break;
    }
    return {
      kind: kind as `approval.${string}`,
      requestId: rec.requestId,
      actor: rec.actor,
      data,
      time: new Date(rec.at),
    };
  }

  /**
   * Check → audit → append → apply. Must run inside `exclusive`. With a store shared by replicas, the append
   * is refused if another replica changed the request meanwhile: its records are read and the check runs again
   * (so a vote counts against the real state, and a use of a run-once approval succeeds on one replica only).
   */
  private async commitLocked(rec: ApprovalRecord): Promise<ApprovalRequest> {
    for (let attempt = 0; ; attempt++) {
      const next = applyRecord(this.requests.get(rec.requestId), rec);
      if (next instanceof Refusal) throw new ApprovalError(next.kind, next.message);
      const events = this.opts.events;
      let event: ApprovalAuditEvent | undefined;
      if (events !== undefined) {
        // The event describes the state after the change: compute it from `next` without applying yet.
        const prev = this.requests.get(rec.requestId);
        this.requests.set(rec.requestId, next);
        try {
          event = this.eventFor(rec);
        } finally {
          if (prev === undefined) this.requests.delete(rec.requestId);
          else this.requests.set(rec.requestId, prev);
        }
      }
      try {
        await this.store.append(rec, {
          version: this.versions.get(rec.requestId) ?? 0,
          ...(events !== undefined && event !== undefined ? { beforeWrite: () => events.record(event) } : {}),
        });
      } catch (e) {
        if (!(e instanceof StaleApprovalState) || attempt >= 8) throw e;
        await this.readLocked();
        continue;
      }
      return this.appliedLocked(rec, next);
    }
  }

  private appliedLocked(rec: ApprovalRecord, next: ApprovalRequest): ApprovalRequest {
    this.applied.add(rec.rid);
    if (rec.type !== 'audited') this.versions.set(rec.requestId, (this.versions.get(rec.requestId) ?? 0) + 1);
    this.requests.set(rec.requestId, next);
    this.wake();
    this.announce(rec, next);
    return next;
  }

  private commit(rec: () => ApprovalRecord): Promise<ApprovalRequest> {
    return this.exclusive(() => this.commitLocked(rec()));
  }

  private announce(rec: ApprovalRecord, r: ApprovalRequest): void {
    if (this.webhook === undefined) return;
    let text: string | undefined;
    const what =
      r.kind === 'statement'
        ? `statement on ${r.statement?.target ?? '?'}: ${truncate(r.statement?.sql ?? '', 200)}`
        : `role ${r.role?.role ?? '?'} for ${r.role?.durationSeconds ?? 0}s`;
    if (rec.type === 'created' && r.role?.breakGlass === true) {
      text = `BREAK-GLASS: ${r.requester} activated ${what} (${r.id}): ${r.reason}. Review: warden approvals review ${r.id}`;
    } else if (rec.type === 'created') {
      text = `${r.requester} requests approval ${r.id} (${r.rule}) for ${what}. Reason: ${r.reason}. Approve: warden approvals approve ${r.id}`;
    } else if (rec.type === 'vote' && r.status !== 'pending') {
      text = `Request ${r.id} by ${r.requester} was ${r.status === 'denied' ? 'denied' : 'approved'} (last decision by ${rec.actor})`;
    } else if (rec.type === 'revoke') {
      text = `Request ${r.id} by ${r.requester} was revoked by ${rec.actor}`;
    }
    if (text !== undefined) void this.webhook.announce(text);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private warn(message: string): void {
    process.stderr.write(`${JSON.stringify({ level: 'warn', msg: message, component: 'approvals' })}\n`);
  }

  private newId(): string {
    return `ar_${randomBytes(8).toString('hex')}`;
  }

  // ---------------------------------------------------------------- queries

  get(id: string): ApprovalRequest | undefined {
    return this.requests.get(id);
  }

  list(
    filter: { status?: RequestStatus; requester?: string; kind?: 'statement' | 'role' } = {},
  ): ApprovalRequest[] {
    return [...this.requests.values()]
      .filter(
        (r) =>
          (filter.status === undefined || r.status === filter.status) &&
          (filter.requester === undefined || r.requester === filter.requester) &&
          (filter.kind === undefined || r.kind === filter.kind),
      )
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** The approver slots still open, for display. */
  missing(id: string): readonly { group: string; count: number }[] {
    const r = this.requests.get(id);
    return r === undefined ? [] : quorumOf(r).missing;
  }

  /** Just-in-time roles in force for a principal now (roles the current policy still offers). */
  activeRoles(principal: string, at: Date = this.now()): string[] {
    const out = new Set<string>();
    for (const r of this.requests.values()) {
      if (r.kind !== 'role' || r.requester !== principal || r.role === undefined) continue;
      if (activeAt(r, at) && this.policyNow.accessRequests.has(r.role.role)) out.add(r.role.role);
    }
    return [...out].sort();
  }

  // ---------------------------------------------------------------- statements

  /** The binding hash of a statement for a principal (see binding.ts). */
  static bindingOf(
    input: Omit<StatementApprovalInput, 'requirement' | 'reasons' | 'sessionId' | 'environment' | 'path'>,
  ): string {
    return bindingHash({
      principal: input.principal.name,
      target: input.target,
      database: input.database,
      sql: input.sql,
      paramsHash: input.paramsHash ?? null,
    });
  }

  /**
   * Claims one use of an approved request bound to exactly this statement, principal and target: records the use
   * durably (and audits it) and returns the request, or undefined if there is none usable now.
   */
  claim(
    input: Omit<StatementApprovalInput, 'requirement' | 'reasons'>,
  ): Promise<ApprovalRequest | undefined> {
    const hash = ApprovalService.bindingOf(input);
    return this.exclusive(async () => {
      const at = this.now();
      const r = [...this.requests.values()].find(
        (x) =>
          x.kind === 'statement' &&
          x.requester === input.principal.name &&
          x.statement?.hash === hash &&
          x.statement.target === input.target &&
          usableAt(x, at),
      );
      if (r === undefined) return undefined;
      try {
        return await this.commitLocked({
          ...this.base(r.id, input.principal.name),
          type: 'use',
          sessionId: input.sessionId,
          ...(input.statementName !== undefined ? { statementName: input.statementName } : {}),
        });
      } catch (e) {
        // Another replica used (or revoked) it first: nothing to claim here.
        if (e instanceof ApprovalError && e.reason === 'conflict') return undefined;
        throw e;
      }
    });
  }

  /**
   * Opens a request for a statement the policy sends to approval, or returns the pending one for the identical
   * statement by the same principal (re-running while it waits does not spawn new requests).
   */
  requestStatement(input: StatementApprovalInput): Promise<{ request: ApprovalRequest; created: boolean }> {
    const hash = ApprovalService.bindingOf(input);
    return this.exclusive(async () => {
      const at = this.now();
      const pending = [...this.requests.values()].find(
        (x) =>
          x.status === 'pending' &&
          x.kind === 'statement' &&
          x.requester === input.principal.name &&
          x.statement?.hash === hash &&
          Date.parse(x.expiresAt) > at.getTime(),
      );
      if (pending !== undefined) return { request: pending, created: false };
      const req = input.requirement;
      const rule = this.policyNow.approvals.find((a) => a.id === req.rule);
      const uses = rule?.uses ?? 1;
      const id = this.newId();
      const request: ApprovalRequest = {
        id,
        kind: 'statement',
        requester: input.principal.name,
        createdAt: at.toISOString(),
        expiresAt: new Date(at.getTime() + req.ttlSeconds * 1000).toISOString(),
        reason: input.reasons.join('; ') || `matches ${req.rule}`,
        rule: req.rule,
        approvers: req.approvers.map((a) => ({ group: a.group, count: a.count })),
        validitySeconds: req.ttlSeconds,
        usesAllowed: uses,
        statement: {
          target: input.target,
          environment: input.environment,
          database: input.database,
          sql: input.sql,
          path: input.path,
          paramsHash: input.paramsHash ?? null,
          hash,
          mode: req.mode,
          sessionId: input.sessionId,
        },
        status: 'pending',
        votes: [],
        usesLeft: uses,
      };
      const created = await this.commitLocked({
        ...this.base(id, input.principal.name),
        type: 'created',
        request,
      });
      return { request: created, created: true };
    });
  }

  /**
   * Resolves once the request is no longer pending (approved, denied, expired, revoked). Calls `onWaiting` every
   * `intervalMs` while it waits. Rejects with an AbortError if `signal` aborts.
   */
  async waitForDecision(
    id: string,
    o: { signal?: AbortSignal; intervalMs?: number; onWaiting?: (r: ApprovalRequest) => void } = {},
  ): Promise<ApprovalRequest> {
    const interval = o.intervalMs ?? 5000;
    // Decisions made elsewhere (the CLI, another replica) are read from the store at least once a second.
    const poll = Math.min(interval, 1000);
    let lastNotice = performance.now();
    for (;;) {
      o.signal?.throwIfAborted();
      await this.sync(true);
      const r = this.requests.get(id);
      if (r === undefined) throw new ApprovalError('not_found', `no approval request ${id}`);
      if (r.status !== 'pending') return r;
      const left = Date.parse(r.expiresAt) - this.now().getTime();
      const noticeIn = interval - (performance.now() - lastNotice);
      const woke = await this.sleep(Math.max(0, Math.min(poll, left, Math.max(0, noticeIn))), o.signal);
      if (!woke && performance.now() - lastNotice >= interval - 1) {
        lastNotice = performance.now();
        o.onWaiting?.(r);
      }
    }
  }

  /** Sleeps up to `ms`; true if woken by a change, false on timeout. Rejects on abort. */
  private sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const done = (v: boolean | Error): void => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        signal?.removeEventListener('abort', abort);
        if (v instanceof Error) reject(v);
        else resolve(v);
      };
      const wake = (): void => done(true);
      const abort = (): void => done(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      const timer = setTimeout(() => done(false), ms);
      this.waiters.add(wake);
      if (signal?.aborted === true) abort();
      else signal?.addEventListener('abort', abort, { once: true });
    });
  }

  // ---------------------------------------------------------------- decisions

  private requireRequest(id: string): ApprovalRequest {
    const r = this.requests.get(id);
    if (r === undefined) throw new ApprovalError('not_found', `no approval request ${id}`);
    return r;
  }

  async approve(id: string, approver: Actor, reason?: string): Promise<ApprovalRequest> {
    return this.vote(id, approver, 'approve', reason);
  }

  async deny(id: string, approver: Actor, reason?: string): Promise<ApprovalRequest> {
    return this.vote(id, approver, 'deny', reason);
  }

  private async vote(
    id: string,
    approver: Actor,
    decision: 'approve' | 'deny',
    reason: string | undefined,
  ): Promise<ApprovalRequest> {
    await this.sync(true);
    this.requireRequest(id);
    return this.commit(() => ({
      ...this.base(id, nameOf(approver)),
      type: 'vote',
      groups: this.groupsOf(approver),
      decision,
      ...(reason === undefined || reason === '' ? {} : { reason }),
    }));
  }

  /** Ends an approved statement's remaining uses or an active role now (the requester or an approver). */
  async revoke(id: string, actor: Actor, reason?: string): Promise<ApprovalRequest> {
    await this.sync(true);
    this.requireRequest(id);
    return this.commit(() => ({
      ...this.base(id, nameOf(actor)),
      type: 'revoke',
      groups: this.groupsOf(actor),
      ...(reason === undefined || reason === '' ? {} : { reason }),
    }));
  }

  /** After-the-fact review of a break-glass activation, by an approver of the role who is not the requester. */
  async review(id: string, reviewer: Actor, reason?: string): Promise<ApprovalRequest> {
    await this.sync(true);
    this.requireRequest(id);
    return this.commit(() => ({
      ...this.base(id, nameOf(reviewer)),
      type: 'review',
      groups: this.groupsOf(reviewer),
      ...(reason === undefined || reason === '' ? {} : { reason }),
    }));
  }

  // ---------------------------------------------------------------- just-in-time roles

  /** Requests a role for a while; with `breakGlass`, activates it at once where the policy allows (loudly). */
  async requestRole(requester: Actor, input: RoleRequestInput): Promise<ApprovalRequest> {
    await this.sync(true);
    const name = nameOf(requester);
    const rule = this.policyNow.accessRequests.get(input.role);
    if (rule === undefined) throw new ApprovalError('invalid', `role "${input.role}" cannot be requested`);
    const groups = this.groupsOf(requester);
    if (!groups.some((g) => rule.requesters.has(g))) {
      throw new ApprovalError(
        'forbidden',
        `${name} may not request role ${input.role} (requesters: ${[...rule.requesters].join(', ')})`,
      );
    }
    const d = input.durationSeconds;
    if (!Number.isInteger(d) || d <= 0 || d > rule.maxSeconds) {
      throw new ApprovalError(
        'invalid',
        `duration must be 1..${rule.maxSeconds} seconds for role ${input.role}`,
      );
    }
    const reason = input.reason.trim();
    if (reason === '') throw new ApprovalError('invalid', 'a reason is required');
    const breakGlass = input.breakGlass === true;
    if (breakGlass && !rule.breakGlass) {
      throw new ApprovalError('forbidden', `the policy allows no break-glass access to role ${input.role}`);
    }
    const request = await this.commit(() => {
      const at = this.now();
      const id = this.newId();
      const iso = at.toISOString();
      const pendingFor = this.opts.roleRequestTtlSeconds ?? 86_400;
      const r: ApprovalRequest = {
        id,
        kind: 'role',
        requester: name,
        createdAt: iso,
        expiresAt: new Date(at.getTime() + (breakGlass ? d : pendingFor) * 1000).toISOString(),
        reason,
        rule: rule.id,
        approvers: rule.approvers.map((a) => ({ group: a.group, count: a.count })),
        validitySeconds: d,
        usesAllowed: 0,
        role: { role: input.role, durationSeconds: d, breakGlass },
        status: breakGlass ? 'active' : 'pending',
        votes: [],
        usesLeft: 0,
        ...(breakGlass
          ? { decidedAt: iso, validUntil: new Date(at.getTime() + d * 1000).toISOString() }
          : {}),
      };
      return { ...this.base(id, name), type: 'created', request: r };
    });
    if (breakGlass) {
      const line = JSON.stringify({
        level: 'warn',
        msg: 'BREAK-GLASS access activated',
        requestId: request.id,
        principal: name,
        role: input.role,
        reason,
        until: request.validUntil ?? null,
        review: `warden approvals review ${request.id}`,
      });
      (this.opts.alert ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
    }
    return request;
  }

  /** Stops the sweep timer, waits for webhook posts, closes the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.lock;
    await this.webhook?.drain();
    await this.store.close();
  }
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}…`;
}

/**
 * Opens the approvals service over `dir` (a FileApprovalStore), or over `store`, or in memory when neither is
 * given, and replays what is stored.
 */
export async function createApprovalService(opts: ApprovalServiceOptions): Promise<ApprovalService> {
  const store =
    opts.store ?? (opts.dir !== undefined ? new FileApprovalStore(opts.dir) : new MemoryApprovalStore());
  const svc = new ApprovalService(store, opts);
  await svc.start();
  return svc;
}
