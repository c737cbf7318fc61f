// Reading secrets from private files or environment variables, and comparing secrets in constant time.

import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import { WardenError } from './errors.js';

/** Where a secret comes from: exactly one of a file path or an environment variable name. */
export interface SecretSpec {
  readonly file?: string;
  readonly env?: string;
}

/**
 * Reads a secret from a file (one trailing newline removed) or from an environment variable, exactly one of the two.
 * `what` names the secret in error messages (e.g. 'password of login "app" on target "prod"').
 *
 * INVARIANT: a file must not be readable or writable by group or others (mode & 0o077 == 0); the check runs on
 * the opened descriptor, so the file cannot be swapped between check and read.
 * INVARIANT: error messages name the file or variable and the fix, never the secret.
 * @param env the environment to read from (default process.env; injectable for tests).
 */
export function readSecret(spec: SecretSpec, what: string, env: NodeJS.ProcessEnv = process.env): string {
  const hasFile = spec.file !== undefined;
  const hasEnv = spec.env !== undefined;
  if (hasFile === hasEnv) {
    throw new WardenError('CONFIG_INVALID', `${what}: give exactly one of "file" or "env"`);
  }
  const value = hasFile ? readSecretFile(spec.file ?? '', what) : readSecretEnv(spec.env ?? '', what, env);
  if (value.length === 0) {
    const source = hasFile ? `file ${JSON.stringify(spec.file)}` : `environment variable ${spec.env}`;
    throw new WardenError('CONFIG_INVALID', `${what}: ${source} is empty`);
  }
  return value;
}

function readSecretFile(file: string, what: string): string {
  const name = JSON.stringify(file);
  let fd: number;
  try {
    // Symbolic links are followed (mounted secrets are often links); the checks apply to the file they reach.
    fd = openSync(file, 'r');
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `${what}: cannot open secret file ${name}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new WardenError('CONFIG_INVALID', `${what}: secret file ${name} is not a regular file`);
    // Windows has no POSIX permission bits to check.
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
      throw new WardenError(
        'CONFIG_INVALID',
        `${what}: secret file ${name} is accessible by group or others (mode ${mode}); run: chmod 600 ${name}`,
      );
    }
    const text = readFileSync(fd, 'utf8');
    return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  } finally {
    closeSync(fd);
  }
}

function readSecretEnv(name: string, what: string, env: NodeJS.ProcessEnv): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    throw new WardenError(
      'CONFIG_INVALID',
      `${what}: ${JSON.stringify(name)} is not an environment variable name`,
    );
  }
  const value = env[name];
  if (value === undefined)
    throw new WardenError('CONFIG_INVALID', `${what}: environment variable ${name} is not set`);
  return value;
}

/**
 * Compares two secrets without leaking where they differ, nor their lengths beyond what hashing cannot hide:
 * both sides are hashed with SHA-256 and the digests compared with crypto.timingSafeEqual.
 */
export function constantTimeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
