// The binding of a statement approval: a SHA-256 over who runs what, where. Only an identical statement matches.
//
// INVARIANT: the hash covers the requester, the target, the upstream database, the exact statement text and the
// parameter values (or null). Changing any of them, even by one byte of whitespace, gives a different hash.
// Extended protocol: the policy hook decides approval-gated statements at each Bind, with the session's SHA-256 of
// the Bind's parameter formats and values (pg-session.ts hashParams), so an approved `DELETE ... WHERE id = $1`
// runs only with the parameters it was approved for. A simple query has null: its values are in its text.

import { createHash } from 'node:crypto';

export const BINDING_VERSION = 'warden-approval-binding/1';

export interface BindingInput {
  readonly principal: string;
  readonly target: string;
  readonly database: string;
  readonly sql: string;
  /** Hex SHA-256 of the canonical parameter values, or null when there are none (or they are not known). */
  readonly paramsHash: string | null;
}

/** Hex SHA-256 over a JSON array of the fields (JSON strings are unambiguous: no field can spill into another). */
export function bindingHash(b: BindingInput): string {
  const canonical = JSON.stringify([BINDING_VERSION, b.principal, b.target, b.database, b.sql, b.paramsHash]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** Hex SHA-256 of parameter values as the client sent them (null = SQL NULL); for when the session passes them. */
export function paramsHash(values: readonly (string | Uint8Array | null)[]): string {
  const h = createHash('sha256');
  for (const v of values) {
    if (v === null) {
      h.update('n');
      continue;
    }
    const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    h.update('v').update(len).update(bytes);
  }
  return h.digest('hex');
}
