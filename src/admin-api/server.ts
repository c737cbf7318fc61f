// The admin HTTP server (node:http): routing, bearer authentication, role checks, schema validation, body cap, JSON logs.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { defaultConsoleRoot, isConsolePath, serveConsole } from '../console/static.js';
import { isWardenError } from '../core/errors.js';
import { ApiError, buildHandlers, type Handler } from './handlers.js';
import { looksLikeJwt, verifyJwt, type JwtFailure, type OidcSettings } from './jwt.js';
import type { WardenMetrics } from './metrics.js';
import { buildOpenApiDocument } from './openapi.js';
import type { AdminProviders, ApiIdentity } from './providers.js';
import { assertSeparation, conflictingRoles, effectiveRoles, isApiRole, type ApiRole } from './roles.js';
import { ROUTES, type JsonSchema, type RouteSpec } from './routes.js';
import { TokenStore, type ApiTokenRecord } from './tokens.js';

export const DEFAULT_ADMIN_HOST = '127.0.0.1';
export const DEFAULT_ADMIN_PORT = 18432;
/** Request bodies larger than this are refused with 413. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

export interface AdminOidcOptions extends OidcSettings {
  /** API roles of OIDC users, by Warden user name (the mapped claim). Users not listed hold no role. */
  readonly userRoles: Readonly<Record<string, readonly ApiRole[]>>;
}

/** One structured log record per request. INVARIANT: never holds a token, a header or a body. */
export interface RequestLogRecord {
  readonly time: string;
  readonly msg: 'admin_api.request';
  readonly method: string;
  readonly path: string;
  readonly route: string | null;
  readonly status: number;
  readonly user: string | null;
  readonly via: 'token' | 'oidc' | null;
  /** Token id or issuer. */
  readonly credential: string | null;
  readonly durationMs: number;
  /** Why a request was refused or failed (never a secret). */
  readonly error?: string;
}

export interface AdminApiOptions {
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  readonly tokens: readonly ApiTokenRecord[];
  readonly oidc?: AdminOidcOptions;
  readonly providers: AdminProviders;
  readonly metrics: WardenMetrics;
  /** Receives one record per request; default: one JSON line on stderr. */
  readonly log?: (record: RequestLogRecord) => void;
  readonly maxBodyBytes?: number;
  /** Also validate every JSON response against its schema (500 on mismatch). For tests and development. */
  readonly checkResponses?: boolean;
  /** Clock for token and JWT expiry (tests). */
  readonly now?: () => Date;
  /**
   * The web console at `/` and `/console/*` (static files, no authentication needed to load them: every API call it
   * makes is authenticated). Default: served from the console's own folder; `false` turns it off.
   */
  readonly console?: false | { readonly root?: string };
  /** Serve HTTPS (TLS 1.2+, forward-secret AEAD suites) instead of plain HTTP. */
  readonly tls?: AdminTlsOptions;
}

/** The admin API's certificate chain (PEM) and private key (PEM, already read from a 0600 file). */
export interface AdminTlsOptions {
  readonly cert: Buffer | string;
  readonly key: string;
}

/** TLS 1.2 suites of the admin API: forward secrecy and AEAD only (as the PostgreSQL listener). */
const ADMIN_TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export interface AdminApi {
  readonly port: number;
  close(): Promise<void>;
}

interface CompiledRoute {
  readonly spec: RouteSpec;
  readonly segments: readonly (string | { param: string })[];
  readonly params?: ValidateFunction;
  readonly query?: ValidateFunction;
  readonly body?: ValidateFunction;
  readonly responses: ReadonlyMap<number, ValidateFunction>;
  readonly handler: Handler;
}

const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: true, coerceTypes: coerce, useDefaults: coerce });
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (s: string) => DATE_TIME_RE.test(s) && !Number.isNaN(Date.parse(s)),
  });
  return ajv;
}

