// The bundle module's public surface: signed configuration bundles, the trust root, diffs and install integrity.

export { BundleError, isBundleError } from './errors.js';
export type { BundleRefusal } from './errors.js';
export {
  pae,
  parseEnvelope,
  serializeEnvelope,
  makeEnvelope,
  signEnvelope,
  verifySignatures,
  payloadBytes,
  canonicalJson,
  sha256Hex,
} from './dsse.js';
export type { Envelope, DsseSignature, SignatureCheck } from './dsse.js';
export { parsePublicKey, parsePrivateKey, generateKeyPair } from './keys.js';
export type { KnownKey, SigningKey } from './keys.js';
export { ROOT_PAYLOAD_TYPE, createRoot, readRoot, verifyRoot } from './root.js';
export type { RootDocument, RootPayload } from './root.js';
export {
  BUNDLE_PAYLOAD_TYPE,
  proposeBundle,
  readBundle,
  readPolicyFolder,
  policyFromPayload,
  bundleStatus,
  verifyBundleForActivation,
} from './bundle.js';
export type { BundlePayload, VerifiedBundle, ActivationState, ProposeInput, BundleStatus } from './bundle.js';
export { SETTINGS_SCHEMA, SettingsEnforcer, parseSettings } from './settings.js';
export type { TargetSettings, Refusal } from './settings.js';
export { BundleGuard, effectiveExpiry } from './guard.js';
export type { BundleGuardOptions } from './guard.js';
export { diffBundles, unifiedDiff, diffLines } from './diff.js';
export { MANIFEST_FILE, buildManifest, writeManifest, verifyInstall } from './manifest.js';
export type { Manifest, InstallCheck } from './manifest.js';
export {
  readRootFile,
  readBundleFile,
  readActivationState,
  writeActivationState,
  writeFileAtomic,
  installBundleFile,
  verifyForTarget,
  loadStartupBundle,
  refusalReason,
} from './activation.js';
export type { ActivatedBundle, BundleFiles, StartupBundle } from './activation.js';
