// Approval requests and the records that change them: plain, protocol-neutral data, and the one pure function that applies a record.
//
// A request's state is the fold of its records (created, vote, use, expire, revoke, review) in store order. The
// service checks a record by applying it to a copy before making it durable, and replays the same function at
// start, so the rules below hold whether a record came from this process, the CLI, or a restart.
// INVARIANT: the requester never approves, denies or reviews their own request; one person counts once; a denial
// ends the request; nothing is approved, used or activated after its deadline.

import { evaluateQuorum, isEligibleApprover } from './quorum.js';
import type { Approval, ApproverSlotRule } from './quorum.js';

export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

export type RequestKind = 'statement' | 'role';
export type RequestStatus = 'pending' | 'approved' | 'active' | 'denied' | 'expired' | 'revoked' | 'used';

export interface StatementBinding {
  readonly target: string;
  readonly environment: string;
  readonly database: string;
  /** The exact statement text the client sent. */
  readonly sql: string;
  readonly path: string;
  /**
   * Hex SHA-256 of the Bind's parameter formats and values (extended protocol), or null for a simple query,
   * whose values are part of its text.
   */
  readonly paramsHash: string | null;
  /** Hex SHA-256 binding requester, target, database, text and parameters (see binding.ts). */
  readonly hash: string;
  /** How the client was answered: refused with the request id, or held until decided. */
  readonly mode: 'error' | 'wait';
  /** Session that asked first (for the audit trail; any session of the requester may run it once approved). */
  readonly sessionId: string;
}

export interface RoleGrant {
  readonly role: string;
  readonly durationSeconds: number;
  readonly breakGlass: boolean;
}

export interface Vote {
  readonly approver: string;
  readonly groups: readonly string[];
  readonly decision: 'approve' | 'deny';
  readonly reason?: string;
  readonly at: string;
}

export interface ApprovalRequest {
  /** Short random id, e.g. "ar_6f1c2a9b0d3e4f57". */
  readonly id: string;
  readonly kind: RequestKind;
  readonly requester: string;
  readonly createdAt: string;
  /** A pending request not approved by then expires. */
  readonly expiresAt: string;
  /** Why: the policy's reasons (statements) or the requester's words (roles). */
  readonly reason: string;
  /** Policy rule id, e.g. "approval:bulk-delete" or "access:dba". */
  readonly rule: string;
  readonly approvers: readonly ApproverSlotRule[];
  /** Seconds an approval stays valid (statements) or the role stays active (roles). */
  readonly validitySeconds: number;
  readonly usesAllowed: number;
  readonly statement?: StatementBinding;
  readonly role?: RoleGrant;
  readonly status: RequestStatus;
  readonly votes: readonly Vote[];
  readonly decidedAt?: string;
  /** End of the approval's validity (approved statements, active roles). */
  readonly validUntil?: string;
  readonly usesLeft: number;
  /** Break-glass: set once another approver reviewed it. */
  readonly review?: { readonly by: string; readonly at: string; readonly reason?: string };
  readonly closedBy?: string;
  readonly closedReason?: string;
}

/** One line of the store. `rid` is unique; `audited` says whether the writer recorded it in the audit log. */
export type ApprovalRecord = RecordBase &
  (
    | { readonly type: 'created'; readonly request: ApprovalRequest }
    | {
        readonly type: 'vote';
        readonly groups: readonly string[];
        readonly decision: 'approve' | 'deny';
        readonly reason?: string;
      }
    | {
        readonly type: 'use';
        readonly sessionId: string;
        /** The prepared statement a Bind ran it through (extended protocol), for the audit trail. */
        readonly statementName?: string;
      }
    | { readonly type: 'expire' }
    | { readonly type: 'revoke'; readonly groups: readonly string[]; readonly reason?: string }
    | { readonly type: 'review'; readonly groups: readonly string[]; readonly reason?: string }
    | { readonly type: 'audited'; readonly ref: string }
  );

interface RecordBase {
  readonly v: 1;
  readonly rid: string;
  readonly at: string;
  readonly requestId: string;
  /** Who acted (the requester for created and use; the approver, reviewer or revoker otherwise; "warden" for expire). */
  readonly actor: string;
  readonly audited: boolean;
}

export const SYSTEM_ACTOR = 'warden';

const ms = (iso: string): number => Date.parse(iso);
const addSeconds = (iso: string, s: number): string => new Date(ms(iso) + s * 1000).toISOString();
const isOpen = (r: ApprovalRequest): boolean =>
  r.status === 'pending' || r.status === 'approved' || r.status === 'active';

/** The quorum state of a request's approve votes. */
export function quorumOf(r: ApprovalRequest): ReturnType<typeof evaluateQuorum> {
  const approvals: Approval[] = r.votes
    .filter((v) => v.decision === 'approve')
    .map((v) => ({ approver: v.approver, groups: v.groups }));
  return evaluateQuorum(r.approvers, approvals, r.requester);
}

/** Why a record was refused: who may not do it, or it does not fit the request's state. */
export class Refusal {
  constructor(
    readonly kind: 'forbidden' | 'conflict',
    readonly message: string,
  ) {}
}
const forbidden = (m: string): Refusal => new Refusal('forbidden', m);
const conflict = (m: string): Refusal => new Refusal('conflict', m);

/**
 * Applies one record to a request (undefined for a new one). Returns the new state, or a string saying why the
 * record is not allowed. Pure: the caller decides what to do with a refusal.
 */
