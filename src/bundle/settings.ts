// A bundle's target settings: the strict schema of `settings` in a bundle payload, and the checks each setting drives.
// @see docs/bundles.md (Settings)
//
// A bundle is per target, so its settings are the target's enforcement settings; gateway-wide plumbing (listen
// address, TLS files, state folder, message and connection limits) stays in the configuration file.
// INVARIANT: an unknown or ill-typed key refuses the whole bundle (reason `settings-invalid`, naming the key); a
// setting is never silently ignored.

import { BundleError } from './errors.js';
import { cidrContains, parseCidr, parseIp } from '../policy/net.js';
import type { Cidr } from '../policy/net.js';

/** The validated settings of a bundle (all optional: an absent key means the gateway default, i.e. no limit). */
export interface TargetSettings {
  /** Upstream `statement_timeout` of sessions opened under this bundle; clients may not change it. */
  readonly statementTimeoutMs?: number;
  /** A client session idle for this long is closed by the gateway (FATAL 57P05). */
  readonly idleSessionTimeoutMs?: number;
  /** Plaintext client sessions may not use the target. */
  readonly requireTls?: boolean;
  /** Client source addresses allowed to use the target (CIDR ranges, as written). */
  readonly allowedSourceCidrs?: readonly string[];
}

interface IntegerSpec {
  readonly kind: 'integer';
  readonly min: number;
  readonly max: number;
}
type Spec = IntegerSpec | { readonly kind: 'boolean' } | { readonly kind: 'cidrs'; readonly max: number };

/** Every setting a bundle may carry, by its payload key. */
export const SETTINGS_SCHEMA: Readonly<Record<string, Spec & { readonly about: string }>> = {
  statement_timeout_ms: {
    kind: 'integer',
    min: 1,
    max: 86_400_000,
    about: 'upstream statement_timeout of new sessions (ms); SET/RESET of statement_timeout is refused',
  },
  idle_session_timeout_ms: {
    kind: 'integer',
    min: 1000,
    max: 604_800_000,
    about: 'close client sessions idle this long (ms), in or out of a transaction',
  },
  require_tls: { kind: 'boolean', about: 'refuse plaintext client sessions on this target' },
  allowed_source_cidrs: {
    kind: 'cidrs',
    max: 256,
    about: 'client source addresses allowed on this target (IPv4/IPv6 CIDR ranges)',
  },
};

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates a bundle's `settings` object against SETTINGS_SCHEMA. Throws BundleError('settings-invalid') naming the
 * first bad key (unknown keys included).
 */
export function parseSettings(raw: unknown): TargetSettings {
  const bad = (m: string): never => {
    throw new BundleError('settings-invalid', `bundle settings: ${m}`);
  };
  if (!isObj(raw)) return bad('must be an object');
  const known = Object.keys(SETTINGS_SCHEMA);
  for (const k of Object.keys(raw).sort())
    if (!Object.hasOwn(SETTINGS_SCHEMA, k)) bad(`unknown setting "${k}" (known: ${known.join(', ')})`);
  const out: {
    statementTimeoutMs?: number;
    idleSessionTimeoutMs?: number;
    requireTls?: boolean;
    allowedSourceCidrs?: string[];
  } = {};
  const int = (k: string): number | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    const spec = SETTINGS_SCHEMA[k] as IntegerSpec;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < spec.min || v > spec.max)
      bad(`"${k}" must be an integer from ${spec.min} to ${spec.max}`);
    return v as number;
  };
  const st = int('statement_timeout_ms');
  if (st !== undefined) out.statementTimeoutMs = st;
  const idle = int('idle_session_timeout_ms');
  if (idle !== undefined) out.idleSessionTimeoutMs = idle;
  if (raw.require_tls !== undefined) {
    if (typeof raw.require_tls !== 'boolean') bad('"require_tls" must be true or false');
    out.requireTls = raw.require_tls as boolean;
  }
  const cidrs = raw.allowed_source_cidrs;
  if (cidrs !== undefined) {
    const max = (SETTINGS_SCHEMA.allowed_source_cidrs as { max: number }).max;
    if (!Array.isArray(cidrs) || cidrs.length === 0 || cidrs.length > max)
      bad(`"allowed_source_cidrs" must be a list of 1 to ${max} CIDR ranges`);
    const list = cidrs as unknown[];
    list.forEach((c, i) => {
      if (typeof c !== 'string') return bad(`"allowed_source_cidrs"[${i}] must be a string`);
      const r = parseCidr(c);
      if (typeof r === 'string') bad(`"allowed_source_cidrs"[${i}]: ${r}`);
    });
    out.allowedSourceCidrs = list as string[];
  }
  return out;
}

/** Why a client session may not use the target: a SQLSTATE, the setting that refused it, and words. */
export interface Refusal {
  readonly sqlstate: string;
  readonly setting: string;
  readonly message: string;
}

/**
 * The per-session checks of a bundle's settings, compiled once per activation. `source` names the bundle in
 * messages (e.g. "bundle version 3").
 */
export class SettingsEnforcer {
  readonly settings: TargetSettings;
  private readonly cidrs: readonly Cidr[] | undefined;
  private readonly source: string;

  constructor(settings: TargetSettings, source: string) {
    this.settings = settings;
    this.source = source;
    this.cidrs = settings.allowedSourceCidrs?.map((c) => parseCidr(c) as Cidr);
  }

  /** Whether a session with this TLS state and source address may use the target; undefined: admitted. */
  admit(session: { readonly tls: boolean; readonly sourceAddress: string }): Refusal | undefined {
    if (this.settings.requireTls === true && !session.tls)
      return {
        sqlstate: '28000',
        setting: 'require_tls',
        message: `this target requires TLS (require_tls of ${this.source}): connect with sslmode=require or stronger`,
      };
    if (this.cidrs !== undefined) {
      const addr = parseIp(session.sourceAddress);
      // INVARIANT: an address that does not parse is outside every range (fail closed).
      if (addr === undefined || !this.cidrs.some((c) => cidrContains(c, addr)))
        return {
          sqlstate: '28000',
          setting: 'allowed_source_cidrs',
          message: `connections from ${session.sourceAddress} are not allowed on this target (allowed_source_cidrs of ${this.source})`,
        };
    }
    return undefined;
  }
}
