// The admin API's endpoint handlers: validated input in, provider calls, plain JSON out (one handler per operationId).

import { whoCan } from '../policy/who-can.js';
import { diffBundles } from '../bundle/diff.js';
import type { Envelope } from '../bundle/dsse.js';
import type { VerifyResult } from '../audit/verify.js';
import { METRICS_CONTENT_TYPE, type WardenMetrics } from './metrics.js';
import type {
  AdminProviders,
  ApiIdentity,
  ApprovalState,
  ApprovalView,
  AuditQuery,
  SessionView,
} from './providers.js';
import { API_ROLES, effectiveRoles, isApiRole } from './roles.js';
import type { OperationId } from './routes.js';

export type { OperationId };

/** An error with an HTTP status and a stable API code, for handlers and provider adapters. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface HandlerInput {
  readonly params: Readonly<Record<string, unknown>>;
  readonly query: Readonly<Record<string, unknown>>;
  readonly body: unknown;
  /** Set for every route that is not public. */
  readonly identity: ApiIdentity | undefined;
}

export interface HandlerResult {
  readonly status: number;
  readonly body: unknown;
  /** application/json unless set (then `body` is a string). */
  readonly contentType?: string;
}

export type Handler = (input: HandlerInput) => Promise<HandlerResult>;

const READY_TIMEOUT_MS = 2000;

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const ok = (body: unknown, status = 200): HandlerResult => ({ status, body });

function sessionJson(s: SessionView): Record<string, unknown> {
  return { ...s, startedAt: s.startedAt.toISOString() };
}

function approvalJson(a: ApprovalView): Record<string, unknown> {
  return {
    ...a,
    createdAt: a.createdAt.toISOString(),
    ...(a.expiresAt !== undefined ? { expiresAt: a.expiresAt.toISOString() } : {}),
    decisions: a.decisions.map((d) => ({ ...d, at: d.at.toISOString() })),
  };
}

export function verifyJson(r: VerifyResult): Record<string, unknown> {
  return {
    ok: r.ok,
    size: r.size,
    root: b64(r.root),
    checkpointsChecked: r.checkpointsChecked,
    tornTail: r.tornTail,
    ...(typeof (r as { redacted?: unknown }).redacted === 'number'
      ? { redacted: (r as { redacted: number }).redacted }
      : {}),
    ...(r.firstError !== undefined ? { firstError: { ...r.firstError } } : {}),
  };
}

function identityOf(input: HandlerInput): ApiIdentity {
  // INVARIANT: routes that act on behalf of someone are never public, so the server always sets an identity.
  if (input.identity === undefined) throw new ApiError(401, 'unauthenticated', 'authentication required');
  return input.identity;
}

