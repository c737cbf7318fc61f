// Accepts MySQL client connections and hands each to its own session; one bad client never touches another.

import net from 'node:net';
import { MysqlSession, type MysqlSessionDeps } from '../session/mysql-session.js';
import { ER } from '../wire/mysql/constants.js';
import { encodeErr } from '../wire/mysql/codec.js';
import { packet } from '../wire/mysql/framing.js';
import { drainSessions, refuse, tooManyStarting } from './listener-limits.js';

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

export interface MysqlListener {
  readonly host: string;
  readonly port: number;
  readonly sessions: ReadonlySet<MysqlSession>;
  /**
   * Stops accepting; idle sessions end at once (ERR 1053), busy ones when their command and transaction are over,
   * and whatever is left after `drainMs` is cut with the same ERR.
   */
  close(drainMs?: number): Promise<void>;
}

export async function listenMysql(
  host: string,
  port: number,
  maxConnections: number,
  deps: Omit<MysqlSessionDeps, 'onClose'>,
): Promise<MysqlListener> {
  const sessions = new Set<MysqlSession>();
  const sessionDeps: MysqlSessionDeps = { ...deps, onClose: (s) => sessions.delete(s) };
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    if (sessions.size >= maxConnections) {
      // Refused before any exchange with ERR 1040, as a MySQL server does; input is drained so the close is clean,
      // and the socket never lingers (a flood of refused sockets must not hold resources).
      refuse(socket, TOO_MANY);
      return;
    }
    if (tooManyStarting(sessions, socket.remoteAddress ?? '', deps.config.limits.maxStartupsPerAddress)) {
      refuse(socket, TOO_MANY_STARTING);
      return;
    }
    try {
      sessions.add(new MysqlSession(socket, sessionDeps));
    } catch {
      socket.destroy();
    }
  });
  server.maxConnections = maxConnections + 16;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return {
    host: addr.address,
    port: addr.port,
    sessions,
    async close(drainMs = 5000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await drainSessions(sessions, drainMs);
      await closed;
    },
  };
}
