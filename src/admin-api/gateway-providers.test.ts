// Tests of the gateway-backed providers: audit search/proof/verify over a real file log, approvals routing, policy history, readiness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../audit/log.js';
import { makeEntry, type AuditEntry } from '../audit/entry.js';
import { verifyInclusion } from '../audit/merkle.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import type { ApprovalService } from '../approvals/service.js';
import type { ApprovalRequest } from '../approvals/model.js';
import type { VerifiedBundle } from '../bundle/bundle.js';
import type { Envelope } from '../bundle/dsse.js';
import type { AuditConfig } from '../config/gateway-config.js';
import {
  auditProvider,
  composedApprovals,
  policyProvider,
  tcpReachable,
  type BundleHistoryItem,
  type GatewaySource,
} from './gateway-providers.js';
import { ApiError } from './handlers.js';

const ORIGIN = 'test.warden/providers';
const principal = (name: string) => ({ name, kind: 'human' as const, groups: [] });

async function withLog(fn: (log: AuditLog, cfg: AuditConfig) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-prov-'));
  const log = await AuditLog.openDir(dir, { origin: ORIGIN });
  try {
    await fn(log, { dir, origin: ORIGIN, checkpointIntervalMs: 0, retentionDays: 365 });
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const stmt = (sessionId: string, user: string, text: string, effect: 'allow' | 'deny', time: string) =>
  makeEntry<AuditEntry>({
    kind: 'statement',
    sessionId,
    principal: principal(user),
    target: 'main',
    text,
    paramsHash: null,
    path: 'simple',
    decision: { effect, rules: [], reasons: [] },
    policyVersion: 'folder',
    time: new Date(time),
  });

void test('audit search filters by user (with their outcomes), decision, time and limit', async () => {
  await withLog(async (log, cfg) => {
    await log.append(stmt('s1', 'ann', 'SELECT 1', 'allow', '2024-01-01T00:00:00.000Z'));
    await log.append(stmt('s2', 'ben', 'DROP TABLE t', 'deny', '2024-01-02T00:00:00.000Z'));
    const s1 = await log.append(stmt('s1', 'ann', 'SELECT 2', 'allow', '2024-01-03T00:00:00.000Z'));
    await log.append(
      makeEntry<AuditEntry>({
        kind: 'statement.outcome',
        statementId: 'x',
        sessionId: 's1',
        rows: 1,
        sqlstate: null,
        durationMs: 2,
        tags: ['SELECT 1'],
        time: new Date('2024-01-03T00:00:01.000Z'),
      }),
    );
    const p = auditProvider(log, cfg);
    const ann = await p.search({ user: 'ann', limit: 100 });
    assert.deepEqual(
      ann.map((f) => f.index),
      [0, 2, 3],
    );
    assert.deepEqual(
      (await p.search({ decision: 'deny', limit: 100 })).map((f) => f.index),
      [1],
    );
    const since = await p.search({ since: new Date('2024-01-02T00:00:00.000Z'), limit: 100 });
    assert.deepEqual(
      since.map((f) => f.index),
      [1, 2, 3],
    );
    assert.equal((await p.search({ limit: 2 })).length, 2);
    assert.equal((await p.search({ target: 'other', limit: 10 })).length, 0);

    // entry(): a proof against a signed checkpoint that covers it (signed on demand).
    assert.equal(log.latestCheckpoint(), undefined);
    const e = await p.entry(s1.index);
    assert.ok(e);
    assert.equal((e.entry as { text?: string }).text, 'SELECT 2');
    const cp = openCheckpoint(Buffer.from(e.checkpoint ?? ''), { origin: ORIGIN, verifiers: [log.verifier] });
    assert.equal(cp.checkpoint.size, e.proof.size);
    assert.ok(e.proof.size > s1.index);
    verifyInclusion(s1.index, e.proof.size, e.proof.leafHash, e.proof.proof, cp.checkpoint.root);
    assert.equal(await p.entry(99), undefined);

    const v = await p.verify();
    assert.equal(v.ok, true);
    assert.equal(v.size, 4);
  });
});

void test('audit provider without a log answers 404', async () => {
  const p = auditProvider(undefined, undefined);
  await assert.rejects(p.verify(), (e: unknown) => e instanceof ApiError && e.status === 404);
});

function fakeService(requests: Partial<ApprovalRequest>[], decided: string[]): ApprovalService {
  const full = requests.map(
    (r) =>
      ({
        kind: 'statement',
        status: 'pending',
        requester: 'bob',
        createdAt: '2024-01-01T00:00:00.000Z',
        expiresAt: '2024-01-02T00:00:00.000Z',
        reason: '',
        rule: 'r',
        approvers: [{ group: 'g', count: 1 }],
        votes: [],
        ...r,
      }) as ApprovalRequest,
  );
  return {
    get: (id: string) => full.find((r) => r.id === id),
    list: () => full,
    sync: () => Promise.resolve(),
    approve: (id: string, by: string) => {
      decided.push(`${id}:${by}`);
      const r = full.find((x) => x.id === id) as ApprovalRequest;
      return Promise.resolve({ ...r, status: 'approved' });
    },
  } as unknown as ApprovalService;
}

void test('approvals compose: lists merge oldest first, decisions go to the service holding the id', async () => {
  const decided: string[] = [];
  const a = fakeService([{ id: 'ar_a', createdAt: '2024-01-03T00:00:00.000Z' }], decided);
  const b = fakeService([{ id: 'ar_b', createdAt: '2024-01-01T00:00:00.000Z' }], decided);
  const p = composedApprovals(
    new Map([
      ['one', a],
      ['two', b],
    ]),
  );
  assert.deepEqual(
    (await p.list({})).map((x) => x.id),
    ['ar_b', 'ar_a'],
  );
  const by = { user: 'carol', via: 'token' as const, credential: 't', roles: ['approver'] };
  const r = await p.decide('ar_b', { by, decision: 'approve', reason: 'ok' });
  assert.equal(r.state, 'approved');
  assert.deepEqual(decided, ['ar_b:carol']);
  await assert.rejects(
    p.decide('ar_zzz', { by, decision: 'approve', reason: 'ok' }),
    (e: unknown) => e instanceof ApiError && e.status === 404,
  );
  assert.equal(await p.get('ar_zzz'), undefined);
  await assert.rejects(
    p.requestRole({ requester: by, role: 'x', durationMinutes: 5, reason: 'r' }),
    (e: unknown) => e instanceof ApiError && e.status === 400,
  );
});

function verified(version: number, hash: string): VerifiedBundle {
  const key = (name: string) => ({ name, keyId: `${name}+0000abcd` });
  return {
    payload: {
      version,
      created: `2024-01-0${version}T00:00:00.000Z`,
      expires: '2030-01-01T00:00:00.000Z',
      policy: { 'p.yaml': `v${version}` },
      settings: {},
    },
    hash,
    author: key('ann'),
    approvers: [key('ben')],
    policy: {},
  } as unknown as VerifiedBundle;
}

void test('policy provider: the running bundle, history newest first, diffable versions, activation via a staged file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-prov-pol-'));
  try {
    const history: BundleHistoryItem[] = [
      { target: 'main', verified: verified(1, 'h1'), activatedAt: new Date() },
      { target: 'main', verified: verified(2, 'h2'), activatedAt: new Date() },
    ];
    let current = 'h2';
    const calls: { path: string; body: string; trigger?: string | undefined; target?: string | undefined }[] =
      [];
    const gw: GatewaySource = {
      pg: { sessions: new Set() },
      policies: () => [
        { target: 'dev', kind: 'allow_all', hash: '' },
        { target: 'main', kind: 'bundle', hash: current },
      ],
      bundleHistory: () => history,
      policyOf: () => undefined,
      activateBundle: (path, o) => {
        calls.push({ path, body: readFileSync(path, 'utf8'), trigger: o?.trigger, target: o?.target });
        return Promise.resolve({ version: 3, hash: 'h3' });
      },
    };
    const p = policyProvider({ gateway: gw, targets: [], approvals: new Map(), stateDir: dir });
    const r = p.running();
    assert.equal(r?.version, 2);
    assert.deepEqual(
      r?.signatures.map((s) => s.role),
      ['author', 'approver'],
    );
    assert.deepEqual(
      (await p.bundles()).map((b) => [b.version, b.active]),
      [
        [2, true],
        [1, false],
      ],
    );
    assert.deepEqual((await p.bundle(1))?.policy, { 'p.yaml': 'v1' });
    assert.equal(await p.bundle(7), undefined);
    current = 'h1';
    assert.equal(p.running()?.version, 1);

    const env: Envelope = { payloadType: 'application/x', payload: 'e30', signatures: [] };
    const by = { user: 'olga', via: 'token' as const, credential: 't', roles: ['operator'] };
    assert.deepEqual(await p.activateBundle(env, by), { version: 3, hash: 'h3' });
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.trigger, 'api:olga');
    assert.equal(calls[0]?.target, 'main');
    assert.equal(JSON.parse(calls[0]?.body ?? '{}').payload, 'e30');
    assert.equal(existsSync(calls[0]?.path ?? ''), false, 'the staged file is removed');
    assert.deepEqual(readdirSync(join(dir, 'api-uploads')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('tcpReachable: true for a listener, false for a closed port', async () => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  assert.equal(await tcpReachable('127.0.0.1', port, 1000), true);
  await new Promise<void>((r) => server.close(() => r()));
  assert.equal(await tcpReachable('127.0.0.1', port, 1000), false);
});
