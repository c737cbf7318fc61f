// The evaluator: decides plain requests (principal, statement summaries, context) against a compiled policy. Default deny.

import type {
  FunctionCall,
  Operation,
  RelationAccess,
  RequestContext,
  StatementSummary,
} from '../core/access.js';
import type { Principal, PrincipalKind } from '../core/context.js';
import {
  ACCESS_KINDS,
  DDL_KINDS,
  DENIED_CATALOGS,
  FORBIDDEN_SETTINGS,
  HARMLESS_SETTINGS,
  NOTIFY_KIND,
  READABLE_CATALOGS,
  READABLE_INFORMATION_SCHEMA,
  SYSTEM_SCHEMAS,
  UTILITY_KINDS,
} from './catalog.js';
import { builtinFunctionVerdict } from './functions.js';
import type {
  ApprovalRequirement,
  CompiledApproval,
  CompiledCondition,
  CompiledGrant,
  CompiledRole,
  Decision,
  Policy,
  TableProtection,
} from './model.js';
import { cidrContains, parseIp } from './net.js';
import type { IpAddress } from './net.js';
import { renderTemplate } from './template.js';
import { inWindow, localTime } from './time.js';
import type { LocalTime } from './time.js';

export interface EvaluateRequest {
  readonly principal: Principal;
  readonly statements: readonly StatementSummary[];
  readonly context: RequestContext;
  /** Upstream database the target maps to; grants naming a database other than '*' need it. */
  readonly database?: string;
  /** Just-in-time roles granted for this request (unknown names are ignored). */
  readonly extraRoles?: readonly string[];
}

/**
 * Operations an append-only table refuses, whatever the grants say.
 * INVARIANT: nothing that changes or removes an existing row, or the table itself, is ever allowed on it.
 */
export const APPEND_ONLY_FORBIDDEN: ReadonlySet<Operation> = new Set([
  'update',
  'delete',
  'truncate',
  'merge',
  'alter',
  'drop',
  'create',
]);

class Denied {
  constructor(
    readonly rule: string,
    readonly reason: string,
  ) {}
}

/** Per-request evaluation state: who, effective roles, and memoised context checks. */
class Evaluation {
  readonly roles: readonly CompiledRole[];
  readonly roleNames: ReadonlySet<string>;
  readonly kind: PrincipalKind;
  readonly kindConflict: boolean;
  readonly attributes: Readonly<Record<string, string>>;
  private readonly conditions = new Map<CompiledCondition, boolean>();
  private readonly clocks = new Map<string, LocalTime>();
  private address: IpAddress | null | undefined;

  constructor(
    readonly policy: Policy,
    readonly req: EvaluateRequest,
  ) {
    const p = req.principal;
    const user = policy.users.get(p.name);
    const names = new Set<string>(user?.roles ?? []);
    for (const g of p.groups) for (const r of policy.groups.get(g) ?? []) names.add(r);
    for (const r of req.extraRoles ?? []) if (policy.roles.has(r)) names.add(r);
    this.roleNames = names;
    this.roles = [...names].sort().map((n) => policy.roles.get(n) as CompiledRole);
    this.kind = user?.kind ?? p.kind;
    // INVARIANT: if the policy and the authenticator disagree on the principal's kind, no kind condition holds.
    this.kindConflict = user?.kind !== undefined && user.kind !== p.kind;
    this.attributes = user === undefined ? p.attributes : { ...p.attributes, ...user.attributes };
  }

  private sourceAddress(): IpAddress | null {
    if (this.address === undefined) this.address = parseIp(this.req.context.sourceAddress) ?? null;
    return this.address;
  }

  private clock(tz: string): LocalTime {
    let t = this.clocks.get(tz);
    if (t === undefined) {
      t = localTime(this.req.context.at, tz);
      this.clocks.set(tz, t);
    }
    return t;
  }

  conditionHolds(c: CompiledCondition | undefined): boolean {
    if (c === undefined) return true;
    let v = this.conditions.get(c);
    if (v === undefined) {
      v = this.checkCondition(c);
      this.conditions.set(c, v);
    }
    return v;
  }

  private checkCondition(c: CompiledCondition): boolean {
    const ctx = this.req.context;
    if (c.environments !== undefined && !c.environments.has(ctx.environment)) return false;
    if (c.principalKind !== undefined && (this.kindConflict || c.principalKind !== this.kind)) return false;
    if (c.sources.length > 0) {
      const addr = this.sourceAddress();
      if (addr === null || !c.sources.some((s) => cidrContains(s, addr))) return false;
    }
    if (c.windows.length > 0 && !c.windows.some((w) => inWindow(w, this.clock(w.tz)))) return false;
    return true;
  }

