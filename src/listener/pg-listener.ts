// Accepts PostgreSQL client connections and hands each to its own session; one bad client never touches another.

import net from 'node:net';
import { PgSession, type SessionDeps } from '../session/pg-session.js';

export interface PgListener {
  readonly host: string;
  readonly port: number;
  readonly sessions: ReadonlySet<PgSession>;
  /**
   * Stops accepting; idle sessions end at once, busy ones when their statement and transaction are over,
   * and whatever is left after `drainMs` is ended with FATAL 57P01.
   */
  close(drainMs?: number): Promise<void>;
}

export async function listenPg(
  host: string,
  port: number,
  maxConnections: number,
  deps: Omit<SessionDeps, 'onClose'>,
): Promise<PgListener> {
  const sessions = new Set<PgSession>();
  const sessionDeps: SessionDeps = { ...deps, onClose: (s) => sessions.delete(s) };
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    if (sessions.size >= maxConnections) {
      // Refuse before any protocol exchange; the client sees a closed connection.
      socket.destroy();
      return;
    }
    try {
      sessions.add(new PgSession(socket, sessionDeps));
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
      for (const s of sessions) s.beginDrain();
      const deadline = Date.now() + drainMs;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const s of [...sessions]) s.shutdown();
      await closed;
    },
  };
}
