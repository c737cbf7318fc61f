// Policy loading: reads one or more YAML files (or a folder), validates them with positions, and compiles them.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { compilePolicy, validateFile } from './compile.js';
import type { Policy, RawPolicyDocument } from './model.js';
import { PolicyError, parseSource } from './source.js';
import type { PolicyProblem, SourceFile } from './source.js';

/** Files in a policy folder: *.yaml and *.yml, sorted; policy test files (*.tests.yaml) are skipped. */
export function policyFilesIn(folder: string): string[] {
  return readdirSync(folder)
    .filter((n) => /\.ya?ml$/.test(n) && !/\.tests\.ya?ml$/.test(n))
    .sort()
    .map((n) => join(folder, n));
}

/**
 * Loads and compiles a policy from texts. Every problem of every file is reported at once, each with its file, line
 * and column. Definitions (users, groups, roles, masks, approval rules) may be spread over files; defining one
 * twice is an error.
 */
export function loadPolicyFromStrings(sources: readonly { path: string; text: string }[]): Policy {
  const problems: PolicyProblem[] = [];
  const docs: { file: SourceFile; data: RawPolicyDocument }[] = [];
  let invalid = false;
  for (const s of sources) {
    const parsed = parseSource(s.path, s.text);
    if (parsed.problems.length > 0) {
      problems.push(...parsed.problems);
      invalid = true;
      continue;
    }
    const data = validateFile(parsed.file, problems);
    if (data === undefined) invalid = true;
    else docs.push({ file: parsed.file, data });
  }
  if (sources.length === 0) {
    problems.push({ file: '<none>', line: 0, col: 0, pointer: '', message: 'no policy files' });
  }
  // Semantic checks need schema-valid input; report schema problems first.
  if (invalid || problems.length > 0) throw new PolicyError(problems);
  return compilePolicy(docs, problems);
}

/** Loads a policy from files, or from every policy file of a folder. */
export function loadPolicy(input: string | readonly string[]): Policy {
  const paths =
    typeof input === 'string' ? (statSync(input).isDirectory() ? policyFilesIn(input) : [input]) : input;
  return loadPolicyFromStrings(paths.map((path) => ({ path, text: readFileSync(path, 'utf8') })));
}

/** Loads a policy from one YAML text. */
export function loadPolicyFromString(text: string, path = '<inline>'): Policy {
  return loadPolicyFromStrings([{ path, text }]);
}

/** Loads a policy from a plain object (tests, API callers). Positions refer to the object rendered as YAML. */
export function loadPolicyFromObject(
  doc: RawPolicyDocument | Record<string, unknown>,
  path = '<object>',
): Policy {
  return loadPolicyFromStrings([{ path, text: stringify(doc) }]);
}

export { PolicyError };