  /** Whether a grant applies to this request for this operation (target, database, conditions). */
  applies(g: CompiledGrant, op: Operation | 'notify'): boolean {
    if (!g.operations.has(op)) return false;
    if (g.target !== '*' && g.target !== this.req.context.target) return false;
    if (g.database !== '*' && g.database !== this.req.database) return false;
    return this.conditionHolds(g.condition);
  }

  holdsAnyRoleOnTarget(): boolean {
    return this.roles.some((r) => r.targets.has('*') || r.targets.has(this.req.context.target));
  }
}

interface AccessGrant {
  /** Roles that each grant the whole access on their own, with the grant ids used. */
  readonly roles: readonly { role: CompiledRole; grants: string[] }[];
  readonly rule: string;
}

function describeColumns(cols: readonly string[] | undefined): string {
  return cols === undefined ? '' : ` (columns ${cols.join(', ')})`;
}

function decideRelation(ev: Evaluation, a: RelationAccess): AccessGrant | Denied {
  const key = `${a.schema}.${a.name}`;
  const who = ev.req.principal.name;
  if (a.operation === 'utility' || a.operation === 'set') {
    return new Denied('default-deny', `operation ${a.operation} on ${key} is not decidable`);
  }
  if (ev.policy.appendOnly.has(key) && APPEND_ONLY_FORBIDDEN.has(a.operation)) {
    return new Denied(`append_only:${key}`, `${key} is append-only: ${a.operation} is never allowed`);
  }
  if (SYSTEM_SCHEMAS.has(a.schema)) {
    const rule = `catalog:${key}`;
    const listed =
      (a.schema === 'pg_catalog' && READABLE_CATALOGS.has(a.name)) ||
      (a.schema === 'information_schema' && READABLE_INFORMATION_SCHEMA.has(a.name));
    if (a.operation !== 'select')
      return new Denied(rule, `system catalog ${key} is read-only (${a.operation})`);
    const why = a.schema === 'pg_catalog' ? DENIED_CATALOGS.get(a.name) : undefined;
    if (why !== undefined) return new Denied(rule, `system catalog ${key} ${why}`);
    if (!listed) return new Denied(rule, `system catalog ${key} is not on the readable list`);
    if (!ev.holdsAnyRoleOnTarget())
      return new Denied('default-deny', `${who} holds no role on target ${ev.req.context.target}`);
    return { roles: [], rule };
  }
  if (a.operation === 'execute') {
    const f = decideFunction(ev, { schema: a.schema, name: a.name });
    return f instanceof Denied ? f : { roles: [], rule: f };
  }
  const roles: { role: CompiledRole; grants: string[] }[] = [];
  let partial: Set<string> | undefined;
  for (const role of ev.roles) {
    const candidates = [
      ...(role.grantsByTable.get(key) ?? []),
      ...(role.grantsByTable.get(`${a.schema}.*`) ?? []),
    ];
    const ids: string[] = [];
    let all = false;
    const cols = new Set<string>();
    for (const g of candidates) {
      if (!ev.applies(g, a.operation)) continue;
      ids.push(g.id);
      if (g.columns === undefined) all = true;
      else for (const c of g.columns) cols.add(c);
    }
    if (ids.length === 0) continue;
    // INVARIANT: one role must grant the whole access; columns are never pieced together across roles (that
    // would combine one role's columns with another role's rows).
    if (all || (a.columns !== undefined && a.columns.every((c) => cols.has(c))))
      roles.push({ role, grants: ids });
    else {
      partial ??= new Set();
      for (const c of a.columns ?? ['*']) if (!cols.has(c)) partial.add(c);
    }
  }
  if (roles.length === 0) {
    const detail =
      partial === undefined
        ? describeColumns(a.columns)
        : ` (columns not granted: ${[...partial].join(', ')})`;
    return new Denied('default-deny', `no grant allows ${a.operation} on ${key}${detail} for ${who}`);
  }
  return { roles, rule: roles.flatMap((r) => r.grants).join(',') };
}

/** Returns the rule id that allows the call, or a denial. */
function decideFunction(ev: Evaluation, f: FunctionCall): string | Denied {
  const exact = `${f.schema}.${f.name}`;
  const wildcard = `${f.schema}.*`;
  for (const role of ev.roles) {
    for (const g of role.functionGrants) {
      if ((g.functions.includes(exact) || g.functions.includes(wildcard)) && ev.applies(g, 'execute'))
        return g.id;
    }
  }
  const v = builtinFunctionVerdict(f.schema, f.name);
  if (v.allowed) return v.rule;
  return new Denied(`function:${exact}`, v.reason);
}