async function runCheck(check: () => unknown): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), READY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(check)
        .then((v) => v !== false),
      timeout,
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export function buildHandlers(deps: {
  readonly providers: AdminProviders;
  readonly metrics: WardenMetrics;
  readonly openapi: Record<string, unknown>;
}): Record<OperationId, Handler> {
  const { providers: p } = deps;
  return {
    healthz: () => Promise.resolve(ok({ status: 'ok' })),

    async readyz() {
      const names = Object.keys(p.ready);
      const results = await Promise.all(names.map((n) => runCheck(p.ready[n] ?? (() => false))));
      const checks = Object.fromEntries(names.map((n, i) => [n, results[i] ? 'ok' : 'failed']));
      const ready = results.every(Boolean);
      return ok({ ready, checks }, ready ? 200 : 503);
    },

    metrics: () =>
      Promise.resolve({
        status: 200,
        body: deps.metrics.registry.render(),
        contentType: METRICS_CONTENT_TYPE,
      }),

    openapi: () => Promise.resolve(ok(deps.openapi)),

    whoami(input) {
      const id = identityOf(input);
      const roles = effectiveRoles(id.roles.filter(isApiRole));
      // Listed in API_ROLES order so the answer is stable.
      return Promise.resolve(
        ok({ user: id.user, via: id.via, roles: API_ROLES.filter((r) => roles.has(r)) }),
      );
    },

    async listSessions() {
      const sessions = await p.sessions.list();
      return ok({ sessions: sessions.map(sessionJson) });
    },

    async sessionTimeline({ params }) {
      const id = params['id'] as string;
      const events = await p.sessions.timeline(id);
      if (events === undefined) throw new ApiError(404, 'not_found', `no session ${JSON.stringify(id)}`);
      return ok({ session: id, events: events.map((e) => ({ ...e, at: e.at.toISOString() })) });
    },

    async searchAuditEntries({ query }) {
      const q: { -readonly [K in keyof AuditQuery]: AuditQuery[K] } = { limit: query['limit'] as number };
      if (typeof query['user'] === 'string') q.user = query['user'];
      if (typeof query['target'] === 'string') q.target = query['target'];
      if (typeof query['decision'] === 'string') q.decision = query['decision'];
      if (typeof query['since'] === 'string') q.since = new Date(query['since']);
      if (typeof query['until'] === 'string') q.until = new Date(query['until']);
      if (q.since !== undefined && q.until !== undefined && q.since.getTime() > q.until.getTime())
        throw new ApiError(400, 'bad_request', 'query.since: must not be after query.until');
      const found = await p.audit.search(q);
      return ok({ entries: found.slice(0, q.limit).map((f) => ({ index: f.index, entry: f.entry })) });
    },

    async getAuditEntry({ params }) {
      const index = params['index'] as number;
      const found = await p.audit.entry(index);
      if (found === undefined) throw new ApiError(404, 'not_found', `no audit entry at index ${index}`);
      return ok({
        index,
        entry: found.entry,
        leafHash: b64(found.proof.leafHash),
        proof: { size: found.proof.size, root: b64(found.proof.root), hashes: found.proof.proof.map(b64) },
        ...(found.checkpoint !== undefined ? { checkpoint: found.checkpoint } : {}),
      });
    },

    async verifyAudit() {
      return ok(verifyJson(await p.audit.verify()));
    },

    getPolicy() {
      const r = p.policy.running();
      return Promise.resolve(
        ok({
          running:
            r === undefined
              ? null
              : {
                  version: r.version,
                  hash: r.hash,
                  created: r.created,
                  expires: r.expires,
                  author: r.author,
                  signatures: r.signatures,
                  settings: r.settings,
                  expiresAt: r.expiresAt,
                  expiresBy: r.expiresBy,
                  expiryState: r.expiryState,
                },
        }),
      );
    },

    async listBundles() {
      return ok({ bundles: await p.policy.bundles() });
    },

    async submitBundle(input) {
      const by = identityOf(input);
      const result = await p.policy.activateBundle(input.body as Envelope, by);
      return ok({ version: result.version, hash: result.hash }, 201);
    },

    async diffBundles({ query }) {
      const from = query['from'] as number;
      const to = query['to'] as number;
      const [a, b] = await Promise.all([p.policy.bundle(from), p.policy.bundle(to)]);
      if (a === undefined) throw new ApiError(404, 'not_found', `no bundle version ${from}`);
      if (b === undefined) throw new ApiError(404, 'not_found', `no bundle version ${to}`);
      return ok({ from, to, diff: diffBundles(a, b) });
    },

    accessMatrix({ query }) {
      const table = query['table'] as string;
      const policy = p.policy.policy();
      if (policy === undefined) throw new ApiError(404, 'not_found', 'the gateway runs no policy');
      return Promise.resolve(
        ok({ table, version: p.policy.running()?.version ?? null, rows: whoCan(policy, table) }),
      );
    },

    async listApprovals({ query }) {
      const state = query['state'] as ApprovalState | undefined;
      const list = await p.approvals.list(state === undefined ? {} : { state });
      return ok({ approvals: list.map(approvalJson) });
    },

    async getApproval({ params }) {
      const id = params['id'] as string;
      const a = await p.approvals.get(id);
      if (a === undefined) throw new ApiError(404, 'not_found', `no approval request ${JSON.stringify(id)}`);
      return ok(approvalJson(a));
    },

    async approve(input) {
      const a = await p.approvals.decide(input.params['id'] as string, {
        by: identityOf(input),
        decision: 'approve',
        reason: (input.body as { reason: string }).reason,
      });
      return ok(approvalJson(a));
    },

    async deny(input) {
      const a = await p.approvals.decide(input.params['id'] as string, {
        by: identityOf(input),
        decision: 'deny',
        reason: (input.body as { reason: string }).reason,
      });
      return ok(approvalJson(a));
    },

    async requestRole(input) {
      const body = input.body as { role: string; target?: string; durationMinutes: number; reason: string };
      const a = await p.approvals.requestRole({
        requester: identityOf(input),
        role: body.role,
        ...(body.target !== undefined ? { target: body.target } : {}),
        durationMinutes: body.durationMinutes,
        reason: body.reason,
      });
      return ok(approvalJson(a), 201);
    },
  };
}
