// MySQL client authentication for Warden users: mysql_native_password and caching_sha2_password checks, the fast-auth cache, and the RSA key pair for password exchange without TLS.
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods_native_password_authentication.html
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html

import {
  constants as cryptoConstants,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WardenError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { deriveScramKeys, type ParsedVerifier } from './scram.js';

export const NATIVE_PLUGIN = 'mysql_native_password';
export const CACHING_SHA2_PLUGIN = 'caching_sha2_password';
/** Length of the scramble Warden sends (both plugins use 20 bytes). */
export const SCRAMBLE_LENGTH = 20;

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i % b.length] as number);
  return out;
}

/** A fresh scramble: 20 random bytes in 1..127 without NUL (clients treat it as a C string). */
export function newScramble(): Buffer {
  const b = randomBytes(SCRAMBLE_LENGTH);
  for (let i = 0; i < b.length; i++) b[i] = ((b[i] as number) % 127) + 1;
  return b;
}

/** SHA1(SHA1(password)): what a `mysql_native_hash` in the configuration holds (hex). */
export function nativeHash(password: string): Buffer {
  return sha1(sha1(Buffer.from(password, 'utf8')));
}

/** The configuration form of a native hash: `*` and 40 upper-case hex digits, as MySQL prints it. */
export function formatNativeHash(password: string): string {
  return `*${nativeHash(password).toString('hex').toUpperCase()}`;
}

/** Parses a configured native hash (40 hex digits, optionally prefixed by `*`); throws CONFIG_INVALID. */
export function parseNativeHash(s: string): Buffer {
  const m = /^\*?([0-9A-Fa-f]{40})$/.exec(s);
  if (!m)
    throw new WardenError('CONFIG_INVALID', 'mysql_native_hash must be 40 hex digits (optionally after "*")');
  return Buffer.from(m[1] as string, 'hex');
}

/** The client side of mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). */
export function nativeScramble(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const h1 = sha1(Buffer.from(password, 'utf8'));
  return xor(h1, sha1(scramble, sha1(h1)));
}

/**
 * Checks a mysql_native_password response against the stored SHA1(SHA1(password)), in constant time.
 * `stored` null (unknown user) runs the same computation against random bytes and fails.
 */
export function verifyNative(response: Buffer, scramble: Buffer, stored: Buffer | null): boolean {
  const hash = stored ?? randomBytes(20);
  const resp = response.length === 20 ? response : Buffer.alloc(20);
  const candidate = xor(resp, sha1(scramble, hash));
  return timingSafeEqual(sha1(candidate), hash) && stored !== null && response.length === 20;
}

/** The client side of caching_sha2_password's scramble: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + scramble). */
export function sha2Scramble(password: string, scramble: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const h1 = sha256(Buffer.from(password, 'utf8'));
  return xor(h1, sha256(sha256(h1), scramble));
}

/**
 * Fast authentication: the response against the cached SHA256(SHA256(password)), in constant time.
 * `cached` null (nothing cached, unknown user) runs the same computation and fails.
 */
export function verifySha2Fast(response: Buffer, scramble: Buffer, cached: Buffer | null): boolean {
  const hash = cached ?? randomBytes(32);
  const resp = response.length === 32 ? response : Buffer.alloc(32);
  const candidate = xor(resp, sha256(hash, scramble));
  return timingSafeEqual(sha256(candidate), hash) && cached !== null && response.length === 32;
}

/**
 * Full authentication: the cleartext password against the user's SCRAM-SHA-256 verifier (StoredKey derived
 * with its salt and iterations, compared in constant time). `verifier` null (unknown user) derives against a
 * stand-in with the same cost and fails.
 */
export function verifyCleartext(
  password: string,
  verifier: ParsedVerifier | null,
  standIn: ParsedVerifier,
): boolean {
  const v = verifier ?? standIn;
  let derived: Buffer;
  try {
    derived = deriveScramKeys(password, v.salt, v.iterations).storedKey;
  } catch {
    // A password SASLprep refuses (prohibited characters) cannot match any verifier.
    derived = randomBytes(32);
  }
  return timingSafeEqual(derived, v.storedKey) && verifier !== null;
}

/** SHA256(SHA256(password)): what the fast-auth cache keeps after a successful full authentication. */
export function sha2DoubleHash(password: string): Buffer {
  return sha256(sha256(Buffer.from(password, 'utf8')));
}

/**
 * The caching_sha2_password cache, as MySQL keeps it: in memory only, per user, filled by a successful full
 * authentication. An entry is tied to the user's verifier, so a changed password in the configuration
 * invalidates it.
 */
export class FastAuthCache {
  private readonly entries = new Map<string, { verifier: ParsedVerifier; hash: Buffer }>();
  constructor(private readonly maxEntries = 10_000) {}

  get(user: string, verifier: ParsedVerifier | null): Buffer | null {
    const e = this.entries.get(user);
    if (!e || verifier === null || e.verifier !== verifier) return null;
    return e.hash;
  }

  set(user: string, verifier: ParsedVerifier, hash: Buffer): void {
    if (this.entries.size >= this.maxEntries && !this.entries.has(user)) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(user, { verifier, hash });
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The gateway's RSA key pair for caching_sha2_password without TLS. */
export interface MysqlRsaKeys {
  readonly privateKey: KeyObject;
  /** The public key as PEM (SPKI), sent to clients that ask for it. */
  readonly publicPem: Buffer;
}

/** Reads `<stateDir>/mysql-rsa.key` (PKCS#8 PEM), creating it with mode 0600 when missing. Refuses a readable key. */
export function loadOrCreateRsaKeys(stateDir: string): MysqlRsaKeys {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, 'mysql-rsa.key');
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    try {
      writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    } catch (e) {
      // Another process created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  // readSecret checks the mode on the opened file (no swap between check and read): group/others refused.
  const privateKey = createPrivateKey(readSecret({ file }, 'MySQL RSA key'));
  const publicPem = Buffer.from(
    createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string,
  );
  return { privateKey, publicPem };
}

/**
 * Decrypts a password the client encrypted with the public key (RSA-OAEP, as MySQL 8.0.5+ clients do): the
 * plaintext is (password + NUL) XOR the scramble. Returns null when it does not decrypt.
 */
export function decryptRsaPassword(keys: MysqlRsaKeys, data: Buffer, scramble: Buffer): string | null {
  let plain: Buffer;
  try {
    plain = privateDecrypt({ key: keys.privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING }, data);
  } catch {
    return null;
  }
  const pw = xor(plain, scramble);
  const end = pw.indexOf(0);
  return (end >= 0 ? pw.subarray(0, end) : pw).toString('utf8');
}

/** The client side of the RSA exchange (for the upstream connector and tests). */
export function encryptRsaPassword(publicPem: Buffer | string, password: string, scramble: Buffer): Buffer {
  const plain = xor(Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]), scramble);
  return publicEncrypt({ key: publicPem, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING }, plain);
}
