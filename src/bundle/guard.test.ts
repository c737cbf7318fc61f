// Tests for the bundle guard around the real policy hook (demo policy): fail closed from the expiry instant (bundle or root), settings per statement, the pinned statement_timeout.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatementRequest, StatementVerdict } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicy } from '../policy/index.js';
import { initSqlAnalyser } from '../sql/analyze.js';
import { CatalogCache } from '../enforce/catalog-cache.js';
import { createPolicyHook } from '../enforce/policy-hook.js';
import type { PolicyHook } from '../enforce/policy-hook.js';
import { BundleGuard, effectiveExpiry } from './guard.js';
import { SettingsEnforcer } from './settings.js';
import type { TargetSettings } from './settings.js';

const DEMO_DIR = new URL('../../demo/policy', import.meta.url).pathname;
const TARGET: TargetConfig = {
  name: 'demo',
  host: '127.0.0.1',
  port: 1,
  database: 'postgres',
  environment: 'demo',
  tls: { mode: 'disable' },
  searchPath: ['public'],
  logins: new Map([['app', { user: 'app' }]]),
  policy: { kind: 'folder', path: DEMO_DIR },
};
const COLUMNS: Record<string, string[]> = {
  'public.customers': ['id', 'name', 'email', 'ssn', 'tenant_id'],
  'public.orders': ['id', 'customer_id', 'amount', 'created_at'],
};

let seq = 0;
function request(sql: string, o: { tls?: boolean; from?: string } = {}): StatementRequest {
  const at = new Date();
  return {
    session: {
      sessionId: `g${++seq}`,
      protocol: 'postgres',
      principal: { name: 'alice', kind: 'human', groups: [], attributes: {} },
      target: 'demo',
      environment: 'demo',
      database: 'postgres',
      sourceAddress: o.from ?? '127.0.0.1',
      tls: o.tls ?? false,
      applicationName: 'test',
      startedAt: at,
    },
    sql,
    path: 'simple',
    receivedAt: at,
    notice: () => undefined,
    signal: new AbortController().signal,
  };
}

let policyHook: PolicyHook;
before(async () => {
  await initSqlAnalyser();
  const catalog = new CatalogCache('demo', (s, t) => Promise.resolve(COLUMNS[`${s}.${t}`] ?? []));
  policyHook = await createPolicyHook(TARGET, loadPolicy(DEMO_DIR), { catalog });
});

function guard(o: {
  settings?: TargetSettings;
  expires?: Date;
  rootExpires?: Date;
  clock: { t: number };
  onExpired?: () => void;
}): BundleGuard {
  return new BundleGuard(policyHook, {
    label: 'bundle version 7 (abcdef012345)',
    bundleExpires: (o.expires ?? new Date(o.clock.t + 60_000)).toISOString(),
    ...(o.rootExpires !== undefined ? { rootExpires: o.rootExpires.toISOString() } : {}),
    settings: new SettingsEnforcer(o.settings ?? {}, 'bundle version 7 (abcdef012345)'),
    now: () => new Date(o.clock.t),
    ...(o.onExpired ? { onExpired: o.onExpired } : {}),
  });
}

const check = async (g: BundleGuard, r: StatementRequest): Promise<StatementVerdict> => g.check(r);

