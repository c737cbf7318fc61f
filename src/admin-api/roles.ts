// The admin API's own roles (viewer, approver, auditor, operator) and the separation-of-duties rule between them.

import { WardenError } from '../core/errors.js';

export const API_ROLES = ['viewer', 'approver', 'auditor', 'operator'] as const;
export type ApiRole = (typeof API_ROLES)[number];

export function isApiRole(v: unknown): v is ApiRole {
  return typeof v === 'string' && (API_ROLES as readonly string[]).includes(v);
}

/**
 * Roles that must never be held together by one identity: whoever can change (operator) cannot approve (approver).
 * INVARIANT: checked at configuration load over the union of everything an identity holds (every token, the OIDC
 * role map), and again on every request (defence in depth).
 */
export const EXCLUSIVE_ROLES: readonly (readonly [ApiRole, ApiRole])[] = [['operator', 'approver']];

/** The first exclusive pair held together, or undefined. */
export function conflictingRoles(roles: Iterable<ApiRole>): readonly [ApiRole, ApiRole] | undefined {
  const held = new Set(roles);
  return EXCLUSIVE_ROLES.find(([a, b]) => held.has(a) && held.has(b));
}

/** Every role also reads what a viewer reads. */
export function effectiveRoles(roles: Iterable<ApiRole>): ReadonlySet<ApiRole> {
  const out = new Set(roles);
  if (out.size > 0) out.add('viewer');
  return out;
}

/** Checks that no user holds exclusive roles across all their grants; throws CONFIG_INVALID naming the user. */
export function assertSeparation(
  grants: Iterable<{ user: string; roles: readonly ApiRole[]; source: string }>,
): void {
  const byUser = new Map<string, { roles: Set<ApiRole>; sources: Set<string> }>();
  for (const g of grants) {
    let u = byUser.get(g.user);
    if (u === undefined) {
      u = { roles: new Set(), sources: new Set() };
      byUser.set(g.user, u);
    }
    for (const r of g.roles) u.roles.add(r);
    u.sources.add(g.source);
  }
  for (const [user, u] of byUser) {
    const c = conflictingRoles(u.roles);
    if (c !== undefined) {
      throw new WardenError(
        'CONFIG_INVALID',
        `admin API: user ${JSON.stringify(user)} would hold both ${c[0]} and ${c[1]} (from ${[...u.sources].join(', ')}); ` +
          `no identity may both change and approve`,
      );
    }
  }
}
