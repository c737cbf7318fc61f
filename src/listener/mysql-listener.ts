// Accepts MySQL client connections and hands each to its own session; one bad client never touches another.

import { MysqlSession, type MysqlSessionDeps } from '../session/mysql-session.js';
import { ER } from '../wire/mysql/constants.js';
import { encodeErr } from '../wire/mysql/codec.js';
import { packet } from '../wire/mysql/framing.js';
import { listenTcp, type TcpListener } from './listener-limits.js';

/** Sent instead of the handshake to a connection over `limits.max_connections` (the server's own errno), then closed. */
const TOO_MANY = packet(
  0,
  encodeErr({ errno: ER.CON_COUNT, sqlstate: '08004', message: 'Too many connections' }),
);
/** Sent instead of the handshake when the client's address already has `limits.max_startups_per_address` logins under way. */
const TOO_MANY_STARTING = packet(
  0,
  encodeErr({
    errno: ER.CON_COUNT,
    sqlstate: '08004',
    message: 'Too many connections from this address are still logging in; try again later',
  }),
);

export interface MysqlListener extends TcpListener<MysqlSession> {
  /**
   * Stops accepting; idle sessions end at once (ERR 1053), busy ones when their command and transaction are over,
   * and whatever is left after `drainMs` is cut with the same ERR.
   */
  close(drainMs?: number): Promise<void>;
}

/** Refusals are ERR 1040 before the handshake, as a MySQL server sends (input is drained so the close is clean). */
export async function listenMysql(
  host: string,
  port: number,
  maxConnections: number,
  deps: Omit<MysqlSessionDeps, 'onClose'>,
): Promise<MysqlListener> {
  return listenTcp(host, port, {
    maxConnections,
    maxStartupsPerAddress: deps.config.limits.maxStartupsPerAddress,
    tooMany: TOO_MANY,
    tooManyStarting: TOO_MANY_STARTING,
    startSession: (socket, onClose) => new MysqlSession(socket, { ...deps, onClose }),
  });
}
