// End to end: a bundle's target settings take effect (statement_timeout, require_tls, allowed_source_cidrs, idle_session_timeout_ms), and a running bundle or root that expires fails closed until a fresh one is activated in the same session.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { DEMO_DATA_SQL, DEMO_SCHEMA_SQL } from '../src/demo/sample-data.js';
import {
  createRoot,
  isBundleError,
  parsePrivateKey,
  proposeBundle,
  readBundle,
  readPolicyFolder,
  serializeEnvelope,
  signEnvelope,
} from '../src/bundle/index.js';
import type { Envelope } from '../src/bundle/index.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry } from '../src/audit/entry.js';
import type { AuditEntry } from '../src/audit/entry.js';
import type { GatewayLogLine } from '../src/main.js';
import { call } from '../src/admin-api/test-support.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';

const REPO = join(import.meta.dirname, '..');
const UP_PASSWORD = 'up-secret-S4';
const PW = { alice: 'alice-pw-s1', carol: 'carol-pw-s3' } as const;
const DAY = 86_400_000;
const key = (n: string) =>
  parsePrivateKey(readFileSync(join(REPO, `test/fixtures/bundle/keys/${n}.key`), 'utf8'));
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];
const POLICY = readPolicyFolder(join(REPO, 'demo/policy'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function makeRoot(origin: string, version: number, expires?: Date): Envelope {
  return [ana, ben, cho].reduce(
    signEnvelope,
    createRoot({
      origin,
      version,
      threshold: 2,
      approvers: [ana.encoded, ben.encoded, cho.encoded],
      authors: [dev.encoded],
      ...(expires !== undefined ? { expires: expires.toISOString() } : {}),
    }),
  );
}

/** A bundle signed by the author and two approvers. */
function bundle(o: {
  origin: string;
  version: number;
  previous: string | null;
  settings?: Record<string, unknown>;
  expires?: Date;
}): Envelope {
  const created = new Date(Date.now() - 60_000);
  return [ana, ben].reduce(
    signEnvelope,
    proposeBundle({
      origin: o.origin,
      version: o.version,
      previous: o.previous,
      author: dev,
      policy: POLICY,
      settings: o.settings ?? {},
      created,
      expires: o.expires ?? new Date(Date.now() + 30 * DAY),
    }),
  );
}
const hashOf = (env: Envelope): string => readBundle(env).hash;

async function readAudit(dir: string): Promise<AuditEntry[]> {
  const snap = await LogSnapshot.open(dir);
  const out: AuditEntry[] = [];
  for (let i = 0; i < snap.size; i++) out.push(decodeEntry(await snap.read(i)));
  return out;
}
const configData = (es: AuditEntry[], kind: string) =>
  es.filter((e) => e.kind === kind).map((e) => (e as { data: Record<string, unknown> }).data);

/** Resolves with the SQLSTATE of a failing query (rejects if it succeeds). */
async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const x = e as { code?: string; message?: string };
    return { code: x.code ?? '', message: x.message ?? '' };
  }
  throw new Error('expected the statement to fail');
}

/** A client that records its asynchronous errors (a FATAL from the gateway) instead of crashing the test. */
function watch(c: pg.Client): { errors: { code?: string; message: string }[]; ended: () => boolean } {
  const errors: { code?: string; message: string }[] = [];
  let ended = false;
  c.on('error', (e: Error & { code?: string }) =>
    errors.push({ message: e.message, ...(e.code !== undefined ? { code: e.code } : {}) }),
  );
  c.on('end', () => (ended = true));
  return { errors, ended: () => ended };
}

