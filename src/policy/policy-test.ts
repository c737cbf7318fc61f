// Policy test cases written in YAML: each names a user, a context and statements (or SQL, through an injected analyser) and the expected effect.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { StatementSummary } from '../core/access.js';
import type { Principal, PrincipalKind } from '../core/context.js';
import { WardenError } from '../core/errors.js';
import { evaluate } from './evaluate.js';
import type { Decision, Policy } from './model.js';

export interface PolicyTestCase {
  readonly name: string;
  readonly user: string;
  readonly kind?: PrincipalKind;
  readonly groups?: readonly string[];
  readonly attributes?: Readonly<Record<string, string>>;
  readonly extra_roles?: readonly string[];
  /** Source address; default 127.0.0.1. */
  readonly from?: string;
  /** ISO 8601 instant; default 2024-01-15T12:00:00Z (a Monday), so that cases are deterministic. */
  readonly at?: string;
  /** Default "default". */
  readonly target?: string;
  /** Default "development". */
  readonly environment?: string;
  readonly database?: string;
  readonly statements?: readonly Partial<StatementSummary>[];
  readonly sql?: string;
  readonly expect: 'allow' | 'deny' | 'approval';
  /** A rule id the decision must name (for a deny: the rule that denied). */
  readonly rule?: string;
}

export interface PolicyTestResult {
  readonly name: string;
  readonly passed: boolean;
  readonly expected: PolicyTestCase['expect'];
  readonly decision: Decision;
  /** Why it failed, or a one-line summary. */
  readonly message: string;
}

export type Analyze = (sql: string) => readonly StatementSummary[] | Promise<readonly StatementSummary[]>;

export const DEFAULT_TEST_TIME = '2024-01-15T12:00:00Z';

function invalid(message: string): WardenError {
  return new WardenError('CONFIG_INVALID', `policy tests: ${message}`);
}

/** Parses a policy test file's text: `cases: [...]`. */
export function parsePolicyTests(text: string, path = '<inline>'): PolicyTestCase[] {
  const doc: unknown = parse(text);
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { cases?: unknown }).cases)) {
    throw invalid(`${path}: expected a "cases" list`);
  }
  const cases = (doc as { cases: unknown[] }).cases;
  return cases.map((c, i) => {
    if (c === null || typeof c !== 'object') throw invalid(`${path}: case ${i} is not an object`);
    const k = c as Record<string, unknown>;
    if (typeof k.name !== 'string' || typeof k.user !== 'string')
      throw invalid(`${path}: case ${i} needs "name" and "user"`);
    if (k.expect !== 'allow' && k.expect !== 'deny' && k.expect !== 'approval') {
      throw invalid(`${path}: case "${k.name}" needs expect: allow | deny | approval`);
    }
    if ((k.statements === undefined) === (k.sql === undefined)) {
      throw invalid(`${path}: case "${k.name}" needs exactly one of "statements" and "sql"`);
    }
    return k as unknown as PolicyTestCase;
  });
}

export function loadPolicyTests(path: string): PolicyTestCase[] {
  return parsePolicyTests(readFileSync(path, 'utf8'), path);
}

function toSummary(s: Partial<StatementSummary>): StatementSummary {
  return {
    ...s,
    kind: s.kind ?? 'SelectStmt',
    text: s.text ?? '',
    relations: s.relations ?? [],
    functions: s.functions ?? [],
    settings: s.settings ?? [],
  };
}

function principalFor(policy: Policy, c: PolicyTestCase): Principal {
  const u = policy.users.get(c.user);
  return {
    name: c.user,
    kind: c.kind ?? u?.kind ?? 'human',
    groups: c.groups ?? u?.groups ?? [],
    attributes: c.attributes ?? u?.attributes ?? {},
  };
}

/** Runs the cases. SQL cases need `analyze`; without it they fail (they are never silently skipped). */
export async function runPolicyTests(
  policy: Policy,
  cases: readonly PolicyTestCase[],
  options: { analyze?: Analyze } = {},
): Promise<PolicyTestResult[]> {
  const results: PolicyTestResult[] = [];
  for (const c of cases) {
    let statements: readonly StatementSummary[];
    if (c.sql !== undefined) {
      if (options.analyze === undefined) {
        const decision: Decision = { effect: 'deny', rules: [], reasons: [], protections: new Map() };
        results.push({
          name: c.name,
          passed: false,
          expected: c.expect,
          decision,
          message: 'sql case needs an analyser',
        });
        continue;
      }
      statements = await options.analyze(c.sql);
    } else {
      statements = (c.statements ?? []).map(toSummary);
    }
    const at = new Date(c.at ?? DEFAULT_TEST_TIME);
    const decision = evaluate(policy, {
      principal: principalFor(policy, c),
      statements,
      context: {
        target: c.target ?? 'default',
        environment: c.environment ?? 'development',
        sourceAddress: c.from ?? '127.0.0.1',
        at,
      },
      ...(c.database === undefined ? {} : { database: c.database }),
      ...(c.extra_roles === undefined ? {} : { extraRoles: c.extra_roles }),
    });
    let message = `${decision.effect}: ${decision.message ?? decision.reasons.join('; ')}`;
    let passed = decision.effect === c.expect;
    if (Number.isNaN(at.getTime())) {
      passed = false;
      message = `bad "at": ${c.at}`;
    } else if (!passed) {
      message = `expected ${c.expect}, got ${message}`;
    } else if (c.rule !== undefined) {
      const named =
        decision.effect === 'deny' ? decision.denied?.rule === c.rule : decision.rules.includes(c.rule);
      if (!named) {
        passed = false;
        message = `expected rule ${c.rule}, decision named ${decision.denied?.rule ?? decision.rules.join(', ')}`;
      }
    }
    results.push({ name: c.name, passed, expected: c.expect, decision, message });
  }
  return results;
}
