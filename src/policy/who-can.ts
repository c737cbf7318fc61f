// The access matrix for one table: who may do what, on which columns, under which conditions, masks and row filter.

import type { Operation } from '../core/access.js';
import { APPEND_ONLY_FORBIDDEN } from './evaluate.js';
import type { CompiledRole, Policy } from './model.js';
import type { MaskSpec } from './masks.js';

export interface WhoCanRow {
  /** A declared user's name, or "group:<name>" for members of a group known only to the identity provider. */
  readonly principal: string;
  readonly role: string;
  /** The grant's rule id. */
  readonly grant: string;
  readonly target: string;
  readonly operations: readonly Operation[];
  /** '*' = all columns. */
  readonly columns: readonly string[] | '*';
  /** Conditions that must hold, in words; empty = always. */
  readonly conditions: readonly string[];
  /** Column → mask applied to this principal. */
  readonly masks: Readonly<Record<string, string>>;
  /** The role's row filter template for this table, if any. */
  readonly rowFilter?: string;
}

export function describeMask(spec: MaskSpec): string {
  switch (spec.kind) {
    case 'partial':
      return `partial(keep_first=${spec.keepFirst}, keep_last=${spec.keepLast})`;
    case 'hash':
      return spec.salt === undefined ? 'hash' : 'hash(salted)';
    case 'expr':
      return `expr(${spec.template.source})`;
    case 'redact':
    case 'null':
      return spec.type === undefined ? spec.kind : `${spec.kind}(${spec.type})`;
  }
}

/**
 * Lists, for `table` ("schema.table"), every (principal, grant) pair that reaches it. Append-only tables never list
 * the operations they refuse. Rows are sorted by principal, then grant.
 */
export function whoCan(policy: Policy, table: string): WhoCanRow[] {
  const dot = table.indexOf('.');
  const schema = table.slice(0, dot);
  const principals: { name: string; roles: readonly string[] }[] = [];
  for (const u of [...policy.users.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    principals.push({ name: u.name, roles: u.roles });
  }
  for (const [g, roles] of [...policy.groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    principals.push({ name: `group:${g}`, roles });
  }
  const appendOnly = policy.appendOnly.has(table);
  const rows: WhoCanRow[] = [];
  for (const p of principals) {
    const held = new Set(p.roles);
    const masks: Record<string, string> = {};
    for (const m of policy.masks.get(table) ?? []) {
      if (![...m.unmaskedFor].some((r) => held.has(r))) masks[m.column] = describeMask(m.spec);
    }
    for (const roleName of p.roles) {
      const role = policy.roles.get(roleName) as CompiledRole;
      const grants = [
        ...(role.grantsByTable.get(table) ?? []),
        ...(role.grantsByTable.get(`${schema}.*`) ?? []),
      ];
      for (const g of grants) {
        const ops = [...g.operations].filter(
          (o): o is Operation => o !== 'notify' && !(appendOnly && APPEND_ONLY_FORBIDDEN.has(o)),
        );
        if (ops.length === 0) continue;
        const filter = role.rowFilters.get(table);
        const row: WhoCanRow = {
          principal: p.name,
          role: roleName,
          grant: g.id,
          target: g.target,
          operations: ops,
          columns: g.columns === undefined ? '*' : [...g.columns],
          conditions: g.condition?.text ?? [],
          masks,
        };
        rows.push(filter === undefined ? row : { ...row, rowFilter: filter.template.source });
      }
    }
  }
  return rows;
}
