// The bypass corpus case model: one attack or allow case as plain data, run end to end by runner.ts.

export type CorpusUser = 'alice' | 'bob' | 'svc';

/**
 * How the SQL reaches the gateway:
 * - `simple`: one Query message (a string may hold several statements);
 * - `extended`: Parse/Bind/Describe(portal)/Execute/Sync with the unnamed statement;
 * - `named`: Parse of a named statement and Sync, then Bind/Describe/Execute of that name and Sync;
 * - `describe`: Parse and Describe(statement) and Sync, never executed;
 * - `pipeline`: every SQL text as Parse/Bind/Execute, one Sync at the end (one implicit transaction);
 * - `psql`: the real psql with `-c` per SQL text (backslash commands work), stdout and stderr collected.
 */
export type Via = 'simple' | 'extended' | 'named' | 'describe' | 'pipeline' | 'psql';

/**
 * - `deny`: the client gets an error (42501 or 42601 unless `sqlstate` says otherwise), the database state is
 *   unchanged, no canary reaches the client, and the session still answers a follow-up query as the same role;
 * - `allow`: no error; no canary the user may not see;
 * - `masked`: no error, at least one row (unless `rows` says otherwise), and no canary: the value was masked or
 *   filtered, not refused;
 * - `safe`: denial or success are both fine (e.g. an oracle), but no canary, state unchanged, and `rows` holds.
 */
export type Expect = 'deny' | 'allow' | 'masked' | 'safe';

export interface Step {
  readonly via: Via;
  readonly sql: string | readonly string[];
  /** Text-format parameters for Bind (extended, named); null is SQL NULL. */
  readonly params?: readonly (string | null)[];
  /** Statement name for `named` and `describe` (default: a fresh `corpus_s<n>`). */
  readonly name?: string;
}

export interface Case extends Step {
  /** Stable id: `<category>-<nnn>`; the test name shows it with the SQL. */
  readonly id: string;
  readonly category: string;
  readonly user: CorpusUser;
  readonly expect: Expect;
  /** Accepted SQLSTATEs for the first error of a denial (default 42501, 42601). */
  readonly sqlstate?: readonly string[];
  /** Row-count bounds on the DataRows the client got (`masked` defaults to min 1). */
  readonly rows?: { readonly min?: number; readonly max?: number };
  /** Run first on the same connection; their outcome is not judged, but their bytes are searched for canaries. */
  readonly setup?: readonly Step[];
  /** COPY FROM STDIN data sent if the server asks for it (otherwise the COPY is failed by the client). */
  readonly copyData?: string;
  /** The case is expected to end the session (no follow-up check). */
  readonly endsSession?: boolean;
  readonly note?: string;
}
