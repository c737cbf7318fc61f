// Stable error codes for the test harness (real PostgreSQL, pgbouncer, openssl, client processes); tests match on `code`, never the message.

export const HARNESS_ERRORS = {
  PG_NOT_INSTALLED: 'no PostgreSQL server binaries (postgres, initdb) were found',
  NO_POSTGRES_USER: 'running as root but there is no `postgres` system user to run the server as',
  PG_INITDB_FAILED: 'initdb failed',
  PG_START_FAILED: 'the PostgreSQL server exited during startup',
  PG_START_TIMEOUT: 'the PostgreSQL server did not accept connections in time',
  PG_STOP_TIMEOUT: 'the PostgreSQL server did not stop in time and was killed',
  PG_NOT_RUNNING: 'the operation needs a running server',
  NO_FREE_PORT: 'no free TCP port could be found on 127.0.0.1',
  OPENSSL_FAILED: 'an openssl command failed',
  PGBOUNCER_START_FAILED: 'pgbouncer exited during startup or did not accept connections in time',
  COMMAND_FAILED: 'a helper command failed',
  INVALID_OPTION: 'an option passed to the harness is invalid',
} as const;

export type HarnessErrorCode = keyof typeof HARNESS_ERRORS;

/** An error raised by the harness itself (not by the code under test). */
export class HarnessError extends Error {
  readonly code: HarnessErrorCode;
  /** Extra context for a human, such as the tail of a server log. Never contains passwords. */
  readonly detail: string | undefined;
  constructor(code: HarnessErrorCode, message: string, options?: { cause?: unknown; detail?: string }) {
    super(
      options?.detail === undefined ? message : `${message}\n--- detail ---\n${options.detail}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'HarnessError';
    this.code = code;
    this.detail = options?.detail;
  }
}

export function isHarnessError(e: unknown, code?: HarnessErrorCode): e is HarnessError {
  return e instanceof HarnessError && (code === undefined || e.code === code);
}
