// Quorum: decides whether a set of distinct approvers can fill every approver slot a rule requires (a bipartite matching).
//
// INVARIANT: one person counts once. Each approver fills at most one slot, even if they belong to several of the
// required groups; the quorum is met only if there is an assignment of distinct approvers to all the slots.
// INVARIANT: the requester never fills a slot, whatever groups they hold.

export interface ApproverSlotRule {
  readonly group: string;
  readonly count: number;
}

export interface Approval {
  /** The approver's principal name: the identity that counts once. */
  readonly approver: string;
  /** Groups the approver belonged to when approving. */
  readonly groups: readonly string[];
}

export interface QuorumResult {
  readonly met: boolean;
  /** Slots still open per group in the best assignment found. */
  readonly missing: readonly ApproverSlotRule[];
  /** Approver → group slot they were assigned to in the best assignment. */
  readonly assignment: Readonly<Record<string, string>>;
}

/**
 * The largest assignment of distinct approvers to slots (Kuhn's augmenting paths; sizes are tiny).
 * Approvals by `requester` and repeated approvals by one person are ignored.
 */
export function evaluateQuorum(
  rules: readonly ApproverSlotRule[],
  approvals: readonly Approval[],
  requester: string,
): QuorumResult {
  const slots: string[] = [];
  for (const r of rules) for (let i = 0; i < r.count; i++) slots.push(r.group);
  const people = new Map<string, ReadonlySet<string>>();
  for (const a of approvals) {
    if (a.approver === requester || people.has(a.approver)) continue;
    people.set(a.approver, new Set(a.groups));
  }
  const names = [...people.keys()];
  const slotOwner: (number | undefined)[] = slots.map(() => undefined);
  const tryAssign = (p: number, seen: boolean[]): boolean => {
    const groups = people.get(names[p] as string) as ReadonlySet<string>;
    for (let s = 0; s < slots.length; s++) {
      if (seen[s] === true || !groups.has(slots[s] as string)) continue;
      seen[s] = true;
      const owner = slotOwner[s];
      if (owner === undefined || tryAssign(owner, seen)) {
        slotOwner[s] = p;
        return true;
      }
    }
    return false;
  };
  for (let p = 0; p < names.length; p++)
    tryAssign(
      p,
      slots.map(() => false),
    );
  const assignment: Record<string, string> = {};
  const open = new Map<string, number>();
  slots.forEach((g, s) => {
    const owner = slotOwner[s];
    if (owner === undefined) open.set(g, (open.get(g) ?? 0) + 1);
    else assignment[names[owner] as string] = g;
  });
  return {
    met: open.size === 0,
    missing: [...open].map(([group, count]) => ({ group, count })),
    assignment,
  };
}

/** Whether a person may act as an approver under these rules at all (member of a required group, not the requester). */
export function isEligibleApprover(
  rules: readonly ApproverSlotRule[],
  approver: string,
  groups: readonly string[],
  requester: string,
): boolean {
  return approver !== requester && rules.some((r) => groups.includes(r.group));
}
