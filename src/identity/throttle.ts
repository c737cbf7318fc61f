// Slows repeated authentication failures per source address and per user, with bounded memory and an injectable clock.

import { isIP } from 'node:net';
import { WardenError } from '../core/errors.js';

export interface AuthThrottleOptions {
  /** Failures allowed within the window before attempts are delayed (default 3). */
  readonly freeFailures?: number;
  /** Delay after the first failure beyond the free ones; doubles with each further failure (default 250 ms). */
  readonly baseDelayMs?: number;
  /** Upper bound of the delay (default 10 s). */
  readonly maxDelayMs?: number;
  /** A counter is forgotten once this long has passed since its last failure (default 15 min). */
  readonly windowMs?: number;
  /** Most keys tracked per kind (addresses, users, address+user pairs); the least recently failed go first (default 10,000). */
  readonly maxKeys?: number;
  /** Clock in milliseconds (default Date.now). */
  readonly now?: () => number;
  /** Most slowed-down attempts from one address waiting at the same time; more are refused (default 4). */
  readonly maxWaitingPerAddress?: number;
}

interface Counter {
  count: number;
  last: number;
}

/** A map of counters that forgets idle entries and holds at most `max` keys, evicting the least recently failed. */
class CounterMap {
  readonly #map = new Map<string, Counter>();
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
  ) {}

  get(key: string, now: number): Counter | undefined {
    const c = this.#map.get(key);
    if (c !== undefined && now - c.last >= this.windowMs) {
      this.#map.delete(key);
      return undefined;
    }
    return c;
  }

  increment(key: string, now: number): void {
    const c = this.get(key, now);
    this.#map.delete(key); // re-inserted at the end: Map order is recency of failure
    this.#map.set(key, { count: (c?.count ?? 0) + 1, last: now });
    // INVARIANT: memory is bounded: never more than `max` keys.
    while (this.#map.size > this.max) {
      const oldest = this.#map.keys().next();
      if (oldest.done === true) break;
      this.#map.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#map.delete(key);
  }

  get size(): number {
    return this.#map.size;
  }
}

function positiveInteger(value: number | undefined, fallback: number, name: string, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new WardenError('CONFIG_INVALID', `auth throttle: ${name} must be an integer >= ${min}`);
  }
  return v;
}

/**
 * Throttles password guessing. Three counters move together on failure: the source address (spraying many
 * users from one host), the user (guessing one user from many hosts), and the address+user pair.
 *
 * delayMs = 0 while max(address failures, user failures) < freeFailures, then baseDelayMs · 2^(n − freeFailures),
 * capped at maxDelayMs. A success clears the pair and removes the pair's failures from the user's counter (that
 * address proved it knows the password), but leaves the address counter alone, so an attacker cannot reset it by
 * logging in to an account of their own.
 *
 * IPv6 addresses are counted per /64 (one host usually owns a whole /64); IPv4-mapped IPv6 counts as IPv4.
 */
export class AuthThrottle {
  readonly #free: number;
  readonly #base: number;
  readonly #cap: number;
  readonly #now: () => number;
  readonly #addresses: CounterMap;
  readonly #users: CounterMap;
  readonly #pairs: CounterMap;
  readonly #maxWaiting: number;
  /** Slowed-down attempts waiting now, per address key (entries exist only while attempts wait). */
  readonly #waiting = new Map<string, number>();

  constructor(opts: AuthThrottleOptions = {}) {
    this.#free = positiveInteger(opts.freeFailures, 3, 'freeFailures', 0);
    this.#base = positiveInteger(opts.baseDelayMs, 250, 'baseDelayMs');
    this.#cap = positiveInteger(opts.maxDelayMs, 10_000, 'maxDelayMs');
    const windowMs = positiveInteger(opts.windowMs, 15 * 60_000, 'windowMs');
    const maxKeys = positiveInteger(opts.maxKeys, 10_000, 'maxKeys');
    this.#now = opts.now ?? Date.now;
    this.#addresses = new CounterMap(maxKeys, windowMs);
    this.#users = new CounterMap(maxKeys, windowMs);
    this.#pairs = new CounterMap(maxKeys, windowMs);
    this.#maxWaiting = positiveInteger(opts.maxWaitingPerAddress, 4, 'maxWaitingPerAddress');
  }

  /**
   * Takes a waiting slot for a slowed-down attempt from `address`; returns its release (idempotent), or null when
   * the address already has `maxWaitingPerAddress` attempts waiting. Without this, parallel guesses from one
   * address would each wait their delay side by side, and the delay would limit nothing.
   */
  enterDelay(address: string): (() => void) | null {
    const key = addressKey(address);
    const n = this.#waiting.get(key) ?? 0;
    if (n >= this.#maxWaiting) return null;
    this.#waiting.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const m = (this.#waiting.get(key) ?? 1) - 1;
      if (m <= 0) this.#waiting.delete(key);
      else this.#waiting.set(key, m);
    };
  }

  /** The delay to apply before answering the next authentication attempt of `user` from `address`. */
  delayMs(address: string, user: string): number {
    const now = this.#now();
    const n = Math.max(
      this.#addresses.get(addressKey(address), now)?.count ?? 0,
      this.#users.get(user, now)?.count ?? 0,
    );
    if (n < this.#free) return 0;
    const exponent = n - this.#free;
    // 2^31 · base would overflow any cap that matters; stop doubling early.
    return exponent >= 31 ? this.#cap : Math.min(this.#cap, this.#base * 2 ** exponent);
  }

  /** Records a failed attempt. */
  failure(address: string, user: string): void {
    const now = this.#now();
    this.#addresses.increment(addressKey(address), now);
    this.#users.increment(user, now);
    this.#pairs.increment(pairKey(address, user), now);
  }

  /** Records a successful attempt: clears the pair's counter (and its share of the user's), not the address's. */
  success(address: string, user: string): void {
    const now = this.#now();
    const key = pairKey(address, user);
    const pair = this.#pairs.get(key, now);
    this.#pairs.delete(key);
    const u = this.#users.get(user, now);
    if (pair !== undefined && u !== undefined) {
      u.count = Math.max(0, u.count - pair.count);
      if (u.count === 0) this.#users.delete(user);
    }
  }

  /** Numbers of tracked keys, for metrics and tests. */
  get tracked(): { addresses: number; users: number; pairs: number } {
    return { addresses: this.#addresses.size, users: this.#users.size, pairs: this.#pairs.size };
  }
}

function pairKey(address: string, user: string): string {
  return JSON.stringify([addressKey(address), user]);
}

/**
 * The key an address is counted under: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 by its /64 prefix,
 * anything else (e.g. a Unix socket path) as is.
 */
export function addressKey(address: string): string {
  const bare = address.replace(/%.*$/, ''); // zone id
  if (isIP(bare) !== 6) return address;
  const groups = expandIPv6(bare);
  if (groups === null) return address;
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** Eight 16-bit groups of a valid IPv6 address (without zone id), or null. */
function expandIPv6(address: string): number[] | null {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const head = parse(halves[0] ?? '');
  const tail = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...new Array<number>(Math.max(0, fill)).fill(0), ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : null;
}