function decideSetting(ev: Evaluation, name: string): string | Denied {
  const n = name.toLowerCase();
  const rule = `setting:${n}`;
  const forbidden = FORBIDDEN_SETTINGS.get(n);
  if (forbidden !== undefined) return new Denied(rule, `setting ${n} ${forbidden}`);
  if (HARMLESS_SETTINGS.has(n) || ev.policy.extraSettings.has(n)) return rule;
  return new Denied(rule, `setting ${n} is not on the allowed list`);
}

function tableMatches(patterns: readonly string[], schema: string, name: string): boolean {
  return patterns.some((p) => p === `${schema}.${name}` || p === `${schema}.*`);
}

function approvalMatches(ev: Evaluation, rule: CompiledApproval, s: StatementSummary): boolean {
  if (rule.environments !== undefined && !rule.environments.has(ev.req.context.environment)) return false;
  const userRelations = s.relations.filter((a) => !SYSTEM_SCHEMAS.has(a.schema));
  if (rule.operations === undefined && rule.tables === undefined && !rule.withoutWhere)
    return userRelations.length > 0;
  return userRelations.some(
    (a) =>
      (rule.operations === undefined || rule.operations.has(a.operation)) &&
      (rule.tables === undefined || tableMatches(rule.tables, a.schema, a.name)) &&
      (!rule.withoutWhere || ((a.operation === 'update' || a.operation === 'delete') && s.hasWhere !== true)),
  );
}

interface StatementResult {
  readonly rules: string[];
  readonly reasons: string[];
  /** Per table: the clauses to AND; each clause is an OR of role filters. */
  readonly filters: Map<string, Set<string>>;
  readonly tables: Set<string>;
  readonly approval?: CompiledApproval;
}

