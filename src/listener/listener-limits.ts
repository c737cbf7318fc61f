// Listener limits shared by the PostgreSQL and MySQL front ends: immediate refusals, the per-address startup cap,
// graceful drain, and the TCP accept loop that applies them.

import net from 'node:net';
import { addressKey } from '../identity/throttle.js';

/**
 * Sends a refusal and closes at once. What the client sent is read and dropped, so the close is a FIN after the
 * message (unread input would turn it into a reset that can discard the message); a refused socket must not
 * linger, or a flood of them would fill the listener's own connection cap.
 */
export function refuse(socket: net.Socket, message: Buffer): void {
  socket.resume();
  socket.end(message, () => socket.destroy());
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** A session as the listener limits see it. */
export interface LimitedSession {
  /** Null until the session has authenticated and reached its target. */
  readonly sessionContext: unknown;
  readonly sourceAddress: string;
  /** Ends the session now if idle, otherwise once its current work is over. */
  beginDrain(): void;
  /** Ends the session now. */
  shutdown(): void;
}

/**
 * Whether a new connection from `address` is over the per-address startup cap: one address (IPv6: one /64)
 * cannot hold every slot with connections that never finish logging in.
 */
export function tooManyStarting(
  sessions: Iterable<LimitedSession>,
  address: string,
  maxStartupsPerAddress: number,
): boolean {
  const from = addressKey(address);
  let starting = 0;
  for (const s of sessions) {
    if (s.sessionContext === null && addressKey(s.sourceAddress) === from) starting++;
  }
  return starting >= maxStartupsPerAddress;
}

/**
 * Graceful drain: every session is asked to end at its next idle point; whatever is left after `drainMs` is cut
 * with `shutdown()`. Resolves when the set is empty or the cut is done.
 */
export async function drainSessions(sessions: ReadonlySet<LimitedSession>, drainMs: number): Promise<void> {
  for (const s of [...sessions]) s.beginDrain();
  const deadline = Date.now() + drainMs;
  while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const s of [...sessions]) s.shutdown();
}

/** A listening front end: its bound address, its live sessions, and a graceful close. */
export interface TcpListener<S> {
  readonly host: string;
  readonly port: number;
  readonly sessions: ReadonlySet<S>;
  /** Stops accepting, drains the sessions (see drainSessions) and resolves once the server is closed. */
  close(drainMs?: number): Promise<void>;
}

/** What a front end gives listenTcp: its limits, its refusal messages (already framed) and its session factory. */
export interface TcpListenerOptions<S extends LimitedSession> {
  maxConnections: number;
  maxStartupsPerAddress: number;
  /** Sent instead of anything else to a connection over `maxConnections`, then closed. */
  tooMany: Buffer;
  /** Sent to a connection whose address already has `maxStartupsPerAddress` logins under way, then closed. */
  tooManyStarting: Buffer;
  /** Starts a session on an admitted socket; `onClose` must be called when it ends (it leaves the set). */
  startSession(socket: net.Socket, onClose: (session: S) => void): S;
}

/**
 * Listens on `host:port` and hands each admitted connection to its own session. Connections over the
 * connection cap, or from an address over its startup cap, are refused before any exchange; a session that
 * fails to start only loses its own socket.
 */
export async function listenTcp<S extends LimitedSession>(
  host: string,
  port: number,
  o: TcpListenerOptions<S>,
): Promise<TcpListener<S>> {
  const sessions = new Set<S>();
  const onClose = (s: S): void => {
    sessions.delete(s);
  };
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    if (sessions.size >= o.maxConnections) {
      // Refused before reading anything (each protocol's own "too many" error), then closed at once.
      refuse(socket, o.tooMany);
      return;
    }
    // One address cannot hold every slot with connections that never finish logging in (they wait for the
    // startup timeout or a slowed answer): its connections still starting up are capped.
    if (tooManyStarting(sessions, socket.remoteAddress ?? '', o.maxStartupsPerAddress)) {
      refuse(socket, o.tooManyStarting);
      return;
    }
    try {
      sessions.add(o.startSession(socket, onClose));
    } catch {
      socket.destroy();
    }
  });
  server.maxConnections = o.maxConnections + 16;
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
