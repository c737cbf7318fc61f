// End to end: a gateway that runs from signed bundles — start from a verified bundle, SHOW warden.policy_version, activation without dropping sessions, every refusal audited, rollback refused across restarts.

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
  canonicalJson,
  createRoot,
  generateKeyPair,
  isBundleError,
  parsePrivateKey,
  payloadBytes,
  proposeBundle,
  readActivationState,
  readBundle,
  readBundleFile,
  readPolicyFolder,
  serializeEnvelope,
  signEnvelope,
} from '../src/bundle/index.js';
import type { BundlePayload, BundleRefusal, Envelope } from '../src/bundle/index.js';
import { LogSnapshot } from '../src/audit/reader.js';
import { decodeEntry } from '../src/audit/entry.js';
import type { AuditEntry } from '../src/audit/entry.js';
import { reloadOnSighup, type GatewayLogLine } from '../src/main.js';
import { bundleCommands } from '../src/cli/bundle.js';

const REPO = join(import.meta.dirname, '..');
const UP_PASSWORD = 'up-secret-B5';
const PW = { alice: 'alice-pw-1', carol: 'carol-pw-3' } as const;
const ORIGIN = 'warden.test/e2e-bundles';
const DAY = 86_400_000;
const key = (n: string) =>
  parsePrivateKey(readFileSync(join(REPO, `test/fixtures/bundle/keys/${n}.key`), 'utf8'));
const [ana, ben, cho, dev] = [key('ana'), key('ben'), key('cho'), key('dev')];
const mallory = parsePrivateKey(generateKeyPair('mallory').privateKey);

/** v1: the demo policy (carol may not read customers). v2 and later: carol's role may read customers too. */
const POLICY_V1 = readPolicyFolder(join(REPO, 'demo/policy'));
const POLICY_V2 = {
  ...POLICY_V1,
  'roles.yaml': `${POLICY_V1['roles.yaml']}      - schema: public\n        table: customers\n        operations: [select]\n`,
};

const rootEnv = [ana, ben, cho].reduce(
  signEnvelope,
  createRoot({
    origin: ORIGIN,
    version: 1,
    threshold: 2,
    approvers: [ana.encoded, ben.encoded, cho.encoded],
    authors: [dev.encoded],
  }),
);

function propose(o: {
  version: number;
  previous: string | null;
  policy?: Record<string, string>;
  created?: Date;
  expires?: Date;
}): Envelope {
  const created = o.created ?? new Date(Date.now() - 60_000);
  return proposeBundle({
    origin: ORIGIN,
    version: o.version,
    previous: o.previous,
    author: dev,
    policy: o.policy ?? POLICY_V2,
    created,
    expires: o.expires ?? new Date(created.getTime() + 30 * DAY),
  });
}
const approved = (env: Envelope): Envelope => [ana, ben].reduce(signEnvelope, env);
const hashOf = (env: Envelope): string => readBundle(env).hash;

const V1 = approved(propose({ version: 1, previous: null, policy: POLICY_V1 }));
const H1 = hashOf(V1);
const V2 = approved(propose({ version: 2, previous: H1 }));
const H2 = hashOf(V2);
const V3 = approved(
  propose({ version: 3, previous: H2, policy: { ...POLICY_V2, 'extra.yaml': 'version: 1\n' } }),
);
const H3 = hashOf(V3);

async function readAudit(dir: string): Promise<AuditEntry[]> {
  const snap = await LogSnapshot.open(dir);
  const out: AuditEntry[] = [];
  for (let i = 0; i < snap.size; i++) out.push(decodeEntry(await snap.read(i)));
  return out;
}
const configEntries = (es: AuditEntry[], kind: string) =>
  es.filter((e) => e.kind === kind).map((e) => (e as { data: Record<string, unknown> }).data);

async function shown(c: pg.Client): Promise<string> {
  const r = await c.query<{ 'warden.policy_version': string }>('SHOW warden.policy_version');
  return r.rows[0]?.['warden.policy_version'] ?? '';
}

