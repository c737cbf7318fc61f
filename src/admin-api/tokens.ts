// API tokens: creation (shown once), SHA-256 hashes at rest, the token file, and constant-time verification.

import { createHash, randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { constantTimeEqual, readSecret } from '../core/secrets.js';
import { WardenError } from '../core/errors.js';
import { isApiRole, type ApiRole } from './roles.js';

/** Tokens look like `wdn_<id>_<secret>`; the id selects the record, the whole token is hashed and compared. */
export const TOKEN_PREFIX = 'wdn_';
const ID_RE = /^[A-Za-z0-9-]{1,64}$/;
const USER_RE = /^[^\s\p{Cc}]{1,128}$/u;
const HASH_RE = /^sha256:[0-9a-f]{64}$/;
/** Longer bearer values are refused before any work. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** One token as stored: never the token itself. */
export interface ApiTokenRecord {
  readonly id: string;
  readonly user: string;
  /** `sha256:<hex>` of the whole token string. */
  readonly hash: string;
  readonly roles: readonly ApiRole[];
  /** Expiry; null never expires. */
  readonly expires: Date | null;
}

export function hashToken(token: string): string {
  return 'sha256:' + createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Makes a new token. The caller shows `token` once and stores only `record`. */
export function createApiToken(input: {
  user: string;
  roles: readonly ApiRole[];
  expires?: Date | null;
  id?: string;
}): { token: string; record: ApiTokenRecord } {
  const id = input.id ?? randomBytes(6).toString('hex');
  if (!ID_RE.test(id))
    throw new WardenError('CONFIG_INVALID', `token id ${JSON.stringify(id)} is not [A-Za-z0-9-]{1,64}`);
  const token = `${TOKEN_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  return {
    token,
    record: {
      id,
      user: input.user,
      hash: hashToken(token),
      roles: [...input.roles],
      expires: input.expires ?? null,
    },
  };
}

/** The record as written to a token file (YAML or JSON). */
export function tokenRecordToJson(r: ApiTokenRecord): Record<string, unknown> {
  return {
    id: r.id,
    user: r.user,
    hash: r.hash,
    roles: [...r.roles],
    expires: r.expires?.toISOString() ?? null,
  };
}

/** Validates a token file's content: `{ tokens: [...] }` or a bare list of `{ id, user, hash, roles, expires }`. */
export function parseTokenRecords(doc: unknown, where = 'token file'): ApiTokenRecord[] {
  const list = Array.isArray(doc)
    ? doc
    : typeof doc === 'object' && doc !== null && Array.isArray((doc as { tokens?: unknown }).tokens)
      ? (doc as { tokens: unknown[] }).tokens
      : undefined;
  if (list === undefined) throw new WardenError('CONFIG_INVALID', `${where}: expected a list under "tokens"`);
  const seen = new Set<string>();
  return list.map((raw, i) => {
    const at = `${where}: tokens[${i}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new WardenError('CONFIG_INVALID', `${at}: expected an object`);
    const o = raw as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!['id', 'user', 'hash', 'roles', 'expires'].includes(k))
        throw new WardenError('CONFIG_INVALID', `${at}: unknown field ${JSON.stringify(k)}`);
    }
    if (typeof o['id'] !== 'string' || !ID_RE.test(o['id']))
      throw new WardenError('CONFIG_INVALID', `${at}.id: must match [A-Za-z0-9-]{1,64}`);
    if (seen.has(o['id'])) throw new WardenError('CONFIG_INVALID', `${at}.id: duplicate id ${o['id']}`);
    seen.add(o['id']);
    if (typeof o['user'] !== 'string' || !USER_RE.test(o['user']))
      throw new WardenError('CONFIG_INVALID', `${at}.user: must be a user name`);
    if (typeof o['hash'] !== 'string' || !HASH_RE.test(o['hash']))
      throw new WardenError('CONFIG_INVALID', `${at}.hash: must be "sha256:" and 64 lowercase hex digits`);
    const roles = o['roles'];
    if (!Array.isArray(roles) || roles.length === 0 || !roles.every(isApiRole))
      throw new WardenError(
        'CONFIG_INVALID',
        `${at}.roles: must be a non-empty list of viewer, approver, auditor, operator`,
      );
    let expires: Date | null = null;
    const e = o['expires'];
    if (e instanceof Date) expires = e;
    else if (typeof e === 'string') {
      expires = new Date(e);
      if (Number.isNaN(expires.getTime()))
        throw new WardenError('CONFIG_INVALID', `${at}.expires: not an ISO-8601 time`);
    } else if (e !== null && e !== undefined)
      throw new WardenError('CONFIG_INVALID', `${at}.expires: must be an ISO-8601 time or null`);
    return { id: o['id'], user: o['user'], hash: o['hash'], roles: [...new Set(roles)], expires };
  });
}

export function loadTokenFile(path: string): ApiTokenRecord[] {
  // Hashes only, but a readable list of who holds which role is still refused: the file must be 0600.
  const text = readSecret({ file: path }, 'token file');
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `token file ${JSON.stringify(path)} is not YAML or JSON`, {
      cause: e,
    });
  }
  return parseTokenRecords(doc, `token file ${JSON.stringify(path)}`);
}

export type TokenCheck =
  | { readonly ok: true; readonly record: ApiTokenRecord }
  | { readonly ok: false; readonly reason: 'malformed' | 'invalid' | 'expired' };

// Compared against when the id is unknown, so unknown ids cost the same as wrong secrets.
const DUMMY_HASH = hashToken('wdn_dummy_dummy');

/** Looks up and checks a presented token. INVARIANT: the hash comparison is constant-time; the token is never kept. */
export class TokenStore {
  private readonly byId: ReadonlyMap<string, ApiTokenRecord>;

  constructor(records: readonly ApiTokenRecord[]) {
    this.byId = new Map(records.map((r) => [r.id, r]));
  }

  get records(): readonly ApiTokenRecord[] {
    return [...this.byId.values()];
  }

  check(token: string, now: Date = new Date()): TokenCheck {
    if (token.length > MAX_TOKEN_LENGTH || !token.startsWith(TOKEN_PREFIX))
      return { ok: false, reason: 'malformed' };
    const rest = token.slice(TOKEN_PREFIX.length);
    const sep = rest.indexOf('_');
    if (sep <= 0 || sep === rest.length - 1) return { ok: false, reason: 'malformed' };
    const record = this.byId.get(rest.slice(0, sep));
    const match = constantTimeEqual(hashToken(token), record?.hash ?? DUMMY_HASH);
    if (record === undefined || !match) return { ok: false, reason: 'invalid' };
    if (record.expires !== null && now.getTime() >= record.expires.getTime())
      return { ok: false, reason: 'expired' };
    return { ok: true, record };
  }
}
