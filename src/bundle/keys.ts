// Approver and author keys: Ed25519 in the C2SP signed-note key encoding, refused at enrollment if malformed or low order.
// @see https://github.com/C2SP/C2SP/blob/main/signed-note.md#signatures (key encoding, key id)

import { assertAcceptablePublicKey } from '../audit/ed25519.js';
import { generateSignerKey, parseSignerKey, parseVerifierKey } from '../audit/note.js';
import { BundleError } from './errors.js';

/** A public key that may verify signatures. */
export interface KnownKey {
  readonly name: string;
  /** The DSSE key id hint, `name+hash` (hash = signed-note key id, 8 hex digits). */
  readonly keyId: string;
  /** The encoded verifier key `name+hash+base64(0x01 || key)`. */
  readonly encoded: string;
  readonly publicKey: Uint8Array;
  /** Hex of the 32 raw public key bytes: the identity signatures are counted by. */
  readonly publicKeyHex: string;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

/** A private key that signs. The secret seed never leaves the closure. */
export interface SigningKey extends KnownKey {
  sign(message: Uint8Array): Uint8Array;
}

/** Keys already accepted (the curve checks cost milliseconds); a key that passed once always passes. */
const ENROLLED = new Map<string, KnownKey>();

const hintOf = (encoded: string): string => encoded.split('+').slice(0, 2).join('+');

/**
 * Parses and enrolls a verifier key `name+hash+base64(0x01 || key)`.
 * INVARIANT: malformed, non-canonical, low-order and mixed-order keys are refused here, before any use.
 */
export function parsePublicKey(encoded: string): KnownKey {
  const text = encoded.trim();
  const cached = ENROLLED.get(text);
  if (cached !== undefined) return cached;
  let parsed: ReturnType<typeof parseVerifierKey>;
  try {
    // parseVerifierKey checks the encoding and key id; the explicit check below is the enrollment gate.
    parsed = parseVerifierKey(text);
    assertAcceptablePublicKey(parsed.publicKey);
  } catch (e) {
    throw new BundleError('key-refused', `public key refused: ${(e as Error).message}`, { cause: e });
  }
  const key: KnownKey = {
    name: parsed.name,
    keyId: hintOf(text),
    encoded: text,
    publicKey: parsed.publicKey,
    publicKeyHex: Buffer.from(parsed.publicKey).toString('hex'),
    verify: (msg, sig) => parsed.verify(msg, sig),
  };
  if (ENROLLED.size < 4096) ENROLLED.set(text, key);
  return key;
}

/** Parses a private key `PRIVATE+KEY+name+hash+base64(0x01 || seed)`. Error messages never include the key. */
export function parsePrivateKey(encoded: string): SigningKey {
  let signer: ReturnType<typeof parseSignerKey>;
  try {
    signer = parseSignerKey(encoded.trim());
  } catch {
    throw new BundleError('key-refused', 'private key is malformed');
  }
  const pub = parsePublicKey(signer.verifierKey);
  return { ...pub, sign: (msg) => signer.sign(msg) };
}

/** A fresh key pair. `privateKey` is a secret: store it 0600 and never log it. */
export function generateKeyPair(name: string): { privateKey: string; publicKey: string } {
  try {
    const { skey, vkey } = generateSignerKey(name);
    return { privateKey: skey, publicKey: vkey };
  } catch (e) {
    throw new BundleError('key-refused', `cannot create a key named "${name}": ${(e as Error).message}`);
  }
}
