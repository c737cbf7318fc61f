// Adds API tokens to a token file (hashed records only, written atomically, mode 0600); the token itself is returned once.

import { existsSync, readFileSync } from 'node:fs';
import YAML from 'yaml';
import { WardenError } from '../core/errors.js';
import { writeFileAtomic } from '../bundle/activation.js';
import { assertSeparation, isApiRole, type ApiRole } from './roles.js';
import { createApiToken, parseTokenRecords, tokenRecordToJson, type ApiTokenRecord } from './tokens.js';

const DURATION_RE = /^(\d{1,6})([dhm])$/;
const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000 } as const;

/**
 * Parses an expiry: a duration from `now` (`30d`, `12h`, `90m`), an ISO-8601 time, or `never` (null).
 * Throws CONFIG_INVALID for anything else or a time not in the future.
 */
export function parseExpiry(text: string, now: Date = new Date()): Date | null {
  if (text === 'never') return null;
  const m = DURATION_RE.exec(text);
  let at: Date;
  if (m !== null) {
    const n = Number(m[1]);
    if (n === 0) throw new WardenError('CONFIG_INVALID', `--expires ${text}: must be longer than zero`);
    at = new Date(now.getTime() + n * UNIT_MS[m[2] as keyof typeof UNIT_MS]);
  } else {
    if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(Date.parse(text)))
      throw new WardenError(
        'CONFIG_INVALID',
        `--expires ${text}: expected 30d, 12h, 90m, an ISO-8601 time or never`,
      );
    at = new Date(text);
  }
  if (at.getTime() <= now.getTime())
    throw new WardenError('CONFIG_INVALID', `--expires ${text}: must be in the future`);
  return at;
}

/** Parses `viewer,auditor` into roles; throws CONFIG_INVALID naming an unknown role. */
export function parseRoles(text: string): ApiRole[] {
  const roles = text
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r !== '');
  if (roles.length === 0) throw new WardenError('CONFIG_INVALID', '--roles: give at least one role');
  for (const r of roles) {
    if (!isApiRole(r))
      throw new WardenError(
        'CONFIG_INVALID',
        `--roles: unknown role ${JSON.stringify(r)} (viewer, approver, auditor, operator)`,
      );
  }
  return [...new Set(roles as ApiRole[])];
}

/** The records of a token file; an absent file has none. */
export function readTokenRecords(file: string): ApiTokenRecord[] {
  if (!existsSync(file)) return [];
  const doc: unknown = YAML.parse(readFileSync(file, 'utf8'));
  if (doc === null || doc === undefined) return [];
  return parseTokenRecords(doc, `token file ${JSON.stringify(file)}`);
}

/**
 * Creates a token for `user` and appends its hashed record to `file` (created if absent). Refuses a record that
 * would give one user both operator and approver across the file. INVARIANT: only the hash reaches the disk; the
 * returned `token` is the one copy.
 */
export function addTokenToFile(
  file: string,
  input: { readonly user: string; readonly roles: readonly ApiRole[]; readonly expires?: Date | null },
): { token: string; record: ApiTokenRecord } {
  const records = readTokenRecords(file);
  const ids = new Set(records.map((r) => r.id));
  let made = createApiToken({ user: input.user, roles: input.roles, expires: input.expires ?? null });
  while (ids.has(made.record.id))
    made = createApiToken({ user: input.user, roles: input.roles, expires: input.expires ?? null });
  const all = [...records, made.record];
  // Validates the user name and roles exactly as loading the file will.
  parseTokenRecords({ tokens: all.map(tokenRecordToJson) }, `token file ${JSON.stringify(file)}`);
  assertSeparation(all.map((r) => ({ user: r.user, roles: r.roles, source: `token ${r.id}` })));
  const text =
    '# Warden admin API tokens: SHA-256 hashes only (the tokens were shown once at creation).\n' +
    YAML.stringify({ tokens: all.map(tokenRecordToJson) });
  writeFileAtomic(file, text, 0o600);
  return made;
}
