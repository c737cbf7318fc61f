// The statement hook of one bundle generation: fails closed once the bundle (or its root) has expired, and enforces the bundle's per-statement settings around the policy hook.
// @see docs/bundles.md (Settings, Expiry)
//
// Life of a statement through the guard: expired? → refused WA010 (the first refusal reports the expiry once) →
// session no longer admitted by require_tls / allowed_source_cidrs? → refused 42501 → the policy decides → an
// allowed statement that changes a pinned setting (statement_timeout) is refused 42501 naming the setting.
// The guard sits inside the audit recorder, so each of its refusals is a statement entry like a policy denial.

import { ERRORS } from '../core/errors.js';
import type {
  BindRequest,
  StatementHook,
  StatementOutcome,
  StatementRequest,
  StatementVerdict,
} from '../core/context.js';
import type { SettingsEnforcer } from './settings.js';

export interface BundleGuardOptions {
  /** "bundle version 3 (ab12…)": names the bundle in messages. */
  readonly label: string;
  /** The bundle's `expires`, ISO-8601. */
  readonly bundleExpires: string;
  /** The trust root's `expires`, when it has one. */
  readonly rootExpires?: string;
  readonly settings: SettingsEnforcer;
  /** Clock (tests). */
  readonly now?: () => Date;
  /** Called on the first statement refused because of expiry (the gateway records and logs it once). */
  readonly onExpired?: () => void;
}

/** When a generation stops being valid: the earlier of the bundle's and the root's expiry. */
export function effectiveExpiry(
  bundleExpires: string,
  rootExpires?: string,
): { at: Date; by: 'bundle' | 'root' } {
  const b = Date.parse(bundleExpires);
  const r = rootExpires === undefined ? Number.POSITIVE_INFINITY : Date.parse(rootExpires);
  return r < b ? { at: new Date(r), by: 'root' } : { at: new Date(b), by: 'bundle' };
}

function denial(rule: string, reason: string, sqlstate: string): StatementVerdict {
  const message = `denied by ${rule}: ${reason}`;
  return {
    action: 'deny',
    sqlstate,
    message,
    decision: {
      effect: 'deny',
      rules: [rule],
      reasons: [reason],
      denied: { statement: 0, rule, reason },
      message,
      protections: {},
      rewritten: false,
      cached: false,
    },
  };
}

/** Whether an allowed verdict's decision names the policy rule `setting:<name>` (a SET, RESET or set_config). */
function changesSetting(v: StatementVerdict, name: string): boolean {
  const d = v.decision as { rules?: unknown } | undefined;
  return Array.isArray(d?.rules) && d.rules.includes(`setting:${name}`);
}

export class BundleGuard implements StatementHook {
  readonly expiresAt: Date;
  readonly expiredBy: 'bundle' | 'root';
  private readonly now: () => Date;
  private reported = false;

  constructor(
    private readonly inner: StatementHook,
    private readonly opts: BundleGuardOptions,
  ) {
    const e = effectiveExpiry(opts.bundleExpires, opts.rootExpires);
    this.expiresAt = e.at;
    this.expiredBy = e.by;
    this.now = opts.now ?? (() => new Date());
  }

  /** Whether the generation has expired at `at`. */
  expired(at: Date = this.now()): boolean {
    return at.getTime() >= this.expiresAt.getTime();
  }

  /** The WA010 message: which bundle, since when, and what to do. */
  expiryMessage(): string {
    const what =
      this.expiredBy === 'root'
        ? `the trust root of ${this.opts.label} expired at ${this.expiresAt.toISOString()}`
        : `${this.opts.label} expired at ${this.opts.bundleExpires}`;
    const fix =
      this.expiredBy === 'root'
        ? 'pin a rotated root and activate a new signed bundle'
        : 'a new signed bundle must be activated';
    return `${what}; every statement on this target is refused: ${fix}`;
  }

  /** Reports the expiry once (the gateway's timer and the first refused statement both call this). */
  reportExpired(): void {
    if (this.reported) return;
    this.reported = true;
    this.opts.onExpired?.();
  }

  check(request: StatementRequest): Promise<StatementVerdict> | StatementVerdict {
    // INVARIANT: fail closed from the expiry instant, whatever the policy would say (SHOW included).
    if (this.expired()) {
      this.reportExpired();
      const reason = this.expiryMessage();
      return denial(
        this.expiredBy === 'root' ? 'root-expired' : 'bundle-expired',
        reason,
        ERRORS.BUNDLE_EXPIRED.sqlstate,
      );
    }
    const refused = this.opts.settings.admit(request.session);
    if (refused !== undefined)
      return denial(
        `bundle-settings:${refused.setting}`,
        refused.message,
        ERRORS.INSUFFICIENT_PRIVILEGE.sqlstate,
      );
    const v = this.inner.check(request);
    return v instanceof Promise ? v.then((x) => this.afterPolicy(x)) : this.afterPolicy(v);
  }

  private afterPolicy(v: StatementVerdict): StatementVerdict {
    const pinned = this.opts.settings.settings.statementTimeoutMs;
    if (v.action === 'allow' && pinned !== undefined && changesSetting(v, 'statement_timeout'))
      return denial(
        'bundle-settings:statement_timeout_ms',
        `statement_timeout is pinned to ${pinned} ms by ${this.opts.label}; it cannot be changed in a session`,
        ERRORS.INSUFFICIENT_PRIVILEGE.sqlstate,
      );
    return v;
  }

  bind(request: BindRequest): Promise<StatementVerdict | undefined> | StatementVerdict | undefined {
    // A statement prepared before the expiry does not run after it either.
    if (this.expired()) {
      this.reportExpired();
      return denial(
        this.expiredBy === 'root' ? 'root-expired' : 'bundle-expired',
        this.expiryMessage(),
        ERRORS.BUNDLE_EXPIRED.sqlstate,
      );
    }
    return this.inner.bind?.(request);
  }

  outcome(o: StatementOutcome): void {
    this.inner.outcome?.(o);
  }

  sessionClosed(sessionId: string): void {
    this.inner.sessionClosed?.(sessionId);
  }
}
