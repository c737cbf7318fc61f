// Ed25519 key handling over node:crypto, plus the public-key acceptance check (canonical, on-curve, prime order) node:crypto lacks.
// @see https://www.rfc-editor.org/rfc/rfc8032#section-5.1.3 (point decoding)
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/** A public key that must not be enrolled: malformed, non-canonical, low order or with a low-order component. */
export class UnacceptableKeyError extends Error {
  readonly code = 'AUDIT_KEY_UNACCEPTABLE';
  constructor(message: string) {
    super(message);
    this.name = 'UnacceptableKeyError';
  }
}

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a: bigint): bigint => {
  const r = a % P;
  return r < 0n ? r + P : r;
};
function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = mod(b);
  while (e > 0n) {
    if (e & 1n) r = (r * x) % P;
    x = (x * x) % P;
    e >>= 1n;
  }
  return r;
}
const inv = (a: bigint): bigint => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));
const D2 = mod(2n * D);
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

/** Extended twisted Edwards coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z. */
type Point = readonly [bigint, bigint, bigint, bigint];
const IDENTITY: Point = [0n, 1n, 1n, 0n];

// add-2008-hwcd-3 for a = -1: complete on Ed25519, so it also doubles.
function add(p: Point, q: Point): Point {
  const [X1, Y1, Z1, T1] = p;
  const [X2, Y2, Z2, T2] = q;
  const A = mod((Y1 - X1) * (Y2 - X2));
  const B = mod((Y1 + X1) * (Y2 + X2));
  const C = mod(T1 * D2 * T2);
  const Dd = mod(Z1 * 2n * Z2);
  const E = B - A;
  const F = Dd - C;
  const G = Dd + C;
  const H = B + A;
  return [mod(E * F), mod(G * H), mod(F * G), mod(E * H)];
}

function mul(p: Point, k: bigint): Point {
  let r = IDENTITY;
  let q = p;
  while (k > 0n) {
    if (k & 1n) r = add(r, q);
    q = add(q, q);
    k >>= 1n;
  }
  return r;
}

const isIdentity = (p: Point): boolean => mod(p[0]) === 0n && mod(p[1] - p[2]) === 0n;

/** RFC 8032 §5.1.3 decoding, refusing non-canonical encodings (y >= p, or x = 0 with the sign bit set). */
function decodePoint(raw: Uint8Array): Point {
  if (raw.length !== 32) throw new UnacceptableKeyError(`Ed25519 public key is ${raw.length} bytes, not 32`);
  const bytes = Uint8Array.from(raw);
  const sign = (bytes[31]! & 0x80) !== 0;
  bytes[31]! &= 0x7f;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(bytes[i]!);
  if (y >= P) throw new UnacceptableKeyError('Ed25519 public key is not canonically encoded (y >= p)');
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === u) {
    // x is a root
  } else if (vx2 === mod(-u)) {
    x = mod(x * SQRT_M1);
  } else {
    throw new UnacceptableKeyError('Ed25519 public key is not a point on the curve');
  }
  if (x === 0n && sign)
    throw new UnacceptableKeyError('Ed25519 public key is not canonically encoded (x = 0, sign 1)');
  if ((x & 1n) !== (sign ? 1n : 0n)) x = P - x;
  return [x, y, 1n, mod(x * y)];
}

/**
 * Refuses an Ed25519 public key that is malformed, non-canonical, of low order (8A = identity) or not in
 * the prime-order subgroup (LA != identity, i.e. it has a low-order component). node:crypto accepts
 * signatures under such keys; honest key generation never produces them. Use at key enrollment.
 */
export function assertAcceptablePublicKey(raw: Uint8Array): void {
  const a = decodePoint(raw);
  if (isIdentity(mul(a, 8n))) throw new UnacceptableKeyError('Ed25519 public key has low order');
  if (!isIdentity(mul(a, L))) throw new UnacceptableKeyError('Ed25519 public key has a low-order component');
}

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A node:crypto private key from a 32-byte RFC 8032 seed. */
export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new UnacceptableKeyError('Ed25519 seed is not 32 bytes');
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** A node:crypto public key from 32 raw bytes, after `assertAcceptablePublicKey`. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  assertAcceptablePublicKey(raw);
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });
}

/** The raw 32-byte public key of a private or public Ed25519 key. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string')
    throw new UnacceptableKeyError('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

export function generateSeed(): Uint8Array {
  return randomBytes(32);
}

export function ed25519Sign(key: KeyObject, message: Uint8Array): Uint8Array {
  return sign(null, message, key);
}

export function ed25519Verify(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