describe('BundleGuard expiry', () => {
  it('lets statements through before the expiry and refuses every one (WA010) from the expiry instant', async () => {
    const clock = { t: Date.parse('2030-01-01T00:00:00.000Z') };
    let reports = 0;
    const g = guard({ clock, expires: new Date(clock.t + 1000), onExpired: () => reports++ });
    assert.equal((await check(g, request('SELECT id FROM public.orders'))).action, 'allow');
    clock.t += 999;
    assert.equal((await check(g, request('SELECT 1'))).action, 'allow');
    clock.t += 1;
    for (const sql of ['SELECT 1', 'SELECT id FROM public.orders', 'SHOW warden.policy_version']) {
      const v = await check(g, request(sql));
      assert.equal(v.action, 'deny');
      if (v.action !== 'deny') continue;
      assert.equal(v.sqlstate, 'WA010');
      assert.match(v.message, /bundle-expired/);
      assert.match(v.message, /bundle version 7 \(abcdef012345\) expired at 2030-01-01T00:00:01\.000Z/);
      assert.match(v.message, /a new signed bundle must be activated/);
    }
    // Binds of statements prepared before the expiry are refused too.
    const b = await g.bind({
      session: request('').session,
      statementName: 's',
      portal: '',
      paramsHash: '0'.repeat(64),
      paramCount: 0,
    });
    assert.equal(b?.action, 'deny');
    assert.equal(reports, 1, 'the expiry is reported once');
    g.reportExpired();
    assert.equal(reports, 1);
  });

  it('an earlier root expiry wins and names the root', async () => {
    const clock = { t: Date.parse('2030-01-01T00:00:00.000Z') };
    const g = guard({ clock, expires: new Date(clock.t + 10_000), rootExpires: new Date(clock.t + 5000) });
    assert.equal(g.expiredBy, 'root');
    assert.equal(g.expiresAt.getTime(), clock.t + 5000);
    clock.t += 5000;
    const v = await check(g, request('SELECT 1'));
    assert.equal(v.action === 'deny' && v.sqlstate, 'WA010');
    assert.match(
      v.action === 'deny' ? v.message : '',
      /denied by root-expired: the trust root of bundle version 7/,
    );
    assert.deepEqual(effectiveExpiry('2030-01-01T00:00:00.000Z'), {
      at: new Date('2030-01-01T00:00:00.000Z'),
      by: 'bundle',
    });
  });
});

describe('BundleGuard settings', () => {
  const clock = { t: Date.now() };

  it('pins statement_timeout: SET, SET LOCAL, RESET and set_config of it are refused, other settings pass', async () => {
    const g = guard({ clock, settings: { statementTimeoutMs: 5000 } });
    for (const sql of [
      'SET statement_timeout = 0',
      "SET LOCAL statement_timeout TO '1h'",
      'RESET statement_timeout',
    ]) {
      const v = await check(g, request(sql));
      assert.equal(v.action, 'deny', sql);
      assert.equal(v.action === 'deny' && v.sqlstate, '42501');
      assert.match(
        v.action === 'deny' ? v.message : '',
        /bundle-settings:statement_timeout_ms: .*pinned to 5000 ms/,
      );
    }
    // set_config is refused whatever the bundle says (the demo policy grants no settings function).
    assert.equal(
      (await check(g, request("SELECT set_config('statement_timeout', '0', false)"))).action,
      'deny',
    );
    assert.equal((await check(g, request('SET lock_timeout = 1000'))).action, 'allow');
    // Without the pin, the policy's own answer stands (statement_timeout is a harmless setting).
    const free = guard({ clock, settings: {} });
    assert.equal((await check(free, request('SET statement_timeout = 0'))).action, 'allow');
  });

  it('require_tls and allowed_source_cidrs refuse statements of sessions they would not admit', async () => {
    const g = guard({ clock, settings: { requireTls: true, allowedSourceCidrs: ['10.0.0.0/8'] } });
    const plain = await check(g, request('SELECT 1', { tls: false, from: '10.1.1.1' }));
    assert.match(plain.action === 'deny' ? plain.message : '', /denied by bundle-settings:require_tls/);
    const outside = await check(g, request('SELECT 1', { tls: true, from: '192.0.2.1' }));
    assert.match(
      outside.action === 'deny' ? outside.message : '',
      /denied by bundle-settings:allowed_source_cidrs/,
    );
    assert.equal((await check(g, request('SELECT 1', { tls: true, from: '10.1.1.1' }))).action, 'allow');
  });
});
