// The policy's shapes: the YAML document as written (raw), the compiled immutable form, and the Decision.

import type { PrincipalKind } from '../core/context.js';
import type { Operation } from '../core/access.js';
import type { Cidr } from './net.js';
import type { TimeWindow } from './time.js';
import type { Template } from './template.js';
import type { MaskSpec } from './masks.js';

// ---- Raw document (one YAML file), exactly what schema/policy.schema.json accepts. ----

export type GrantOperation = Exclude<Operation, 'set' | 'utility'> | 'ddl' | 'notify';
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

export interface RawTimeWindow {
  days?: Weekday[];
  from?: string;
  to?: string;
  tz: string;
}

export interface RawCondition {
  time?: RawTimeWindow | RawTimeWindow[];
  sources?: string[];
  environments?: string[];
  principal_kind?: PrincipalKind;
}

export interface RawGrant {
  description?: string;
  target?: string;
  database?: string;
  schema?: string;
  table?: string;
  columns?: string[];
  operations: GrantOperation[];
  functions?: string[];
  when?: RawCondition;
}

export interface RawRowFilter {
  table: string;
  where: string;
}

export interface RawRole {
  name: string;
  description?: string;
  grants?: RawGrant[];
  row_filters?: RawRowFilter[];
}

export interface RawUser {
  name: string;
  kind?: PrincipalKind;
  groups?: string[];
  roles?: string[];
  attributes?: Record<string, string>;
}

export interface RawGroup {
  name: string;
  description?: string;
  roles?: string[];
}

export interface RawMask {
  table: string;
  column: string;
  mask: 'redact' | 'partial' | 'hash' | 'null' | 'expr';
  type?: string;
  keep_first?: number;
  keep_last?: number;
  salt?: string;
  expr?: string;
  unmasked_for?: string[];
}

export interface RawApproval {
  name: string;
  description?: string;
  match: {
    operations?: GrantOperation[];
    tables?: string[];
    environments?: string[];
    without_where?: boolean;
  };
  approvers: { group: string; count: number }[];
  mode?: 'error' | 'wait';
  ttl?: string;
  /** How many times an approved statement may run (default 1). */
  uses?: number;
}

/** A role that principals may request for a limited time (just-in-time access). */
export interface RawAccessRequest {
  role: string;
  description?: string;
  /** Groups whose members may request the role. */
  requesters: string[];
  approvers: { group: string; count: number }[];
  /** Longest grant, e.g. 4h (default 1h). */
  max_duration?: string;
  /** Whether a requester may activate the role alone in an emergency, with a reason, reviewed afterwards. */
  break_glass?: boolean;
}

export interface RawPolicyDocument {
  version: 1;
  users?: RawUser[];
  groups?: RawGroup[];
  roles?: RawRole[];
  masks?: RawMask[];
  append_only?: string[];
  approvals?: RawApproval[];
  access_requests?: RawAccessRequest[];
  settings?: { allow?: string[] };
}

// ---- Compiled form: indexed and immutable. ----

export interface CompiledCondition {
  readonly windows: readonly TimeWindow[];
  readonly sources: readonly Cidr[];
  readonly environments: ReadonlySet<string> | undefined;
  readonly principalKind: PrincipalKind | undefined;
  /** Human-readable form, for who-can and explanations. */
  readonly text: readonly string[];
}

export interface CompiledGrant {
  /** Stable rule id, e.g. "role:analyst/grant:0" (index in the role's grants list, from 0). */
  readonly id: string;
  readonly role: string;
  readonly target: string;
  readonly database: string;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  /** undefined = all columns. */
  readonly columns: ReadonlySet<string> | undefined;
  readonly operations: ReadonlySet<Operation | 'notify'>;
  /** "schema.name" or "schema.*". */
  readonly functions: readonly string[];
  /** undefined = unconditional. */
  readonly condition: CompiledCondition | undefined;
}

export interface CompiledRowFilter {
  readonly id: string;
  readonly role: string;
  readonly table: string;
  readonly template: Template;
}

