// C2SP signed-note: Ed25519 key encoding (Go sumdb note format), key ids, signing and strict opening of notes.
// @see https://github.com/C2SP/C2SP/blob/main/signed-note.md
import { createHash } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import {
  ed25519Sign,
  ed25519Verify,
  generateSeed,
  privateKeyFromSeed,
  publicKeyFromRaw,
  rawPublicKey,
} from './ed25519.js';

/** Signature type byte of Ed25519 signed-note keys. */
export const ALG_ED25519 = 0x01;
/** The em dash and space that open every signature line. */
const SIG_PREFIX = '\u2014 ';
/** Notes larger than this are refused before parsing. */
export const MAX_NOTE_BYTES = 1 << 20;
const MAX_SIGNATURES = 100;

/** A malformed note or key, or a note no known key verifies. Callers test `code` and `reason`. */
export class NoteError extends Error {
  readonly code = 'AUDIT_NOTE_INVALID';
  readonly reason: 'malformed' | 'bad-key' | 'invalid-signature' | 'unverified' | 'duplicate' | 'ambiguous';
  constructor(reason: NoteError['reason'], message: string) {
    super(message);
    this.name = 'NoteError';
    this.reason = reason;
  }
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** Signature bytes that follow the 4-byte key id on the signature line. */
  sign(text: Uint8Array): Uint8Array;
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** Signature bytes after the key id. */
  readonly signature: Uint8Array;
}

export interface OpenedNote {
  readonly text: string;
  /** Signatures by known verifiers, all valid. */
  readonly signatures: readonly NoteSignature[];
  /** Signatures by keys not in the verifier set (ignored for trust). */
  readonly unverified: readonly NoteSignature[];
}

/** True if the string has no lone surrogate (so it encodes to UTF-8 and back unchanged). */
export function isWellFormedString(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** C2SP key names: non-empty, valid Unicode, no '+' and no whitespace. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && isWellFormedString(name) && !/[+\s]/u.test(name);
}

/** Key id: first 4 bytes (big-endian uint32) of SHA-256(name || 0x0A || type || public key). */
export function computeKeyId(name: string, alg: number, publicKey: Uint8Array): number {
  const h = createHash('sha256').update(name, 'utf8').update(Buffer.of(0x0a, alg)).update(publicKey).digest();
  return h.readUInt32BE(0);
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/** Strict standard base64 (padded, canonical): decode then re-encode must give the input back. */
export function decodeBase64Strict(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

/** Splits `name+hash+base64` (the base64 itself may hold '+'). */
function parseKeyParts(
  s: string,
  what: string,
): { name: string; keyId: number; alg: number; key: Uint8Array } {
  const a = s.indexOf('+');
  const b = a < 0 ? -1 : s.indexOf('+', a + 1);
  if (b < 0) throw new NoteError('bad-key', `malformed ${what}`);
  const name = s.slice(0, a);
  const idHex = s.slice(a + 1, b);
  const b64 = s.slice(b + 1);
  if (!isValidKeyName(name)) throw new NoteError('bad-key', `${what} has an invalid name`);
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new NoteError('bad-key', `${what} has a malformed key id`);
  const raw = decodeBase64Strict(b64);
  if (raw === undefined || raw.length < 1) throw new NoteError('bad-key', `${what} has malformed base64`);
  return { name, keyId: parseInt(idHex, 16), alg: raw[0]!, key: raw.subarray(1) };
}

/** An Ed25519 note signer, with the public half for building verifiers. */
export interface Ed25519NoteSigner extends NoteSigner {
  readonly publicKey: Uint8Array;
  /** The verifier key string `name+hash+base64`. */
  readonly verifierKey: string;
}

function makeSigner(name: string, key: KeyObject): Ed25519NoteSigner {
  const publicKey = rawPublicKey(key);
  const keyId = computeKeyId(name, ALG_ED25519, publicKey);
  return {
    name,
    keyId,
    publicKey,
    verifierKey: `${name}+${hex8(keyId)}+${Buffer.concat([Buffer.of(ALG_ED25519), publicKey]).toString('base64')}`,
    sign: (text) => ed25519Sign(key, text),
  };
}

/** Parses `PRIVATE+KEY+name+hash+base64(0x01 || seed)`. The key id must match the derived public key. */
export function parseSignerKey(skey: string): Ed25519NoteSigner {
  if (!skey.startsWith('PRIVATE+KEY+')) throw new NoteError('bad-key', 'malformed signer key');
  const { name, keyId, alg, key } = parseKeyParts(skey.slice('PRIVATE+KEY+'.length), 'signer key');
  if (alg !== ALG_ED25519 || key.length !== 32) throw new NoteError('bad-key', 'signer key is not Ed25519');
  const signer = makeSigner(name, privateKeyFromSeed(key));
  if (signer.keyId !== keyId) throw new NoteError('bad-key', 'signer key id does not match its key');
  return signer;
}

/** Parses `name+hash+base64(0x01 || pubkey)`; refuses malformed, low-order or mismatched keys. */
export function parseVerifierKey(vkey: string): NoteVerifier & { readonly publicKey: Uint8Array } {
  const { name, keyId, alg, key } = parseKeyParts(vkey, 'verifier key');
  if (alg !== ALG_ED25519 || key.length !== 32) throw new NoteError('bad-key', 'verifier key is not Ed25519');
  if (computeKeyId(name, alg, key) !== keyId)
    throw new NoteError('bad-key', 'verifier key id does not match its key');
  let pub: KeyObject;
  try {
    pub = publicKeyFromRaw(key);
  } catch (e) {
    throw new NoteError('bad-key', `verifier key refused: ${(e as Error).message}`);
  }
  const publicKey = Uint8Array.from(key);
  return { name, keyId, publicKey, verify: (text, sig) => ed25519Verify(pub, text, sig) };
}

/** Generates a new Ed25519 signer key; returns both encodings. The signer key string is a secret. */
export function generateSignerKey(name: string): { skey: string; vkey: string } {
  if (!isValidKeyName(name)) throw new NoteError('bad-key', 'invalid key name');
  const seed = generateSeed();
  const signer = makeSigner(name, privateKeyFromSeed(seed));
  const skey = `PRIVATE+KEY+${name}+${hex8(signer.keyId)}+${Buffer.concat([Buffer.of(ALG_ED25519), seed]).toString('base64')}`;
  return { skey, vkey: signer.verifierKey };
}

// INVARIANT: note text is valid UTF-8, non-empty, ends in '\n', and holds no ASCII control character but '\n'.
function assertValidText(text: string): void {
  if (text.length === 0 || !text.endsWith('\n'))
    throw new NoteError('malformed', 'note text must end with a newline');
  if (!isWellFormedString(text)) throw new NoteError('malformed', 'note text is not valid Unicode');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text))
    throw new NoteError('malformed', 'note text has a control character');
}

