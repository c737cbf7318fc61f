// SASLprep (RFC 4013) for SCRAM passwords, with PostgreSQL's fallback: a password SASLprep refuses is used as raw UTF-8.
// @see https://www.rfc-editor.org/rfc/rfc4013
// @see https://www.rfc-editor.org/rfc/rfc3454#section-6 (bidirectional text)
// @see https://www.postgresql.org/docs/current/sasl-authentication.html

import { WardenError } from '../core/errors.js';
import { L_CAT, MAPPED_TO_NOTHING, NON_ASCII_SPACE, PROHIBITED, RAND_AL_CAT } from './saslprep-tables.js';

/** Binary search in a flat sorted list of inclusive [first, last] ranges. */
function inRanges(cp: number, ranges: readonly number[]): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const first = ranges[mid * 2] ?? 0;
    const last = ranges[mid * 2 + 1] ?? -1;
    if (cp < first) hi = mid - 1;
    else if (cp > last) lo = mid + 1;
    else return true;
  }
  return false;
}

/** True when the string holds a lone UTF-16 surrogate, which has no UTF-8 encoding. */
export function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDFFF]/u.test(s);
}

/**
 * SASLprep of a stored string as PostgreSQL applies it: pure ASCII is returned unchanged; otherwise map
 * (C.1.2 to U+0020, B.1 to nothing), normalize with NFKC, and refuse an empty result, prohibited or
 * unassigned code points and bad bidirectional text. Returns null when SASLprep refuses the string.
 */
export function saslprep(input: string): string | null {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(input)) return input;
  if (hasLoneSurrogate(input)) return null;
  let mapped = '';
  for (const ch of input) {
    const cp = ch.codePointAt(0) ?? 0;
    if (inRanges(cp, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inRanges(cp, MAPPED_TO_NOTHING)) mapped += ch;
  }
  const normalized = mapped.normalize('NFKC');
  if (normalized.length === 0) return null;
  const cps = Array.from(normalized, (ch) => ch.codePointAt(0) ?? 0);
  let hasRandAL = false;
  let hasL = false;
  for (const cp of cps) {
    if (inRanges(cp, PROHIBITED)) return null;
    if (inRanges(cp, RAND_AL_CAT)) hasRandAL = true;
    if (inRanges(cp, L_CAT)) hasL = true;
  }
  // RFC 3454 §6: text with RandALCat must not contain LCat, and must start and end with RandALCat.
  if (
    hasRandAL &&
    (hasL || !inRanges(cps[0] ?? 0, RAND_AL_CAT) || !inRanges(cps[cps.length - 1] ?? 0, RAND_AL_CAT))
  ) {
    return null;
  }
  return normalized;
}

/**
 * The bytes PostgreSQL and libpq feed into PBKDF2: the SASLprep form, or the raw UTF-8 when SASLprep refuses it.
 * INVARIANT: same bytes as PostgreSQL for every well-formed string, so verifiers and proofs agree with it.
 * Throws CONFIG_INVALID for a lone surrogate: it has no UTF-8 form, and replacing it would make distinct passwords equal.
 */
export function scramPasswordBytes(password: string): Buffer {
  if (hasLoneSurrogate(password)) {
    throw new WardenError(
      'CONFIG_INVALID',
      'the password is not valid Unicode (it contains a lone surrogate)',
    );
  }
  return Buffer.from(saslprep(password) ?? password, 'utf8');
}
