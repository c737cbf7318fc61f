// Tests for the approvals service at the policy hook (JIT roles join decisions) and through the `warden approvals` CLI (offline path).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatementRequest } from '../core/context.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { loadPolicy } from '../policy/index.js';
import { initSqlAnalyser } from '../sql/analyze.js';
import { CatalogCache } from '../enforce/catalog-cache.js';
import { createPolicyHook } from '../enforce/policy-hook.js';
import type { HookDecision } from '../enforce/policy-hook.js';
import { approvalsCommands, parseDuration } from '../cli/approvals.js';
import { createApprovalService } from './service.js';

const POLICY_DIR = new URL('../../test/fixtures/approvals/policy', import.meta.url).pathname;
const POLICY = loadPolicy(POLICY_DIR);
const TARGET: TargetConfig = {
  name: 'main',
  host: '127.0.0.1',
  port: 1,
  database: 'appdb',
  environment: 'test',
  tls: { mode: 'disable' },
  searchPath: ['public'],
  logins: new Map([['app', { user: 'app' }]]),
  policy: { kind: 'folder', path: POLICY_DIR },
};

function request(user: string, sql: string): StatementRequest {
  const at = new Date();
  return {
    session: {
      sessionId: 's-' + user,
      protocol: 'postgres',
      principal: { name: user, kind: 'human', groups: [], attributes: {} },
      target: 'main',
      environment: 'test',
      database: 'appdb',
      sourceAddress: '127.0.0.1',
      tls: false,
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

let dir = '';
before(async () => {
  await initSqlAnalyser();
  dir = mkdtempSync(join(tmpdir(), 'warden-approvals-int-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(name: string, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const cmd = approvalsCommands[name];
  assert.ok(cmd);
  let out = '';
  let err = '';
  return cmd
    .run([...argv, '--dir', dir, '--policy', POLICY_DIR], {
      out: (t) => (out += t + '\n'),
      err: (t) => (err += t + '\n'),
    })
    .then((code) => ({ code, out, err }));
}

void describe('approvals at the hook and in the CLI', () => {
  it('adds active JIT roles to decisions, for current sessions, until revoked', async () => {
    const svc = await createApprovalService({ dir, policy: POLICY, sweepIntervalMs: 0, syncIntervalMs: 0 });
    const catalog = new CatalogCache('main', () => Promise.resolve(['id', 'amount']));
    const hook = await createPolicyHook(TARGET, POLICY, { catalog, approvals: svc });
    try {
      const before = await hook.check(request('erin', 'SELECT id FROM orders'));
      assert.equal(before.action, 'deny');
      // erin asks through the CLI; bob (not the requester) approves through the CLI.
      const asked = await cli('request', [
        '--role',
        'reader',
        '--for',
        '30m',
        '--reason',
        'incident 7',
        '--as',
        'erin',
      ]);
      assert.equal(asked.code, 0, asked.err);
      const id = /^(ar_[0-9a-f]{16})/m.exec(asked.out)?.[1];
      assert.ok(id, asked.out);
      await assert.rejects(cli('approve', [id, '--as', 'erin']), /cannot decide/);
      const ok = await cli('approve', [id, '--as', 'bob', '--reason', 'ok']);
      assert.equal(ok.code, 0, ok.err);
      assert.match(ok.out, /active/);
      const listed = await cli('list', ['--status', 'active', '--json']);
      assert.equal((JSON.parse(listed.out) as { id: string }).id, id);
      const allowed = await hook.check(request('erin', 'SELECT id FROM orders'));
      assert.equal(allowed.action, 'allow');
      assert.deepEqual((allowed.decision as HookDecision).jitRoles, ['reader']);
      assert.equal((await cli('revoke', [id, '--as', 'erin'])).code, 0);
      const afterRevoke = await hook.check(request('erin', 'SELECT id FROM orders'));
      assert.equal(afterRevoke.action, 'deny');
    } finally {
      await hook.close();
      await svc.close();
    }
  });

  it('reports usage mistakes with exit code 2', async () => {
    assert.equal((await cli('approve', ['ar_0000000000000000'])).code, 2);
    assert.equal((await cli('request', ['--role', 'reader', '--as', 'erin'])).code, 2);
    assert.equal(parseDuration('2h'), 7200);
    assert.equal(parseDuration('90'), 90);
    assert.throws(() => parseDuration('2w'));
  });
});
