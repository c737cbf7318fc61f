// Adapter: the approvals service (src/approvals/) as the admin API's ApprovalsProvider, mapping its refusals to HTTP statuses.

import type { ApprovalRequest } from '../approvals/model.js';
import type { ApprovalService } from '../approvals/service.js';
import { ApiError } from './handlers.js';
import type { ApprovalsProvider, ApprovalView } from './providers.js';

const STATUS = { not_found: 404, forbidden: 403, conflict: 409, invalid: 400 } as const;

/** Maps the service's ApprovalError (by its stable `reason`) to an ApiError; anything else passes through. */
function mapError(e: unknown): never {
  const reason = (e as { reason?: unknown } | null)?.reason;
  if (e instanceof Error && e.name === 'ApprovalError' && typeof reason === 'string' && reason in STATUS) {
    const r = reason as keyof typeof STATUS;
    throw new ApiError(STATUS[r], r, e.message);
  }
  throw e;
}

export function approvalView(r: ApprovalRequest): ApprovalView {
  return {
    id: r.id,
    kind: r.kind,
    state: r.status,
    requester: r.requester,
    createdAt: new Date(r.createdAt),
    expiresAt: new Date(r.expiresAt),
    ...(r.statement ? { target: r.statement.target, sql: r.statement.sql } : {}),
    ...(r.role ? { role: r.role.role } : {}),
    reason: r.reason,
    rule: r.rule,
    required: r.approvers.reduce((n, a) => n + a.count, 0),
    decisions: r.votes.map((v) => ({
      by: v.approver,
      decision: v.decision,
      reason: v.reason ?? '',
      at: new Date(v.at),
    })),
  };
}

/**
 * INVARIANT: the decider passed to the service is the authenticated caller's user name; the service looks up their
 * groups in the policy and refuses self-approval.
 */
export function approvalsFromService(service: ApprovalService): ApprovalsProvider {
  return {
    list: (filter) =>
      Promise.resolve(
        service.list(filter.state === undefined ? {} : { status: filter.state }).map(approvalView),
      ),
    get: (id) => {
      const r = service.get(id);
      return Promise.resolve(r === undefined ? undefined : approvalView(r));
    },
    async decide(id, input) {
      try {
        const r =
          input.decision === 'approve'
            ? await service.approve(id, input.by.user, input.reason)
            : await service.deny(id, input.by.user, input.reason);
        return approvalView(r);
      } catch (e) {
        return mapError(e);
      }
    },
    async requestRole(input) {
      try {
        const r = await service.requestRole(input.requester.user, {
          role: input.role,
          durationSeconds: input.durationMinutes * 60,
          reason: input.reason,
        });
        return approvalView(r);
      } catch (e) {
        return mapError(e);
      }
    },
  };
}
