// Adapter: lists the gateway's live PostgreSQL sessions (the listener's session set) as the admin API's SessionView.

import type { SessionContext } from '../core/context.js';
import type { SessionView } from './providers.js';

/** What the adapter needs from the listener: its live sessions, each with a context once authenticated. */
export interface LiveSessionSource {
  readonly sessions: ReadonlySet<{ readonly sessionContext: SessionContext | null }>;
}

export function sessionView(c: SessionContext): SessionView {
  return {
    id: c.sessionId,
    user: c.principal.name,
    kind: c.principal.kind,
    protocol: c.protocol,
    target: c.target,
    environment: c.environment,
    database: c.database,
    sourceAddress: c.sourceAddress,
    tls: c.tls,
    applicationName: c.applicationName,
    startedAt: c.startedAt,
  };
}

/** Authenticated sessions only (a connection still in startup or authentication has no identity yet), oldest first. */
export function listLiveSessions(...sources: LiveSessionSource[]): SessionView[] {
  const out: SessionView[] = [];
  for (const src of sources) {
    for (const s of src.sessions) {
      const c = s.sessionContext;
      if (c !== null) out.push(sessionView(c));
    }
  }
  return out.sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || a.id.localeCompare(b.id));
}
