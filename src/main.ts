// The composition root: wires configuration, identity, policy hooks (from signed bundles), the audit log and listeners into a running gateway.
//
// Life of a bundle activation (`gateway.activateBundle(path)`, SIGHUP in `warden serve`): read the envelope →
// verify it against the pinned root and the running {version, hash} → build the new policy hook completely →
// install the bundle file at the configured path and persist {version, hash} (write-then-rename) → append a
// `config.bundle-activated` audit entry → swap the target's inner hook in one step. Any failure before the swap is
// a refusal: the old bundle keeps running, and a `config.bundle-refused` entry says why.

import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { SessionEvents, StatementHook } from './core/context.js';
import { WardenError } from './core/errors.js';
import { readSecret } from './core/secrets.js';
import type { GatewayConfig, TargetConfig } from './config/gateway-config.js';
import { AuthThrottle } from './identity/throttle.js';
import { CancelRegistry } from './session/cancel-registry.js';
import { listenPg, serverTlsContext, type PgListener } from './listener/pg-listener.js';
import { listenMysql, type MysqlListener } from './listener/mysql-listener.js';
import { FastAuthCache, loadOrCreateRsaKeys } from './identity/mysql-auth.js';
import { createPolicyHook, type PolicyHook } from './enforce/policy-hook.js';
import { mysqlDialect } from './enforce/mysql-dialect.js';
import type { SqlDialect } from './enforce/dialect.js';
import { loadPolicy } from './policy/load.js';
import type { Policy } from './policy/model.js';
import { createApprovalService, type ApprovalService } from './approvals/service.js';
import { CatalogCache } from './enforce/catalog-cache.js';
import { SwappableHook } from './enforce/swappable-hook.js';
import type { AuditLog } from './audit/log.js';
import { openAuditLogFromConfig, pgConnectionFor } from './audit/open.js';
import { PgApprovalStore } from './approvals/store-pg.js';
import { AuditRecorder } from './audit/recorder.js';
import { COSIGNATURES_DIR, WitnessPublisher } from './audit/witness-publisher.js';
import type { WitnessStatus } from './audit/witness-publisher.js';
import { makeEntry } from './audit/entry.js';
import type { ApprovalEntry, ConfigEntry, JsonValue } from './audit/entry.js';
import {
  BundleError,
  BundleGuard,
  SettingsEnforcer,
  effectiveExpiry,
  parseEnvelope,
  verifyRoot,
  installBundleFile,
  isBundleError,
  loadStartupBundle,
  readBundleFile,
  refusalReason,
  verifyForTarget,
  writeActivationState,
} from './bundle/index.js';
import type { ActivatedBundle, RootDocument, VerifiedBundle } from './bundle/index.js';
import type { TargetSessionSettings } from './session/pg-session.js';
import { startAdminApi, type AdminApi } from './admin-api/server.js';
import { createWardenMetrics, type WardenMetrics } from './admin-api/metrics.js';
import { gatewayProviders, type BundleHistoryItem } from './admin-api/gateway-providers.js';
import { meteredHook, sessionMetricsEvents, timedAppender } from './admin-api/gateway-metrics.js';

/** A hook that lets every statement through. Only for targets that say `policy: allow_all` (tests, bring-up). */
export const allowAllHook: StatementHook = { check: () => ({ action: 'allow' }) };

/** One structured log line (written as JSON on stderr by default). Never holds a secret. */
export type GatewayLogLine = { readonly level: 'info' | 'warn' | 'error'; readonly msg: string } & Readonly<
  Record<string, unknown>
>;

export interface GatewayOptions {
  /** Builds the statement hook of a target; defaults to the policy named in the target's configuration. */
  readonly hookFor?: (target: TargetConfig) => StatementHook;
  /** Extra session event sinks (the audit recorder's are added when the configuration has an audit log). */
  readonly events?: SessionEvents;
  /** Where operational log lines go; default: one JSON line each on stderr. */
  readonly log?: (line: GatewayLogLine) => void;
  /** Clock for bundle expiry (tests). */
  readonly now?: () => Date;
  /** The authentication failure throttle (tests that fail on purpose many times from one address). */
  readonly authThrottle?: AuthThrottle;
}

