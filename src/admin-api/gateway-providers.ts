// The admin API's real providers over a running gateway: live sessions, the audit log, bundles and policies, approvals, readiness.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { AuditEntry } from '../audit/entry.js';
import { decodeEntry } from '../audit/entry.js';
import type { AuditLog } from '../audit/log.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import { pgConnectionFor } from '../audit/open.js';
import { GuardedPgClient } from '../upstream/pg-client.js';
import { verifyLog, verifyPgLog, type VerifyResult } from '../audit/verify.js';
import type { ApprovalService } from '../approvals/service.js';
import { serializeEnvelope } from '../bundle/dsse.js';
import type { VerifiedBundle } from '../bundle/bundle.js';
import type { DiffableBundle } from '../bundle/diff.js';
import type { AuditConfig, TargetConfig } from '../config/gateway-config.js';
import type { Policy } from '../policy/model.js';
import { approvalsFromService } from './approvals-adapter.js';
import { listLiveSessions, type LiveSessionSource } from './gateway-sessions.js';
import { ApiError } from './handlers.js';
import type {
  AdminProviders,
  ApprovalsProvider,
  ApprovalView,
  AuditProvider,
  AuditQuery,
  BundleSummary,
  PolicyProvider,
  ReadyCheck,
  RunningBundle,
  SessionsProvider,
  TimelineEvent,
} from './providers.js';

/** A bundle a target ran since the gateway started (startup or activation), kept for listing and diffs. */
export interface BundleHistoryItem {
  readonly target: string;
  readonly verified: VerifiedBundle;
  readonly activatedAt: Date;
}

/** What the providers need from the gateway (src/main.ts implements it). */
export interface GatewaySource {
  readonly pg: LiveSessionSource;
  readonly audit?: AuditLog;
  /** Target → what it runs now (`kind`, and for bundles the `hash`, settings and expiry state). */
  policies(): readonly {
    readonly target: string;
    readonly kind: string;
    readonly hash: string;
    readonly bundle?: {
      readonly settings: Readonly<Record<string, unknown>>;
      readonly expiresAt: string;
      readonly expiresBy: 'bundle' | 'root';
      readonly state: 'current' | 'expiring' | 'expired';
    };
  }[];
  /** Bundles activated since start, oldest first. */
  bundleHistory(): readonly BundleHistoryItem[];
  /** The compiled policy a target enforces now; undefined for allow_all and custom hooks. */
  policyOf(target: string): Policy | undefined;
  activateBundle(
    path: string,
    opts?: { readonly target?: string; readonly trigger?: string },
  ): Promise<{ readonly version: number; readonly hash: string }>;
}

export interface GatewayProvidersOptions {
  readonly gateway: GatewaySource;
  readonly targets: readonly TargetConfig[];
  readonly audit?: AuditConfig;
  /** Approvals services by target name. */
  readonly approvals: ReadonlyMap<string, ApprovalService>;
  /** Where uploaded bundle envelopes are staged before activation. */
  readonly stateDir: string;
  /** TCP connect timeout of the upstream readiness check (default 1000 ms). */
  readonly connectTimeoutMs?: number;
}

/** The last element matching `pred` (Array.prototype.findLast needs ES2023). */
function lastWhere<T>(list: readonly T[], pred: (x: T) => boolean): T | undefined {
  for (let i = list.length - 1; i >= 0; i--) {
    const x = list[i] as T;
    if (pred(x)) return x;
  }
  return undefined;
}

const noAudit = (): ApiError => new ApiError(404, 'not_found', 'the gateway has no audit log configured');

/** Reads every durable entry of the log (redacted ones skipped), oldest first. */
async function* entriesOf(log: AuditLog): AsyncGenerator<{ index: number; entry: AuditEntry }> {
  // INVARIANT: only entries the store acknowledged (below its size when the scan starts) are read.
  const size = log.size;
  for (let i = 0; i < size; i++) {
    const bytes = await log.store.read(i);
    if (bytes.length === 0) continue;
    let entry: AuditEntry;
    try {
      entry = decodeEntry(bytes);
    } catch {
      continue; // verify() reports damaged entries; a search skips them
    }
    yield { index: i, entry };
  }
}

