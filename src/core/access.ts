// The plain access request that the SQL analyser produces and the policy engine decides: no SQL, no database, no wire protocol.

/** Operations a grant can allow. */
export type Operation =
  | 'select'
  | 'insert'
  | 'update'
  | 'delete'
  | 'truncate'
  | 'merge'
  | 'create'
  | 'alter'
  | 'drop'
  | 'copy_to' // COPY ... TO STDOUT (data leaves to the client)
  | 'copy_from' // COPY ... FROM STDIN
  | 'execute' // call of a function or procedure
  | 'set' // change of a session setting
  | 'utility'; // transaction control, SHOW, LISTEN, ... (decided by the statement kind)

/** A schema-qualified object name, resolved against the pinned search_path. */
export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

/** One use of one relation by one statement. */
export interface RelationAccess extends QualifiedName {
  readonly operation: Operation;
  /** Columns read or written; undefined means "all columns" (e.g. `*`, whole-row reference, TRUNCATE). */
  readonly columns?: readonly string[];
}

export interface FunctionCall {
  /** Schema if written explicitly, else resolved ('pg_catalog' for built-ins). */
  readonly schema: string;
  readonly name: string;
}

export interface SettingChange {
  readonly name: string;
  readonly value?: string;
}

/** What one SQL statement does, as far as policy is concerned. */
export interface StatementSummary {
  /** libpg-query node name of the top statement, e.g. 'SelectStmt', 'InsertStmt'. */
  readonly kind: string;
  /** The statement text (one statement of a multi-statement string). */
  readonly text: string;
  readonly relations: readonly RelationAccess[];
  readonly functions: readonly FunctionCall[];
  readonly settings: readonly SettingChange[];
  /** For UPDATE/DELETE: whether a WHERE clause is present (approval rules use it). */
  readonly hasWhere?: boolean;
  /** PREPARE, EXECUTE, DEALLOCATE: the prepared statement's name (EXECUTE is decided by what was prepared under it). */
  readonly preparedName?: string;
  /** Set when the analyser does not fully understand the statement: the policy must deny, naming this reason. */
  readonly unsupported?: string;
}

/** Context that conditions on grants weigh. */
export interface RequestContext {
  readonly target: string;
  readonly environment: string;
  readonly sourceAddress: string;
  readonly at: Date;
}