function decideStatement(ev: Evaluation, s: StatementSummary): StatementResult | Denied {
  if (s.unsupported !== undefined)
    return new Denied('unsupported', `statement not understood: ${s.unsupported}`);
  const rules: string[] = [];
  const reasons: string[] = [];
  const filters = new Map<string, Set<string>>();
  const tables = new Set<string>();
  if (s.kind === NOTIFY_KIND) {
    const g = ev.roles.flatMap((r) => r.notifyGrants).find((x) => ev.applies(x, 'notify'));
    if (g === undefined)
      return new Denied('default-deny', `no grant allows notify for ${ev.req.principal.name}`);
    rules.push(g.id);
  } else if (DDL_KINDS.has(s.kind)) {
    if (s.relations.length === 0)
      return new Denied('unsupported', `${s.kind} names no object the policy can check`);
  } else if (!UTILITY_KINDS.has(s.kind) && !ACCESS_KINDS.has(s.kind)) {
    return new Denied('statement-kind', `statement kind ${s.kind} is not allowed`);
  }
  for (const set of s.settings) {
    const r = decideSetting(ev, set.name);
    if (r instanceof Denied) return r;
    rules.push(r);
  }
  for (const f of s.functions) {
    const r = decideFunction(ev, f);
    if (r instanceof Denied) return r;
    rules.push(r);
  }
  for (const a of s.relations) {
    const r = decideRelation(ev, a);
    if (r instanceof Denied) return r;
    rules.push(...r.rule.split(','));
    const key = `${a.schema}.${a.name}`;
    if (r.roles.length === 0) continue;
    reasons.push(`${r.rule} allows ${a.operation} on ${key}${describeColumns(a.columns)}`);
    tables.add(key);
    // Row filter of this access: OR of the allowing roles' filters; any allowing role without one = unfiltered.
    const rendered: string[] = [];
    let unfiltered = false;
    for (const { role } of r.roles) {
      const f = role.rowFilters.get(key);
      if (f === undefined) {
        unfiltered = true;
        break;
      }
      const out = renderTemplate(f.template, ev.req.principal, ev.attributes);
      if (!out.ok) return new Denied(f.id, out.reason);
      rendered.push(`(${out.sql})`);
      rules.push(f.id);
    }
    if (!unfiltered) {
      const clause = [...new Set(rendered)].join(' OR ');
      const set = filters.get(key) ?? new Set<string>();
      set.add(clause);
      filters.set(key, set);
    }
  }
  const approval = ev.policy.approvals.find((rule) => approvalMatches(ev, rule, s));
  const base = { rules, reasons, filters, tables };
  return approval === undefined ? base : { ...base, approval };
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

const NO_PROTECTIONS: ReadonlyMap<string, TableProtection> = new Map();

/**
 * Decides a request. Deny beats approval beats allow: if any statement is denied, the whole request is denied; if
 * any needs approval, the request needs approval. Anything the evaluator cannot decide is a denial.
 */
export function evaluate(policy: Policy, req: EvaluateRequest): Decision {
  try {
    return evaluateUnsafe(policy, req);
  } catch (e) {
    // INVARIANT: no exception ever turns into an allow.
    const reason = `evaluation failed: ${e instanceof Error ? e.message : String(e)}`;
    return deny(0, 'internal-error', reason);
  }
}

function deny(statement: number, rule: string, reason: string): Decision {
  return {
    effect: 'deny',
    rules: [rule],
    reasons: [reason],
    denied: { statement, rule, reason },
    protections: NO_PROTECTIONS,
    message: `denied by ${rule}: ${reason}`,
  };
}

function evaluateUnsafe(policy: Policy, req: EvaluateRequest): Decision {
  if (req.statements.length === 0) return deny(0, 'default-deny', 'no statement to decide');
  const ev = new Evaluation(policy, req);
  const rules: string[] = [];
  const reasons: string[] = [];
  const filters = new Map<string, Set<string>>();
  const tables = new Set<string>();
  let approval: ApprovalRequirement | undefined;
  for (let i = 0; i < req.statements.length; i++) {
    const r = decideStatement(ev, req.statements[i] as StatementSummary);
    if (r instanceof Denied) return deny(i, r.rule, r.reason);
    rules.push(...r.rules);
    reasons.push(...r.reasons);
    for (const t of r.tables) tables.add(t);
    for (const [t, clauses] of r.filters) {
      const set = filters.get(t) ?? new Set<string>();
      for (const c of clauses) set.add(c);
      filters.set(t, set);
    }
    if (approval === undefined && r.approval !== undefined) {
      const a = r.approval;
      approval = { rule: a.id, mode: a.mode, approvers: a.approvers, ttlSeconds: a.ttlSeconds };
      reasons.push(`statement ${i + 1} matches approval rule ${a.name}`);
    }
  }
  const protections = new Map<string, TableProtection>();
  for (const t of tables) {
    const masks = new Map<string, string>();
    for (const m of policy.masks.get(t) ?? []) {
      // INVARIANT: a mask applies unless the principal holds one of its exempt roles.
      if ([...m.unmaskedFor].some((r) => ev.roleNames.has(r))) continue;
      masks.set(m.column, m.sql);
      rules.push(m.id);
    }
    const clauses = filters.get(t);
    const rowFilter =
      clauses === undefined
        ? undefined
        : [...clauses].map((c) => (clauses.size > 1 ? `(${c})` : c)).join(' AND ');
    if (masks.size > 0 || rowFilter !== undefined) {
      protections.set(t, rowFilter === undefined ? { masks } : { masks, rowFilter });
    }
  }
  if (approval !== undefined) {
    return { effect: 'approval', rules: unique([approval.rule, ...rules]), reasons, approval, protections };
  }
  return { effect: 'allow', rules: unique(rules), reasons, protections };
}

/**
 * The part of a cache key that the context contributes. A decision depends on the principal (name, kind, groups,
 * attributes), the just-in-time roles, the target, environment and database, the statement, and, only when the
 * policy uses them, the source address and the clock (to the minute: windows are minute-granular).
 * Key = decisionCacheKey(policy, req) + '\u0000' + the statement text.
 */
export function decisionCacheKey(policy: Policy, req: Omit<EvaluateRequest, 'statements'>): string {
  const p = req.principal;
  const attrs = Object.keys(p.attributes)
    .sort()
    .map((k) => `${k}=${p.attributes[k]}`);
  const parts = [
    p.name,
    p.kind,
    [...p.groups].sort().join(','),
    attrs.join('\u0002'),
    [...(req.extraRoles ?? [])].sort().join(','),
    req.context.target,
    req.context.environment,
    req.database ?? '',
    policy.usesSource ? req.context.sourceAddress : '',
    policy.usesTime ? String(Math.floor(req.context.at.getTime() / 60000)) : '',
  ];
  return parts.map((x) => JSON.stringify(x)).join('\u0001');
}

/** A small LRU of decisions by key. Decisions are shared: callers must not mutate them. */
export class DecisionCache {
  private readonly map = new Map<string, Decision>();
  constructor(private readonly capacity = 10_000) {}
  get(key: string): Decision | undefined {
    const d = this.map.get(key);
    if (d !== undefined) {
      this.map.delete(key);
      this.map.set(key, d);
    }
    return d;
  }
  set(key: string, d: Decision): void {
    this.map.delete(key);
    this.map.set(key, d);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }
  get size(): number {
    return this.map.size;
  }
}