export interface CompiledRole {
  readonly name: string;
  readonly grants: readonly CompiledGrant[];
  /** Grants by "schema.table" and "schema.*". */
  readonly grantsByTable: ReadonlyMap<string, readonly CompiledGrant[]>;
  /** Grants naming functions, and grants with the notify operation. */
  readonly functionGrants: readonly CompiledGrant[];
  readonly notifyGrants: readonly CompiledGrant[];
  /** Row filter per "schema.table". */
  readonly rowFilters: ReadonlyMap<string, CompiledRowFilter>;
  /** Targets this role grants anything on ('*' possible). */
  readonly targets: ReadonlySet<string>;
}

export interface CompiledUser {
  readonly name: string;
  readonly kind: PrincipalKind | undefined;
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
  /** Direct roles and those of the user's declared groups, sorted. */
  readonly roles: readonly string[];
}

export interface CompiledMask {
  readonly id: string;
  readonly table: string;
  readonly column: string;
  readonly spec: MaskSpec;
  readonly unmaskedFor: ReadonlySet<string>;
  /** SQL for the bare quoted column. */
  readonly sql: string;
}

export interface Approver {
  readonly group: string;
  readonly count: number;
}

export interface CompiledApproval {
  readonly id: string;
  readonly name: string;
  readonly operations: ReadonlySet<Operation> | undefined;
  /** "schema.table" or "schema.*". */
  readonly tables: readonly string[] | undefined;
  readonly environments: ReadonlySet<string> | undefined;
  readonly withoutWhere: boolean;
  readonly approvers: readonly Approver[];
  readonly mode: 'error' | 'wait';
  /** Seconds. */
  readonly ttlSeconds: number;
  /** Runs an approval allows (at least 1). */
  readonly uses: number;
}

export interface CompiledAccessRequest {
  /** "access:<role>". */
  readonly id: string;
  readonly role: string;
  readonly requesters: ReadonlySet<string>;
  readonly approvers: readonly Approver[];
  readonly maxSeconds: number;
  readonly breakGlass: boolean;
}

/** A loaded, validated, compiled policy. Immutable: share it freely between sessions. */
export interface Policy {
  readonly users: ReadonlyMap<string, CompiledUser>;
  readonly groups: ReadonlyMap<string, readonly string[]>;
  readonly roles: ReadonlyMap<string, CompiledRole>;
  /** Masks by "schema.table". */
  readonly masks: ReadonlyMap<string, readonly CompiledMask[]>;
  readonly appendOnly: ReadonlySet<string>;
  readonly approvals: readonly CompiledApproval[];
  /** Just-in-time roles, by role name. */
  readonly accessRequests: ReadonlyMap<string, CompiledAccessRequest>;
  readonly extraSettings: ReadonlySet<string>;
  /** Whether any grant depends on the clock or the source address (decides what a cache key must hold). */
  readonly usesTime: boolean;
  readonly usesSource: boolean;
  /** The source files, for messages. */
  readonly sources: readonly string[];
}

// ---- Decision ----

export interface TableProtection {
  /** Column → SQL expression to show instead of the column. */
  readonly masks: ReadonlyMap<string, string>;
  /** A boolean SQL expression the rows must satisfy (already rendered for the principal). */
  readonly rowFilter?: string;
}

export interface Denial {
  /** Index of the statement in the request. */
  readonly statement: number;
  readonly rule: string;
  readonly reason: string;
}

export interface ApprovalRequirement {
  readonly rule: string;
  readonly mode: 'error' | 'wait';
  readonly approvers: readonly Approver[];
  readonly ttlSeconds: number;
}

/** Plain data that explains itself. */
export interface Decision {
  readonly effect: 'allow' | 'deny' | 'approval';
  /** Ids of the rules that decided, e.g. "role:analyst/grant:2", "append_only:public.ledger", "default-deny". */
  readonly rules: readonly string[];
  readonly reasons: readonly string[];
  readonly denied?: Denial;
  readonly approval?: ApprovalRequirement;
  /** What the rewriter must apply, by "schema.table". */
  readonly protections: ReadonlyMap<string, TableProtection>;
  /** The message to send with SQLSTATE 42501 on deny. */
  readonly message?: string;
}
