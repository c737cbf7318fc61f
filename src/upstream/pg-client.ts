// A node-postgres client that never sends a password in clear: a cleartext password request over a connection without TLS is refused.

import tls from 'node:tls';
import pg from 'pg';

type Handler = (this: pg.Client, msg: unknown) => void;

/** node-postgres 8.x handles AuthenticationCleartextPassword in this (undocumented) method. */
const CLEARTEXT_HANDLER = '_handleAuthCleartextPassword';
const original = (pg.Client.prototype as unknown as Record<string, Handler | undefined>)[CLEARTEXT_HANDLER];

/** Whether the override below is in force (the node-postgres in use has the method it replaces). Tested. */
export const cleartextGuardActive = typeof original === 'function';

/**
 * The same rule as Warden's own upstream link (src/upstream/pg-connect.ts): a server, or anyone in the middle of
 * an unencrypted connection, that asks for the password in clear gets an error instead. Use it for every pool
 * that logs in with a secret Warden holds (catalog lookups, the PostgreSQL audit store): `new pg.Pool({ Client:
 * GuardedPgClient, ... })`.
 */
export class GuardedPgClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // INVARIANT: fail closed if node-postgres ever moves the handler: no guard, no client.
    if (!cleartextGuardActive) throw new Error('node-postgres has no cleartext password handler to guard');
  }
}

(GuardedPgClient.prototype as unknown as Record<string, Handler>)[CLEARTEXT_HANDLER] = function (
  this: pg.Client,
  msg: unknown,
): void {
  const connection = (this as unknown as { connection: { stream: unknown; emit(e: string, x: Error): void } })
    .connection;
  if (connection.stream instanceof tls.TLSSocket) {
    (original as Handler).call(this, msg);
    return;
  }
  connection.emit(
    'error',
    new Error(
      'the server asks for a cleartext password over an unencrypted connection; Warden refuses to send it',
    ),
  );
};