/** One line naming the field and what is wrong, e.g. `query.limit: must be <= 1000`. */
export function describeValidationError(
  where: string,
  errors: readonly ErrorObject[] | null | undefined,
): string {
  const e = errors?.[0];
  if (e === undefined) return `${where}: invalid`;
  const field = where + e.instancePath.replace(/\//g, '.');
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties')
    return `${field}: unknown field ${JSON.stringify(p['additionalProperty'])}`;
  if (e.keyword === 'required') return `${field}.${String(p['missingProperty'])}: is required`;
  if (e.keyword === 'enum') return `${field}: must be one of ${(p['allowedValues'] as unknown[]).join(', ')}`;
  if (e.keyword === 'format') return `${field}: must be an ISO-8601 date-time (e.g. 2024-01-02T03:04:05Z)`;
  return `${field}: ${e.message ?? 'invalid'}`;
}

function compileRoutes(handlers: Record<string, Handler>, checkResponses: boolean): CompiledRoute[] {
  const coercing = makeAjv(true);
  const plain = makeAjv(false);
  return ROUTES.map((spec: RouteSpec) => {
    const handler = handlers[spec.operationId];
    if (handler === undefined) throw new Error(`admin API: no handler for ${spec.operationId}`);
    const responses = new Map<number, ValidateFunction>();
    if (checkResponses) {
      for (const [status, r] of Object.entries(spec.responses))
        responses.set(Number(status), plain.compile(r.schema));
    }
    const compile = (ajv: Ajv, s: JsonSchema | undefined): ValidateFunction | undefined =>
      s === undefined ? undefined : ajv.compile(s);
    const params = compile(coercing, spec.params);
    const query = compile(coercing, spec.query ?? { type: 'object', additionalProperties: false });
    const body = compile(plain, spec.body);
    return {
      spec,
      segments: spec.path
        .split('/')
        .slice(1)
        .map((s) => (s.startsWith('{') && s.endsWith('}') ? { param: s.slice(1, -1) } : s)),
      ...(params ? { params } : {}),
      ...(query ? { query } : {}),
      ...(body ? { body } : {}),
      responses,
      handler,
    };
  });
}

type Match =
  | { readonly kind: 'route'; readonly route: CompiledRoute; readonly params: Record<string, string> }
  | { readonly kind: 'method'; readonly allow: readonly string[] }
  | { readonly kind: 'none' };

function matchRoute(routes: readonly CompiledRoute[], method: string, pathname: string): Match {
  const parts = pathname.split('/').slice(1);
  const allow: string[] = [];
  for (const r of routes) {
    if (r.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let hit = true;
    for (let i = 0; i < parts.length && hit; i++) {
      const seg = r.segments[i];
      const part = parts[i] ?? '';
      if (typeof seg === 'string') hit = seg === part;
      else {
        let value: string;
        try {
          value = decodeURIComponent(part);
        } catch {
          throw new ApiError(400, 'bad_request', `path.${seg?.param ?? ''}: not valid percent-encoding`);
        }
        if (value.length === 0) hit = false;
        else params[seg?.param ?? ''] = value;
      }
    }
    if (!hit) continue;
    if (r.spec.method === method) return { kind: 'route', route: r, params };
    allow.push(r.spec.method);
  }
  return allow.length > 0 ? { kind: 'method', allow } : { kind: 'none' };
}

const JWT_MESSAGES: Record<JwtFailure, string> = {
  malformed: 'invalid JWT: malformed',
  'unsupported-alg': 'invalid JWT: unsupported algorithm (RS256, ES256 or EdDSA)',
  'unknown-key': 'invalid JWT: no configured key matches',
  'bad-signature': 'invalid JWT: bad signature',
  'wrong-issuer': 'invalid JWT: wrong issuer',
  'wrong-audience': 'invalid JWT: wrong audience',
  expired: 'invalid JWT: expired',
  'not-yet-valid': 'invalid JWT: not yet valid',
  'no-user': 'invalid JWT: the user claim is missing or not a user name',
};

const TOKEN_MESSAGES = {
  malformed: 'malformed API token',
  invalid: 'invalid API token',
  expired: 'API token expired',
};

function unauthenticated(message: string): ApiError {
  return new ApiError(401, 'unauthenticated', message, { 'www-authenticate': 'Bearer realm="warden"' });
}

/** Reads the body up to `max` bytes; 413 beyond. */
async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max)
    throw new ApiError(413, 'payload_too_large', `request body exceeds ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new ApiError(413, 'payload_too_large', `request body exceeds ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * Starts the admin API. Refuses (CONFIG_INVALID) a configuration where one user would hold both operator and
 * approver, across all tokens and the OIDC role map.
 */
export async function startAdminApi(opts: AdminApiOptions): Promise<AdminApi> {
  assertSeparation([
    ...opts.tokens.map((t) => ({ user: t.user, roles: t.roles, source: `token ${t.id}` })),
    ...Object.entries(opts.oidc?.userRoles ?? {}).map(([user, roles]) => ({
      user,
      roles,
      source: 'oidc roles',
    })),
  ]);
  const tokens = new TokenStore(opts.tokens);
  const now = opts.now ?? (() => new Date());
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const log =
    opts.log ??
    ((r: RequestLogRecord): void => {
      process.stderr.write(JSON.stringify(r) + '\n');
    });
  const consoleRoot = opts.console === false ? undefined : (opts.console?.root ?? defaultConsoleRoot());
  const openapi = buildOpenApiDocument();
  const routes = compileRoutes(
    buildHandlers({ providers: opts.providers, metrics: opts.metrics, openapi }),
    opts.checkResponses === true,
  );

  function authenticate(req: IncomingMessage): ApiIdentity {
    const header = req.headers.authorization;
    if (header === undefined || header === '')
      throw unauthenticated('missing bearer token (Authorization: Bearer ...)');
    const m = /^Bearer +(\S+) *$/i.exec(header);
    const token = m?.[1];
    if (token === undefined)
      throw unauthenticated('malformed Authorization header: expected "Bearer <token>"');
    let identity: ApiIdentity;
    if (looksLikeJwt(token)) {
      if (opts.oidc === undefined) throw unauthenticated('invalid JWT: OIDC is not configured');
      const r = verifyJwt(token, opts.oidc, now());
      if (!r.ok) throw unauthenticated(JWT_MESSAGES[r.reason]);
      identity = {
        user: r.user,
        via: 'oidc',
        credential: opts.oidc.issuer,
        roles: [...(opts.oidc.userRoles[r.user] ?? [])],
      };
    } else {
      const r = tokens.check(token, now());
      if (!r.ok) throw unauthenticated(TOKEN_MESSAGES[r.reason]);
      identity = { user: r.record.user, via: 'token', credential: r.record.id, roles: [...r.record.roles] };
    }
    // Defence in depth: configuration load already refuses this.
    const c = conflictingRoles(identity.roles.filter(isApiRole));
    if (c !== undefined)
      throw new ApiError(403, 'forbidden', `identity holds both ${c[0]} and ${c[1]}; refused`);
    return identity;
  }

  async function dispatch(
    req: IncomingMessage,
    url: URL,
    state: { route: string | null; identity: ApiIdentity | null },
  ): Promise<{ status: number; body: string; contentType: string }> {
    const method = req.method ?? 'GET';
    const match = matchRoute(routes, method, url.pathname);
    if (match.kind === 'none')
      throw new ApiError(404, 'no_route', `no such route: ${method} ${url.pathname}`);
    if (match.kind === 'method')
      throw new ApiError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`, {
        allow: match.allow.join(', '),
      });
    const { route } = match;
    state.route = route.spec.operationId;
    let identity: ApiIdentity | undefined;
    if (route.spec.auth !== 'public') {
      identity = authenticate(req);
      state.identity = identity;
      if (route.spec.auth !== 'authenticated') {
        const held = effectiveRoles(identity.roles.filter(isApiRole));
        const needed = route.spec.auth;
        if (!needed.some((r) => held.has(r)))
          throw new ApiError(403, 'forbidden', `requires role ${needed.join(' or ')}`);
      }
    }
    const params: Record<string, unknown> = { ...match.params };
    if (route.params && !route.params(params))
      throw new ApiError(400, 'bad_request', describeValidationError('path', route.params.errors));
    const query: Record<string, unknown> = {};
    for (const [k, v] of url.searchParams) {
      if (k in query) throw new ApiError(400, 'bad_request', `query.${k}: given more than once`);
      query[k] = v;
    }
    if (route.query && !route.query(query))
      throw new ApiError(400, 'bad_request', describeValidationError('query', route.query.errors));
    let body: unknown;
    if (route.body) {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== 'application/json')
        throw new ApiError(415, 'unsupported_media_type', 'request body must be application/json');
      const raw = await readBody(req, maxBody);
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new ApiError(400, 'bad_request', 'body: not valid JSON');
      }
      if (!route.body(body))
        throw new ApiError(400, 'bad_request', describeValidationError('body', route.body.errors));
    }
    const result = await route.handler({ params, query, body, identity });
    if (result.contentType !== undefined) {
      return { status: result.status, body: String(result.body), contentType: result.contentType };
    }
    const text = JSON.stringify(result.body);
    const check = route.responses.get(result.status);
    if (opts.checkResponses === true && (check === undefined || !check(JSON.parse(text)))) {
      throw new Error(
        `response of ${route.spec.operationId} (${result.status}) does not match its schema: ` +
          describeValidationError('response', check?.errors),
      );
    }
    return { status: result.status, body: text, contentType: 'application/json' };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = process.hrtime.bigint();
    const method = req.method ?? 'GET';
    const state: { route: string | null; identity: ApiIdentity | null } = { route: null, identity: null };
    let path = '?';
    let status = 500;
    let error: string | undefined;
    try {
      let out: { status: number; body: string; contentType: string };
      try {
        const url = new URL(req.url ?? '/', 'http://admin.invalid');
        path = url.pathname;
        if (consoleRoot !== undefined && isConsolePath(url.pathname)) {
          state.route = 'console';
          const file = await serveConsole(method, url.pathname, consoleRoot);
          status = file.status;
          res.writeHead(file.status, file.headers);
          res.end(file.body);
          return;
        }
        out = await dispatch(req, url, state);
      } catch (e) {
        let headers: Readonly<Record<string, string>> = {};
        let code = 'internal';
        let message = 'internal error; the action was not performed';
        if (e instanceof ApiError) {
          status = e.status;
          code = e.code;
          message = e.message;
          headers = e.headers;
        } else if (isWardenError(e) && e.httpStatus < 500) {
          status = e.httpStatus;
          code = e.code.toLowerCase();
          message = e.message;
        } else if (isWardenError(e)) {
          status = e.httpStatus;
          code = e.code.toLowerCase();
        } else status = 500;
        error = e instanceof Error ? e.message : String(e);
        for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
        out = { status, body: errorBody(code, message), contentType: 'application/json' };
        if (status === 413) res.setHeader('connection', 'close');
      }
      status = out.status;
      res.writeHead(out.status, {
        'content-type': out.contentType.startsWith('application/json')
          ? 'application/json; charset=utf-8'
          : out.contentType,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      res.end(out.body);
      // Unread request bytes (a refused upload) are dropped with the connection.
      if (status === 413) res.once('finish', () => req.destroy());
    } finally {
      const durationMs = Number(process.hrtime.bigint() - t0) / 1e6;
      opts.metrics.apiRequests.inc({ method, route: state.route ?? 'none', status: String(status) });
      try {
        log({
          time: new Date().toISOString(),
          msg: 'admin_api.request',
          method,
          path,
          route: state.route,
          status,
          user: state.identity?.user ?? null,
          via: state.identity?.via ?? null,
          credential: state.identity?.credential ?? null,
          durationMs: Math.round(durationMs * 1000) / 1000,
          ...(error !== undefined ? { error } : {}),
        });
      } catch {
        // A failing log sink must not fail the request.
      }
    }
  }

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  };
  const server =
    opts.tls === undefined
      ? createServer(onRequest)
      : createHttpsServer(
          {
            cert: opts.tls.cert,
            key: opts.tls.key,
            minVersion: 'TLSv1.2',
            ciphers: ADMIN_TLS_CIPHERS,
            honorCipherOrder: true,
          },
          onRequest,
        );
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? DEFAULT_ADMIN_PORT, opts.host ?? DEFAULT_ADMIN_HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        server.closeAllConnections();
      }),
  };
}
