// The admin API's route table: each endpoint's method, path, required role and JSON Schemas, defined once for validation and OpenAPI.

import type { ApiRole } from './roles.js';

export type JsonSchema = Readonly<Record<string, unknown>>;

/** Who may call a route: anyone, any authenticated identity, or holders of one of the roles. */
export type RouteAuth = 'public' | 'authenticated' | readonly ApiRole[];

export interface RouteResponse {
  readonly description: string;
  /** application/json unless set. */
  readonly contentType?: string;
  readonly schema: JsonSchema;
}

export interface RouteSpec {
  readonly operationId: string;
  readonly method: 'GET' | 'POST';
  /** Path template; `{name}` matches one segment. */
  readonly path: string;
  readonly summary: string;
  readonly auth: RouteAuth;
  /** Object schema of the path parameters (values coerced from strings). */
  readonly params?: JsonSchema;
  /** Object schema of the query parameters (values coerced from strings; unknown ones refused). */
  readonly query?: JsonSchema;
  /** Schema of the JSON request body. */
  readonly body?: JsonSchema;
  /** Success responses by status. */
  readonly responses: Readonly<Record<number, RouteResponse>>;
}

const str = (extra: Record<string, unknown> = {}): JsonSchema => ({ type: 'string', ...extra });
const int = (extra: Record<string, unknown> = {}): JsonSchema => ({ type: 'integer', ...extra });
const bool: JsonSchema = { type: 'boolean' };
const time = str({ format: 'date-time' });
const obj = (
  properties: Record<string, JsonSchema>,
  required: string[] = Object.keys(properties),
): JsonSchema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});
const arr = (items: JsonSchema, extra: Record<string, unknown> = {}): JsonSchema => ({
  type: 'array',
  items,
  ...extra,
});
const json = (description: string, schema: JsonSchema): RouteResponse => ({ description, schema });

export const ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';
const idParam = obj({ id: str({ pattern: ID_PATTERN, description: 'identifier' }) });
const hex64 = str({ pattern: '^[0-9a-f]{64}$' });
const b64 = str({ pattern: '^[A-Za-z0-9+/]*={0,2}$' });

export const ERROR_SCHEMA: JsonSchema = obj({
  error: obj({ code: str(), message: str() }),
});

const SESSION = obj({
  id: str(),
  user: str(),
  kind: str({ enum: ['human', 'service'] }),
  protocol: str({ enum: ['postgres', 'mysql'] }),
  target: str(),
  environment: str(),
  database: str(),
  sourceAddress: str(),
  tls: bool,
  applicationName: str(),
  startedAt: time,
});

const TIMELINE_EVENT = obj({ at: time, type: str(), summary: str(), index: int({ minimum: 0 }) }, [
  'at',
  'type',
  'summary',
]);

/** An audit entry as stored (canonical JSON object with at least a kind). */
const AUDIT_ENTRY: JsonSchema = {
  type: 'object',
  properties: { v: int(), kind: str(), id: str(), time: str() },
  required: ['v', 'kind', 'id', 'time'],
};

const VERIFY_ERROR = obj(
  {
    kind: str({
      enum: [
        'entry-corrupt',
        'entry-invalid',
        'checkpoint-corrupt',
        'checkpoint-invalid',
        'checkpoint-fork',
        'root-mismatch',
        'truncated',
      ],
    }),
    message: str(),
    index: int(),
    checkpoint: int(),
  },
  ['kind', 'message'],
);

const SIGNATURE = obj(
  { keyid: str(), signer: str(), role: str({ enum: ['author', 'approver', 'unknown'] }) },
  ['keyid', 'role'],
);

const BUNDLE_SUMMARY = obj({
  version: int({ minimum: 0 }),
  hash: hex64,
  created: str(),
  author: str(),
  active: bool,
});

const WHO_CAN_ROW = obj(
  {
    principal: str(),
    role: str(),
    grant: str(),
    target: str(),
    operations: arr(str()),
    columns: { oneOf: [str({ const: '*' }), arr(str())] },
    conditions: arr(str()),
    masks: { type: 'object', additionalProperties: str() },
    rowFilter: str(),
  },
  ['principal', 'role', 'grant', 'target', 'operations', 'columns', 'conditions', 'masks'],
);

const APPROVAL_STATES = ['pending', 'approved', 'active', 'denied', 'expired', 'revoked', 'used'];
const APPROVAL = obj(
  {
    id: str(),
    kind: str({ enum: ['statement', 'role'] }),
    state: str({ enum: APPROVAL_STATES }),
    requester: str(),
    createdAt: time,
    expiresAt: time,
    target: str(),
    sql: str(),
    role: str(),
    reason: str(),
    rule: str(),
    required: int({ minimum: 0 }),
    decisions: arr(obj({ by: str(), decision: str({ enum: ['approve', 'deny'] }), reason: str(), at: time })),
  },
  ['id', 'kind', 'state', 'requester', 'createdAt', 'required', 'decisions'],
);