function field(e: AuditEntry, name: string): unknown {
  return (e as unknown as Record<string, unknown>)[name];
}

function userOf(e: AuditEntry): string | undefined {
  const p = field(e, 'principal') as { name?: unknown } | undefined;
  if (typeof p?.name === 'string') return p.name;
  const u = field(e, 'user') ?? field(e, 'actor');
  return typeof u === 'string' ? u : undefined;
}

/** One line for a human describing an entry in a session timeline. */
function summaryOf(e: AuditEntry): string {
  switch (e.kind) {
    case 'session.open':
      return `${e.principal.name} opened a ${e.protocol} session to ${e.target} from ${e.sourceAddress}`;
    case 'session.close':
      return `closed: ${e.reason}`;
    case 'auth.success':
      return `${e.principal.name} authenticated (${e.method})`;
    case 'statement':
      return `${e.decision.effect}: ${e.text}`;
    case 'statement.bind':
      return `bind ${e.statementName === '' ? '(unnamed)' : e.statementName} params ${e.paramsHash.slice(0, 16)}`;
    case 'statement.outcome':
      return e.sqlstate !== null
        ? `failed with SQLSTATE ${e.sqlstate} after ${e.durationMs} ms`
        : `${e.tags.join(', ') || 'done'} (${e.rows} rows, ${e.durationMs} ms)`;
    default:
      return e.kind;
  }
}

export function auditProvider(log: AuditLog | undefined, config: AuditConfig | undefined): AuditProvider {
  return {
    async search(q: AuditQuery) {
      if (log === undefined) throw noAudit();
      const out: { index: number; entry: AuditEntry }[] = [];
      // Sessions of the wanted user, so that their outcomes and binds (which carry no principal) match too.
      const sessionsOfUser = new Set<string>();
      for await (const { index, entry } of entriesOf(log)) {
        const sessionId = field(entry, 'sessionId');
        if (q.user !== undefined) {
          const u = userOf(entry);
          if (u === q.user && typeof sessionId === 'string') sessionsOfUser.add(sessionId);
          const viaSession =
            u === undefined && typeof sessionId === 'string' && sessionsOfUser.has(sessionId);
          if (u !== q.user && !viaSession) continue;
        }
        if (q.target !== undefined && field(entry, 'target') !== q.target) continue;
        if (q.decision !== undefined) {
          const d = field(entry, 'decision') as { effect?: unknown } | undefined;
          if (d?.effect !== q.decision) continue;
        }
        const t = Date.parse(entry.time);
        if (q.since !== undefined && t < q.since.getTime()) continue;
        if (q.until !== undefined && t > q.until.getTime()) continue;
        out.push({ index, entry });
        if (out.length >= q.limit) break;
      }
      return out;
    },

    async entry(index) {
      if (log === undefined) throw noAudit();
      if (index >= log.size) return undefined;
      const bytes = await log.store.read(index);
      if (bytes.length === 0) throw new ApiError(410, 'gone', `audit entry ${index} was redacted`);
      let note = log.latestCheckpoint();
      let size =
        note === undefined
          ? 0
          : openCheckpoint(note, { origin: log.origin, verifiers: [log.verifier] }).checkpoint.size;
      // An entry newer than the last checkpoint: sign one now, so the proof is against a signed tree head.
      if (index >= size) {
        note = await log.checkpoint();
        size = openCheckpoint(note, { origin: log.origin, verifiers: [log.verifier] }).checkpoint.size;
      }
      return {
        entry: decodeEntry(bytes),
        proof: log.proveInclusion(index, size),
        checkpoint: Buffer.from(note as Uint8Array).toString('utf8'),
      };
    },

    async verify(): Promise<VerifyResult> {
      if (log === undefined || config === undefined) throw noAudit();
      const opts = { origin: log.origin, verifierKeys: [log.verifier] };
      if (config.postgres === undefined) return verifyLog(config.dir, opts);
      const client = new GuardedPgClient(pgConnectionFor(config.postgres));
      await client.connect();
      try {
        return await verifyPgLog(
          client,
          { schema: config.postgres.schema, table: config.postgres.table },
          opts,
        );
      } finally {
        await client.end();
      }
    },
  };
}

