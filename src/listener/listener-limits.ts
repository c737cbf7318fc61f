// Listener limits shared by the PostgreSQL and MySQL front ends: immediate refusals, the per-address startup cap, graceful drain.

import type net from 'node:net';
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
