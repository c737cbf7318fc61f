// The SQL dialect seam of the policy hook: how a target's statements are analysed, rewritten and listed (PostgreSQL by default, MySQL/MariaDB plugged in).
//
// The hook itself is protocol- and dialect-neutral: it decides StatementSummary lists against the policy. A dialect
// turns text into those summaries (with a cache key), refuses what it always refuses, answers the policy-version
// question in its own syntax, rewrites for masks and row filters, and reads column lists from its own catalog.

import type { StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import type { Analysis } from '../sql/analyze.js';
import type { TableProtection } from '../sql/rewrite.js';
import type { Policy } from '../policy/index.js';
import type { CatalogCache } from './catalog-cache.js';

/** A construct the dialect always refuses, whatever the policy says. */
export interface DialectDenial {
  readonly rule: string;
  readonly reason: string;
}

export interface DialectAnalysis {
  readonly analysis: Analysis;
  /** Decision cache key of the text (statements with one key share one decision). */
  readonly key: string;
  readonly denied?: DialectDenial;
}

export interface DialectAnalyzeOptions {
  /** False: analyse and key every text on its own (the hook's `fastPath: false`). */
  readonly fastPath?: boolean;
}

/** The running policy's identity, as the hook's `version` option gives it. */
export interface DialectPolicyVersion {
  readonly label: string;
  readonly hash: string;
}

export interface SqlDialect {
  readonly name: 'postgres' | 'mysql';
  /** Loads what analysis needs (parsers); called once when a hook is built. */
  init(): Promise<void>;
  /**
   * Analyses a whole client text (every statement of it). Never throws for bad input: error or denial. With the
   * fast path (default), texts that differ only in plain literals may share one analysis and key.
   */
  analyze(sql: string, opts?: DialectAnalyzeOptions): DialectAnalysis;
  /** The dialect's form of "which policy runs here", answered as a constant query; undefined when `sql` is not it. */
  answerShow(sql: string, version: DialectPolicyVersion | undefined): StatementVerdict | undefined;
  /** Rewrites `sql` so protected tables are read masked and filtered. Throws (→ deny) when it cannot. */
  rewrite(sql: string, protections: ReadonlyMap<string, TableProtection>, policy: Policy): Promise<string>;
  /** The column-list cache for this target (an internal upstream connection). */
  catalog(target: TargetConfig): CatalogCache;
}