/** What a target runs now, as operators see it (`SHOW warden.policy_version` answers `<label> <hash>`). */
export interface RunningPolicy {
  readonly target: string;
  readonly kind: 'allow_all' | 'folder' | 'bundle' | 'custom';
  /** The bundle's version number as text, or "folder" / "allow_all" / "custom". */
  readonly label: string;
  /** Bundle: hex SHA-256 of its payload. Folder: `sha256:` digest of its files. Otherwise empty. */
  readonly hash: string;
  readonly bundle?: {
    readonly origin: string;
    readonly version: number;
    readonly author: string;
    readonly approvers: readonly string[];
    readonly expires: string;
    readonly activatedAt: string;
    /** The bundle's target settings, as signed. */
    readonly settings: Readonly<Record<string, JsonValue>>;
    /** When statements stop being served: the earlier of the bundle's and the root's expiry. */
    readonly expiresAt: string;
    readonly expiresBy: 'bundle' | 'root';
    /** `expiring`: less than 7 days left (warned); `expired`: every statement is refused (WA010). */
    readonly state: 'current' | 'expiring' | 'expired';
  };
}

/** What became of one activation. */
export interface ActivationResult {
  readonly target: string;
  /** `unchanged`: the bundle is the one running (same version and hash); nothing was swapped or recorded. */
  readonly status: 'activated' | 'unchanged';
  readonly version: number;
  readonly hash: string;
  readonly previous?: { readonly version: number; readonly hash: string };
}

/** One target's outcome of `reloadBundles()`. */
export type ReloadResult =
  | (ActivationResult & { readonly ok: true })
  | { readonly ok: false; readonly target: string; readonly reason: string; readonly message: string };

export interface Gateway {
  readonly pg: PgListener;
  /** The MySQL front end, when the configuration has MySQL targets or a `mysql_listen` section. */
  readonly mysql?: MysqlListener;
  /** The audit log, when the configuration has one. */
  readonly audit?: AuditLog;
  /** Per configured witness (`audit.witnesses`): cosigned size, pending size, failures, last error. */
  witnessStatus(): WitnessStatus[];
  /** The admin HTTP API, when the configuration has an `admin_api` section (`port` is the bound port). */
  readonly adminApi?: { readonly port: number };
  /** The metrics `/metrics` renders (present with the admin API). */
  readonly metrics?: WardenMetrics;
  /** What every target runs now. */
  policies(): RunningPolicy[];
  /** Bundles activated since start (startup included), oldest first. */
  bundleHistory(): readonly BundleHistoryItem[];
  /** The compiled policy a target enforces now; undefined for allow_all and custom hooks. */
  policyOf(target: string): Policy | undefined;
  /**
   * Verifies the bundle envelope in `path` and, if it passes, makes it the policy of new statements of the target
   * (`target` may be omitted when exactly one target runs from a bundle). Open sessions stay open. Rejects with a
   * BundleError (its `reason`) when refused; the running bundle then stays in force.
   */
  activateBundle(
    path: string,
    opts?: { readonly target?: string; readonly trigger?: string },
  ): Promise<ActivationResult>;
  /** Re-reads every bundle target's configured bundle file and activates it if it changed (SIGHUP). Never rejects. */
  reloadBundles(): Promise<ReloadResult[]>;
  /** Stops accepting, drains sessions (up to `drainMs`, default `limits.drain_timeout_ms`), then flushes and checkpoints the audit log. */
  close(drainMs?: number): Promise<void>;
}

type BundlePolicy = Extract<TargetConfig['policy'], { kind: 'bundle' }>;

/** From this long before a bundle (or root) expires, the gateway warns (log, API, metrics). */
export const EXPIRY_WARNING_MS = 7 * 86_400_000;
/** setTimeout's longest delay; longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One bundle generation's run-time parts: the guard statements pass, and the settings sessions read. */
interface Generation {
  readonly guard: BundleGuard;
  readonly session: TargetSessionSettings;
  /** Expiry warning and expiry timers of this generation. */
  readonly timers: Set<NodeJS.Timeout>;
}

/** A target that runs from a signed bundle: its pinned root, what it runs, and the hook sessions hold. */
interface BundleTarget {
  readonly target: TargetConfig;
  readonly files: BundlePolicy;
  /** The trusted root; an activation may rotate it (k old and k new signatures) when the root file changed. */
  root: RootDocument;
  readonly catalog: CatalogCache;
  readonly hook: SwappableHook<RunningPolicy>;
  current: ActivatedBundle;
  gen: Generation;
  currentPolicyHook: PolicyHook;
  /** Activations of this target run one at a time, in call order. */
  queue: Promise<unknown>;
}

