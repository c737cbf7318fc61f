// OIDC JWT verification against static JWKS keys: RS256, ES256 and EdDSA signatures, then iss, aud, exp and nbf.

/**
 * @see https://www.rfc-editor.org/rfc/rfc7519 (JWT), https://www.rfc-editor.org/rfc/rfc7515 (JWS compact form),
 *      https://www.rfc-editor.org/rfc/rfc7517 (JWK sets), https://www.rfc-editor.org/rfc/rfc8037 (EdDSA in JOSE)
 * INVARIANT: the algorithm comes from the key, never only from the token: a header's `alg` must equal the one its key
 * allows, and "none" or HMAC algorithms are never accepted.
 */

import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { WardenError } from '../core/errors.js';

export type JwtAlg = 'RS256' | 'ES256' | 'EdDSA';

export interface JwksKey {
  readonly kid: string | undefined;
  readonly alg: JwtAlg;
  readonly key: KeyObject;
}

export interface OidcSettings {
  readonly issuer: string;
  /** Accepted audiences (the token's `aud` must contain one). */
  readonly audience: readonly string[];
  readonly keys: readonly JwksKey[];
  /** The claim naming the Warden user (default "sub"). */
  readonly userClaim: string;
  /** Allowed clock skew in seconds for exp/nbf (default 60). */
  readonly clockSkewSeconds?: number;
}

export type JwtFailure =
  | 'malformed'
  | 'unsupported-alg'
  | 'unknown-key'
  | 'bad-signature'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'expired'
  | 'not-yet-valid'
  | 'no-user';

export type JwtCheck =
  | { readonly ok: true; readonly user: string; readonly claims: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly reason: JwtFailure };

const MAX_JWT_LENGTH = 16 * 1024;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/** The JOSE algorithm a JWK may be used with; throws CONFIG_INVALID for keys Warden does not accept. */
function algOfJwk(jwk: Record<string, unknown>, at: string): JwtAlg {
  const kty = jwk['kty'];
  const declared = jwk['alg'];
  let alg: JwtAlg;
  if (kty === 'RSA') alg = 'RS256';
  else if (kty === 'EC' && jwk['crv'] === 'P-256') alg = 'ES256';
  else if (kty === 'OKP' && jwk['crv'] === 'Ed25519') alg = 'EdDSA';
  else
    throw new WardenError(
      'CONFIG_INVALID',
      `${at}: unsupported key (kty ${String(kty)}, crv ${String(jwk['crv'])}); use RSA, EC P-256 or OKP Ed25519`,
    );
  if (declared !== undefined && declared !== alg)
    throw new WardenError(
      'CONFIG_INVALID',
      `${at}: alg ${JSON.stringify(declared)} does not fit a ${String(kty)} key (${alg})`,
    );
  if (jwk['use'] !== undefined && jwk['use'] !== 'sig')
    throw new WardenError('CONFIG_INVALID', `${at}: key use is ${JSON.stringify(jwk['use'])}, not "sig"`);
  if ('d' in jwk)
    throw new WardenError('CONFIG_INVALID', `${at}: a private key was given; publish only public keys`);
  return alg;
}

/** Parses a JWK Set (`{ keys: [...] }`). */
export function parseJwks(doc: unknown, where = 'JWKS'): JwksKey[] {
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new WardenError('CONFIG_INVALID', `${where}: expected a non-empty "keys" list`);
  return keys.map((k, i) => {
    const at = `${where}: keys[${i}]`;
    if (typeof k !== 'object' || k === null)
      throw new WardenError('CONFIG_INVALID', `${at}: expected an object`);
    const jwk = k as Record<string, unknown>;
    const alg = algOfJwk(jwk, at);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (e) {
      throw new WardenError('CONFIG_INVALID', `${at}: not a valid public key`, { cause: e });
    }
    if (alg === 'RS256' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048)
      throw new WardenError('CONFIG_INVALID', `${at}: RSA keys must have at least 2048 bits`);
    return { kid: typeof jwk['kid'] === 'string' ? jwk['kid'] : undefined, alg, key };
  });
}

export function loadJwksFile(path: string): JwksKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `cannot read JWKS file ${JSON.stringify(path)} as JSON`, {
      cause: e,
    });
  }
  return parseJwks(doc, `JWKS file ${JSON.stringify(path)}`);
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  if (!B64URL_RE.test(part)) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a bearer value has the shape of a compact JWS (three base64url parts). */
export function looksLikeJwt(token: string): boolean {
  const parts = token.split('.');
  return parts.length === 3 && parts.every((p) => p.length > 0 && B64URL_RE.test(p));
}

function checkSignature(alg: JwtAlg, key: KeyObject, data: Buffer, sig: Buffer): boolean {
  try {
    switch (alg) {
      case 'RS256':
        return verify('sha256', data, key, sig);
      case 'ES256':
        return sig.length === 64 && verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
      case 'EdDSA':
        return sig.length === 64 && verify(null, data, key, sig);
    }
  } catch {
    return false;
  }
}

/** Verifies a compact JWT. Never throws for bad input: the result names the first failed check. */
export function verifyJwt(token: string, s: OidcSettings, now: Date = new Date()): JwtCheck {
  if (token.length > MAX_JWT_LENGTH || !looksLikeJwt(token)) return { ok: false, reason: 'malformed' };
  const [h = '', p = '', sigPart = ''] = token.split('.');
  const header = decodeJson(h);
  const claims = decodeJson(p);
  if (header === undefined || claims === undefined) return { ok: false, reason: 'malformed' };
  const alg = header['alg'];
  if (alg !== 'RS256' && alg !== 'ES256' && alg !== 'EdDSA') return { ok: false, reason: 'unsupported-alg' };
  if (header['crit'] !== undefined) return { ok: false, reason: 'unsupported-alg' };
  const kid = typeof header['kid'] === 'string' ? header['kid'] : undefined;
  const candidates = s.keys.filter((k) => k.alg === alg && (kid === undefined || k.kid === kid));
  if (candidates.length === 0) return { ok: false, reason: 'unknown-key' };
  const data = Buffer.from(`${h}.${p}`, 'ascii');
  const sig = Buffer.from(sigPart, 'base64url');
  if (!candidates.some((k) => checkSignature(alg, k.key, data, sig)))
    return { ok: false, reason: 'bad-signature' };
  // Claims are checked only after the signature: nothing unsigned is trusted.
  if (claims['iss'] !== s.issuer) return { ok: false, reason: 'wrong-issuer' };
  const aud = claims['aud'];
  const auds =
    typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [];
  if (!auds.some((a) => s.audience.includes(a))) return { ok: false, reason: 'wrong-audience' };
  const skew = s.clockSkewSeconds ?? 60;
  const t = now.getTime() / 1000;
  const exp = claims['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp) || t >= exp + skew)
    return { ok: false, reason: 'expired' };
  const nbf = claims['nbf'];
  if (nbf !== undefined && (typeof nbf !== 'number' || t < nbf - skew))
    return { ok: false, reason: 'not-yet-valid' };
  const user = claims[s.userClaim];
  if (typeof user !== 'string' || !/^[^\s\p{Cc}]{1,128}$/u.test(user))
    return { ok: false, reason: 'no-user' };
  return { ok: true, user, claims };
}
