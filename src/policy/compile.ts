// Policy compilation: schema validation with positions, merge of several files, semantic checks, and the indexed immutable form.

import type { ErrorObject } from 'ajv';
import type { Operation } from '../core/access.js';
import { FORBIDDEN_SETTINGS } from './catalog.js';
import { maskSqlForColumn, TYPE_HINT } from './masks.js';
import type { MaskSpec } from './masks.js';
import type {
  CompiledAccessRequest,
  CompiledApproval,
  CompiledCondition,
  CompiledGrant,
  CompiledMask,
  CompiledRole,
  CompiledRowFilter,
  CompiledUser,
  GrantOperation,
  Policy,
  RawAccessRequest,
  RawApproval,
  RawCondition,
  RawGrant,
  RawGroup,
  RawMask,
  RawPolicyDocument,
  RawRole,
  RawUser,
} from './model.js';
import { parseCidr } from './net.js';
import type { Cidr } from './net.js';
import { validateDocument } from './schema.js';
import { PolicyError, pointerToPath, problemAt } from './source.js';
import type { PathSegment, PolicyProblem, SourceFile } from './source.js';
import { parseTemplate } from './template.js';
import { DAYS, isValidTimeZone, parseClock } from './time.js';
import type { TimeWindow } from './time.js';

const TABLE_OPS: ReadonlySet<string> = new Set([
  'select',
  'insert',
  'update',
  'delete',
  'truncate',
  'merge',
  'create',
  'alter',
  'drop',
  'copy_to',
  'copy_from',
]);

/** Expands the policy's operation names ('ddl' = create, alter, drop). */
export function expandOperations(ops: readonly GrantOperation[]): Set<Operation | 'notify'> {
  const out = new Set<Operation | 'notify'>();
  for (const op of ops) {
    if (op === 'ddl') {
      out.add('create');
      out.add('alter');
      out.add('drop');
    } else out.add(op);
  }
  return out;
}

function ajvMessage(e: ErrorObject): { path: PathSegment[]; message: string; atKey: boolean } {
  const path = pointerToPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return {
        path: [...path, String(p.additionalProperty)],
        message: `unknown property "${String(p.additionalProperty)}"`,
        atKey: true,
      };
    case 'required':
      return { path, message: `missing required property "${String(p.missingProperty)}"`, atKey: false };
    case 'enum':
      return {
        path,
        message: `must be one of: ${(p.allowedValues as unknown[]).map(String).join(', ')}`,
        atKey: false,
      };
    case 'pattern':
      return {
        path,
        message: `"${String(e.data)}" has an invalid form (${e.message ?? 'pattern'})`,
        atKey: false,
      };
    case 'propertyNames':
      return { path, message: `invalid property name "${String(p.propertyName)}"`, atKey: false };
    default:
      return { path, message: e.message ?? e.keyword, atKey: false };
  }
}

