// Install integrity: a manifest of SHA-256 hashes of every file under dist/, written at build time and checked by `warden verify-install`.

import { createHash } from 'node:crypto';
import { lstatSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { WardenError } from '../core/errors.js';

export const MANIFEST_FILE = 'MANIFEST.json';
export const MANIFEST_FORMAT = 'warden.manifest.v1';

export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  /** Posix relative path → hex SHA-256 of the file's bytes, sorted by path. */
  readonly files: Readonly<Record<string, string>>;
}

export interface InstallCheck {
  /** True when every recorded file is present and unchanged and no unrecorded file exists. */
  readonly ok: boolean;
  /** Hex SHA-256 of MANIFEST.json itself: compare it with the published value for the release. */
  readonly manifestHash: string;
  readonly checked: number;
  readonly missing: readonly string[];
  readonly modified: readonly string[];
  readonly extra: readonly string[];
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Every regular file under `root`, as posix relative paths, sorted. Symbolic links and special files are refused. */
function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(relative(root, p).split(sep).join('/'));
      else throw new WardenError('CONFIG_INVALID', `${p} is neither a file nor a directory`);
    }
  };
  walk(root);
  return out.sort();
}

/** The manifest of `distDir`: every file except MANIFEST.json at its top. */
export function buildManifest(distDir: string): Manifest {
  const files: Record<string, string> = {};
  for (const rel of listFiles(distDir))
    if (rel !== MANIFEST_FILE) files[rel] = sha256(readFileSync(join(distDir, rel)));
  return { format: MANIFEST_FORMAT, files };
}

/** Writes `distDir/MANIFEST.json`; returns its hash. */
export function writeManifest(distDir: string): { manifest: Manifest; manifestHash: string } {
  const manifest = buildManifest(distDir);
  const text = JSON.stringify(manifest, null, 2) + '\n';
  writeFileSync(join(distDir, MANIFEST_FILE), text);
  return { manifest, manifestHash: sha256(Buffer.from(text, 'utf8')) };
}

function readManifest(distDir: string): { manifest: Manifest; manifestHash: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(distDir, MANIFEST_FILE));
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `no ${MANIFEST_FILE} in ${distDir}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `${MANIFEST_FILE} is not JSON`, { cause: e });
  }
  const m = v as Partial<Manifest> | null;
  if (
    m === null ||
    typeof m !== 'object' ||
    m.format !== MANIFEST_FORMAT ||
    typeof m.files !== 'object' ||
    m.files === null ||
    !Object.entries(m.files).every(([k, h]) => k !== '' && typeof h === 'string' && /^[0-9a-f]{64}$/.test(h))
  )
    throw new WardenError('CONFIG_INVALID', `${MANIFEST_FILE} is malformed`);
  return { manifest: m as Manifest, manifestHash: sha256(bytes) };
}

/** Compares the files under `distDir` with its MANIFEST.json. Throws CONFIG_INVALID if the manifest is absent or malformed. */
export function verifyInstall(distDir: string): InstallCheck {
  const { manifest, manifestHash } = readManifest(distDir);
  const actual = buildManifest(distDir).files;
  const missing: string[] = [];
  const modified: string[] = [];
  for (const [path, hash] of Object.entries(manifest.files)) {
    const got = Object.hasOwn(actual, path) ? actual[path] : undefined;
    if (got === undefined) missing.push(path);
    else if (got !== hash) modified.push(path);
  }
  const extra = Object.keys(actual).filter((p) => !Object.hasOwn(manifest.files, p));
  return {
    ok: missing.length === 0 && modified.length === 0 && extra.length === 0,
    manifestHash,
    checked: Object.keys(manifest.files).length,
    missing: missing.sort(),
    modified: modified.sort(),
    extra,
  };
}
