// End to end: `warden demo` starts the admin API, prints its URL and one token per sample user, and serves the signed bundle's policy.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDemo } from '../src/demo/demo.js';
import { call } from '../src/admin-api/test-support.js';

describe('warden demo: admin API', () => {
  it('prints the API URL and tokens, serves the running bundle, and keeps the tokens across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-demo-api-'));
    try {
      const lines: string[] = [];
      let demo = await startDemo({ dir, port: 0, log: (l) => lines.push(l) });
      const tokens = { ...demo.apiTokens };
      try {
        assert.ok(demo.apiPort > 0);
        assert.ok(
          lines.some((l) => l.includes(`Admin API on http://127.0.0.1:${demo.apiPort}`)),
          lines.join('\n'),
        );
        for (const u of ['alice', 'bob', 'carol']) {
          const t = tokens[u] as string;
          assert.match(t, /^wdn_/);
          assert.ok(
            lines.some((l) => l.includes(`Bearer ${t}`)),
            `no token line for ${u}`,
          );
        }
        assert.ok(!readFileSync(join(dir, 'api-tokens.yaml'), 'utf8').includes(tokens['alice'] as string));

        assert.equal((await call(demo.apiPort, 'GET', '/readyz')).status, 200);
        const p = await call(demo.apiPort, 'GET', '/api/policy', { token: tokens['bob'] as string });
        assert.equal(p.status, 200, p.text);
        assert.equal(p.json.running.version, 1);
        const roles = (p.json.running.signatures as { role: string }[]).map((s) => s.role);
        assert.deepEqual(roles, ['author', 'approver', 'approver']);
        const b = await call(demo.apiPort, 'GET', '/api/policy/bundles', { token: tokens['bob'] as string });
        assert.deepEqual(
          (b.json.bundles as { version: number; active: boolean }[]).map((x) => [x.version, x.active]),
          [[1, true]],
        );
        // The printed console URL serves the console.
        assert.ok(
          lines.some((l) => l.includes(`Web console: http://127.0.0.1:${demo.apiPort}/`)),
          lines.join('\n'),
        );
        const page = await fetch(`http://127.0.0.1:${demo.apiPort}/`);
        assert.equal(page.status, 200);
        assert.match(await page.text(), /<script type="module"/);
        // Roles as printed: bob is a viewer only, alice an auditor, carol an approver.
        const bobAudit = await call(demo.apiPort, 'GET', '/api/audit/verify', {
          token: tokens['bob'] as string,
        });
        assert.equal(bobAudit.status, 403);
        const v = await call(demo.apiPort, 'GET', '/api/audit/verify', { token: tokens['alice'] as string });
        assert.equal(v.json.ok, true, v.text);
        const a = await call(demo.apiPort, 'GET', '/api/approvals', { token: tokens['carol'] as string });
        assert.equal(a.status, 200, a.text);
      } finally {
        await demo.stop();
      }
      demo = await startDemo({ dir, port: 0, log: () => undefined });
      try {
        assert.deepEqual(demo.apiTokens, tokens, 'the second start reuses the tokens');
        const s = await call(demo.apiPort, 'GET', '/api/sessions', { token: tokens['alice'] as string });
        assert.equal(s.status, 200, s.text);
      } finally {
        await demo.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
