// The approvals service's public surface: statement approvals, quorum, just-in-time roles, break-glass, stores.
export { ApprovalService, ApprovalError, createApprovalService } from './service.js';
export type {
  Actor,
  ApprovalAuditEvent,
  ApprovalEvents,
  ApprovalServiceOptions,
  RoleRequestInput,
  StatementApprovalInput,
} from './service.js';
export { FileApprovalStore, MemoryApprovalStore, APPROVALS_FILE, StaleApprovalState } from './store.js';
export type { AppendOptions, ApprovalStore } from './store.js';
export { PgApprovalStore, installPgApprovalSchema } from './store-pg.js';
export type { PgApprovalStoreOptions, PgApprovalTables } from './store-pg.js';
export { evaluateQuorum, isEligibleApprover } from './quorum.js';
export type { Approval, ApproverSlotRule, QuorumResult } from './quorum.js';
export { bindingHash, paramsHash, BINDING_VERSION } from './binding.js';
export { applyRecord, Refusal, activeAt, usableAt } from './model.js';
export type { ApprovalRecord, ApprovalRequest, RequestStatus, Vote } from './model.js';
export { Webhook } from './webhook.js';
