// Activation on the gateway: reads the pinned root and a bundle file, verifies it against the remembered state, and persists what runs (write-then-rename).
// @see docs/bundles.md (Activation)
//
// The state file remembers `{ version, hash }` of the bundle a target last activated, so a restart with an older
// bundle (rollback) or another bundle of the same version (fork) is refused.
// INVARIANT: a missing state file means "first start"; an unreadable or malformed one is a refusal, never a first
// start, or deleting half a file would switch rollback protection off.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BundleError, isBundleError } from './errors.js';
import { parseEnvelope, serializeEnvelope } from './dsse.js';
import type { Envelope } from './dsse.js';
import { verifyRoot } from './root.js';
import type { RootDocument } from './root.js';
import { verifyBundleForActivation } from './bundle.js';
import type { ActivationState, VerifiedBundle } from './bundle.js';

/** What a target remembers of the bundle it runs. */
export interface ActivatedBundle {
  readonly origin: string;
  readonly version: number;
  readonly hash: string;
}

function readFileOrRefuse(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new BundleError('unreadable', `cannot read the ${what} ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Reads and verifies the pinned root file (k signatures by its own approvers). Throws BundleError. */
export function readRootFile(path: string): RootDocument {
  return verifyRoot(parseEnvelope(readFileOrRefuse(path, 'root file')));
}

/** Reads a bundle envelope file (no verification). Throws BundleError('unreadable' | 'malformed'). */
export function readBundleFile(path: string): Envelope {
  return parseEnvelope(readFileOrRefuse(path, 'bundle file'));
}

/** Reads the activation state; `{}` when the file does not exist. Throws BundleError('state-invalid'). */
export function readActivationState(path: string): ActivationState & { readonly origin?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new BundleError('state-invalid', `cannot read the bundle state ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new BundleError('state-invalid', `the bundle state ${path} is not JSON`, { cause: e });
  }
  const o = v as Partial<Record<string, unknown>>;
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof o.origin !== 'string' ||
    !Number.isSafeInteger(o.version) ||
    (o.version as number) < 1 ||
    typeof o.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(o.hash)
  ) {
    throw new BundleError('state-invalid', `the bundle state ${path} is malformed`);
  }
  return { origin: o.origin, current: { version: o.version as number, hash: o.hash } };
}

/** Writes `text` to `path` durably: a temporary file beside it, fsync, rename, fsync of the folder. */
export function writeFileAtomic(path: string, text: string, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // some platforms cannot fsync a directory; the rename itself is still atomic
  }
}

/** Persists what a target now runs (write-then-rename). */
export function writeActivationState(path: string, a: ActivatedBundle): void {
  writeFileAtomic(path, `${JSON.stringify({ origin: a.origin, version: a.version, hash: a.hash })}\n`, 0o600);
}

/** Installs a verified bundle envelope at `path` (write-then-rename), so a restart reads what runs. */
export function installBundleFile(path: string, envelope: Envelope): void {
  writeFileAtomic(path, serializeEnvelope(envelope));
}

/**
 * Verifies the bundle `envelope` for a target against its pinned root and what it runs (`current`, else the state
 * file's). Returns the verified bundle or throws BundleError naming the reason.
 */
export function verifyForTarget(
  envelope: Envelope,
  root: RootDocument,
  current: { readonly version: number; readonly hash: string } | undefined,
  now: Date = new Date(),
): VerifiedBundle {
  return verifyBundleForActivation(
    envelope,
    root,
    current === undefined ? {} : { current: { version: current.version, hash: current.hash } },
    now,
  );
}

/** The files of a bundle-configured target. */
export interface BundleFiles {
  readonly root: string;
  readonly path: string;
  readonly stateFile: string;
}

/** What starting from a bundle needs: the pinned root, the remembered state, and the verified bundle. */
export interface StartupBundle {
  readonly root: RootDocument;
  readonly envelope: Envelope;
  readonly verified: VerifiedBundle;
  readonly previous: ActivatedBundle | undefined;
}

/**
 * Reads root, state and bundle and verifies the bundle for a start. Throws BundleError: any refusal of
 * `verifyBundleForActivation`, 'unreadable', 'state-invalid', or 'wrong-origin' when the state names another origin.
 */
export function loadStartupBundle(files: BundleFiles, now: Date = new Date()): StartupBundle {
  const root = readRootFile(files.root);
  const state = readActivationState(files.stateFile);
  if (state.origin !== undefined && state.origin !== root.origin)
    throw new BundleError(
      'wrong-origin',
      `the bundle state ${files.stateFile} belongs to origin "${state.origin}", the root to "${root.origin}"`,
    );
  const previous = state.current === undefined ? undefined : { origin: root.origin, ...state.current };
  const envelope = readBundleFile(files.path);
  const verified = verifyForTarget(envelope, root, previous, now);
  return { root, envelope, verified, previous };
}

/** The refusal reason of an error, as recorded: a BundleError's reason, else "error". */
export function refusalReason(e: unknown): string {
  return isBundleError(e) ? e.reason : 'error';
}
