// The error catalogue: every stable Warden error code, with the SQLSTATE a SQL client sees and the HTTP status an API caller sees.

export interface ErrorSpec {
  /** SQLSTATE sent to PostgreSQL (and mapped for MySQL) clients. */
  readonly sqlstate: string;
  /** HTTP status for the admin API. */
  readonly http: number;
  /** What the code means, for docs and operators. */
  readonly meaning: string;
}

export const ERRORS = {
  PROTOCOL_VIOLATION: {
    sqlstate: '08P01',
    http: 400,
    meaning: 'malformed, truncated or oversized protocol message',
  },
  CONNECTION_FAILURE: { sqlstate: '08006', http: 502, meaning: 'the upstream connection failed or was lost' },
  CONNECTION_REFUSED: {
    sqlstate: '08004',
    http: 503,
    meaning: 'the gateway refused to establish the connection',
  },
  UPSTREAM_UNAVAILABLE: {
    sqlstate: '08001',
    http: 503,
    meaning: 'the upstream database could not be reached',
  },
  INVALID_PASSWORD: { sqlstate: '28P01', http: 401, meaning: 'authentication failed' },
  INVALID_AUTHORIZATION: {
    sqlstate: '28000',
    http: 401,
    meaning: 'authorization specification is invalid (e.g. TLS required)',
  },
  INVALID_CATALOG: {
    sqlstate: '3D000',
    http: 404,
    meaning: 'the requested database (Warden target) does not exist or is not mapped for this user',
  },
  FEATURE_NOT_SUPPORTED: {
    sqlstate: '0A000',
    http: 501,
    meaning: 'a protocol feature Warden does not support',
  },
  INSUFFICIENT_PRIVILEGE: { sqlstate: '42501', http: 403, meaning: 'the policy denied the statement' },
  SYNTAX_ERROR: {
    sqlstate: '42601',
    http: 400,
    meaning: 'the statement could not be parsed; unparsed statements are denied',
  },
  APPROVAL_REQUIRED: {
    sqlstate: 'WA001',
    http: 202,
    meaning: 'the statement needs approval; the message names the request',
  },
  BUNDLE_EXPIRED: {
    sqlstate: 'WA010',
    http: 503,
    meaning:
      "the target's signed bundle (or its trust root) has expired: every statement is refused until a new bundle is activated",
  },
  AUDIT_UNAVAILABLE: {
    sqlstate: '58030',
    http: 503,
    meaning: 'the audit log could not record the statement, so it did not run',
  },
  ADMIN_SHUTDOWN: { sqlstate: '57P01', http: 503, meaning: 'the gateway is shutting down' },
  QUERY_CANCELED: { sqlstate: '57014', http: 499, meaning: 'the statement was canceled' },
  TOO_MANY_CONNECTIONS: { sqlstate: '53300', http: 429, meaning: 'too many connections or attempts' },
  CONFIG_INVALID: { sqlstate: 'F0000', http: 400, meaning: 'the configuration is invalid' },
  INTERNAL: { sqlstate: 'XX000', http: 500, meaning: 'an internal error; the action was not performed' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code. Callers test `err.code`, never the message. */
export class WardenError extends Error {
  readonly code: ErrorCode;
  readonly detail: string | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WardenError';
    this.code = code;
    this.detail = options?.detail;
  }
  get sqlstate(): string {
    return ERRORS[this.code].sqlstate;
  }
  get httpStatus(): number {
    return ERRORS[this.code].http;
  }
}

export function isWardenError(e: unknown, code?: ErrorCode): e is WardenError {
  return e instanceof WardenError && (code === undefined || e.code === code);
}
