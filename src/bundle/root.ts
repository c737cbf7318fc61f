// The trust root: approver keys and the threshold k, itself a DSSE envelope whose rotation needs k old and k new signatures.
// @see https://theupdateframework.github.io/specification/latest/#update-the-root-role (root rotation)

import { BundleError } from './errors.js';
import {
  canonicalJson,
  makeEnvelope,
  parseCanonicalJson,
  payloadBytes,
  sha256Hex,
  verifySignatures,
} from './dsse.js';
import type { Envelope } from './dsse.js';
import { parsePublicKey } from './keys.js';
import type { KnownKey } from './keys.js';

export const ROOT_PAYLOAD_TYPE = 'application/vnd.warden.root.v1+json';
/** Upper bound on enrolled keys (bounds signature verification work). */
export const MAX_ROOT_KEYS = 64;

/** The root payload as written (canonical JSON). */
export interface RootPayload {
  readonly type: 'warden.root';
  /** Names the deployment; bundles must carry the same origin. */
  readonly origin: string;
  readonly version: number;
  /** k: distinct approver signatures a bundle (and a rotation, under each root) needs. */
  readonly threshold: number;
  /** Approver verifier keys `name+hash+base64`. */
  readonly approvers: readonly string[];
  /** Keys that may author bundles but never approve. Approvers may author too. */
  readonly authors: readonly string[];
  /** Optional RFC 3339 UTC time after which the root (and every bundle under it) is refused. */
  readonly expires?: string;
}

/** A parsed, enrolled root. */
export interface RootDocument {
  readonly origin: string;
  readonly version: number;
  readonly threshold: number;
  readonly approvers: readonly KnownKey[];
  readonly authors: readonly KnownKey[];
  /** Hex SHA-256 of the root payload. */
  readonly hash: string;
  /** When the root stops being trusted (RFC 3339 UTC), if it says. */
  readonly expires?: string;
}

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