function signatureLine(name: string, keyId: number, sig: Uint8Array): string {
  const b = Buffer.alloc(4 + sig.length);
  b.writeUInt32BE(keyId, 0);
  b.set(sig, 4);
  return `${SIG_PREFIX}${name} ${b.toString('base64')}\n`;
}

/** Signs `text` with each signer: text, a blank line, then one signature line per signer. */
export function signNote(text: string, signers: readonly NoteSigner[]): Uint8Array {
  assertValidText(text);
  if (signers.length === 0) throw new NoteError('malformed', 'no signers');
  const msg = Buffer.from(text, 'utf8');
  let out = text + '\n';
  const seen = new Set<string>();
  for (const s of signers) {
    const k = `${s.name}+${s.keyId}`;
    if (seen.has(k)) throw new NoteError('duplicate', `signer ${s.name} given twice`);
    seen.add(k);
    out += signatureLine(s.name, s.keyId, s.sign(msg));
  }
  return Buffer.from(out, 'utf8');
}

/** Appends signature lines (e.g. cosignatures) to an already signed note, without re-checking it. */
export function addSignatures(note: Uint8Array, lines: readonly NoteSignature[]): Uint8Array {
  let out = Buffer.from(note).toString('utf8');
  for (const l of lines) out += signatureLine(l.name, l.keyId, l.signature);
  return Buffer.from(out, 'utf8');
}

/**
 * Opens a signed note strictly: valid UTF-8 without control characters, text ending in a newline, a blank
 * line, then well-formed `— name base64` lines. Signatures from unknown keys are kept aside; a known key's
 * signature that fails, a repeated signature or an ambiguous verifier set is an error; at least one known
 * verifier must have signed.
 */
export function openNote(bytes: Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  if (bytes.length > MAX_NOTE_BYTES) throw new NoteError('malformed', 'note is too large');
  let msg: string;
  try {
    msg = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new NoteError('malformed', 'note is not valid UTF-8');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(msg))
    throw new NoteError('malformed', 'note has a control character');
  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed', 'note has no signature block');
  const text = msg.slice(0, split + 1);
  let sigs = msg.slice(split + 2);
  if (sigs.length === 0 || !sigs.endsWith('\n'))
    throw new NoteError('malformed', 'signature block must end with a newline');
  const textBytes = Buffer.from(text, 'utf8');
  const signatures: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seen = new Set<string>();
  let count = 0;
  while (sigs.length > 0) {
    const nl = sigs.indexOf('\n');
    const line = sigs.slice(0, nl);
    sigs = sigs.slice(nl + 1);
    if (++count > MAX_SIGNATURES) throw new NoteError('malformed', 'too many signatures');
    if (!line.startsWith(SIG_PREFIX))
      throw new NoteError('malformed', 'signature line does not start with "— "');
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(' ');
    if (sp < 0) throw new NoteError('malformed', 'signature line has no key name');
    const name = rest.slice(0, sp);
    const raw = decodeBase64Strict(rest.slice(sp + 1));
    if (!isValidKeyName(name) || raw === undefined || raw.length < 5) {
      throw new NoteError('malformed', 'malformed signature line');
    }
    const keyId = Buffer.from(raw).readUInt32BE(0);
    const sig: NoteSignature = { name, keyId, signature: raw.subarray(4) };
    const k = `${name}+${keyId}`;
    if (seen.has(k)) throw new NoteError('duplicate', `two signatures by ${name}`);
    seen.add(k);
    const matches = verifiers.filter((v) => v.name === name && v.keyId === keyId);
    if (matches.length > 1) throw new NoteError('ambiguous', `several verifiers for ${name}`);
    const v = matches[0];
    if (v === undefined) {
      unverified.push(sig);
      continue;
    }
    if (!v.verify(textBytes, sig.signature))
      throw new NoteError('invalid-signature', `invalid signature by ${name}`);
    signatures.push(sig);
  }
  if (signatures.length === 0) throw new NoteError('unverified', 'no signature by a known key');
  return { text, signatures, unverified };
}