describe('bundle settings and expiry, end to end', () => {
  let upstream: PgInstance;

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(`SET ROLE app; ${DEMO_SCHEMA_SQL} ${DEMO_DATA_SQL}`, 'appdb');
  });
  after(async () => {
    await upstream?.stop();
  });

  /** A gateway running from `root.json` / `bundle.json` in a fresh folder, with an audit log and the admin API. */
  async function gatewayIn(
    origin: string,
    root: Envelope,
    first: Envelope,
  ): Promise<{
    gw: TestGateway;
    dir: string;
    logs: GatewayLogLine[];
    token: string;
    file: (n: string, e: Envelope) => string;
  }> {
    const dir = mkdtempSync(join(tmpdir(), 'warden-bundle-settings-'));
    const file = (n: string, e: Envelope): string => {
      const p = join(dir, n);
      writeFileSync(p, serializeEnvelope(e));
      return p;
    };
    file('root.json', root);
    file('bundle.json', first);
    const tokenFile = join(dir, 'api-tokens.yaml');
    const token = addTokenToFile(tokenFile, { user: 'vic', roles: ['viewer'] }).token;
    const logs: GatewayLogLine[] = [];
    const gw = await startTestGateway({
      dir,
      audit: { dir: 'audit', origin: `${origin}/audit`, checkpoint_interval_ms: 0 },
      adminApi: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: tokenFile },
      targets: [
        {
          port: upstream.port,
          database: 'appdb',
          user: 'app',
          password: UP_PASSWORD,
          bundle: { root: 'root.json', path: 'bundle.json' },
        },
      ],
      users: (Object.keys(PW) as (keyof typeof PW)[]).map((name) => ({ name, password: PW[name] })),
      gatewayOptions: { log: (l) => logs.push(l) },
    });
    return { gw, dir, logs, token, file };
  }

  describe('settings of the running bundle', () => {
    const ORIGIN = 'warden.test/e2e-settings';
    const B1 = bundle({
      origin: ORIGIN,
      version: 1,
      previous: null,
      settings: { statement_timeout_ms: 300 },
      expires: new Date(Date.now() + 3 * DAY),
    });
    let g: Awaited<ReturnType<typeof gatewayIn>>;
    let current = { version: 1, hash: hashOf(B1) };
    const activate = async (settings: Record<string, unknown>, expires?: Date): Promise<void> => {
      const env = bundle({
        origin: ORIGIN,
        version: current.version + 1,
        previous: current.hash,
        settings,
        ...(expires !== undefined ? { expires } : {}),
      });
      const r = await g.gw.gateway.activateBundle(g.file(`v${current.version + 1}.json`, env));
      assert.equal(r.status, 'activated');
      current = { version: r.version, hash: r.hash };
    };

    before(async () => {
      g = await gatewayIn(ORIGIN, makeRoot(ORIGIN, 1), B1);
    });
    after(async () => {
      await g?.gw.stop();
      if (g?.dir) rmSync(g.dir, { recursive: true, force: true });
    });

    it('warns from 7 days before expiry (log, API, metrics) and shows and records the settings', async () => {
      const warn = g.logs.find((l) => l.msg.startsWith('bundle expires soon'));
      assert.ok(warn, 'an expiry warning was logged at start');
      assert.equal(warn.level, 'warn');
      const [p] = g.gw.gateway.policies();
      assert.equal(p?.bundle?.state, 'expiring');
      assert.deepEqual(p?.bundle?.settings, { statement_timeout_ms: 300 });
      const port = g.gw.gateway.adminApi?.port ?? 0;
      const api = await call(port, 'GET', '/api/policy', { token: g.token });
      assert.equal(api.status, 200, api.text);
      const running = (api.json as { running: Record<string, unknown> }).running;
      assert.equal(running['expiryState'], 'expiring');
      assert.deepEqual(running['settings'], { statement_timeout_ms: 300 });
      const metrics = (await call(port, 'GET', '/metrics', { token: g.token })).text;
      assert.match(metrics, /^warden_bundle_expiry_state\{target="main"\} 1$/m);
      const left = /^warden_bundle_expiry_seconds\{target="main"\} (\S+)$/m.exec(metrics);
      assert.ok(left !== null && Number(left[1]) > 2.9 * 86_400 && Number(left[1]) <= 3 * 86_400);
      const ready = await call(port, 'GET', '/readyz');
      assert.equal(ready.status, 200, ready.text);
      assert.equal((ready.json as { checks: Record<string, string> }).checks['bundle:main'], 'ok');
      const activated = configData(await readAudit(join(g.dir, 'audit')), 'config.bundle-activated');
      assert.deepEqual(activated[0]?.['settings'], { statement_timeout_ms: 300 });
    });

    it('statement_timeout_ms: applied upstream at session start, and a client cannot change it', async () => {
      const c = await g.gw.connect('alice', PW.alice);
      try {
        const shown = await c.query<{ statement_timeout: string }>('SHOW statement_timeout');
        assert.equal(shown.rows[0]?.statement_timeout, '300ms');
        const slow = await failure(c.query('SELECT count(*) FROM generate_series(1, 2000000000)'));
        assert.equal(slow.code, '57014');
        assert.match(slow.message, /statement timeout/);
        for (const sql of [
          'SET statement_timeout = 0',
          'SET LOCAL statement_timeout = 0',
          'RESET statement_timeout',
        ]) {
          const f = await failure(c.query(sql));
          assert.equal(f.code, '42501', sql);
          assert.match(f.message, /bundle-settings:statement_timeout_ms/);
        }
        const again = await c.query<{ statement_timeout: string }>('SHOW statement_timeout');
        assert.equal(again.rows[0]?.statement_timeout, '300ms');
        assert.equal((await c.query('SELECT count(*) FROM public.orders')).rowCount, 1);
      } finally {
        await c.end();
      }
    });

    it('require_tls: after activation an open plaintext session is refused per statement, a new one at connect', async () => {
      const c = await g.gw.connect('alice', PW.alice);
      const w = watch(c);
      try {
        assert.equal((await c.query('SELECT 1 AS one')).rows[0]?.one, 1);
        await activate({ require_tls: true });
        const f = await failure(c.query('SELECT 1'));
        assert.equal(f.code, '42501');
        assert.match(f.message, /denied by bundle-settings:require_tls/);
        assert.equal(w.ended(), false, 'the open session was not dropped');
      } finally {
        await c.end();
      }
      const refused = await failure(g.gw.connect('alice', PW.alice));
      assert.equal(refused.code, '28000');
      assert.match(refused.message, /requires TLS \(require_tls of bundle version 2/);
    });

    it('allowed_source_cidrs: a source outside every range is refused at connect, inside is admitted', async () => {
      await activate({ allowed_source_cidrs: ['10.0.0.0/8'] });
      const refused = await failure(g.gw.connect('carol', PW.carol));
      assert.equal(refused.code, '28000');
      assert.match(refused.message, /not allowed on this target \(allowed_source_cidrs of bundle version 3/);
      await activate({ allowed_source_cidrs: ['127.0.0.0/8', '::1/128'] });
      const c = await g.gw.connect('carol', PW.carol);
      assert.equal((await c.query('SELECT 1 AS one')).rows[0]?.one, 1);
      await c.end();
    });

    it('idle_session_timeout_ms: an idle session is closed with FATAL 57P05, a busy one stays', async () => {
      await activate({ idle_session_timeout_ms: 2000 });
      const idle = await g.gw.connect('carol', PW.carol);
      const wi = watch(idle);
      const busy = await g.gw.connect('carol', PW.carol);
      const wb = watch(busy);
      try {
        await idle.query('SELECT 1');
        const until = Date.now() + 4500;
        while (Date.now() < until) {
          await busy.query('SELECT 1');
          await sleep(300);
        }
        assert.equal(wi.ended(), true, 'the idle session was closed');
        assert.equal(wi.errors[0]?.code, '57P05');
        assert.match(wi.errors[0]?.message ?? '', /idle-session timeout/);
        assert.equal(wb.ended(), false);
        assert.equal((await busy.query('SELECT 2 AS two')).rows[0]?.two, 2);
      } finally {
        await busy.end();
        await idle.end().catch(() => undefined);
      }
    });

    it('a running bundle that expires fails closed (WA010, audited once, not ready) until a fresh one is activated in the same session', async () => {
      const expires = new Date(Date.now() + 6000);
      await activate({}, expires);
      const port = g.gw.gateway.adminApi?.port ?? 0;
      const c = await g.gw.connect('alice', PW.alice);
      const w = watch(c);
      try {
        assert.equal((await c.query('SELECT count(*) AS n FROM public.orders')).rows.length, 1);
        assert.equal((await call(port, 'GET', '/readyz')).status, 200);
        await sleep(Math.max(0, expires.getTime() - Date.now()) + 300);
        for (const sql of ['SELECT count(*) FROM public.orders', 'SELECT 1', 'SHOW warden.policy_version']) {
          const f = await failure(c.query(sql));
          assert.equal(f.code, 'WA010', sql);
          assert.match(f.message, /denied by bundle-expired: bundle version 6 \(/);
          assert.match(f.message, new RegExp(`expired at ${expires.toISOString().replace(/\./g, '\\.')}`));
          assert.match(f.message, /a new signed bundle must be activated/);
        }
        const extended = await failure(c.query({ text: 'SELECT $1::int AS x', values: [1] }));
        assert.equal(extended.code, 'WA010');
        const ready = await call(port, 'GET', '/readyz');
        assert.equal(ready.status, 503);
        assert.equal((ready.json as { checks: Record<string, string> }).checks['bundle:main'], 'failed');
        const api = await call(port, 'GET', '/api/policy', { token: g.token });
        assert.equal((api.json as { running: Record<string, unknown> }).running['expiryState'], 'expired');
        const metrics = (await call(port, 'GET', '/metrics', { token: g.token })).text;
        assert.match(metrics, /^warden_bundle_expiry_state\{target="main"\} 2$/m);
        assert.ok(g.logs.some((l) => l.msg.startsWith('bundle expired') && l['version'] === 6));

        // An expired bundle is not activated again, and nothing older either.
        await assert.rejects(g.gw.gateway.activateBundle(join(g.dir, 'bundle.json')), (e: unknown) =>
          isBundleError(e, 'expired'),
        );
        await activate({});
        assert.equal(w.ended(), false, 'the session stayed open across expiry and activation');
        assert.equal((await c.query('SELECT count(*) AS n FROM public.orders')).rows.length, 1);
        assert.equal((await call(port, 'GET', '/readyz')).status, 200);

        await sleep(300);
        const audit = await readAudit(join(g.dir, 'audit'));
        const expired = configData(audit, 'config.bundle-expired');
        assert.equal(expired.length, 1, 'the expiry is recorded once');
        assert.equal(expired[0]?.['version'], 6);
        assert.equal(expired[0]?.['expiredBy'], 'bundle');
        const refused = audit.filter(
          (e) =>
            e.kind === 'statement' &&
            JSON.stringify((e as unknown as { decision?: unknown }).decision ?? '').includes(
              'bundle-expired',
            ),
        );
        assert.ok(refused.length >= 3, 'each refused statement is a statement entry naming the rule');
      } finally {
        await c.end();
      }
    });
  });

  describe('a trust root that expires while running', () => {
    const ORIGIN = 'warden.test/e2e-root-expiry';
    let g: Awaited<ReturnType<typeof gatewayIn>>;
    let rootExpires: Date;
    const C1 = bundle({ origin: ORIGIN, version: 1, previous: null });

    before(async () => {
      rootExpires = new Date(Date.now() + 7000);
      g = await gatewayIn(ORIGIN, makeRoot(ORIGIN, 1, rootExpires), C1);
    });
    after(async () => {
      await g?.gw.stop();
      if (g?.dir) rmSync(g.dir, { recursive: true, force: true });
    });

    it('refuses every statement from the root expiry; a rotated root and a new bundle restore service without restart', async () => {
      const c = await g.gw.connect('alice', PW.alice);
      const w = watch(c);
      try {
        assert.equal((await c.query('SELECT 1 AS one')).rows[0]?.one, 1);
        assert.equal(g.gw.gateway.policies()[0]?.bundle?.expiresBy, 'root');
        await sleep(Math.max(0, rootExpires.getTime() - Date.now()) + 300);
        const f = await failure(c.query('SELECT 1'));
        assert.equal(f.code, 'WA010');
        assert.match(f.message, /denied by root-expired: the trust root of bundle version 1/);
        assert.match(f.message, /pin a rotated root/);

        // A new bundle under the expired root is refused.
        const C2 = bundle({ origin: ORIGIN, version: 2, previous: hashOf(C1) });
        await assert.rejects(g.gw.gateway.activateBundle(g.file('c2.json', C2)), (e: unknown) =>
          isBundleError(e, 'expired'),
        );
        // A rotation (version 2, k old and k new signatures) pinned in place, then the bundle: service is back.
        g.file('root.json', makeRoot(ORIGIN, 2, new Date(Date.now() + 365 * DAY)));
        const r = await g.gw.gateway.activateBundle(join(g.dir, 'c2.json'));
        assert.equal(r.version, 2);
        assert.equal((await c.query('SELECT 1 AS one')).rows[0]?.one, 1);
        assert.equal(w.ended(), false);
        await sleep(300);
        const audit = await readAudit(join(g.dir, 'audit'));
        const expired = configData(audit, 'config.bundle-expired');
        assert.equal(expired.length, 1);
        assert.equal(expired[0]?.['expiredBy'], 'root');
        const activated = configData(audit, 'config.bundle-activated');
        assert.equal(activated.at(-1)?.['rootRotatedFrom'], 1);
        assert.equal(activated.at(-1)?.['rootVersion'], 2);
      } finally {
        await c.end();
      }
    });
  });
});