/** Reads (or creates, 0600) the key that derives fake SCRAM salts, so unknown users look alike across restarts. */
function fakeSaltKey(stateDir: string): Buffer {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, 'fake-salt.key');
  if (!existsSync(file))
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return Buffer.from(readSecret({ file }, 'fake-salt key of unknown users').trim(), 'hex');
}

/** Fans one set of session events out to several sinks, in order. */
function combineEvents(...sinks: (SessionEvents | undefined)[]): SessionEvents {
  const all = sinks.filter((s): s is SessionEvents => s !== undefined);
  return {
    async authenticated(s) {
      for (const e of all) await e.authenticated?.(s);
    },
    async authFailed(info) {
      for (const e of all) await e.authFailed?.(info);
    },
    async closed(s, reason) {
      for (const e of all) await e.closed?.(s, reason);
    },
  };
}

function stderrLog(line: GatewayLogLine): void {
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

/** The value statement entries record as `policyVersion`, and `SHOW warden.policy_version` answers. */
function versionText(p: RunningPolicy): string {
  return p.kind === 'bundle' ? `${p.label} ${p.hash}` : p.kind === 'folder' ? p.hash : p.label;
}

function runningFromBundle(target: string, v: VerifiedBundle, at: Date, root: RootDocument): RunningPolicy {
  const expiry = effectiveExpiry(v.payload.expires, root.expires);
  return {
    target,
    kind: 'bundle',
    label: String(v.payload.version),
    hash: v.hash,
    bundle: {
      origin: v.payload.origin,
      version: v.payload.version,
      author: v.author.keyId,
      approvers: v.approvers.map((k) => k.keyId),
      expires: v.payload.expires,
      activatedAt: at.toISOString(),
      settings: v.payload.settings as Record<string, JsonValue>,
      expiresAt: expiry.at.toISOString(),
      expiresBy: expiry.by,
      state: 'current',
    },
  };
}

/** What a target runs, with its expiry state at `at`. */
function withState(p: RunningPolicy, at: Date): RunningPolicy {
  if (p.bundle === undefined) return p;
  const left = Date.parse(p.bundle.expiresAt) - at.getTime();
  const state = left <= 0 ? 'expired' : left <= EXPIRY_WARNING_MS ? 'expiring' : 'current';
  return state === p.bundle.state ? p : { ...p, bundle: { ...p.bundle, state } };
}

function bundleData(v: VerifiedBundle): Record<string, JsonValue> {
  return {
    origin: v.payload.origin,
    version: v.payload.version,
    hash: v.hash,
    previous: v.payload.previous,
    author: v.author.keyId,
    approvers: v.approvers.map((k) => k.keyId),
    expires: v.payload.expires,
    settings: v.payload.settings as Record<string, JsonValue>,
  };
}

export async function startGateway(config: GatewayConfig, opts: GatewayOptions = {}): Promise<Gateway> {
  const log = opts.log ?? stderrLog;
  const now = opts.now ?? (() => new Date());
  // TLS first: a refused key (loose permissions, bad PEM) stops the start before anything is opened.
  const tlsContext = config.tls ? serverTlsContext(config.tls) : undefined;
  // No silent default: every target resolves to a hook before the gateway accepts anyone.
  const policyHooks: PolicyHook[] = [];
  const hooks = new Map<string, StatementHook>();
  const running = new Map<string, () => RunningPolicy>();
  const bundles = new Map<string, BundleTarget>();
  let audit: AuditLog | undefined;
  let recorder: AuditRecorder | undefined;
  let witnesses: WitnessPublisher | undefined;
  /** Compiled policies by target (folder and bundle targets), and every bundle run since start. */
  const compiled = new Map<string, Policy>();
  const history: BundleHistoryItem[] = [];
  const metrics: WardenMetrics | undefined =
    config.adminApi !== undefined ? createWardenMetrics() : undefined;
  if (metrics !== undefined) {
    // Bundle expiry, per target: alert well before it (the gateway warns from 7 days before; at 0 it refuses all).
    const left = metrics.registry.gauge(
      'warden_bundle_expiry_seconds',
      "Seconds until the target's signed bundle (or its root) expires; negative once expired.",
      ['target'],
    );
    const state = metrics.registry.gauge(
      'warden_bundle_expiry_state',
      'Bundle expiry state per target: 0 current, 1 expiring within 7 days, 2 expired (statements refused).',
      ['target'],
    );
    metrics.registry.onCollect(() => {
      const at = now();
      for (const b of bundles.values()) {
        const p = withState(b.hook.current.info, at);
        if (p.bundle === undefined) continue;
        left.set((Date.parse(p.bundle.expiresAt) - at.getTime()) / 1000, { target: b.target.name });
        const n = p.bundle.state === 'expired' ? 2 : p.bundle.state === 'expiring' ? 1 : 0;
        state.set(n, { target: b.target.name });
      }
    });
  }

  /** Appends a `config.*` entry and waits until it is durable; a no-op without an audit log. */
  const recordConfig = async (kind: `config.${string}`, data: Record<string, JsonValue>): Promise<void> => {
    if (audit === undefined) return;
    await audit.append(makeEntry<ConfigEntry>({ kind, actor: 'warden', data }));
  };
  /** One approvals service per policy-backed target; its events are audit entries, durable before they count. */
  const approvalServices = new Map<string, ApprovalService>();
  const approvalsFor = async (t: TargetConfig, policy: Policy): Promise<ApprovalService> => {
    // Replicas share requests through PostgreSQL (`approvals.postgres`, rows scoped by target); else the folder.
    const pgApprovals = config.approvals?.postgres;
    const svc = await createApprovalService({
      dir: join(config.stateDir, 'approvals', t.name),
      ...(pgApprovals !== undefined
        ? {
            store: await PgApprovalStore.open({
              connection: { ...pgConnectionFor(pgApprovals), application_name: 'warden-approvals' },
              schema: pgApprovals.schema,
              table: pgApprovals.table,
              scope: t.name,
            }),
          }
        : {}),
      policy,
      ...(audit !== undefined
        ? {
            events: {
              record: async (e) => {
                await (audit as AuditLog).append(
                  makeEntry<ApprovalEntry>({
                    kind: e.kind,
                    requestId: e.requestId,
                    actor: e.actor,
                    data: e.data,
                    time: e.time,
                  }),
                );
              },
            },
          }
        : {}),
    });
    approvalServices.set(t.name, svc);
    return svc;
  };
  /** Records a refusal; a failure to record is logged, never thrown over the refusal itself. */
  const recordRefusal = async (data: Record<string, JsonValue>): Promise<void> => {
    try {
      await recordConfig('config.bundle-refused', data);
    } catch (e) {
      log({ level: 'error', msg: 'audit append failed', kind: 'config.bundle-refused', error: String(e) });
    }
  };
  /** The hook sessions use for one policy generation: recorded when there is an audit log. */
  const recorded = (hook: StatementHook, p: RunningPolicy): StatementHook => {
    if (!recorder) return hook;
    const version = versionText(p);
    // INVARIANT: with an audit log configured, every hook is wrapped: no statement is forwarded unrecorded, and
    // each generation records its own version, so an entry names the policy that decided it.
    return recorder.wrapHook(hook, { policyVersion: () => version });
  };

  /**
   * Builds one bundle generation around its policy hook: the guard (expiry, settings) and the settings sessions
   * read. Timers start with `armExpiry` once the generation is in force.
   */
  const generation = (
    t: TargetConfig,
    v: VerifiedBundle,
    root: RootDocument,
    policyHook: StatementHook,
  ): Generation => {
    const label = `bundle version ${v.payload.version} (${v.hash.slice(0, 12)})`;
    const enforcer = new SettingsEnforcer(v.settings, label);
    const guard: BundleGuard = new BundleGuard(policyHook, {
      label,
      bundleExpires: v.payload.expires,
      ...(root.expires !== undefined ? { rootExpires: root.expires } : {}),
      settings: enforcer,
      now,
      onExpired: () => {
        const data = {
          target: t.name,
          version: v.payload.version,
          hash: v.hash,
          expiredBy: guard.expiredBy,
          expiresAt: guard.expiresAt.toISOString(),
          message: guard.expiryMessage(),
        };
        log({ level: 'error', msg: 'bundle expired: every statement on the target is refused', ...data });
        void recordConfig('config.bundle-expired', data).catch((e: unknown) =>
          log({
            level: 'error',
            msg: 'audit append failed',
            kind: 'config.bundle-expired',
            error: String(e),
          }),
        );
      },
    });
    const session: TargetSessionSettings = {
      ...(v.settings.statementTimeoutMs !== undefined
        ? { statementTimeoutMs: v.settings.statementTimeoutMs }
        : {}),
      ...(v.settings.idleSessionTimeoutMs !== undefined
        ? { idleSessionTimeoutMs: v.settings.idleSessionTimeoutMs }
        : {}),
      admit: (x) => enforcer.admit(x),
    };
    return { guard, session, timers: new Set() };
  };

  /** Runs `fn` at `at` (chained past setTimeout's limit); the timer is kept in `timers` to be cleared. */
  const at = (timers: Set<NodeJS.Timeout>, when: Date, fn: () => void): void => {
    const wait = when.getTime() - now().getTime();
    if (wait <= 0) {
      fn();
      return;
    }
    const h = setTimeout(
      () => {
        timers.delete(h);
        if (wait > MAX_TIMER_MS) at(timers, when, fn);
        else fn();
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    h.unref();
    timers.add(h);
  };

  /** The expiry warning (from 7 days before) and the expiry report of a generation now in force. */
  const armExpiry = (t: TargetConfig, v: VerifiedBundle, g: Generation): void => {
    const exp = g.guard.expiresAt;
    at(g.timers, new Date(exp.getTime() - EXPIRY_WARNING_MS), () => {
      if (g.guard.expired(now())) return;
      log({
        level: 'warn',
        msg: `bundle expires soon: activate a new signed bundle before ${exp.toISOString()}`,
        target: t.name,
        version: v.payload.version,
        hash: v.hash,
        expiresAt: exp.toISOString(),
        expiresBy: g.guard.expiredBy,
      });
    });
    at(g.timers, exp, () => g.guard.reportExpired());
  };
  const disarm = (g: Generation): void => {
    for (const h of g.timers) clearTimeout(h);
    g.timers.clear();
  };

  const startBundleTarget = async (t: TargetConfig, files: BundlePolicy): Promise<StatementHook> => {
    let loaded: ReturnType<typeof loadStartupBundle>;
    try {
      loaded = loadStartupBundle({ root: files.root, path: files.path, stateFile: files.stateFile }, now());
    } catch (e) {
      const reason = refusalReason(e);
      const message = e instanceof Error ? e.message : String(e);
      await recordRefusal({ target: t.name, trigger: 'startup', path: files.path, reason, message });
      throw new BundleError(
        isBundleError(e) ? e.reason : 'not-activated',
        `target "${t.name}": bundle ${files.path} refused (${reason}): ${message}`,
        { cause: e },
      );
    }
    const v = loaded.verified;
    const info = runningFromBundle(t.name, v, now(), loaded.root);
    const catalog = dialectOf(t)?.catalog(t) ?? CatalogCache.forTarget(t);
    const policyHook = await createPolicyHook(t, v.policy, {
      ...dialectOption(t),
      catalog,
      version: { label: info.label, hash: info.hash },
      approvals: await approvalsFor(t, v.policy),
    });
    const activated: ActivatedBundle = { origin: v.payload.origin, version: v.payload.version, hash: v.hash };
    compiled.set(t.name, v.policy);
    history.push({ target: t.name, verified: v, activatedAt: now() });
    const prev = loaded.previous;
    if (prev === undefined || prev.version !== activated.version || prev.hash !== activated.hash)
      writeActivationState(files.stateFile, activated);
    await recordConfig('config.bundle-activated', {
      target: t.name,
      trigger: 'startup',
      path: files.path,
      ...bundleData(v),
    });
    const gen = generation(t, v, loaded.root, policyHook);
    const hook = new SwappableHook<RunningPolicy>({ hook: recorded(gen.guard, info), info });
    bundles.set(t.name, {
      target: t,
      files,
      root: loaded.root,
      catalog,
      hook,
      current: activated,
      gen,
      currentPolicyHook: policyHook,
      queue: Promise.resolve(),
    });
    armExpiry(t, v, gen);
    running.set(t.name, () => withState(hook.current.info, now()));
    log({
      level: 'info',
      msg: 'bundle activated',
      target: t.name,
      trigger: 'startup',
      version: v.payload.version,
      hash: v.hash,
    });
    return hook;
  };

  try {
    if (config.audit) {
      const a = config.audit;
      // The embedded file store, or the PostgreSQL store (append-only at the database level) for replicas.
      audit = await openAuditLogFromConfig(a);
      recorder = new AuditRecorder(metrics !== undefined ? timedAppender(audit, metrics) : audit);
      if (a.witnesses !== undefined && a.witnesses.length > 0) {
        // Off the statement path: a witness that is down is logged, retried and shown, never waited for.
        witnesses = await WitnessPublisher.start({
          log: audit,
          witnesses: a.witnesses,
          dir: join(a.dir, COSIGNATURES_DIR),
          onEvent: (e) => log({ ...e }),
        });
        if (metrics !== undefined) witnesses.registerMetrics(metrics.registry);
      }
    }
    for (const t of config.targets.values()) {
      let hook: StatementHook;
      if (opts.hookFor) {
        const info: RunningPolicy = { target: t.name, kind: 'custom', label: 'allow_all', hash: '' };
        hook = recorded(opts.hookFor(t), info);
        running.set(t.name, () => info);
      } else if (t.policy.kind === 'allow_all') {
        const info: RunningPolicy = { target: t.name, kind: 'allow_all', label: 'allow_all', hash: '' };
        hook = recorded(allowAllHook, info);
        running.set(t.name, () => info);
      } else if (t.policy.kind === 'folder') {
        const digest = policyFolderDigest(t.policy.path);
        const info: RunningPolicy = { target: t.name, kind: 'folder', label: 'folder', hash: digest };
        const policy = loadPolicy(t.policy.path);
        compiled.set(t.name, policy);
        const p = await createPolicyHook(t, policy, {
          ...dialectOption(t),
          version: { label: info.label, hash: digest },
          approvals: await approvalsFor(t, policy),
        });
        policyHooks.push(p);
        hook = recorded(p, info);
        running.set(t.name, () => info);
        log({
          level: 'warn',
          msg: 'UNSIGNED POLICY FOLDER IN USE: for development only; production targets run from a signed bundle',
          target: t.name,
          folder: t.policy.path,
          hash: digest,
        });
      } else {
        hook = await startBundleTarget(t, t.policy);
      }
      // The metrics wrapper is outermost: it counts every verdict as the client sees it (audit refusals too).
      hooks.set(t.name, metrics !== undefined ? meteredHook(hook, metrics) : hook);
    }
  } catch (e) {
    for (const p of policyHooks) await p.close();
    for (const b of bundles.values()) await b.catalog.close();
    for (const a of approvalServices.values()) await a.close();
    await witnesses?.close();
    await audit?.close();
    throw e;
  }

  /** Verifies, builds, persists, records, swaps. Throws BundleError when refused (after recording it). */
  const activate = async (b: BundleTarget, path: string, trigger: string): Promise<ActivationResult> => {
    const t = b.target;
    const previous = { version: b.current.version, hash: b.current.hash };
    let v: VerifiedBundle;
    let next: PolicyHook;
    let root: RootDocument;
    try {
      // The pinned root file may hold a rotation of the running root (k old and k new signatures): that is how a
      // running gateway moves past an expiring root without a restart.
      root = verifyRoot(parseEnvelope(readFileSync(b.files.root)), b.root, now());
      const rotated = root.hash !== b.root.hash;
      const envelope = readBundleFile(path);
      v = verifyForTarget(envelope, root, b.current, now());
      if (v.payload.version === previous.version && v.hash === previous.hash && !rotated) {
        return { target: t.name, status: 'unchanged', version: previous.version, hash: previous.hash };
      }
      const info = runningFromBundle(t.name, v, now(), root);
      // The new generation is complete before anything is persisted or swapped.
      const approvals = approvalServices.get(t.name);
      next = await createPolicyHook(t, v.policy, {
        ...dialectOption(t),
        catalog: b.catalog,
        version: { label: info.label, hash: info.hash },
        ...(approvals !== undefined ? { approvals } : {}),
      });
      const activated: ActivatedBundle = {
        origin: v.payload.origin,
        version: v.payload.version,
        hash: v.hash,
      };
      try {
        // A restart must read what runs: the configured path holds the active bundle, the state file its identity.
        if (resolve(path) !== resolve(b.files.path)) installBundleFile(b.files.path, envelope);
        writeActivationState(b.files.stateFile, activated);
        await recordConfig('config.bundle-activated', {
          target: t.name,
          trigger,
          path,
          runningVersion: previous.version,
          runningHash: previous.hash,
          ...bundleData(v),
          rootVersion: root.version,
          ...(rotated ? { rootRotatedFrom: b.root.version } : {}),
        });
      } catch (e) {
        throw new BundleError(
          'not-activated',
          `the bundle was verified but could not be put in force: ${e instanceof Error ? e.message : String(e)}`,
          { cause: e },
        );
      }
      // INVARIANT: from here to the swap there is no await: the new hook takes over the sessions' prepared
      // statements and becomes current in one synchronous step.
      const gen = generation(t, v, root, next);
      next.inheritSessions(b.currentPolicyHook);
      b.hook.swap({ hook: recorded(gen.guard, info), info });
      approvalServices.get(t.name)?.setPolicy(v.policy);
      disarm(b.gen);
      b.gen = gen;
      b.root = root;
      b.currentPolicyHook = next;
      b.current = activated;
      armExpiry(t, v, gen);
      compiled.set(t.name, v.policy);
      history.push({ target: t.name, verified: v, activatedAt: now() });
    } catch (e) {
      const reason = refusalReason(e);
      const message = e instanceof Error ? e.message : String(e);
      await recordRefusal({
        target: t.name,
        trigger,
        path,
        reason,
        message,
        runningVersion: previous.version,
        runningHash: previous.hash,
      });
      log({ level: 'warn', msg: 'bundle refused', target: t.name, trigger, path, reason, message });
      throw isBundleError(e) ? e : new BundleError('not-activated', message, { cause: e });
    }
    log({
      level: 'info',
      msg: 'bundle activated',
      target: t.name,
      trigger,
      version: v.payload.version,
      hash: v.hash,
      previousVersion: previous.version,
    });
    return { target: t.name, status: 'activated', version: v.payload.version, hash: v.hash, previous };
  };

  /** Runs one activation of a target after the ones already queued. */
  const enqueue = (b: BundleTarget, path: string, trigger: string): Promise<ActivationResult> => {
    const run = b.queue.then(() => activate(b, path, trigger));
    b.queue = run.catch(() => undefined);
    return run;
  };

  // One throttle for both front ends: failures over either protocol slow down both.
  const throttle = opts.authThrottle ?? new AuthThrottle();
  const pg = await listenPg(config.listen.host, config.listen.port, config.limits.maxConnections, {
    config,
    throttle,
    cancels: new CancelRegistry(),
    hookFor: (t) => {
      const h = hooks.get(t.name);
      if (!h) throw new WardenError('CONFIG_INVALID', `no hook for target ${t.name}`);
      return h;
    },
    // The settings of the bundle in force when asked: a new session reads them once as it connects.
    settingsFor: (t) => bundles.get(t.name)?.gen.session,
    events: combineEvents(
      recorder?.sessionEvents(),
      metrics !== undefined ? sessionMetricsEvents(metrics) : undefined,
      opts.events,
    ),
    fakeSaltKey: fakeSaltKey(config.stateDir),
    ...(tlsContext ? { tlsContext } : {}),
  });
  let mysql: MysqlListener | undefined;
  if (config.mysqlListen !== undefined) {
    try {
      mysql = await listenMysql(
        config.mysqlListen.host,
        config.mysqlListen.port,
        config.limits.maxConnections,
        {
          config,
          throttle,
          hookFor: (t) => {
            const h = hooks.get(t.name);
            if (!h) throw new WardenError('CONFIG_INVALID', `no hook for target ${t.name}`);
            return h;
          },
          events: combineEvents(
            recorder?.sessionEvents(),
            metrics !== undefined ? sessionMetricsEvents(metrics) : undefined,
            opts.events,
          ),
          // Same bundle settings as the PostgreSQL front end: read at connect and at each idle wait.
          settingsFor: (t) => bundles.get(t.name)?.gen.session,
          fakeSaltKey: fakeSaltKey(config.stateDir),
          rsaKeys: loadOrCreateRsaKeys(config.stateDir),
          fastAuth: new FastAuthCache(),
          ...(tlsContext ? { tlsContext } : {}),
        },
      );
    } catch (e) {
      await pg.close(0);
      throw e;
    }
  }
  let adminApi: AdminApi | undefined;
  const gateway: Gateway = {
    pg,
    ...(mysql ? { mysql } : {}),
    ...(audit ? { audit } : {}),
    witnessStatus: () => witnesses?.status() ?? [],
    ...(metrics ? { metrics } : {}),
    policies: () => [...running.values()].map((f) => f()),
    bundleHistory: () => [...history],
    policyOf: (target) => compiled.get(target),
    activateBundle(path, o = {}) {
      let b: BundleTarget | undefined;
      if (o.target !== undefined) b = bundles.get(o.target);
      else if (bundles.size === 1) b = [...bundles.values()][0];
      if (b === undefined) {
        const why =
          o.target !== undefined
            ? `target "${o.target}" does not run from a bundle`
            : bundles.size === 0
              ? 'no target runs from a bundle'
              : 'several targets run from bundles: name the target';
        return Promise.reject(new WardenError('CONFIG_INVALID', why));
      }
      return enqueue(b, path, o.trigger ?? 'activate');
    },
    async reloadBundles() {
      const out: ReloadResult[] = [];
      for (const b of bundles.values()) {
        try {
          out.push({ ok: true, ...(await enqueue(b, b.files.path, 'reload')) });
        } catch (e) {
          out.push({
            ok: false,
            target: b.target.name,
            reason: refusalReason(e),
            message: e instanceof Error ? e.message : String(e),
          });
        }
      }
      return out;
    },
    async close(drainMs?: number) {
      await adminApi?.close();
      // Both front ends drain at once, within one drain time.
      await Promise.all([
        pg.close(drainMs ?? config.limits.drainTimeoutMs),
        mysql?.close(drainMs ?? config.limits.drainTimeoutMs),
      ]);
      for (const b of bundles.values()) await b.queue;
      for (const b of bundles.values()) disarm(b.gen);
      for (const p of policyHooks) await p.close();
      for (const b of bundles.values()) await b.catalog.close();
      for (const a of approvalServices.values()) await a.close();
      if (recorder && audit) {
        await recorder.flush();
        await audit.checkpoint();
        await witnesses?.close();
        await audit.close();
      }
    },
  };
  if (config.adminApi === undefined || metrics === undefined) return gateway;
  const a = config.adminApi;
  try {
    adminApi = await startAdminApi({
      host: a.host,
      port: a.port,
      tokens: a.tokens,
      ...(a.oidc !== undefined ? { oidc: a.oidc } : {}),
      ...(a.tls !== undefined ? { tls: a.tls } : {}),
      providers: gatewayProviders({
        gateway,
        targets: [...config.targets.values()],
        ...(config.audit !== undefined ? { audit: config.audit } : {}),
        approvals: approvalServices,
        stateDir: config.stateDir,
      }),
      metrics,
      log: (r) => log({ level: r.status >= 500 ? 'error' : 'info', ...r }),
    });
  } catch (e) {
    await gateway.close(0);
    throw e;
  }
  log({
    level: 'info',
    msg: 'admin API listening',
    host: a.host,
    port: adminApi.port,
    tls: a.tls !== undefined,
  });
  const apiPort = adminApi.port;
  return { ...gateway, adminApi: { port: apiPort } };
}

/**
 * For `warden serve`: SIGHUP re-reads every bundle target's configured bundle file (`gateway.reloadBundles()`),
 * and `<stateDir>/warden.pid` names this process for `warden bundle activate`. Returns a function that undoes both.
 */
export function reloadOnSighup(
  gateway: Gateway,
  stateDir: string,
  log: (line: GatewayLogLine) => void = stderrLog,
): () => void {
  const pidFile = join(stateDir, 'warden.pid');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o644 });
  const onHup = (): void => {
    void gateway.reloadBundles().then((results) => {
      for (const r of results) {
        log(
          r.ok
            ? { level: 'info', msg: `bundle ${r.status}`, target: r.target, version: r.version, hash: r.hash }
            : {
                level: 'warn',
                msg: 'bundle refused',
                target: r.target,
                reason: r.reason,
                message: r.message,
              },
        );
      }
    });
  };
  process.on('SIGHUP', onHup);
  return () => {
    process.off('SIGHUP', onHup);
    rmSync(pidFile, { force: true });
  };
}

/**
 * The identity of an unsigned policy folder: the SHA-256 of its YAML files (names and contents, in name order).
 */
function policyFolderDigest(folder: string): string {
  const h = createHash('sha256');
  for (const name of readdirSync(folder)
    .filter((n) => /\.ya?ml$/.test(n) && !n.endsWith('.tests.yaml'))
    .sort()) {
    h.update(name)
      .update('\0')
      .update(readFileSync(join(folder, name)))
      .update('\0');
  }
  return `sha256:${h.digest('hex')}`;
}

/** The SQL dialect of a target's policy hook: MySQL/MariaDB targets get the MySQL one, PostgreSQL the built-in one. */
function dialectOf(t: TargetConfig): SqlDialect | undefined {
  return t.engine === 'mysql' ? mysqlDialect(t) : undefined;
}

function dialectOption(t: TargetConfig): { dialect?: SqlDialect } {
  const d = dialectOf(t);
  return d === undefined ? {} : { dialect: d };
}