export function sessionsProvider(source: LiveSessionSource, log: AuditLog | undefined): SessionsProvider {
  return {
    list: () => listLiveSessions(source),
    async timeline(id) {
      const live = listLiveSessions(source).some((s) => s.id === id);
      const events: TimelineEvent[] = [];
      if (log !== undefined) {
        for await (const { index, entry } of entriesOf(log)) {
          if (field(entry, 'sessionId') !== id) continue;
          events.push({ at: new Date(entry.time), type: entry.kind, summary: summaryOf(entry), index });
        }
      }
      return events.length === 0 && !live ? undefined : events;
    },
  };
}

type RunningState = NonNullable<ReturnType<GatewaySource['policies']>[number]['bundle']>;

function runningBundle(v: VerifiedBundle, s: RunningState | undefined): RunningBundle {
  return {
    version: v.payload.version,
    hash: v.hash,
    created: v.payload.created,
    expires: v.payload.expires,
    author: v.author.keyId,
    signatures: [
      { keyid: v.author.keyId, signer: v.author.name, role: 'author' },
      ...v.approvers.map((k) => ({ keyid: k.keyId, signer: k.name, role: 'approver' as const })),
    ],
    settings: v.payload.settings,
    expiresAt: s?.expiresAt ?? v.payload.expires,
    expiresBy: s?.expiresBy ?? 'bundle',
    expiryState: s?.state ?? (Date.parse(v.payload.expires) <= Date.now() ? 'expired' : 'current'),
  };
}

/**
 * The policy the API shows: the first target that runs a policy (a bundle, else a folder). With several policy
 * targets the API describes the first one (configuration order).
 */
export function policyProvider(o: GatewayProvidersOptions): PolicyProvider {
  const gw = o.gateway;
  const shown = (): ReturnType<GatewaySource['policies']>[number] | undefined => {
    const all = gw.policies();
    return all.find((p) => p.kind === 'bundle') ?? all.find((p) => p.kind === 'folder');
  };
  const history = (): BundleHistoryItem[] => {
    const s = shown();
    return s === undefined ? [] : gw.bundleHistory().filter((h) => h.target === s.target);
  };
  const current = (): VerifiedBundle | undefined => {
    const s = shown();
    if (s?.kind !== 'bundle') return undefined;
    return lastWhere(history(), (h) => h.verified.hash === s.hash)?.verified;
  };
  return {
    running() {
      const v = current();
      return v === undefined ? undefined : runningBundle(v, shown()?.bundle);
    },
    policy() {
      const s = shown();
      return s === undefined ? undefined : gw.policyOf(s.target);
    },
    bundles() {
      const active = current()?.hash;
      const seen = new Set<string>();
      const out: BundleSummary[] = [];
      for (const h of [...history()].reverse()) {
        const v = h.verified;
        if (seen.has(v.hash)) continue;
        seen.add(v.hash);
        out.push({
          version: v.payload.version,
          hash: v.hash,
          created: v.payload.created,
          author: v.author.keyId,
          active: v.hash === active,
        });
      }
      return Promise.resolve(out);
    },
    bundle(version) {
      const v = lastWhere(history(), (h) => h.verified.payload.version === version)?.verified;
      const d: DiffableBundle | undefined =
        v === undefined
          ? undefined
          : { version: v.payload.version, policy: v.payload.policy, settings: v.payload.settings };
      return Promise.resolve(d);
    },
    async activateBundle(envelope, by) {
      const dir = join(o.stateDir, 'api-uploads');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `bundle-${randomBytes(8).toString('hex')}.json`);
      writeFileSync(file, serializeEnvelope(envelope), { mode: 0o600, flag: 'wx' });
      try {
        const target = shown()?.target;
        const r = await gw.activateBundle(file, {
          ...(target !== undefined && shown()?.kind === 'bundle' ? { target } : {}),
          trigger: `api:${by.user}`,
        });
        return { version: r.version, hash: r.hash };
      } finally {
        rmSync(file, { force: true });
      }
    },
  };
}

