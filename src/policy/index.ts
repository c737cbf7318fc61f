// The policy module's public surface: load, evaluate, explain (who-can), and test policies.

export {
  loadPolicy,
  loadPolicyFromObject,
  loadPolicyFromString,
  loadPolicyFromStrings,
  policyFilesIn,
} from './load.js';
export { PolicyError, formatProblem } from './source.js';
export type { PolicyProblem } from './source.js';
export { evaluate, decisionCacheKey, DecisionCache, APPEND_ONLY_FORBIDDEN } from './evaluate.js';
export type { EvaluateRequest } from './evaluate.js';
export { whoCan } from './who-can.js';
export type { WhoCanRow } from './who-can.js';
export { runPolicyTests, parsePolicyTests, loadPolicyTests } from './policy-test.js';
export type { PolicyTestCase, PolicyTestResult, Analyze } from './policy-test.js';
export { POLICY_SCHEMA, schemaJsonText, validateDocument } from './schema.js';
export { maskSql } from './masks.js';
export type { MaskSpec } from './masks.js';
export type {
  Decision,
  Denial,
  ApprovalRequirement,
  TableProtection,
  Policy,
  RawPolicyDocument,
} from './model.js';
