// Pieces of the client-session lifecycle that the PostgreSQL and MySQL sessions share: event emission, the principal
// and upstream endpoint of an authenticated user, and the last steps of closing a session.

import type net from 'node:net';
import type { UserConfig, TargetConfig } from '../config/gateway-config.js';
import type {
  Principal,
  SessionContext,
  SessionEvents,
  StatementHook,
  StatementVerdict,
} from '../core/context.js';
import { isWardenError } from '../core/errors.js';
import type { UpstreamEndpoint } from '../upstream/pg-connect.js';

/** How a session lets a held hook call be cancelled (client cancel or disconnect). */
export interface VerdictHold {
  /** Called before waiting on an asynchronous verdict (e.g. forward what came before the held message). */
  readonly beforeHold?: () => void;
  /** Installs (or, with null, removes) the abort the session calls on cancel or disconnect while held. */
  readonly setHold: (abort: (() => void) | null) => void;
  readonly abort: () => void;
  readonly aborted: () => boolean;
  /** The denial message when the hook throws something other than a WardenError. */
  readonly undecidable: string;
}

/**
 * Runs a hook call (check or bind) and returns its verdict, waiting while it holds the message (approval in wait
 * mode) with the hold cancellable by the session.
 * INVARIANT: fail closed — a hook that throws or rejects, or a hold cancelled by the client, is a denial.
 */
export async function awaitVerdict(
  call: () => StatementVerdict | undefined | Promise<StatementVerdict | undefined>,
  hold: VerdictHold,
): Promise<StatementVerdict | undefined> {
  try {
    const v = call();
    let verdict: StatementVerdict | undefined;
    if (v instanceof Promise) {
      hold.beforeHold?.();
      hold.setHold(hold.abort);
      try {
        verdict = await v;
      } finally {
        hold.setHold(null);
      }
    } else {
      verdict = v;
    }
    if (hold.aborted()) {
      return { action: 'deny', sqlstate: '57014', message: 'canceling statement due to user request' };
    }
    return verdict;
  } catch (e) {
    return isWardenError(e)
      ? { action: 'deny', sqlstate: e.sqlstate, message: e.message }
      : { action: 'deny', sqlstate: '42501', message: hold.undecidable };
  }
}

/** Calls an event sink; a sink that throws or rejects never breaks the session. */
export async function emitEvent(fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch {
    // Event sinks must not break the session; the audit sink itself fails closed where it matters.
  }
}

/** The principal that policy and audit see for an authenticated user. */
export function principalOf(user: UserConfig): Principal {
  return {
    name: user.name,
    kind: user.kind,
    groups: user.groups,
    attributes: user.attributes,
  };
}

/** Where and how (TLS mode, CA, expected name) a session connects to its target (the MySQL endpoint has the same shape). */
export function targetEndpoint(target: TargetConfig): UpstreamEndpoint {
  return {
    host: target.host,
    port: target.port,
    tls: target.tls.mode,
    ...(target.tls.caFile !== undefined ? { caFile: target.tls.caFile } : {}),
    ...(target.tls.serverName !== undefined ? { serverName: target.tls.serverName } : {}),
  };
}

/** What the last steps of closing a session act on. */
export interface SessionTeardown {
  readonly sessionId: string;
  readonly reason: string;
  /** End the client socket after its last message (true) or destroy it at once. */
  readonly graceful: boolean;
  /** The client socket (the TLS socket once upgraded) and the raw TCP socket under it. */
  readonly client: net.Socket;
  readonly rawSocket: net.Socket;
  readonly upstream: net.Socket | null;
  readonly hook: StatementHook | null;
  readonly events: SessionEvents;
  /** The session's context when it was ready (a `closed` event is emitted), otherwise null. */
  readonly closedContext: SessionContext | null;
}

/**
 * Closes the sockets (the client's final message gets a moment to leave, then both client sockets are destroyed),
 * drops the upstream, tells the hook the session is gone and emits `closed` for a session that was ready.
 */
export function tearDownSession(t: SessionTeardown): void {
  if (t.graceful) t.client.end();
  else t.client.destroy();
  // Give the final message a moment to leave, then make sure the sockets are gone.
  setTimeout(() => {
    t.client.destroy();
    t.rawSocket.destroy();
  }, 1000).unref();
  t.upstream?.destroy();
  try {
    t.hook?.sessionClosed?.(t.sessionId);
  } catch {
    // per-session clean-up never breaks the close
  }
  const ctx = t.closedContext;
  if (ctx !== null) void emitEvent(() => t.events.closed?.(ctx, t.reason));
}