/**
 * All targets' approvals services as one: lists merge (oldest first), a decision goes to the service that holds
 * the request id, a role request to the named target (or the only service).
 */
export function composedApprovals(services: ReadonlyMap<string, ApprovalService>): ApprovalsProvider {
  const entries = [...services.entries()].map(([target, s]) => ({
    target,
    service: s,
    api: approvalsFromService(s),
  }));
  const holder = (id: string): (typeof entries)[number] | undefined =>
    entries.find((e) => e.service.get(id) !== undefined);
  // Requests written elsewhere (the CLI, another replica sharing the PostgreSQL store) are read before answering.
  const fresh = async (): Promise<void> => {
    await Promise.all(entries.map((e) => e.service.sync(true)));
  };
  return {
    async list(filter) {
      await fresh();
      const all: ApprovalView[] = [];
      for (const e of entries) all.push(...(await e.api.list(filter)));
      return all.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
    },
    async get(id) {
      await fresh();
      const h = holder(id);
      return h === undefined ? undefined : h.api.get(id);
    },
    async decide(id, input) {
      await fresh();
      const h = holder(id);
      if (h === undefined) throw new ApiError(404, 'not_found', `no approval request ${JSON.stringify(id)}`);
      return h.api.decide(id, input);
    },
    async requestRole(input) {
      const e =
        input.target !== undefined
          ? entries.find((x) => x.target === input.target)
          : entries.length === 1
            ? entries[0]
            : undefined;
      if (e === undefined) {
        throw new ApiError(
          400,
          'bad_request',
          input.target !== undefined
            ? `body.target: no target ${JSON.stringify(input.target)} runs approvals`
            : entries.length === 0
              ? 'no target runs approvals'
              : 'body.target: name the target (several run approvals)',
        );
      }
      return e.api.requestRole(input);
    },
  };
}

/** Resolves true when a TCP connection to host:port opens within `timeoutMs`. */
export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function readinessChecks(o: GatewayProvidersOptions): Record<string, ReadyCheck> {
  const timeout = o.connectTimeoutMs ?? 1000;
  // One check per bundle target: once its signed bundle (or root) has expired it refuses every statement.
  const bundleChecks: Record<string, ReadyCheck> = {};
  for (const t of o.targets) {
    if (t.policy.kind !== 'bundle') continue;
    bundleChecks[`bundle:${t.name}`] = () =>
      o.gateway.policies().find((p) => p.target === t.name)?.bundle?.state !== 'expired';
  }
  return {
    upstream: async () => {
      const results = await Promise.all(o.targets.map((t) => tcpReachable(t.host, t.port, timeout)));
      return results.every(Boolean);
    },
    // A store that failed a write refuses statements until it recovers.
    audit_store: () => (o.gateway.audit?.store as { failed?: boolean } | undefined)?.failed !== true,
    ...bundleChecks,
  };
}

export function gatewayProviders(o: GatewayProvidersOptions): AdminProviders {
  return {
    sessions: sessionsProvider(o.gateway.pg, o.gateway.audit),
    audit: auditProvider(o.gateway.audit, o.audit),
    policy: policyProvider(o),
    approvals: composedApprovals(o.approvals),
    ready: readinessChecks(o),
  };
}
