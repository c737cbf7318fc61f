// DSSE envelopes: pre-authentication encoding, strict JSON envelope parsing, canonical JSON payloads and signature checks.
// @see https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
// @see https://github.com/secure-systems-lab/dsse/blob/master/envelope.md

import { NotCanonicalError, canonicalJsonText } from '../core/canonical-json.js';
import { createHash } from 'node:crypto';
import { BundleError } from './errors.js';
import type { KnownKey, SigningKey } from './keys.js';

/** Envelopes larger than this are refused before parsing. */
export const MAX_ENVELOPE_BYTES = 16 * 1024 * 1024;
/** More signatures than this are refused (bounds verification work). */
export const MAX_SIGNATURES = 64;

export interface DsseSignature {
  /** Unauthenticated hint naming the key (`name+hash`). Never trusted: signatures are matched by public key. */
  readonly keyid: string;
  /** Standard base64 of the 64-byte Ed25519 signature over PAE(payloadType, payload). */
  readonly sig: string;
}

export interface Envelope {
  readonly payloadType: string;
  /** Standard base64 of the payload bytes. */
  readonly payload: string;
  readonly signatures: readonly DsseSignature[];
}

/** PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal bytes. */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}

/** Strict standard base64 (padded, canonical): decoding then re-encoding gives the input back. */
export function decodeBase64(s: string, what: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0)
    throw new BundleError('malformed', `${what} is not base64`);
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw new BundleError('malformed', `${what} is not canonical base64`);
  return b;
}

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) throw new BundleError('malformed', `${what} has an unknown field "${k}"`);
}

/** Parses an envelope from JSON text or bytes. Shape only: no signature is checked here. */
export function parseEnvelope(input: string | Uint8Array): Envelope {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
  if (Buffer.byteLength(text, 'utf8') > MAX_ENVELOPE_BYTES)
    throw new BundleError('malformed', `envelope is larger than ${MAX_ENVELOPE_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new BundleError('malformed', 'envelope is not JSON', { cause: e });
  }
  if (!isObj(v)) throw new BundleError('malformed', 'envelope is not a JSON object');
  onlyKeys(v, ['payloadType', 'payload', 'signatures'], 'envelope');
  const { payloadType, payload, signatures } = v;
  if (typeof payloadType !== 'string' || payloadType === '')
    throw new BundleError('malformed', 'envelope payloadType is missing');
  if (typeof payload !== 'string') throw new BundleError('malformed', 'envelope payload is missing');
  decodeBase64(payload, 'envelope payload');
  if (!Array.isArray(signatures)) throw new BundleError('malformed', 'envelope signatures is not an array');
  if (signatures.length > MAX_SIGNATURES)
    throw new BundleError('malformed', `envelope has more than ${MAX_SIGNATURES} signatures`);
  const sigs: DsseSignature[] = signatures.map((s: unknown, i) => {
    if (!isObj(s)) throw new BundleError('malformed', `signature ${i} is not an object`);
    onlyKeys(s, ['keyid', 'sig'], `signature ${i}`);
    const keyid = s.keyid ?? '';
    if (typeof keyid !== 'string' || typeof s.sig !== 'string')
      throw new BundleError('malformed', `signature ${i} is malformed`);
    decodeBase64(s.sig, `signature ${i}`);
    return { keyid, sig: s.sig };
  });
  return { payloadType, payload, signatures: sigs };
}

/** The envelope as stable, human-readable JSON text (ends with a newline). */
export function serializeEnvelope(env: Envelope): string {
  const out = {
    payloadType: env.payloadType,
    payload: env.payload,
    signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  };
  return JSON.stringify(out, null, 2) + '\n';
}

export function payloadBytes(env: Envelope): Buffer {
  return decodeBase64(env.payload, 'envelope payload');
}

/** A new unsigned envelope. */
export function makeEnvelope(payloadType: string, payload: Uint8Array): Envelope {
  return { payloadType, payload: Buffer.from(payload).toString('base64'), signatures: [] };
}

/** Adds `key`'s signature. Refuses a second signature by the same public key (checked by key, not key id). */
export function signEnvelope(env: Envelope, key: SigningKey): Envelope {
  const msg = pae(env.payloadType, payloadBytes(env));
  const known: KnownKey[] = [key];
  const { valid } = verifySignatures(env, known);
  if (valid.size > 0)
    throw new BundleError('malformed', `the envelope already holds a signature by ${key.name}`);
  const sig = Buffer.from(key.sign(msg)).toString('base64');
  return { ...env, signatures: [...env.signatures, { keyid: key.keyId, sig }] };
}

export interface SignatureCheck {
  /** Distinct public keys (hex) whose signature verifies, with the key. INVARIANT: one entry per public key. */
  readonly valid: ReadonlyMap<string, KnownKey>;
  /** Indexes of signatures that verify under none of the known keys. */
  readonly invalid: readonly number[];
}

/**
 * Checks every signature against the known keys. The key id is only a hint tried first; a signature counts for
 * the public key it verifies under, whatever key id it carries, and each public key counts once.
 */
export function verifySignatures(env: Envelope, keys: readonly KnownKey[]): SignatureCheck {
  const msg = pae(env.payloadType, payloadBytes(env));
  const valid = new Map<string, KnownKey>();
  const invalid: number[] = [];
  env.signatures.forEach((s, i) => {
    const sig = decodeBase64(s.sig, `signature ${i}`);
    const hinted = keys.filter((k) => k.keyId === s.keyid);
    const order = [...hinted, ...keys.filter((k) => k.keyId !== s.keyid)];
    const by = order.find((k) => k.verify(msg, sig));
    if (by === undefined) invalid.push(i);
    else valid.set(by.publicKeyHex, by);
  });
  return { valid, invalid };
}

// ---- canonical JSON ----

/** Canonical JSON: keys sorted by UTF-16 code units, no whitespace, safe integers only. */
export function canonicalJson(value: unknown): Buffer {
  try {
    return Buffer.from(canonicalJsonText(value), 'utf8');
  } catch (e) {
    if (e instanceof NotCanonicalError) throw new BundleError('malformed', e.message);
    throw e;
  }
}

/** Parses canonical JSON bytes; refuses anything that would not re-encode to the same bytes. */
export function parseCanonicalJson(bytes: Uint8Array, what: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new BundleError('malformed', `${what} is not JSON`, { cause: e });
  }
  if (!canonicalJson(v).equals(bytes)) throw new BundleError('malformed', `${what} is not canonical JSON`);
  return v;
}