describe('gateway from signed bundles', () => {
  let upstream: PgInstance;
  let gw: TestGateway | undefined;
  let dir: string;
  const logs: GatewayLogLine[] = [];
  const auditDir = (): string => join(dir, 'audit');
  const file = (name: string, env: Envelope): string => {
    const p = join(dir, name);
    writeFileSync(p, serializeEnvelope(env));
    return p;
  };
  const start = () =>
    startTestGateway({
      dir,
      audit: { dir: 'audit', origin: 'test.warden/bundle-audit', checkpoint_interval_ms: 0 },
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

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query(`SET ROLE app; ${DEMO_SCHEMA_SQL} ${DEMO_DATA_SQL}`, 'appdb');
    dir = mkdtempSync(join(tmpdir(), 'warden-bundle-e2e-'));
    file('root.json', rootEnv);
    file('bundle.json', V1);
    gw = await start();
  });

  after(async () => {
    await gw?.stop();
    await upstream?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('starts from the verified bundle, remembers it, and answers SHOW warden.policy_version (simple and extended)', async () => {
    const g = gw as TestGateway;
    const c = await g.connect('carol', PW.carol);
    try {
      assert.equal(await shown(c), `1 ${H1}`);
      const ext = await c.query<{ 'warden.policy_hash': string }>({
        name: 'ph',
        text: 'SHOW warden.policy_hash',
      });
      assert.equal(ext.rows[0]?.['warden.policy_hash'], H1);
    } finally {
      await c.end();
    }
    const [p] = g.gateway.policies();
    assert.equal(p?.kind, 'bundle');
    assert.equal(p?.bundle?.version, 1);
    assert.deepEqual(
      p?.bundle?.approvers.map((k) => k.split('+')[0]),
      ['test-only-ana', 'test-only-ben'],
    );
    assert.deepEqual(readActivationState(join(dir, 'bundle-main.state.json')).current, {
      version: 1,
      hash: H1,
    });
    const started = configEntries(await readAudit(auditDir()), 'config.bundle-activated');
    assert.equal(started[0]?.['trigger'], 'startup');
    assert.equal(started[0]?.['hash'], H1);
  });

  it('activates v2 while a session is open: the session survives and its next statement sees v2', async () => {
    const g = gw as TestGateway;
    const c = await g.connect('carol', PW.carol);
    let closed = false;
    c.on('end', () => (closed = true));
    try {
      await assert.rejects(c.query('SELECT name FROM public.customers ORDER BY id'), (e: unknown) => {
        assert.equal((e as { code?: string }).code, '42501');
        return true;
      });
      const r = await g.gateway.activateBundle(file('v2.json', V2));
      assert.deepEqual(r, {
        target: 'main',
        status: 'activated',
        version: 2,
        hash: H2,
        previous: { version: 1, hash: H1 },
      });
      const rows = await c.query<{ name: string }>('SELECT name FROM public.customers ORDER BY id');
      assert.ok(rows.rows.length > 0);
      assert.equal(await shown(c), `2 ${H2}`);
      assert.equal(closed, false, 'the session stayed open');
    } finally {
      await c.end();
    }
    // A restart reads what runs: the configured file now holds v2, the state names it.
    assert.equal(hashOf(readBundleFile(join(dir, 'bundle.json'))), H2);
    assert.deepEqual(readActivationState(join(dir, 'bundle-main.state.json')).current, {
      version: 2,
      hash: H2,
    });
    const es = await readAudit(auditDir());
    const act = configEntries(es, 'config.bundle-activated').at(-1);
    assert.equal(act?.['version'], 2);
    assert.equal(act?.['runningVersion'], 1);
    assert.equal(act?.['trigger'], 'activate');
    assert.equal(String(act?.['author']).split('+')[0], 'test-only-dev');
    const versions = es
      .filter((e) => e.kind === 'statement' && e.text.includes('public.customers'))
      .map((e) => (e.kind === 'statement' ? e.policyVersion : ''));
    assert.deepEqual(versions, [`1 ${H1}`, `2 ${H2}`], 'each statement records the version that decided it');
  });

  it('refuses every bad bundle at activation, keeps v2 in force, and records each refusal', async () => {
    const g = gw as TestGateway;
    const c = await g.connect('carol', PW.carol);
    const v3 = propose({ version: 3, previous: H2 });
    const goodV3 = approved(v3);
    const altered: Envelope = {
      ...goodV3,
      payload: canonicalJson({
        ...(JSON.parse(payloadBytes(goodV3).toString()) as BundlePayload),
        policy: POLICY_V1,
      }).toString('base64'),
    };
    const cases: [BundleRefusal, Envelope][] = [
      ['unsigned', { ...v3, signatures: [] }],
      ['below-threshold', signEnvelope(v3, ana)],
      ['author-only', v3],
      ['bad-signature', signEnvelope(goodV3, mallory)],
      ['payload-altered', altered],
      [
        'expired',
        approved(
          propose({
            version: 3,
            previous: H2,
            created: new Date(Date.now() - 10 * DAY),
            expires: new Date(Date.now() - DAY),
          }),
        ),
      ],
      ['rollback', V1],
      ['version-conflict', approved(propose({ version: 2, previous: H1, policy: POLICY_V1 }))],
      ['broken-link', approved(propose({ version: 3, previous: H1 }))],
    ];
    try {
      for (const [reason, env] of cases) {
        await assert.rejects(g.gateway.activateBundle(file(`bad-${reason}.json`, env)), (e: unknown) => {
          assert.ok(isBundleError(e), String(e));
          assert.equal(e.reason, reason, e.message);
          return true;
        });
        assert.equal(await shown(c), `2 ${H2}`, `after ${reason}, v2 is still in force`);
        assert.ok((await c.query('SELECT name FROM public.customers')).rows.length > 0);
      }
    } finally {
      await c.end();
    }
    assert.equal(hashOf(readBundleFile(join(dir, 'bundle.json'))), H2, 'a refused bundle is never installed');
    assert.deepEqual(readActivationState(join(dir, 'bundle-main.state.json')).current, {
      version: 2,
      hash: H2,
    });
    const refusals = configEntries(await readAudit(auditDir()), 'config.bundle-refused');
    assert.deepEqual(
      refusals.map((d) => d['reason']),
      cases.map(([r]) => r),
    );
    assert.ok(refusals.every((d) => d['runningVersion'] === 2 && d['runningHash'] === H2));
    assert.ok(logs.some((l) => l.msg === 'bundle refused' && l['reason'] === 'rollback'));
  });

  it('warden bundle activate installs the bundle in place and the SIGHUP makes the running gateway take it', async () => {
    const g = gw as TestGateway;
    const c = await g.connect('carol', PW.carol);
    // The test harness stops its PostgreSQL on SIGHUP: set its handlers aside while this test signals itself.
    const harness = process.rawListeners('SIGHUP') as ((...a: unknown[]) => void)[];
    for (const l of harness) process.off('SIGHUP', l);
    const stop = reloadOnSighup(g.gateway, dir, (l) => logs.push(l));
    try {
      const cfg = join(dir, 'warden.yaml');
      writeFileSync(
        cfg,
        `state_dir: .\nusers: []\ntargets:\n  - { name: main, host: 127.0.0.1, port: 1, database: x, logins: { app: { user: app } }, policy: { bundle: { root: root.json, path: bundle.json } } }\n`,
      );
      // A refused bundle: nothing installed, no signal needed.
      const bad = file('v3-bad.json', signEnvelope(propose({ version: 3, previous: H2 }), ana));
      const errors: string[] = [];
      const origError = console.error;
      console.error = (...a: unknown[]) => errors.push(a.join(' '));
      const origLog = console.log;
      console.log = () => undefined;
      let refusedCode: number;
      let okCode: number;
      try {
        refusedCode = await bundleCommands['activate']!.run(['--config', cfg, '--bundle', bad]);
        okCode = await bundleCommands['activate']!.run(['--config', cfg, '--bundle', file('v3.json', V3)]);
      } finally {
        console.error = origError;
        console.log = origLog;
      }
      assert.equal(refusedCode, 1);
      assert.match(errors.join('\n'), /below-threshold/);
      assert.equal(okCode, 0, errors.join('\n'));
      assert.equal(await shown(c), `3 ${H3}`);
      const act = configEntries(await readAudit(auditDir()), 'config.bundle-activated').at(-1);
      assert.equal(act?.['trigger'], 'reload');
      assert.equal(act?.['version'], 3);
    } finally {
      stop();
      for (const l of harness) process.on('SIGHUP', l);
      await c.end();
    }
  });

  it('refuses to restart from a rollback bundle (recording why), and restarts from the running one', async () => {
    await gw?.stop();
    gw = undefined;
    file('bundle.json', V2);
    await assert.rejects(start(), (e: unknown) => {
      assert.ok(isBundleError(e), String(e));
      assert.equal(e.reason, 'rollback');
      assert.match(e.message, /target "main".*refused \(rollback\)/);
      return true;
    });
    const refusal = configEntries(await readAudit(auditDir()), 'config.bundle-refused').at(-1);
    assert.equal(refusal?.['trigger'], 'startup');
    assert.equal(refusal?.['reason'], 'rollback');
    file('bundle.json', V3);
    gw = await start();
    const c = await gw.connect('alice', PW.alice);
    try {
      assert.equal(await shown(c), `3 ${H3}`);
    } finally {
      await c.end();
    }
  });
});
