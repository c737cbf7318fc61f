// The composition root: wires configuration, identity, policy hooks, the audit log and listeners into a running gateway.

import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type { SessionEvents, StatementHook } from './core/context.js';
import { WardenError } from './core/errors.js';
import type { GatewayConfig, TargetConfig } from './config/gateway-config.js';
import { AuthThrottle } from './identity/throttle.js';
import { CancelRegistry } from './session/cancel-registry.js';
import { listenPg, type PgListener } from './listener/pg-listener.js';
import { createPolicyHookFromFolder, type PolicyHook } from './enforce/policy-hook.js';
import { AuditLog } from './audit/log.js';
import { AuditRecorder } from './audit/recorder.js';

/** A hook that lets every statement through. Only for targets that say `policy: allow_all` (tests, bring-up). */
export const allowAllHook: StatementHook = { check: () => ({ action: 'allow' }) };

export interface GatewayOptions {
  /** Builds the statement hook of a target; defaults to the policy named in the target's configuration. */
  readonly hookFor?: (target: TargetConfig) => StatementHook;
  /** Extra session event sinks (the audit recorder's are added when the configuration has an audit log). */
  readonly events?: SessionEvents;
}

export interface Gateway {
  readonly pg: PgListener;
  /** The audit log, when the configuration has one. */
  readonly audit?: AuditLog;
  /** Stops accepting, drains sessions (up to `drainMs`), then flushes and checkpoints the audit log. */
  close(drainMs?: number): Promise<void>;
}

/** Reads (or creates, 0600) the key that derives fake SCRAM salts, so unknown users look alike across restarts. */
function fakeSaltKey(stateDir: string): Buffer {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, 'fake-salt.key');
  if (!existsSync(file))
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
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

export async function startGateway(config: GatewayConfig, opts: GatewayOptions = {}): Promise<Gateway> {
  // No silent default: every target resolves to a hook before the gateway accepts anyone.
  const policyHooks: PolicyHook[] = [];
  const hooks = new Map<string, StatementHook>();
  let audit: AuditLog | undefined;
  let recorder: AuditRecorder | undefined;
  try {
    for (const t of config.targets.values()) {
      let hook: StatementHook;
      if (opts.hookFor) hook = opts.hookFor(t);
      else if (t.policy.kind === 'allow_all') hook = allowAllHook;
      else {
        const p = await createPolicyHookFromFolder(t);
        policyHooks.push(p);
        hook = p;
      }
      hooks.set(t.name, hook);
    }
    if (config.audit) {
      const a = config.audit;
      audit = await AuditLog.openDir(a.dir, {
        origin: a.origin,
        checkpointIntervalMs: a.checkpointIntervalMs,
        ...(a.keyFile !== undefined ? { keyFile: a.keyFile } : {}),
      });
      recorder = new AuditRecorder(audit);
      // INVARIANT: with an audit log configured, every hook is wrapped: no statement is forwarded unrecorded.
      for (const [name, hook] of hooks) {
        const t = config.targets.get(name) as TargetConfig;
        const version =
          t.policy.kind === 'folder' && !opts.hookFor ? policyFolderDigest(t.policy.path) : 'allow_all';
        hooks.set(name, recorder.wrapHook(hook, { policyVersion: () => version }));
      }
    }
  } catch (e) {
    for (const p of policyHooks) await p.close();
    await audit?.close();
    throw e;
  }
  const tlsContext = config.tls
    ? tls.createSecureContext({
        cert: readFileSync(config.tls.certFile),
        key: readFileSync(config.tls.keyFile),
        minVersion: 'TLSv1.2',
      })
    : undefined;
  const pg = await listenPg(config.listen.host, config.listen.port, config.limits.maxConnections, {
    config,
    throttle: new AuthThrottle(),
    cancels: new CancelRegistry(),
    hookFor: (t) => {
      const h = hooks.get(t.name);
      if (!h) throw new WardenError('CONFIG_INVALID', `no hook for target ${t.name}`);
      return h;
    },
    events: combineEvents(recorder?.sessionEvents(), opts.events),
    fakeSaltKey: fakeSaltKey(config.stateDir),
    ...(tlsContext ? { tlsContext } : {}),
  });
  return {
    pg,
    ...(audit ? { audit } : {}),
    async close(drainMs?: number) {
      await pg.close(drainMs);
      for (const p of policyHooks) await p.close();
      if (recorder && audit) {
        await recorder.flush();
        await audit.checkpoint();
        await audit.close();
      }
    },
  };
}

/**
 * The policy version recorded with each statement until signed bundles carry versions: the SHA-256 of the
 * policy folder's YAML files (names and contents, in name order).
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
