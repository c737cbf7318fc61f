// The MySQL bypass corpus case model: one attack or allow case as plain data, run by runner.ts.

export type CorpusUser = 'alice' | 'bob' | 'svc';

/**
 * How the SQL reaches the hook and then MariaDB:
 * - `query`: COM_QUERY (multi-statements allowed), path `mysql-query`;
 * - `prepare`: COM_STMT_PREPARE (path `mysql-prepare`), then COM_STMT_EXECUTE with `params`;
 * - `local`: COM_QUERY of a LOAD DATA LOCAL, the client sending `localData` when the server asks.
 */
export type Via = 'query' | 'prepare' | 'local';

/**
 * - `deny`: the hook refuses (nothing reaches MariaDB), the state digest is unchanged, no canary leaks;
 * - `allow`: the hook allows, MariaDB runs it without error, no canary the user may not see;
 * - `masked`: allowed and at least one row (unless `rows` says otherwise), no canary;
 * - `safe`: denial or success both fine, but no canary, digest unchanged, and `rows` holds.
 */
export type Expect = 'deny' | 'allow' | 'masked' | 'safe';

export interface Step {
  readonly via: Via;
  readonly sql: string;
  readonly params?: readonly (string | number | null)[];
}

export interface Case extends Step {
  /** `<category>-<nnn>`, by position. */
  readonly id: string;
  readonly category: string;
  readonly user: CorpusUser;
  readonly expect: Expect;
  /** Row-count bounds over every result set returned (`masked` defaults to min 1). */
  readonly rows?: { readonly min?: number; readonly max?: number };
  /** Steps run first in the same session and connection; not judged, but searched for canaries. */
  readonly setup?: readonly Step[];
  /** Data sent for LOAD DATA LOCAL. */
  readonly localData?: string;
  /** Also run `SHOW WARNINGS` afterwards and search it (error-message side channels). */
  readonly warnings?: boolean;
  readonly note?: string;
}
