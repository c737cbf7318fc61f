// Configuration bundles: the canonical payload (policy files + settings), building, and verification for activation.
// @see docs/bundles.md

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadPolicyFromStrings, policyFilesIn } from '../policy/index.js';
import type { Policy } from '../policy/index.js';
import { BundleError } from './errors.js';
import {
  canonicalJson,
  makeEnvelope,
  parseCanonicalJson,
  parseEnvelope,
  payloadBytes,
  sha256Hex,
  signEnvelope,
  verifySignatures,
} from './dsse.js';
import type { Envelope } from './dsse.js';
import { parsePublicKey } from './keys.js';
import type { KnownKey, SigningKey } from './keys.js';
import { ORIGIN_RE, assertAllSignaturesValid, assertRootCurrent } from './root.js';
import { parseSettings } from './settings.js';
import type { TargetSettings } from './settings.js';
import type { RootDocument } from './root.js';

export const BUNDLE_PAYLOAD_TYPE = 'application/vnd.warden.bundle.v1+json';
export const MAX_POLICY_FILES = 1000;

/** The bundle payload as signed (canonical JSON). */
export interface BundlePayload {
  readonly type: 'warden.bundle';
  readonly origin: string;
  readonly version: number;
  /** ISO-8601 UTC with milliseconds. */
  readonly created: string;
  readonly expires: string;
  /** Hex SHA-256 of the previous bundle's payload; null for the first bundle. */
  readonly previous: string | null;
  /** The author's verifier key `name+hash+base64`. */
  readonly author: string;
  /** Policy files: relative path → YAML text. */
  readonly policy: Readonly<Record<string, string>>;
  /** The target's enforcement settings (plain JSON, integers only; keys in SETTINGS_SCHEMA, src/bundle/settings.ts). */
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface VerifiedBundle {
  readonly payload: BundlePayload;
  /** The bundle's identity: hex SHA-256 of its payload bytes. */
  readonly hash: string;
  readonly author: KnownKey;
  /** Distinct approvers whose signature counted (never the author). */
  readonly approvers: readonly KnownKey[];
  readonly policy: Policy;
  /** The payload's settings, validated. */
  readonly settings: TargetSettings;
}

/** What the gateway runs now; undefined on first start. */
export interface ActivationState {
  readonly current?: { readonly version: number; readonly hash: string };
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const PATH_RE = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function isTime(v: unknown): v is string {
  return typeof v === 'string' && TIME_RE.test(v) && new Date(v).toISOString() === v;
}

/** Validates a payload object's exact shape. Throws BundleError('malformed'). */
export function validatePayload(v: unknown): asserts v is BundlePayload {
  const bad = (m: string): never => {
    throw new BundleError('malformed', `bundle payload: ${m}`);
  };
  if (!isObj(v)) return bad('not an object');
  const fields = [
    'type',
    'origin',
    'version',
    'created',
    'expires',
    'previous',
    'author',
    'policy',
    'settings',
  ];
  for (const k of Object.keys(v)) if (!fields.includes(k)) bad(`unknown field "${k}"`);
  for (const k of fields) if (!(k in v)) bad(`missing field "${k}"`);
  if (v.type !== 'warden.bundle') bad('type is not "warden.bundle"');
  if (typeof v.origin !== 'string' || !ORIGIN_RE.test(v.origin)) bad('origin must be 1-256 printable ASCII');
  if (!Number.isSafeInteger(v.version) || (v.version as number) < 1) bad('version must be an integer >= 1');
  if (!isTime(v.created)) bad('created is not an ISO-8601 UTC time with milliseconds');
  if (!isTime(v.expires)) bad('expires is not an ISO-8601 UTC time with milliseconds');
  if (Date.parse(v.expires as string) <= Date.parse(v.created as string)) bad('expires is not after created');
  if (v.previous !== null && (typeof v.previous !== 'string' || !/^[0-9a-f]{64}$/.test(v.previous)))
    bad('previous must be null or 64 lowercase hex digits');
  if (typeof v.author !== 'string') bad('author must be a verifier key');
  if (!isObj(v.policy)) return bad('policy must be an object of path → text');
  const paths = Object.keys(v.policy);
  if (paths.length === 0 || paths.length > MAX_POLICY_FILES)
    bad(`policy must hold 1 to ${MAX_POLICY_FILES} files`);
  for (const p of paths) {
    if (!PATH_RE.test(p) || !/\.ya?ml$/.test(p)) bad(`policy path "${p}" is not a relative .yaml path`);
    if (typeof v.policy[p] !== 'string') bad(`policy file "${p}" is not text`);
  }
  if (!isObj(v.settings)) bad('settings must be an object');
}

/** Reads and validates an envelope's payload as a bundle payload, without checking signatures. */
export function readBundle(env: Envelope): { payload: BundlePayload; hash: string } {
  if (env.payloadType !== BUNDLE_PAYLOAD_TYPE)
    throw new BundleError('wrong-type', `payload type is "${env.payloadType}", not "${BUNDLE_PAYLOAD_TYPE}"`);
  const bytes = payloadBytes(env);
  const v = parseCanonicalJson(bytes, 'bundle payload');
  validatePayload(v);
  return { payload: v, hash: sha256Hex(bytes) };
}

/** Compiles the payload's policy. Throws BundleError('policy-invalid') with the loader's problems as cause. */
export function policyFromPayload(payload: BundlePayload): Policy {
  try {
    return loadPolicyFromStrings(Object.entries(payload.policy).map(([path, text]) => ({ path, text })));
  } catch (e) {
    throw new BundleError('policy-invalid', `the bundle's policy does not load: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** The policy files of a folder (as the policy loader picks them), by file name. */
export function readPolicyFolder(folder: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const path of policyFilesIn(folder)) out[basename(path)] = readFileSync(path, 'utf8');
  return out;
}

export interface ProposeInput {
  readonly origin: string;
  readonly version: number;
  readonly previous: string | null;
  readonly author: SigningKey;
  readonly policy: Readonly<Record<string, string>>;
  readonly settings?: Readonly<Record<string, unknown>>;
  readonly created: Date;
  readonly expires: Date;
}

/** Builds a bundle and signs it as author. Refuses a payload that is invalid or whose policy does not load. */
export function proposeBundle(input: ProposeInput): Envelope {
  const payload: BundlePayload = {
    type: 'warden.bundle',
    origin: input.origin,
    version: input.version,
    created: input.created.toISOString(),
    expires: input.expires.toISOString(),
    previous: input.previous,
    author: input.author.encoded,
    policy: { ...input.policy },
    settings: { ...(input.settings ?? {}) },
  };
  validatePayload(payload);
  parseSettings(payload.settings);
  policyFromPayload(payload);
  return signEnvelope(makeEnvelope(BUNDLE_PAYLOAD_TYPE, canonicalJson(payload)), input.author);
}

/** Signatures present and missing, for `warden bundle status` (no refusal: it reports). */
export interface BundleStatus {
  readonly hash: string;
  readonly payload: BundlePayload;
  readonly threshold: number;
  readonly authorSigned: boolean;
  /** Approvers (root order) and whether each signed validly. */
  readonly approvers: readonly {
    readonly key: KnownKey;
    readonly signed: boolean;
    readonly isAuthor: boolean;
  }[];
  /** Distinct approvers that count (never the author). */
  readonly counted: number;
  /** Indexes of signatures that verify under no enrolled key. */
  readonly invalid: readonly number[];
}

function knownKeys(root: RootDocument, author: KnownKey): KnownKey[] {
  const keys = [...root.approvers, ...root.authors];
  return keys.some((k) => k.publicKeyHex === author.publicKeyHex) ? keys : [...keys, author];
}

export function bundleStatus(env: Envelope, root: RootDocument): BundleStatus {
  const { payload, hash } = readBundle(env);
  const author = parsePublicKey(payload.author);
  const { valid, invalid } = verifySignatures(env, knownKeys(root, author));
  const approvers = root.approvers.map((key) => ({
    key,
    signed: valid.has(key.publicKeyHex),
    isAuthor: key.publicKeyHex === author.publicKeyHex,
  }));
  return {
    hash,
    payload,
    threshold: root.threshold,
    authorSigned: valid.has(author.publicKeyHex),
    approvers,
    counted: approvers.filter((a) => a.signed && !a.isAuthor).length,
    invalid,
  };
}

/**
 * Verifies a bundle for activation against the trusted root and what the gateway runs now. Returns the verified
 * payload and its compiled policy, or throws BundleError naming the reason. Checks, in order: envelope shape,
 * payload type, signatures present, every signature valid, payload shape, origin, author enrolled and signed,
 * k distinct approvers besides the author, expiry, then rollback, same-version conflict, the previous-hash link, settings and policy.
 * INVARIANT: the author's key never counts towards k; each public key counts once, whatever its key id.
 */
export function verifyBundleForActivation(
  envelope: Envelope | string | Uint8Array,
  root: RootDocument,
  state: ActivationState,
  now: Date = new Date(),
): VerifiedBundle {
  const env =
    typeof envelope === 'string' || envelope instanceof Uint8Array ? parseEnvelope(envelope) : envelope;
  if (env.payloadType !== BUNDLE_PAYLOAD_TYPE)
    throw new BundleError('wrong-type', `payload type is "${env.payloadType}", not "${BUNDLE_PAYLOAD_TYPE}"`);
  if (env.signatures.length === 0) throw new BundleError('unsigned', 'the bundle has no signature');
  // An expired root vouches for nothing, however well the bundle is signed.
  assertRootCurrent(root, now);
  // DSSE: authenticate before parsing. Every enrolled key may sign; an unenrolled author is refused below.
  const enrolled = [...root.approvers, ...root.authors];
  const { valid, invalid } = verifySignatures(env, enrolled);
  assertAllSignaturesValid(env, invalid, valid.size);

  const { payload, hash } = readBundle(env);
  if (payload.origin !== root.origin)
    throw new BundleError(
      'wrong-origin',
      `bundle origin "${payload.origin}" is not the root's "${root.origin}"`,
    );
  const author = parsePublicKey(payload.author);
  if (!enrolled.some((k) => k.publicKeyHex === author.publicKeyHex))
    throw new BundleError('unknown-author', `the author ${author.keyId} is not enrolled in the root`);
  if (!valid.has(author.publicKeyHex))
    throw new BundleError('author-signature-missing', `the author ${author.keyId} did not sign the bundle`);
  const approvers = root.approvers.filter(
    (k) => valid.has(k.publicKeyHex) && k.publicKeyHex !== author.publicKeyHex,
  );
  if (approvers.length === 0)
    throw new BundleError('author-only', 'the bundle is signed by its author alone; the author never counts');
  if (approvers.length < root.threshold)
    throw new BundleError(
      'below-threshold',
      `the bundle has ${approvers.length} of ${root.threshold} approver signatures required`,
    );
  if (now.getTime() >= Date.parse(payload.expires))
    throw new BundleError('expired', `the bundle expired at ${payload.expires}`);

  const cur = state.current;
  if (cur !== undefined) {
    if (payload.version < cur.version)
      throw new BundleError(
        'rollback',
        `bundle version ${payload.version} is lower than the running ${cur.version}`,
      );
    if (payload.version === cur.version && hash !== cur.hash)
      throw new BundleError(
        'version-conflict',
        `bundle version ${payload.version} is the running version with different content`,
      );
    if (payload.version > cur.version && payload.previous !== cur.hash)
      throw new BundleError(
        'broken-link',
        `bundle's previous hash ${payload.previous ?? 'null'} is not the running bundle's ${cur.hash}`,
      );
  }
  const settings = parseSettings(payload.settings);
  return { payload, hash, author, approvers, policy: policyFromPayload(payload), settings };
}
