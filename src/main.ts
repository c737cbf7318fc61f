// The composition root: wires configuration, identity, policy hooks and listeners into a running gateway.

import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type { SessionEvents, StatementHook } from './core/context.js';
import { WardenError } from './core/errors.js';
import type { GatewayConfig, TargetConfig } from './config/gateway-config.js';
import { AuthThrottle } from './identity/throttle.js';
import { CancelRegistry } from './session/cancel-registry.js';
import { listenPg, type PgListener } from './listener/pg-listener.js';

/** A hook that lets every statement through. Only for targets that say `policy: allow_all` (tests, bring-up). */
export const allowAllHook: StatementHook = { check: () => ({ action: 'allow' }) };

export interface GatewayOptions {
  /** Builds the statement hook of a target; defaults to the policy named in the target's configuration. */
  readonly hookFor?: (target: TargetConfig) => StatementHook;
  readonly events?: SessionEvents;
}

export interface Gateway {
  readonly pg: PgListener;
  close(drainMs?: number): Promise<void>;
}

function defaultHookFor(target: TargetConfig): StatementHook {
  if (target.policy.kind === 'allow_all') return allowAllHook;
  throw new WardenError(
    'CONFIG_INVALID',
    `target "${target.name}": policy folders are not loaded by this build`,
  );
}

/** Reads (or creates, 0600) the key that derives fake SCRAM salts, so unknown users look alike across restarts. */
function fakeSaltKey(stateDir: string): Buffer {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, 'fake-salt.key');
  if (!existsSync(file))
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

export async function startGateway(config: GatewayConfig, opts: GatewayOptions = {}): Promise<Gateway> {
  const hookFor = opts.hookFor ?? defaultHookFor;
  // No silent default: every target must resolve to a hook before the gateway accepts anyone.
  const hooks = new Map<string, StatementHook>();
  for (const t of config.targets.values()) hooks.set(t.name, hookFor(t));
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
    events: opts.events ?? {},
    fakeSaltKey: fakeSaltKey(config.stateDir),
    ...(tlsContext ? { tlsContext } : {}),
  });
  return {
    pg,
    close: (drainMs?: number) => pg.close(drainMs),
  };
}