/** Refuses a root whose expiry has passed (roots without `expires` never expire). */
export function assertRootCurrent(root: RootDocument, now: Date): void {
  if (root.expires !== undefined && now.getTime() >= Date.parse(root.expires))
    throw new BundleError('expired', `the trust root (version ${root.version}) expired at ${root.expires}`);
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export const ORIGIN_RE = /^[\x21-\x7e]{1,256}$/;

function enroll(list: unknown, what: string): KnownKey[] {
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string'))
    throw new BundleError('malformed', `root ${what} is not a list of keys`);
  return list.map((k: string) => parsePublicKey(k));
}

/** Validates a root payload object and enrolls its keys (refusing malformed, low-order and duplicate keys). */
export function rootFromPayload(v: unknown, hash: string): RootDocument {
  if (!isObj(v)) throw new BundleError('malformed', 'root payload is not an object');
  const allowed = ['type', 'origin', 'version', 'threshold', 'approvers', 'authors', 'expires'];
  for (const k of Object.keys(v))
    if (!allowed.includes(k)) throw new BundleError('malformed', `root payload has an unknown field "${k}"`);
  if (v.type !== 'warden.root') throw new BundleError('malformed', 'root payload type is not "warden.root"');
  if (typeof v.origin !== 'string' || !ORIGIN_RE.test(v.origin))
    throw new BundleError('malformed', 'root origin must be 1-256 printable ASCII characters');
  if (!Number.isSafeInteger(v.version) || (v.version as number) < 1)
    throw new BundleError('malformed', 'root version must be an integer >= 1');
  if (
    v.expires !== undefined &&
    (typeof v.expires !== 'string' || !RFC3339_UTC.test(v.expires) || Number.isNaN(Date.parse(v.expires)))
  )
    throw new BundleError('malformed', 'root expires must be an RFC 3339 UTC time');
  const approvers = enroll(v.approvers, 'approvers');
  const authors = enroll(v.authors ?? [], 'authors');
  if (approvers.length + authors.length > MAX_ROOT_KEYS)
    throw new BundleError('malformed', `root lists more than ${MAX_ROOT_KEYS} keys`);
  // INVARIANT: each public key is enrolled once, whatever name or key id it is listed under.
  const seen = new Map<string, string>();
  for (const k of [...approvers, ...authors]) {
    const other = seen.get(k.publicKeyHex);
    if (other !== undefined)
      throw new BundleError('key-refused', `root lists the same public key twice (${other} and ${k.keyId})`);
    seen.set(k.publicKeyHex, k.keyId);
  }
  const t = v.threshold;
  if (!Number.isSafeInteger(t) || (t as number) < 1 || (t as number) > approvers.length)
    throw new BundleError('malformed', `root threshold must be an integer from 1 to ${approvers.length}`);
  return {
    origin: v.origin,
    version: v.version as number,
    threshold: t as number,
    approvers,
    authors,
    hash,
    ...(typeof v.expires === 'string' ? { expires: v.expires } : {}),
  };
}

/** An unsigned root envelope. Keys are validated (and low-order keys refused) before anything is written. */
export function createRoot(input: {
  origin: string;
  version: number;
  threshold: number;
  approvers: readonly string[];
  authors?: readonly string[];
  expires?: string;
}): Envelope {
  const payload: RootPayload = {
    type: 'warden.root',
    origin: input.origin,
    version: input.version,
    threshold: input.threshold,
    approvers: input.approvers.map((k) => k.trim()),
    authors: (input.authors ?? []).map((k) => k.trim()),
    ...(input.expires !== undefined ? { expires: input.expires } : {}),
  };
  const bytes = canonicalJson(payload);
  rootFromPayload(payload, sha256Hex(bytes));
  return makeEnvelope(ROOT_PAYLOAD_TYPE, bytes);
}

/** Parses a root envelope's payload without checking signatures (for display and signing). */
export function readRoot(env: Envelope): RootDocument {
  if (env.payloadType !== ROOT_PAYLOAD_TYPE)
    throw new BundleError('wrong-type', `payload type is "${env.payloadType}", not "${ROOT_PAYLOAD_TYPE}"`);
  const bytes = payloadBytes(env);
  return rootFromPayload(parseCanonicalJson(bytes, 'root payload'), sha256Hex(bytes));
}

/** Refuses an envelope with no signatures, or with any signature that no known key verifies. */
export function assertAllSignaturesValid(
  env: Envelope,
  invalid: readonly number[],
  validCount: number,
): void {
  if (env.signatures.length === 0) throw new BundleError('unsigned', 'the envelope has no signature');
  if (invalid.length === 0) return;
  if (validCount === 0)
    throw new BundleError(
      'payload-altered',
      'no signature verifies over this payload: it was altered after signing, or signed by keys the root does not know',
    );
  throw new BundleError('bad-signature', `signature ${invalid.join(', ')} verifies under no enrolled key`);
}

const countIn = (valid: ReadonlyMap<string, KnownKey>, keys: readonly KnownKey[]): number =>
  keys.filter((k) => valid.has(k.publicKeyHex)).length;

/**
 * Verifies a root envelope. Without `trusted` (the first root, pinned out of band) it must carry k signatures by its
 * own approvers. With `trusted` it is a rotation: same origin, version exactly trusted.version + 1, k signatures
 * under the old root and k under the new one, each counted once per distinct public key. The same root as
 * `trusted` (same hash) is returned as is.
 */
export function verifyRoot(env: Envelope, trusted?: RootDocument, now: Date = new Date()): RootDocument {
  const root = readRoot(env);
  assertRootCurrent(root, now);
  if (trusted !== undefined && root.hash === trusted.hash) return trusted;
  const known = [...root.approvers, ...(trusted?.approvers ?? [])];
  const { valid, invalid } = verifySignatures(env, known);
  assertAllSignaturesValid(env, invalid, valid.size);
  if (trusted !== undefined) {
    if (root.origin !== trusted.origin)
      throw new BundleError('wrong-origin', `new root origin "${root.origin}" is not "${trusted.origin}"`);
    if (root.version !== trusted.version + 1)
      throw new BundleError(
        'root-version',
        `new root version ${root.version} is not ${trusted.version + 1} (root versions go up by exactly one)`,
      );
    const old = countIn(valid, trusted.approvers);
    if (old < trusted.threshold)
      throw new BundleError(
        'root-threshold-old',
        `new root has ${old} of ${trusted.threshold} signatures required under the current root`,
      );
  }
  const fresh = countIn(valid, root.approvers);
  if (fresh < root.threshold)
    throw new BundleError(
      'root-threshold-new',
      `root has ${fresh} of ${root.threshold} signatures required under its own keys`,
    );
  return root;
}
