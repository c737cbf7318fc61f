// SCRAM-SHA-256 for Warden users: PostgreSQL-format verifiers and a socket-free server-side exchange (no channel binding).
// @see https://www.rfc-editor.org/rfc/rfc5802 (SCRAM)
// @see https://www.rfc-editor.org/rfc/rfc7677 (SCRAM-SHA-256)
// @see https://www.postgresql.org/docs/current/sasl-authentication.html
// @see https://www.postgresql.org/docs/current/catalog-pg-authid.html (verifier format)

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { WardenError } from '../core/errors.js';
import { scramPasswordBytes } from './saslprep.js';

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';
export const DEFAULT_SCRAM_ITERATIONS = 4096;
/** PostgreSQL's default salt length (SCRAM_DEFAULT_SALT_LEN). */
export const DEFAULT_SALT_LENGTH = 16;
/** Raw bytes of a server or client nonce before base64 (PostgreSQL uses 18). */
export const NONCE_BYTES = 18;
/** PostgreSQL stores the iteration count as a C int. */
export const MAX_VERIFIER_ITERATIONS = 2 ** 31 - 1;
/** No legitimate SCRAM message comes near this; a gateway does not believe nonsense. */
export const MAX_SCRAM_MESSAGE_LENGTH = 2048;
const KEY_LENGTH = 32;

/** A stored SCRAM-SHA-256 verifier: enough to check a client's proof, never enough to log in upstream. */
export interface ParsedVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

// ---------------------------------------------------------------------------------------------------------------
// Primitives shared with the upstream client (src/upstream/auth.ts).

