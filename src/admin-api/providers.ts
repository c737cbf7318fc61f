// What the admin API reads and asks for, as injected providers: the API holds no state of its own and is testable without a gateway.

import type { AuditEntry } from '../audit/entry.js';
import type { InclusionProof } from '../audit/log.js';
import type { VerifyResult } from '../audit/verify.js';
import type { Envelope } from '../bundle/dsse.js';
import type { DiffableBundle } from '../bundle/diff.js';
import type { Policy } from '../policy/model.js';

/** The authenticated caller of an API request. Never carries the token. */
export interface ApiIdentity {
  readonly user: string;
  readonly via: 'token' | 'oidc';
  /** The token id (tokens) or issuer (OIDC), for logs. */
  readonly credential: string;
  readonly roles: readonly string[];
}

/** A live client session. */
export interface SessionView {
  readonly id: string;
  readonly user: string;
  readonly kind: 'human' | 'service';
  readonly protocol: 'postgres' | 'mysql';
  readonly target: string;
  readonly environment: string;
  readonly database: string;
  readonly sourceAddress: string;
  readonly tls: boolean;
  readonly applicationName: string;
  readonly startedAt: Date;
}

export interface TimelineEvent {
  readonly at: Date;
  /** Entry type, e.g. 'session.open', 'statement', 'statement.outcome'. */
  readonly type: string;
  /** One line for a human, e.g. the statement text or the decision. */
  readonly summary: string;
  /** The audit log index of the entry, when it comes from the log. */
  readonly index?: number;
}

export interface SessionsProvider {
  list(): readonly SessionView[] | Promise<readonly SessionView[]>;
  /** The session's events in order; undefined if the session is unknown. */
  timeline(id: string): Promise<readonly TimelineEvent[] | undefined>;
}

export interface AuditQuery {
  readonly user?: string;
  readonly target?: string;
  /** Matches the statement decision's effect, e.g. 'allow' | 'deny'. */
  readonly decision?: string;
  readonly since?: Date;
  readonly until?: Date;
  readonly limit: number;
}

export interface AuditProvider {
  /** Entries matching the query, oldest first, at most `limit`. */
  search(q: AuditQuery): Promise<readonly { readonly index: number; readonly entry: AuditEntry }[]>;
  /** One entry with its inclusion proof against the current tree; undefined beyond the log's size. */
  entry(
    index: number,
  ): Promise<
    { readonly entry: AuditEntry; readonly proof: InclusionProof; readonly checkpoint?: string } | undefined
  >;
  /** Runs verification of the whole log (e.g. `verifyLog` over the store folder) and returns its real result. */
  verify(): Promise<VerifyResult>;
}

export interface BundleSignatureView {
  readonly keyid: string;
  /** The enrolled key's name, when the signature verifies under one. */
  readonly signer?: string;
  readonly role: 'author' | 'approver' | 'unknown';
}

/** The bundle the gateway runs. */
export interface RunningBundle {
  readonly version: number;
  readonly hash: string;
  readonly created: string;
  readonly expires: string;
  readonly author: string;
  readonly signatures: readonly BundleSignatureView[];
  /** The bundle's target settings, as signed. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** When statements stop being served: the earlier of the bundle's and its root's expiry. */
  readonly expiresAt: string;
  readonly expiresBy: 'bundle' | 'root';
  /** `expiring`: under 7 days left; `expired`: every statement on the target is refused (WA010). */
  readonly expiryState: 'current' | 'expiring' | 'expired';
}

export interface BundleSummary {
  readonly version: number;
  readonly hash: string;
  readonly created: string;
  readonly author: string;
  readonly active: boolean;
}

export interface PolicyProvider {
  /** The running bundle; undefined when the gateway runs without a signed bundle. */
  running(): RunningBundle | undefined;
  /** The compiled policy the gateway enforces now (from the bundle or a policy folder); undefined if none. */
  policy(): Policy | undefined;
  /** Known bundles (accepted, history), newest first. */
  bundles(): Promise<readonly BundleSummary[]>;
  /** A stored bundle's diffable content by version; undefined if unknown. */
  bundle(version: number): Promise<DiffableBundle | undefined>;
  /**
   * Hands a signed bundle envelope to activation (which verifies signatures, threshold, version and link).
   * Throws (e.g. BundleError) when refused.
   */
  activateBundle(
    envelope: Envelope,
    by: ApiIdentity,
  ): Promise<{ readonly version: number; readonly hash: string }>;
}

/** The approvals service's request states (src/approvals/model.ts RequestStatus). */
export type ApprovalState = 'pending' | 'approved' | 'active' | 'denied' | 'expired' | 'revoked' | 'used';

/** An approval request, as the approvals service describes it. */
export interface ApprovalView {
  readonly id: string;
  /** 'statement' (a held statement) or 'role' (a just-in-time role request). */
  readonly kind: 'statement' | 'role';
  readonly state: ApprovalState;
  readonly requester: string;
  readonly createdAt: Date;
  readonly expiresAt?: Date;
  readonly target?: string;
  /** The statement text, for statement approvals. */
  readonly sql?: string;
  /** The requested role, for role requests. */
  readonly role?: string;
  readonly reason?: string;
  /** The policy rule that asked for approval, e.g. "approval:bulk-delete". */
  readonly rule?: string;
  /** How many approvals are needed and who decided so far. */
  readonly required: number;
  readonly decisions: readonly {
    readonly by: string;
    readonly decision: 'approve' | 'deny';
    readonly reason: string;
    readonly at: Date;
  }[];
}

export interface RoleRequestInput {
  readonly requester: ApiIdentity;
  readonly role: string;
  readonly target?: string;
  readonly durationMinutes: number;
  readonly reason: string;
}

/**
 * The approvals service as the API needs it (built in src/approvals/). INVARIANT: the service, not the API, enforces
 * self-approval and quorum rules; the API passes the authenticated caller as the decider, never a name from the body.
 * Refusals are thrown as WardenError (e.g. INSUFFICIENT_PRIVILEGE for self-approval) or ApiError (e.g. 409).
 */
export interface ApprovalsProvider {
  list(filter: { readonly state?: ApprovalState }): Promise<readonly ApprovalView[]>;
  get(id: string): Promise<ApprovalView | undefined>;
  decide(
    id: string,
    input: { readonly by: ApiIdentity; readonly decision: 'approve' | 'deny'; readonly reason: string },
  ): Promise<ApprovalView>;
  /** A just-in-time role request by any authenticated identity. */
  requestRole(input: RoleRequestInput): Promise<ApprovalView>;
}

/** A readiness check: resolves when the dependency is reachable, throws (or resolves false) when not. */
export type ReadyCheck = () => Promise<boolean | void> | boolean | void;

export interface AdminProviders {
  readonly sessions: SessionsProvider;
  readonly audit: AuditProvider;
  readonly policy: PolicyProvider;
  readonly approvals: ApprovalsProvider;
  /** Named readiness checks, e.g. { upstream, audit_store }; all must pass for /readyz. */
  readonly ready: Readonly<Record<string, ReadyCheck>>;
}
