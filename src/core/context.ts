// Protocol-neutral types for who is acting and on which statement: what policy, audit and approvals see at the statement hook.

export type PrincipalKind = 'human' | 'service';

/** An authenticated Warden identity. Never carries a secret. */
export interface Principal {
  readonly name: string;
  readonly kind: PrincipalKind;
  readonly groups: readonly string[];
  /** Free-form attributes usable in row filters, e.g. { tenant: '42' }. */
  readonly attributes: Readonly<Record<string, string>>;
}

export type WireProtocol = 'postgres' | 'mysql';

/** Everything known about a client session when a statement arrives. */
export interface SessionContext {
  readonly sessionId: string;
  readonly protocol: WireProtocol;
  readonly principal: Principal;
  /** The Warden target the client asked for (its database name on the wire). */
  readonly target: string;
  /** Environment label of the target, e.g. 'production'. */
  readonly environment: string;
  /** The upstream database name the target maps to. */
  readonly database: string;
  readonly sourceAddress: string;
  readonly tls: boolean;
  readonly applicationName: string;
  readonly startedAt: Date;
}

/** How a statement reached the gateway. */
export type StatementPath = 'simple' | 'parse' | 'mysql-query' | 'mysql-prepare';

/** A statement seen whole at the hook, before anything reaches the database. */
export interface StatementRequest {
  readonly session: SessionContext;
  /** The full SQL text as the client sent it (a simple query may hold several statements). */
  readonly sql: string;
  readonly path: StatementPath;
  /** Name of the prepared statement for the extended protocol ('' is the unnamed one). */
  readonly statementName?: string;
  /** Parameter type OIDs declared at Parse (PostgreSQL). */
  readonly paramTypes?: readonly number[];
  readonly receivedAt: Date;
  /** Send an informational notice to the client while the statement is held (e.g. waiting for approval). */
  notice(message: string): void;
  /** Aborted when the client cancels or disconnects while the statement is held. */
  readonly signal: AbortSignal;
}

/** Parameters bound to a prepared statement (extended protocol Bind), seen before they are forwarded. */
export interface BindRequest {
  readonly session: SessionContext;
  /** The prepared statement the parameters are bound to ('' is the unnamed one). */
  readonly statementName: string;
  readonly portal: string;
  /** SHA-256 (hex) over the parameter formats and values; NULL is distinct from an empty value. */
  readonly paramsHash: string;
  readonly paramCount: number;
  /** Send an informational notice to the client while the Bind is held (e.g. waiting for approval). */
  notice?(message: string): void;
  /** Aborted when the client cancels or disconnects while the Bind is held. */
  readonly signal?: AbortSignal;
}

/** The hook's answer. Any exception thrown by a hook is treated as a denial (fail closed). */
export type StatementVerdict =
  | {
      readonly action: 'allow';
      /** Rewritten SQL to forward instead of the original (masks, row filters). */
      readonly sql?: string;
      /** Opaque decision record, kept for the outcome callback. */
      readonly decision?: unknown;
      /** The approval request this runs under (set by a Bind approved for its parameters; audit links it). */
      readonly approvalRequestId?: string;
    }
  | {
      readonly action: 'deny';
      readonly sqlstate: string;
      readonly message: string;
      readonly detail?: string;
      readonly hint?: string;
      readonly decision?: unknown;
    };

/** What happened once an allowed statement ran (for audit outcome entries). */
export interface StatementOutcome {
  readonly request: StatementRequest;
  readonly verdict: StatementVerdict;
  /** Command tag(s), e.g. 'SELECT 3'. */
  readonly commandTags: readonly string[];
  readonly rows: number;
  /** SQLSTATE of the error, if the statement failed. */
  readonly sqlstate?: string;
  readonly durationMs: number;
}

/** The one place every statement passes through before it is forwarded. */
export interface StatementHook {
  check(request: StatementRequest): Promise<StatementVerdict> | StatementVerdict;
  /**
   * Called for each Bind before it is forwarded, when present (audit records the parameters' hash; approvals
   * bind to it). Returning a deny verdict refuses the Bind; undefined or allow lets it through. Any exception
   * is a denial.
   */
  bind?(request: BindRequest): Promise<StatementVerdict | undefined> | StatementVerdict | undefined;
  /** Called after an allowed statement finished (best effort, never blocks the client). */
  outcome?(outcome: StatementOutcome): void;
  /** Called once when a session that used this hook has closed (drop per-session state). */
  sessionClosed?(sessionId: string): void;
}

/** Session lifecycle events, for audit. */
export interface SessionEvents {
  authenticated?(session: SessionContext): Promise<void> | void;
  authFailed?(info: {
    user: string;
    target: string;
    sourceAddress: string;
    reason: string;
  }): Promise<void> | void;
  closed?(session: SessionContext, reason: string): Promise<void> | void;
}