export function hmacSha256(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export function xorBuffers(a: Buffer, b: Buffer): Buffer {
  if (a.length !== b.length) throw new WardenError('INTERNAL', 'xor of buffers of different lengths');
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

/** The keys derived from a password: SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3). */
export interface ScramKeys {
  readonly clientKey: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function deriveScramKeys(password: string, salt: Buffer, iterations: number): ScramKeys {
  const salted = pbkdf2Sync(scramPasswordBytes(password), salt, iterations, KEY_LENGTH, 'sha256');
  const clientKey = hmacSha256(salted, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmacSha256(salted, 'Server Key') };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes canonical base64 only (padding required, no whitespace, zero pad bits); null otherwise. */
export function decodeBase64Strict(s: string): Buffer | null {
  if (!BASE64.test(s)) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

/** A fresh random nonce: printable, comma-free (base64 of NONCE_BYTES random bytes). */
export function randomNonce(): string {
  return randomBytes(NONCE_BYTES).toString('base64');
}

/** RFC 5802 `printable`: %x21-2B / %x2D-7E, at least one. */
export const NONCE_PATTERN = /^[\x21-\x2b\x2d-\x7e]+$/;

/** One `a=value` attribute of a SCRAM message. */
export interface ScramAttribute {
  readonly name: string;
  readonly value: string;
}

/**
 * Splits a SCRAM message into attributes. Every part must be `ALPHA "=" value`; the message must not contain
 * NUL. Empty values are allowed here; callers check each attribute they use.
 */
export function splitAttributes(message: string, what: string): ScramAttribute[] {
  if (message.includes('\0')) throw violation(`${what} contains a NUL character`);
  return message.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) throw violation(`${what} has a malformed attribute`);
    return { name: part.charAt(0), value: part.slice(2) };
  });
}

export function violation(message: string): WardenError {
  return new WardenError('PROTOCOL_VIOLATION', `malformed SCRAM message: ${message}`);
}

/** Extensions after the known attributes must be well formed (`ALPHA "=" 1*value-char`) and are ignored (RFC 5802 §5.1). */
export function checkExtensions(attrs: readonly ScramAttribute[], reserved: string, what: string): void {
  for (const a of attrs) {
    if (a.value.length === 0) throw violation(`${what} has an empty extension attribute`);
    if (reserved.includes(a.name)) throw violation(`${what} repeats or misplaces attribute '${a.name}'`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Verifiers.

function checkIterations(iterations: number, max: number, what: string): void {
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > max) {
    throw new WardenError(
      'CONFIG_INVALID',
      `${what}: iteration count must be an integer between 1 and ${max}`,
    );
  }
}

export function formatVerifier(v: ParsedVerifier): string {
  return (
    `${SCRAM_MECHANISM}$${v.iterations}:${v.salt.toString('base64')}` +
    `$${v.storedKey.toString('base64')}:${v.serverKey.toString('base64')}`
  );
}

/**
 * Builds a verifier in PostgreSQL's pg_authid format:
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64), with PostgreSQL's SASLprep handling.
 */
export function createVerifier(password: string, opts?: { iterations?: number; salt?: Buffer }): string {
  const iterations = opts?.iterations ?? DEFAULT_SCRAM_ITERATIONS;
  checkIterations(iterations, MAX_VERIFIER_ITERATIONS, 'createVerifier');
  const salt = opts?.salt ?? randomBytes(DEFAULT_SALT_LENGTH);
  if (salt.length === 0)
    throw new WardenError('CONFIG_INVALID', 'createVerifier: the salt must not be empty');
  const { storedKey, serverKey } = deriveScramKeys(password, salt, iterations);
  return formatVerifier({ iterations, salt, storedKey, serverKey });
}

const VERIFIER = /^SCRAM-SHA-256\$([1-9][0-9]{0,9}):([^$:]+)\$([^$:]+):([^$:]+)$/;

/**
 * Parses a stored verifier strictly. Throws WardenError('CONFIG_INVALID') on anything else.
 * INVARIANT: error messages never repeat the verifier (it permits an offline dictionary attack).
 */
export function parseVerifier(s: string): ParsedVerifier {
  const bad = (why: string): WardenError =>
    new WardenError('CONFIG_INVALID', `invalid SCRAM-SHA-256 verifier: ${why}`);
  if (typeof s !== 'string') throw bad('not a string');
  const m = VERIFIER.exec(s);
  if (m === null) throw bad(`expected ${SCRAM_MECHANISM}$<iterations>:<salt>$<StoredKey>:<ServerKey>`);
  const iterations = Number(m[1]);
  if (iterations > MAX_VERIFIER_ITERATIONS) throw bad('iteration count too large');
  const salt = decodeBase64Strict(m[2] ?? '');
  if (salt === null || salt.length === 0) throw bad('salt is not canonical base64');
  const storedKey = decodeBase64Strict(m[3] ?? '');
  if (storedKey === null || storedKey.length !== KEY_LENGTH) throw bad('StoredKey is not 32 bytes of base64');
  const serverKey = decodeBase64Strict(m[4] ?? '');
  if (serverKey === null || serverKey.length !== KEY_LENGTH) throw bad('ServerKey is not 32 bytes of base64');
  return { iterations, salt, storedKey, serverKey };
}

// ---------------------------------------------------------------------------------------------------------------
// Server side of the exchange.

/** The salt shown for an unknown user: stable per user name, unpredictable without the key. */
export function fakeSalt(fakeSaltKey: Buffer, username: string): Buffer {
  return hmacSha256(fakeSaltKey, Buffer.from(username, 'utf8')).subarray(0, DEFAULT_SALT_LENGTH);
}

export interface ScramServerOptions {
  /** Secret key (>= 16 bytes) from which salts for unknown users are derived. */
  readonly fakeSaltKey: Buffer;
  /** The user name from the startup message (SCRAM's own n= is ignored, as PostgreSQL does). */
  readonly username: string;
  /** Iteration count shown for unknown users; should match the verifiers' usual count (default 4096). */
  readonly iterations?: number;
  /** Server nonce; for tests only (default: 18 random bytes, base64). */
  readonly nonce?: string;
}

export type ScramFinalResult = { readonly ok: true; readonly serverFinal: string } | { readonly ok: false };

type ServerState =
  | { readonly step: 'awaiting-client-first' }
  | {
      readonly step: 'awaiting-client-final';
      readonly cbind: string;
      readonly nonce: string;
      readonly clientFirstBare: string;
      readonly serverFirst: string;
    }
  | { readonly step: 'done' };

/**
 * One SCRAM-SHA-256 exchange, server side: clientFirst → server-first, clientFinal → verdict.
 *
 * INVARIANT: for an unknown user (verifier null) the exchange runs in full against a mock verifier with a salt
 * derived from HMAC(fakeSaltKey, username), and fails at the proof, exactly as a known user with a wrong
 * password would; the messages, their shapes and the work done do not reveal whether the user exists.
 * INVARIANT: a malformed message throws WardenError('PROTOCOL_VIOLATION') and ends the session; calls out of
 * order throw the same.
 */
export class ScramServerSession {
  readonly #verifier: ParsedVerifier;
  readonly #doomed: boolean;
  readonly #serverNonce: string;
  #state: ServerState = { step: 'awaiting-client-first' };

  constructor(verifier: ParsedVerifier | null, opts: ScramServerOptions) {
    if (opts.fakeSaltKey.length < 16) {
      throw new WardenError('CONFIG_INVALID', 'the SCRAM fake salt key must be at least 16 bytes');
    }
    const nonce = opts.nonce ?? randomNonce();
    if (!NONCE_PATTERN.test(nonce)) throw new WardenError('INTERNAL', 'server nonce is not printable');
    this.#serverNonce = nonce;
    if (verifier === null) {
      const iterations = opts.iterations ?? DEFAULT_SCRAM_ITERATIONS;
      checkIterations(iterations, MAX_VERIFIER_ITERATIONS, 'ScramServerSession');
      this.#verifier = {
        iterations,
        salt: fakeSalt(opts.fakeSaltKey, opts.username),
        storedKey: randomBytes(KEY_LENGTH),
        serverKey: randomBytes(KEY_LENGTH),
      };
      this.#doomed = true;
    } else {
      this.#verifier = verifier;
      this.#doomed = false;
    }
  }

  /** Takes the client-first-message, returns the server-first-message. */
  clientFirst(message: string): string {
    if (this.#state.step !== 'awaiting-client-first') throw this.#fail('client-first-message out of order');
    try {
      const { cbind, bare, clientNonce } = parseClientFirst(message);
      const nonce = clientNonce + this.#serverNonce;
      const serverFirst = `r=${nonce},s=${this.#verifier.salt.toString('base64')},i=${this.#verifier.iterations}`;
      this.#state = { step: 'awaiting-client-final', cbind, nonce, clientFirstBare: bare, serverFirst };
      return serverFirst;
    } catch (e) {
      this.#state = { step: 'done' };
      throw e;
    }
  }

  /** Takes the client-final-message; on success returns the server-final-message to send. */
  clientFinal(message: string): ScramFinalResult {
    const st = this.#state;
    if (st.step !== 'awaiting-client-final') throw this.#fail('client-final-message out of order');
    this.#state = { step: 'done' };
    const { withoutProof, proof } = parseClientFinal(message, st.cbind, st.nonce);
    const authMessage = `${st.clientFirstBare},${st.serverFirst},${withoutProof}`;
    const clientSignature = hmacSha256(this.#verifier.storedKey, authMessage);
    const clientKey = xorBuffers(proof, clientSignature);
    // INVARIANT: the proof is compared in constant time, and the comparison runs for unknown users too.
    const matches = timingSafeEqual(sha256(clientKey), this.#verifier.storedKey);
    if (!matches || this.#doomed) return { ok: false };
    const serverSignature = hmacSha256(this.#verifier.serverKey, authMessage);
    return { ok: true, serverFinal: `v=${serverSignature.toString('base64')}` };
  }

  #fail(message: string): WardenError {
    this.#state = { step: 'done' };
    return new WardenError('PROTOCOL_VIOLATION', message);
  }
}

/** saslname: any UTF-8 except NUL and ',', with '=' only as =2C or =3D (empty allowed: libpq sends `n=`). */
const SASLNAME = /^(?:[^,=\0]|=2C|=3D)*$/;

function checkLength(message: string, what: string): void {
  if (typeof message !== 'string') throw violation(`${what} is not a string`);
  if (message.length > MAX_SCRAM_MESSAGE_LENGTH) throw violation(`${what} is too long`);
}

/**
 * client-first-message = gs2-header client-first-message-bare, where gs2-header is `n,,` or `y,,`
 * (no authzid; `p=` is refused because only SCRAM-SHA-256, without channel binding, is offered).
 */
function parseClientFirst(message: string): { cbind: string; bare: string; clientNonce: string } {
  checkLength(message, 'client-first-message');
  if (message.startsWith('p=') || message.startsWith('p,')) {
    throw violation('the client selected channel binding, but only SCRAM-SHA-256 without it was offered');
  }
  let cbind: string;
  if (message.startsWith('n,,')) cbind = 'n,,';
  else if (message.startsWith('y,,')) cbind = 'y,,';
  else if (/^[ny],[^,]/.test(message)) throw violation('authorization identities are not supported');
  else throw violation('client-first-message must start with "n,," or "y,,"');
  const bare = message.slice(cbind.length);
  const attrs = splitAttributes(bare, 'client-first-message');
  const [user, nonce, ...extensions] = attrs;
  if (user?.name === 'm') throw violation('the client requires an unsupported SCRAM extension');
  if (user?.name !== 'n' || !SASLNAME.test(user.value)) throw violation('expected a user name attribute');
  if (nonce?.name !== 'r' || !NONCE_PATTERN.test(nonce.value)) throw violation('expected a printable nonce');
  checkExtensions(extensions, 'mnr', 'client-first-message');
  return { cbind, bare, clientNonce: nonce.value };
}

/** client-final-message = `c=<base64 gs2-header>,r=<nonce>[,extensions],p=<base64 proof>`. */
function parseClientFinal(
  message: string,
  cbind: string,
  expectedNonce: string,
): { withoutProof: string; proof: Buffer } {
  checkLength(message, 'client-final-message');
  const attrs = splitAttributes(message, 'client-final-message');
  const c = attrs[0];
  const r = attrs[1];
  const p = attrs[attrs.length - 1];
  if (attrs.length < 3 || c?.name !== 'c' || r?.name !== 'r' || p?.name !== 'p') {
    throw violation('client-final-message must be c=...,r=...,p=...');
  }
  // INVARIANT: the channel-binding attribute echoes the gs2 header of client-first exactly (biws / eSws).
  if (c.value !== Buffer.from(cbind, 'utf8').toString('base64')) {
    throw violation('channel binding data does not match the client-first-message');
  }
  if (r.value !== expectedNonce) throw violation('nonce does not match');
  checkExtensions(attrs.slice(2, -1), 'cnpm', 'client-final-message');
  const proof = decodeBase64Strict(p.value);
  if (proof === null || proof.length !== KEY_LENGTH) throw violation('proof is not 32 bytes of base64');
  return { withoutProof: message.slice(0, message.length - p.value.length - 3), proof };
}
