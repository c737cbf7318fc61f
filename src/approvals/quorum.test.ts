// Tests for quorum matching: self-approval never counts, one person fills one slot, and the matching agrees with brute force.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { evaluateQuorum, isEligibleApprover } from './quorum.js';
import type { Approval, ApproverSlotRule } from './quorum.js';

/** Every assignment of approvers to slots, tried exhaustively (small inputs only). */
function bruteForce(
  rules: readonly ApproverSlotRule[],
  approvals: readonly Approval[],
  requester: string,
): boolean {
  const slots = rules.flatMap((r) => Array.from({ length: r.count }, () => r.group));
  // A person's first approval is the one that counts (the store refuses a second one anyway).
  const first = new Map<string, Approval>();
  for (const a of approvals) if (a.approver !== requester && !first.has(a.approver)) first.set(a.approver, a);
  const people = [...first.values()];
  const used = new Set<string>();
  const fill = (i: number): boolean => {
    if (i === slots.length) return true;
    for (const p of people) {
      if (used.has(p.approver) || !p.groups.includes(slots[i] as string)) continue;
      used.add(p.approver);
      if (fill(i + 1)) return true;
      used.delete(p.approver);
    }
    return false;
  };
  return fill(0);
}

void describe('quorum', () => {
  it('never counts the requester, even when they are in the approver group', () => {
    const rules = [{ group: 'approvers', count: 1 }];
    const r = evaluateQuorum(rules, [{ approver: 'bob', groups: ['approvers'] }], 'bob');
    assert.equal(r.met, false);
    assert.deepEqual(r.missing, [{ group: 'approvers', count: 1 }]);
    assert.equal(isEligibleApprover(rules, 'bob', ['approvers'], 'bob'), false);
    assert.equal(isEligibleApprover(rules, 'carol', ['approvers'], 'bob'), true);
    assert.equal(isEligibleApprover(rules, 'alice', ['analysts'], 'bob'), false);
  });

  it('counts one person in two groups once', () => {
    const rules = [
      { group: 'approvers', count: 1 },
      { group: 'security', count: 1 },
    ];
    const carol = { approver: 'carol', groups: ['approvers', 'security'] };
    assert.equal(evaluateQuorum(rules, [carol], 'bob').met, false);
    // Approving twice does not help either.
    assert.equal(evaluateQuorum(rules, [carol, carol], 'bob').met, false);
    const dave = { approver: 'dave', groups: ['security'] };
    const r = evaluateQuorum(rules, [carol, dave], 'bob');
    assert.equal(r.met, true);
    // The matching moves carol to the slot only she can fill.
    assert.deepEqual(r.assignment, { carol: 'approvers', dave: 'security' });
  });

  it('needs as many distinct people as slots', () => {
    const rules = [{ group: 'g', count: 2 }];
    assert.equal(evaluateQuorum(rules, [{ approver: 'a', groups: ['g'] }], 'x').met, false);
    assert.equal(
      evaluateQuorum(
        rules,
        [
          { approver: 'a', groups: ['g'] },
          { approver: 'b', groups: ['g'] },
        ],
        'x',
      ).met,
      true,
    );
  });

  it('agrees with an exhaustive search (property)', () => {
    const groups = ['g1', 'g2', 'g3'];
    const names = ['p1', 'p2', 'p3', 'p4', 'p5'];
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.record({ group: fc.constantFrom(...groups), count: fc.integer({ min: 1, max: 2 }) }),
          {
            selector: (r) => r.group,
            minLength: 1,
            maxLength: 3,
          },
        ),
        fc.array(
          fc.record({
            approver: fc.constantFrom(...names),
            groups: fc.subarray(groups),
          }),
          { maxLength: 7 },
        ),
        fc.constantFrom(...names),
        (rules, approvals, requester) => {
          const r = evaluateQuorum(rules, approvals, requester);
          assert.equal(r.met, bruteForce(rules, approvals, requester));
          // The assignment uses distinct people, never the requester, each in the group of their slot.
          for (const [who, g] of Object.entries(r.assignment)) {
            assert.notEqual(who, requester);
            assert.ok(approvals.find((a) => a.approver === who)?.groups.includes(g));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