/** Schema-validates one parsed file; returns its data when valid. */
export function validateFile(file: SourceFile, problems: PolicyProblem[]): RawPolicyDocument | undefined {
  const data: unknown = file.doc.toJS({ maxAliasCount: 100 });
  const errors = validateDocument(data);
  const seen = new Set<string>();
  for (const e of errors) {
    // oneOf reports each branch's failure too; keep one message per place.
    if (e.keyword === 'oneOf' || e.keyword === 'if') continue;
    const m = ajvMessage(e);
    const p = problemAt(file, m.path, m.message, m.atKey);
    const k = `${p.pointer}|${p.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      problems.push(p);
    }
  }
  return errors.length === 0 ? (data as RawPolicyDocument) : undefined;
}

interface Origin<T> {
  readonly value: T;
  readonly file: SourceFile;
  readonly path: PathSegment[];
}

function collect<T>(
  docs: readonly { file: SourceFile; data: RawPolicyDocument }[],
  key: keyof RawPolicyDocument,
): Origin<T>[] {
  const out: Origin<T>[] = [];
  for (const { file, data } of docs) {
    const list = data[key];
    if (Array.isArray(list))
      list.forEach((value, i) => out.push({ value: value as T, file, path: [key, i] }));
  }
  return out;
}

function uniqueBy<T>(
  items: readonly Origin<T>[],
  keyOf: (v: T) => string,
  what: string,
  problems: PolicyProblem[],
): Map<string, Origin<T>> {
  const map = new Map<string, Origin<T>>();
  for (const item of items) {
    const k = keyOf(item.value);
    const first = map.get(k);
    if (first !== undefined) {
      const at = problemAt(first.file, first.path, '');
      problems.push(
        problemAt(item.file, item.path, `duplicate ${what} "${k}" (first defined at ${at.file}:${at.line})`),
      );
    } else map.set(k, item);
  }
  return map;
}

function parseTtl(ttl: string | undefined): number {
  if (ttl === undefined) return 3600;
  const n = Number(ttl.slice(0, -1));
  const unit = ttl.slice(-1);
  return n * (unit === 's' ? 1 : unit === 'm' ? 60 : unit === 'h' ? 3600 : 86400);
}

function compileCondition(
  raw: RawCondition,
  o: Origin<unknown>,
  base: PathSegment[],
  problems: PolicyProblem[],
): CompiledCondition {
  const windows: TimeWindow[] = [];
  const text: string[] = [];
  const rawWindows = raw.time === undefined ? [] : Array.isArray(raw.time) ? raw.time : [raw.time];
  rawWindows.forEach((w, i) => {
    const wp = Array.isArray(raw.time) ? [...base, 'time', i] : [...base, 'time'];
    const from = parseClock(w.from ?? '00:00', false);
    const to = parseClock(w.to ?? '24:00', true);
    if (from === undefined)
      problems.push(
        problemAt(o.file, [...wp, 'from'], `bad time "${w.from}": expected HH:MM (00:00..23:59)`),
      );
    if (to === undefined)
      problems.push(problemAt(o.file, [...wp, 'to'], `bad time "${w.to}": expected HH:MM (00:00..24:00)`));
    if (from !== undefined && to !== undefined && from === to) {
      problems.push(problemAt(o.file, wp, 'a time window must not start and end at the same time'));
    }
    if (!isValidTimeZone(w.tz))
      problems.push(
        problemAt(
          o.file,
          [...wp, 'tz'],
          `bad time zone "${w.tz}": expected an IANA name such as Europe/Paris`,
        ),
      );
    const days = w.days ?? ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
    let dayMask = 0;
    for (const d of days) dayMask |= 1 << DAYS.indexOf(d);
    const t = `${days.join(',')} ${w.from ?? '00:00'}-${w.to ?? '24:00'} ${w.tz}`;
    text.push(`time ${t}`);
    windows.push({ dayMask, from: from ?? 0, to: to ?? 0, tz: w.tz, text: t });
  });
  const sources: Cidr[] = [];
  (raw.sources ?? []).forEach((s, i) => {
    const c = parseCidr(s);
    if (typeof c === 'string') problems.push(problemAt(o.file, [...base, 'sources', i], `bad CIDR: ${c}`));
    else sources.push(c);
  });
  if (sources.length > 0) text.push(`from ${sources.map((c) => c.text).join(', ')}`);
  if (raw.environments !== undefined) text.push(`environment ${raw.environments.join(', ')}`);
  if (raw.principal_kind !== undefined) text.push(`principal ${raw.principal_kind}`);
  return {
    windows,
    sources,
    environments: raw.environments === undefined ? undefined : new Set(raw.environments),
    principalKind: raw.principal_kind,
    text,
  };
}

function compileGrant(
  role: string,
  g: RawGrant,
  index: number,
  o: Origin<RawRole>,
  problems: PolicyProblem[],
): CompiledGrant {
  const base: PathSegment[] = [...o.path, 'grants', index];
  const ops = expandOperations(g.operations);
  const hasTableOps = [...ops].some((op) => TABLE_OPS.has(op));
  if (hasTableOps && (g.schema === undefined || g.table === undefined)) {
    problems.push(
      problemAt(o.file, base, 'a grant of table operations needs "schema" and "table" (table may be "*")'),
    );
  }
  if (!hasTableOps && (g.schema !== undefined || g.table !== undefined || g.columns !== undefined)) {
    problems.push(problemAt(o.file, base, '"schema", "table" and "columns" only apply to table operations'));
  }
  if (g.columns !== undefined && g.table === undefined) {
    problems.push(problemAt(o.file, [...base, 'columns'], '"columns" needs a "table"'));
  }
  if (ops.has('execute') !== (g.functions !== undefined)) {
    problems.push(problemAt(o.file, base, 'the execute operation and "functions" go together'));
  }
  return {
    id: `role:${role}/grant:${index}`,
    role,
    target: g.target ?? '*',
    database: g.database ?? '*',
    schema: g.schema,
    table: g.table,
    columns: g.columns === undefined ? undefined : new Set(g.columns),
    operations: ops,
    functions: g.functions ?? [],
    condition: g.when === undefined ? undefined : compileCondition(g.when, o, [...base, 'when'], problems),
  };
}

function compileRole(o: Origin<RawRole>, problems: PolicyProblem[]): CompiledRole {
  const r = o.value;
  const grants = (r.grants ?? []).map((g, i) => compileGrant(r.name, g, i, o, problems));
  const grantsByTable = new Map<string, CompiledGrant[]>();
  for (const g of grants) {
    if (g.schema === undefined || g.table === undefined) continue;
    const k = `${g.schema}.${g.table}`;
    const list = grantsByTable.get(k) ?? [];
    list.push(g);
    grantsByTable.set(k, list);
  }
  const rowFilters = new Map<string, CompiledRowFilter>();
  (r.row_filters ?? []).forEach((f, i) => {
    const p: PathSegment[] = [...o.path, 'row_filters', i];
    if (rowFilters.has(f.table)) {
      problems.push(problemAt(o.file, p, `duplicate row filter for ${f.table} in role ${r.name}`));
      return;
    }
    const t = parseTemplate(f.where, 'filter');
    if (typeof t === 'string') {
      problems.push(problemAt(o.file, [...p, 'where'], `unparsable template: ${t}`));
      return;
    }
    rowFilters.set(f.table, {
      id: `role:${r.name}/row_filter:${f.table}`,
      role: r.name,
      table: f.table,
      template: t,
    });
  });
  return {
    name: r.name,
    grants,
    grantsByTable,
    functionGrants: grants.filter((g) => g.functions.length > 0),
    notifyGrants: grants.filter((g) => g.operations.has('notify')),
    rowFilters,
    targets: new Set(grants.map((g) => g.target)),
  };
}

function compileMask(
  o: Origin<RawMask>,
  roles: ReadonlyMap<string, unknown>,
  problems: PolicyProblem[],
): CompiledMask | undefined {
  const m = o.value;
  const bad = (key: string, msg: string): undefined => {
    problems.push(problemAt(o.file, [...o.path, key], msg));
    return undefined;
  };
  (m.unmasked_for ?? []).forEach((r, i) => {
    if (!roles.has(r))
      problems.push(problemAt(o.file, [...o.path, 'unmasked_for', i], `unknown role "${r}"`));
  });
  if (m.type !== undefined && !TYPE_HINT.test(m.type)) return bad('type', `bad type hint "${m.type}"`);
  const allowed: Record<RawMask['mask'], string[]> = {
    redact: ['type'],
    null: ['type'],
    hash: ['salt'],
    partial: ['keep_first', 'keep_last'],
    expr: ['expr'],
  };
  for (const k of ['type', 'salt', 'keep_first', 'keep_last', 'expr'] as const) {
    if (m[k] !== undefined && !allowed[m.mask].includes(k))
      return bad(k, `"${k}" does not apply to a ${m.mask} mask`);
  }
  let spec: MaskSpec;
  switch (m.mask) {
    case 'redact':
      spec = m.type === undefined ? { kind: 'redact' } : { kind: 'redact', type: m.type };
      break;
    case 'null':
      spec = m.type === undefined ? { kind: 'null' } : { kind: 'null', type: m.type };
      break;
    case 'hash':
      spec = m.salt === undefined ? { kind: 'hash' } : { kind: 'hash', salt: m.salt };
      break;
    case 'partial':
      if (m.keep_first === undefined && m.keep_last === undefined)
        return bad('mask', 'a partial mask needs keep_first or keep_last');
      spec = { kind: 'partial', keepFirst: m.keep_first ?? 0, keepLast: m.keep_last ?? 0 };
      break;
    case 'expr': {
      if (m.expr === undefined) return bad('mask', 'an expr mask needs "expr"');
      const t = parseTemplate(m.expr, 'mask');
      if (typeof t === 'string') return bad('expr', `unparsable template: ${t}`);
      spec = { kind: 'expr', template: t };
      break;
    }
  }
  return {
    id: `mask:${m.table}.${m.column}`,
    table: m.table,
    column: m.column,
    spec,
    unmaskedFor: new Set(m.unmasked_for ?? []),
    sql: maskSqlForColumn(spec, m.column),
  };
}

function compileApproval(
  o: Origin<RawApproval>,
  groups: ReadonlyMap<string, unknown>,
  problems: PolicyProblem[],
): CompiledApproval {
  const a = o.value;
  a.approvers.forEach((ap, i) => {
    if (!groups.has(ap.group))
      problems.push(problemAt(o.file, [...o.path, 'approvers', i, 'group'], `unknown group "${ap.group}"`));
  });
  const ops =
    a.match.operations === undefined ? undefined : (expandOperations(a.match.operations) as Set<Operation>);
  return {
    id: `approval:${a.name}`,
    name: a.name,
    operations: ops,
    tables: a.match.tables,
    environments: a.match.environments === undefined ? undefined : new Set(a.match.environments),
    withoutWhere: a.match.without_where === true,
    approvers: a.approvers.map((x) => ({ group: x.group, count: x.count })),
    mode: a.mode ?? 'error',
    ttlSeconds: parseTtl(a.ttl),
    uses: a.uses ?? 1,
  };
}

function compileAccessRequest(
  o: Origin<RawAccessRequest>,
  groups: ReadonlyMap<string, unknown>,
  roles: ReadonlyMap<string, unknown>,
  problems: PolicyProblem[],
): CompiledAccessRequest {
  const a = o.value;
  if (!roles.has(a.role)) problems.push(problemAt(o.file, [...o.path, 'role'], `unknown role "${a.role}"`));
  a.requesters.forEach((g, i) => {
    if (!groups.has(g))
      problems.push(problemAt(o.file, [...o.path, 'requesters', i], `unknown group "${g}"`));
  });
  a.approvers.forEach((ap, i) => {
    if (!groups.has(ap.group))
      problems.push(problemAt(o.file, [...o.path, 'approvers', i, 'group'], `unknown group "${ap.group}"`));
  });
  return {
    id: `access:${a.role}`,
    role: a.role,
    requesters: new Set(a.requesters),
    approvers: a.approvers.map((x) => ({ group: x.group, count: x.count })),
    maxSeconds: parseTtl(a.max_duration),
    breakGlass: a.break_glass === true,
  };
}

/** Merges validated documents, checks them, and compiles them. Throws PolicyError listing every problem. */
export function compilePolicy(
  docs: readonly { file: SourceFile; data: RawPolicyDocument }[],
  problems: PolicyProblem[],
): Policy {
  const users = uniqueBy(collect<RawUser>(docs, 'users'), (u) => u.name, 'user', problems);
  const groups = uniqueBy(collect<RawGroup>(docs, 'groups'), (g) => g.name, 'group', problems);
  const roles = uniqueBy(collect<RawRole>(docs, 'roles'), (r) => r.name, 'role', problems);
  const masks = uniqueBy(collect<RawMask>(docs, 'masks'), (m) => `${m.table}.${m.column}`, 'mask', problems);
  const approvals = uniqueBy(
    collect<RawApproval>(docs, 'approvals'),
    (a) => a.name,
    'approval rule',
    problems,
  );
  const accessRequests = uniqueBy(
    collect<RawAccessRequest>(docs, 'access_requests'),
    (a) => a.role,
    'access request rule',
    problems,
  );
  const appendOnly = uniqueBy(collect<string>(docs, 'append_only'), (t) => t, 'append-only table', problems);

  const roleRef = (o: Origin<unknown>, path: PathSegment[], name: string): void => {
    if (!roles.has(name)) problems.push(problemAt(o.file, path, `unknown role "${name}"`));
  };
  for (const g of groups.values())
    (g.value.roles ?? []).forEach((r, i) => roleRef(g, [...g.path, 'roles', i], r));
  for (const u of users.values()) {
    (u.value.roles ?? []).forEach((r, i) => roleRef(u, [...u.path, 'roles', i], r));
    (u.value.groups ?? []).forEach((g, i) => {
      if (!groups.has(g)) problems.push(problemAt(u.file, [...u.path, 'groups', i], `unknown group "${g}"`));
    });
  }

  const compiledRoles = new Map<string, CompiledRole>();
  for (const [name, o] of roles) compiledRoles.set(name, compileRole(o, problems));

  const groupRoles = new Map<string, readonly string[]>();
  for (const [name, o] of groups) groupRoles.set(name, [...new Set(o.value.roles ?? [])].sort());

  const compiledUsers = new Map<string, CompiledUser>();
  for (const [name, o] of users) {
    const u = o.value;
    const rs = new Set(u.roles ?? []);
    for (const g of u.groups ?? []) for (const r of groupRoles.get(g) ?? []) rs.add(r);
    compiledUsers.set(name, {
      name,
      kind: u.kind,
      groups: [...(u.groups ?? [])],
      attributes: Object.freeze({ ...(u.attributes ?? {}) }),
      roles: [...rs].sort(),
    });
  }

  const compiledMasks = new Map<string, CompiledMask[]>();
  for (const o of masks.values()) {
    const m = compileMask(o, roles, problems);
    if (m === undefined) continue;
    const list = compiledMasks.get(m.table) ?? [];
    list.push(m);
    compiledMasks.set(m.table, list);
  }

  const compiledApprovals = [...approvals.values()].map((o) => compileApproval(o, groups, problems));
  const compiledAccess = new Map<string, CompiledAccessRequest>();
  for (const [role, o] of accessRequests)
    compiledAccess.set(role, compileAccessRequest(o, groups, roles, problems));

  const extraSettings = new Set<string>();
  for (const { file, data } of docs) {
    (data.settings?.allow ?? []).forEach((s, i) => {
      const name = s.toLowerCase();
      const why = FORBIDDEN_SETTINGS.get(name);
      if (why !== undefined)
        problems.push(
          problemAt(file, ['settings', 'allow', i], `setting "${s}" can never be allowed: it ${why}`),
        );
      else extraSettings.add(name);
    });
  }

  if (problems.length > 0) throw new PolicyError(problems);

  const allGrants = [...compiledRoles.values()].flatMap((r) => r.grants);
  return Object.freeze({
    users: compiledUsers,
    groups: groupRoles,
    roles: compiledRoles,
    masks: compiledMasks,
    appendOnly: new Set(appendOnly.keys()),
    approvals: compiledApprovals,
    accessRequests: compiledAccess,
    extraSettings,
    usesTime: allGrants.some((g) => (g.condition?.windows.length ?? 0) > 0),
    usesSource: allGrants.some((g) => (g.condition?.sources.length ?? 0) > 0),
    sources: docs.map((d) => d.file.path),
  });
}