export function applyRecord(
  current: ApprovalRequest | undefined,
  rec: ApprovalRecord,
): ApprovalRequest | Refusal {
  if (rec.type === 'created') {
    if (current !== undefined) return conflict(`request ${rec.requestId} already exists`);
    if (rec.request.id !== rec.requestId) return conflict('request id mismatch');
    return rec.request;
  }
  if (current === undefined) return conflict(`no request ${rec.requestId}`);
  const r = current;
  switch (rec.type) {
    case 'audited':
      return r;
    case 'vote': {
      if (r.status !== 'pending') return conflict(`request ${r.id} is ${r.status}, not pending`);
      if (ms(rec.at) >= ms(r.expiresAt)) return conflict(`request ${r.id} expired at ${r.expiresAt}`);
      // INVARIANT: no self-approval or self-denial, whatever groups the requester holds.
      if (rec.actor === r.requester) return forbidden(`${rec.actor} requested ${r.id} and cannot decide it`);
      if (!isEligibleApprover(r.approvers, rec.actor, rec.groups, r.requester)) {
        const groups = r.approvers.map((a) => a.group).join(', ');
        return forbidden(`${rec.actor} is not in an approver group of ${r.id} (${groups})`);
      }
      if (r.votes.some((v) => v.approver === rec.actor))
        return conflict(`${rec.actor} already decided ${r.id}`);
      const vote: Vote = {
        approver: rec.actor,
        groups: [...rec.groups],
        decision: rec.decision,
        ...(rec.reason === undefined ? {} : { reason: rec.reason }),
        at: rec.at,
      };
      const next: ApprovalRequest = { ...r, votes: [...r.votes, vote] };
      if (rec.decision === 'deny') {
        // INVARIANT: any eligible approver's denial ends the request.
        return {
          ...next,
          status: 'denied',
          decidedAt: rec.at,
          closedBy: rec.actor,
          ...(rec.reason === undefined ? {} : { closedReason: rec.reason }),
        };
      }
      if (!quorumOf(next).met) return next;
      return {
        ...next,
        status: r.kind === 'role' ? 'active' : 'approved',
        decidedAt: rec.at,
        validUntil: addSeconds(rec.at, r.validitySeconds),
      };
    }
    case 'use': {
      if (r.kind !== 'statement') return conflict(`request ${r.id} is not a statement request`);
      if (r.status !== 'approved') return conflict(`request ${r.id} is ${r.status}, not approved`);
      if (rec.actor !== r.requester) return forbidden(`only ${r.requester} may run the statement of ${r.id}`);
      if (r.validUntil === undefined || ms(rec.at) >= ms(r.validUntil))
        return conflict(`the approval of ${r.id} expired`);
      if (r.usesLeft <= 0) return conflict(`request ${r.id} has no uses left`);
      const usesLeft = r.usesLeft - 1;
      return { ...r, usesLeft, ...(usesLeft === 0 ? { status: 'used' as const } : {}) };
    }
    case 'expire': {
      if (!isOpen(r)) return conflict(`request ${r.id} is already ${r.status}`);
      const deadline = r.status === 'pending' ? r.expiresAt : (r.validUntil ?? r.expiresAt);
      if (ms(rec.at) < ms(deadline)) return conflict(`request ${r.id} does not expire before ${deadline}`);
      return { ...r, status: 'expired', closedBy: SYSTEM_ACTOR };
    }
    case 'revoke': {
      if (!isOpen(r)) return conflict(`request ${r.id} is already ${r.status}`);
      if (rec.actor !== r.requester && !isEligibleApprover(r.approvers, rec.actor, rec.groups, r.requester))
        return forbidden(`${rec.actor} may not revoke ${r.id} (only the requester or an approver may)`);
      return {
        ...r,
        status: 'revoked',
        closedBy: rec.actor,
        ...(rec.reason === undefined ? {} : { closedReason: rec.reason }),
      };
    }
    case 'review': {
      if (r.role?.breakGlass !== true) return conflict(`request ${r.id} is not a break-glass activation`);
      if (r.review !== undefined) return conflict(`request ${r.id} was already reviewed by ${r.review.by}`);
      if (!isEligibleApprover(r.approvers, rec.actor, rec.groups, r.requester))
        return forbidden(
          `${rec.actor} may not review ${r.id} (the requester never reviews; reviewers are approvers)`,
        );
      return {
        ...r,
        review: { by: rec.actor, at: rec.at, ...(rec.reason === undefined ? {} : { reason: rec.reason }) },
      };
    }
  }
}

/** Whether a request's approval can run now (status approved, uses left, inside its validity). */
export function usableAt(r: ApprovalRequest, at: Date): boolean {
  return (
    r.status === 'approved' && r.usesLeft > 0 && r.validUntil !== undefined && at.getTime() < ms(r.validUntil)
  );
}

/** Whether a role request is in force now. */
export function activeAt(r: ApprovalRequest, at: Date): boolean {
  return r.status === 'active' && r.validUntil !== undefined && at.getTime() < ms(r.validUntil);
}

/** The deadline after which an open request must get an `expire` record, if any. */
export function deadlineOf(r: ApprovalRequest): string | undefined {
  if (r.status === 'pending') return r.expiresAt;
  if (r.status === 'approved' || r.status === 'active') return r.validUntil;
  return undefined;
}
