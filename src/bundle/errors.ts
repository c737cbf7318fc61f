// Bundle and root refusals: one WardenError subclass with a stable `reason` that callers and tests check.

import { WardenError } from '../core/errors.js';

/**
 * Why a bundle, a root document or a key was refused. Stable: operators and tests match on these strings.
 * @see docs/bundles.md (table of reasons)
 */
export type BundleRefusal =
  | 'malformed' // not a DSSE envelope, bad base64, non-canonical or invalid payload
  | 'wrong-type' // payloadType is not the one expected
  | 'unsigned' // no signature at all
  | 'payload-altered' // signatures exist but none verifies over these bytes
  | 'bad-signature' // some signatures verify, at least one does not
  | 'unknown-author' // the author's key is not enrolled in the root
  | 'author-signature-missing' // the author did not sign
  | 'author-only' // the author is the only valid signer
  | 'below-threshold' // fewer than k distinct approvers signed
  | 'wrong-origin' // bundle or new root names another origin than the root
  | 'expired' // now is at or past the bundle's expiry
  | 'rollback' // version lower than the running one
  | 'version-conflict' // same version as the running one, different content
  | 'broken-link' // previous-hash does not name the running bundle
  | 'root-version' // a new root's version is not the old version + 1
  | 'root-threshold-old' // a new root lacks k signatures under the old root
  | 'root-threshold-new' // a new root lacks k signatures under itself
  | 'key-refused' // malformed, low-order or duplicate key at enrollment
  | 'policy-invalid' // the bundle's policy files do not load
  | 'settings-invalid' // the bundle's settings hold an unknown key or an invalid value
  | 'unreadable' // the bundle or root file cannot be read
  | 'state-invalid' // the remembered activation state is unreadable or malformed (never treated as a first start)
  | 'not-activated'; // verified, but the gateway could not put it in force (state or audit write failed)

/** A refused bundle, root or key. `code` is always CONFIG_INVALID; `reason` says which refusal. */
export class BundleError extends WardenError {
  readonly reason: BundleRefusal;
  constructor(reason: BundleRefusal, message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, {
      detail: reason,
      ...(options?.cause !== undefined ? { cause: options.cause } : {}),
    });
    this.name = 'BundleError';
    this.reason = reason;
  }
}

export function isBundleError(e: unknown, reason?: BundleRefusal): e is BundleError {
  return e instanceof BundleError && (reason === undefined || e.reason === reason);
}