const REASON_BODY = obj({
  reason: str({ minLength: 1, maxLength: 2000, description: 'why (recorded in the audit log)' }),
});

/** A DSSE envelope; at least one signature: the API never accepts an unsigned edit. */
export const ENVELOPE_SCHEMA: JsonSchema = obj({
  payloadType: str({ minLength: 1, maxLength: 256 }),
  payload: str({ minLength: 1, pattern: '^[A-Za-z0-9+/]*={0,2}$' }),
  signatures: arr(obj({ keyid: str({ maxLength: 512 }), sig: str({ minLength: 1, maxLength: 1024 }) }), {
    minItems: 1,
    maxItems: 64,
  }),
});

export const ROUTES = [
  {
    operationId: 'healthz',
    method: 'GET',
    path: '/healthz',
    summary: 'The process is up.',
    auth: 'public',
    responses: { 200: json('up', obj({ status: str({ const: 'ok' }) })) },
  },
  {
    operationId: 'readyz',
    method: 'GET',
    path: '/readyz',
    summary: 'Ready: the upstream and the audit store are reachable (503 otherwise).',
    auth: 'public',
    responses: {
      200: json(
        'ready',
        obj({
          ready: bool,
          checks: { type: 'object', additionalProperties: str({ enum: ['ok', 'failed'] }) },
        }),
      ),
      503: json(
        'not ready',
        obj({
          ready: bool,
          checks: { type: 'object', additionalProperties: str({ enum: ['ok', 'failed'] }) },
        }),
      ),
    },
  },
  {
    operationId: 'metrics',
    method: 'GET',
    path: '/metrics',
    summary: 'Prometheus metrics (text exposition format).',
    auth: ['viewer'],
    responses: { 200: { description: 'metrics', contentType: 'text/plain; version=0.0.4', schema: str() } },
  },
  {
    operationId: 'openapi',
    method: 'GET',
    path: '/api/openapi.json',
    summary: 'This OpenAPI document.',
    auth: 'public',
    responses: {
      200: json('OpenAPI 3.1 document', {
        type: 'object',
        properties: { openapi: str(), paths: { type: 'object' } },
        required: ['openapi', 'paths'],
      }),
    },
  },
  {
    operationId: 'whoami',
    method: 'GET',
    path: '/api/whoami',
    summary: 'The authenticated caller and the API roles it holds (with implied ones), e.g. for the console.',
    auth: 'authenticated',
    responses: {
      200: json(
        'caller',
        obj({
          user: str(),
          via: str({ enum: ['token', 'oidc'] }),
          roles: arr(str({ enum: ['viewer', 'approver', 'auditor', 'operator'] })),
        }),
      ),
    },
  },
  {
    operationId: 'listSessions',
    method: 'GET',
    path: '/api/sessions',
    summary: 'Live client sessions.',
    auth: ['viewer'],
    responses: { 200: json('sessions', obj({ sessions: arr(SESSION) })) },
  },
  {
    operationId: 'sessionTimeline',
    method: 'GET',
    path: '/api/sessions/{id}/timeline',
    summary: "A session's events from the audit log.",
    auth: ['auditor'],
    params: idParam,
    responses: { 200: json('timeline', obj({ session: str(), events: arr(TIMELINE_EVENT) })) },
  },
  {
    operationId: 'searchAuditEntries',
    method: 'GET',
    path: '/api/audit/entries',
    summary: 'Search the audit log.',
    auth: ['auditor'],
    query: obj(
      {
        user: str({ minLength: 1, maxLength: 128 }),
        target: str({ minLength: 1, maxLength: 128 }),
        decision: str({ enum: ['allow', 'deny', 'approval'] }),
        since: time,
        until: time,
        limit: int({ minimum: 1, maximum: 1000, default: 100 }),
      },
      [],
    ),
    responses: {
      200: json(
        'entries, oldest first',
        obj({ entries: arr(obj({ index: int({ minimum: 0 }), entry: AUDIT_ENTRY })) }),
      ),
    },
  },
  {
    operationId: 'getAuditEntry',
    method: 'GET',
    path: '/api/audit/entries/{index}',
    summary: 'One audit entry with its RFC 9162 inclusion proof (hashes in base64).',
    auth: ['auditor'],
    params: obj({ index: int({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) }),
    responses: {
      200: json(
        'entry and proof',
        obj(
          {
            index: int({ minimum: 0 }),
            entry: AUDIT_ENTRY,
            leafHash: b64,
            proof: obj({ size: int({ minimum: 1 }), root: b64, hashes: arr(b64) }),
            checkpoint: str(),
          },
          ['index', 'entry', 'leafHash', 'proof'],
        ),
      ),
    },
  },
  {
    operationId: 'verifyAudit',
    method: 'GET',
    path: '/api/audit/verify',
    summary: 'Verify the whole audit log now and report the result.',
    auth: ['auditor'],
    responses: {
      200: json(
        'verification result (ok may be false)',
        obj(
          {
            ok: bool,
            size: int({ minimum: 0 }),
            root: b64,
            checkpointsChecked: int({ minimum: 0 }),
            tornTail: bool,
            redacted: int({ minimum: 0 }),
            firstError: VERIFY_ERROR,
          },
          ['ok', 'size', 'root', 'checkpointsChecked', 'tornTail'],
        ),
      ),
    },
  },
  {
    operationId: 'getPolicy',
    method: 'GET',
    path: '/api/policy',
    summary: 'The running policy bundle: version, hash, signatures.',
    auth: ['viewer'],
    responses: {
      200: json(
        'running bundle (null without a signed bundle)',
        obj({
          running: {
            oneOf: [
              { type: 'null' },
              obj({
                version: int({ minimum: 0 }),
                hash: hex64,
                created: str(),
                expires: str(),
                author: str(),
                signatures: arr(SIGNATURE),
                settings: { type: 'object', description: "the bundle's target settings, as signed" },
                expiresAt: str({ description: "the earlier of the bundle's and its root's expiry" }),
                expiresBy: { enum: ['bundle', 'root'] },
                expiryState: {
                  enum: ['current', 'expiring', 'expired'],
                  description: 'expiring: under 7 days left; expired: every statement is refused (WA010)',
                },
              }),
            ],
          },
        }),
      ),
    },
  },
  {
    operationId: 'listBundles',
    method: 'GET',
    path: '/api/policy/bundles',
    summary: 'Known policy bundles, newest first.',
    auth: ['viewer'],
    responses: { 200: json('bundles', obj({ bundles: arr(BUNDLE_SUMMARY) })) },
  },
  {
    operationId: 'submitBundle',
    method: 'POST',
    path: '/api/policy/bundles',
    summary: 'Submit a signed bundle envelope for activation (never an unsigned edit).',
    auth: ['operator'],
    body: ENVELOPE_SCHEMA,
    responses: { 201: json('accepted and activated', obj({ version: int({ minimum: 0 }), hash: hex64 })) },
  },
  {
    operationId: 'diffBundles',
    method: 'GET',
    path: '/api/policy/diff',
    summary: 'Unified diff between two bundle versions.',
    auth: ['viewer'],
    query: obj({ from: int({ minimum: 0 }), to: int({ minimum: 0 }) }),
    responses: { 200: json('diff', obj({ from: int(), to: int(), diff: str() })) },
  },
  {
    operationId: 'accessMatrix',
    method: 'GET',
    path: '/api/policy/access-matrix',
    summary: 'Who can do what on one table, under the running policy.',
    auth: ['viewer'],
    query: obj({ table: str({ pattern: '^[^.\\s]{1,63}\\.[^.\\s]{1,63}$', description: 'schema.table' }) }),
    responses: {
      200: json(
        'rows',
        obj({ table: str(), version: { type: ['integer', 'null'] }, rows: arr(WHO_CAN_ROW) }),
      ),
    },
  },
  {
    operationId: 'listApprovals',
    method: 'GET',
    path: '/api/approvals',
    summary: 'Approval requests.',
    auth: ['approver', 'auditor'],
    query: obj({ state: str({ enum: APPROVAL_STATES }) }, []),
    responses: { 200: json('approvals', obj({ approvals: arr(APPROVAL) })) },
  },
  {
    operationId: 'getApproval',
    method: 'GET',
    path: '/api/approvals/{id}',
    summary: 'One approval request.',
    auth: ['approver', 'auditor'],
    params: idParam,
    responses: { 200: json('approval', APPROVAL) },
  },
  {
    operationId: 'approve',
    method: 'POST',
    path: '/api/approvals/{id}/approve',
    summary: 'Approve, as the authenticated caller (the service refuses self-approval).',
    auth: ['approver'],
    params: idParam,
    body: REASON_BODY,
    responses: { 200: json('approval after the decision', APPROVAL) },
  },
  {
    operationId: 'deny',
    method: 'POST',
    path: '/api/approvals/{id}/deny',
    summary: 'Deny, as the authenticated caller.',
    auth: ['approver'],
    params: idParam,
    body: REASON_BODY,
    responses: { 200: json('approval after the decision', APPROVAL) },
  },
  {
    operationId: 'requestRole',
    method: 'POST',
    path: '/api/requests',
    summary: 'Request a role just in time (needs approval).',
    auth: 'authenticated',
    body: obj(
      {
        role: str({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
        target: str({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
        durationMinutes: int({ minimum: 1, maximum: 1440 }),
        reason: str({ minLength: 1, maxLength: 2000 }),
      },
      ['role', 'durationMinutes', 'reason'],
    ),
    responses: { 201: json('the request, pending', APPROVAL) },
  },
] as const satisfies readonly RouteSpec[];

export type OperationId = (typeof ROUTES)[number]['operationId'];
