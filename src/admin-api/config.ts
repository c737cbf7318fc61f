// The `admin_api` configuration section: listen address, token file, OIDC issuer and keys; separation of duties checked at load.

/**
 * Proposed section of the gateway configuration (YAML):
 *
 *   admin_api:
 *     listen: { host: 127.0.0.1, port: 18432 }
 *     tokens_file: /etc/warden/api-tokens.yaml     # { tokens: [{ id, user, hash: "sha256:<hex>", roles, expires }] }
 *     tls: { cert_file: api.crt, key_file: api.key } # optional: HTTPS only (TLS 1.2+); the key file must be 0600
 *     oidc:                                        # optional
 *       issuer: https://login.example.com/
 *       audience: warden                           # or a list
 *       jwks_file: /etc/warden/oidc-jwks.json      # static JWK Set, no network fetch
 *       user_claim: preferred_username             # default "sub"
 *       clock_skew_seconds: 60
 *       roles: { alice: [viewer, auditor], bob: [approver] }
 *
 * Relative paths resolve against `baseDir` (the configuration file's folder).
 */

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { WardenError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { loadJwksFile } from './jwt.js';
import { assertSeparation, isApiRole, type ApiRole } from './roles.js';
import {
  DEFAULT_ADMIN_HOST,
  DEFAULT_ADMIN_PORT,
  type AdminOidcOptions,
  type AdminTlsOptions,
} from './server.js';
import { loadTokenFile, type ApiTokenRecord } from './tokens.js';

export interface AdminApiConfig {
  readonly host: string;
  readonly port: number;
  readonly tokens: readonly ApiTokenRecord[];
  readonly oidc?: AdminOidcOptions;
  /** Serve HTTPS with this certificate chain and key (read at load; the key with readSecret). */
  readonly tls?: AdminTlsOptions;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(path: string, message: string): never {
  throw new WardenError('CONFIG_INVALID', `admin_api${path}: ${message}`);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(path, `unknown field ${JSON.stringify(k)}`);
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(path, 'must be a non-empty string');
  return v;
}

function roleList(v: unknown, path: string): ApiRole[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every(isApiRole))
    fail(path, 'must be a non-empty list of viewer, approver, auditor, operator');
  return [...new Set(v)];
}

/**
 * Parses and loads the section (reads the token file and the JWKS file). Throws CONFIG_INVALID naming the field,
 * including when one user would hold both operator and approver across tokens and OIDC roles.
 */
export function loadAdminApiConfig(raw: unknown, baseDir: string): AdminApiConfig {
  if (!isObj(raw)) fail('', 'must be a mapping');
  onlyKeys(raw, ['listen', 'tokens_file', 'oidc', 'tls'], '');
  let host = DEFAULT_ADMIN_HOST;
  let port = DEFAULT_ADMIN_PORT;
  if (raw['listen'] !== undefined) {
    const l = raw['listen'];
    if (!isObj(l)) fail('.listen', 'must be { host, port }');
    onlyKeys(l, ['host', 'port'], '.listen');
    if (l['host'] !== undefined) host = str(l['host'], '.listen.host');
    if (l['port'] !== undefined) {
      const p = l['port'];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 65535)
        fail('.listen.port', 'must be an integer 0..65535');
      port = p;
    }
  }
  const file = (v: unknown, path: string): string => {
    const s = str(v, path);
    return isAbsolute(s) ? s : resolve(baseDir, s);
  };
  const tokens =
    raw['tokens_file'] === undefined ? [] : loadTokenFile(file(raw['tokens_file'], '.tokens_file'));
  let oidc: AdminOidcOptions | undefined;
  if (raw['oidc'] !== undefined) {
    const o = raw['oidc'];
    if (!isObj(o)) fail('.oidc', 'must be a mapping');
    onlyKeys(o, ['issuer', 'audience', 'jwks_file', 'user_claim', 'clock_skew_seconds', 'roles'], '.oidc');
    const aud = o['audience'];
    const audience = Array.isArray(aud)
      ? aud.map((a, i) => str(a, `.oidc.audience[${i}]`))
      : [str(aud, '.oidc.audience')];
    if (audience.length === 0) fail('.oidc.audience', 'must not be empty');
    const skew = o['clock_skew_seconds'];
    if (skew !== undefined && (typeof skew !== 'number' || !Number.isInteger(skew) || skew < 0 || skew > 600))
      fail('.oidc.clock_skew_seconds', 'must be an integer 0..600');
    const rolesRaw = o['roles'] ?? {};
    if (!isObj(rolesRaw)) fail('.oidc.roles', 'must map user names to role lists');
    const userRoles: Record<string, readonly ApiRole[]> = {};
    for (const [user, roles] of Object.entries(rolesRaw))
      userRoles[user] = roleList(roles, `.oidc.roles.${user}`);
    oidc = {
      issuer: str(o['issuer'], '.oidc.issuer'),
      audience,
      keys: loadJwksFile(file(o['jwks_file'], '.oidc.jwks_file')),
      userClaim: o['user_claim'] === undefined ? 'sub' : str(o['user_claim'], '.oidc.user_claim'),
      ...(typeof skew === 'number' ? { clockSkewSeconds: skew } : {}),
      userRoles,
    };
  }
  let tls: AdminTlsOptions | undefined;
  if (raw['tls'] !== undefined) {
    const t = raw['tls'];
    if (!isObj(t)) fail('.tls', 'must be { cert_file, key_file }');
    onlyKeys(t, ['cert_file', 'key_file'], '.tls');
    const certFile = file(t['cert_file'], '.tls.cert_file');
    let cert: Buffer;
    try {
      cert = readFileSync(certFile);
    } catch (e) {
      throw new WardenError(
        'CONFIG_INVALID',
        `admin_api.tls.cert_file: cannot read ${JSON.stringify(certFile)}`,
        {
          cause: e,
        },
      );
    }
    tls = { cert, key: readSecret({ file: file(t['key_file'], '.tls.key_file') }, 'admin_api.tls.key_file') };
  }
  if (tokens.length === 0 && oidc === undefined)
    fail('', 'configure tokens_file or oidc: the API has no way to authenticate anyone');
  assertSeparation([
    ...tokens.map((t) => ({ user: t.user, roles: t.roles, source: `token ${t.id}` })),
    ...Object.entries(oidc?.userRoles ?? {}).map(([user, roles]) => ({ user, roles, source: 'oidc.roles' })),
  ]);
  return { host, port, tokens, ...(oidc ? { oidc } : {}), ...(tls ? { tls } : {}) };
}
