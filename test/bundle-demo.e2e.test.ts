// End to end: `warden demo` runs from the shipped signed bundle (demo/bundle) and shows its version through SHOW warden.policy_version.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startDemo } from '../src/demo/demo.js';
import { readBundle, readBundleFile } from '../src/bundle/index.js';

describe('warden demo from its signed bundle', () => {
  it('starts from demo/bundle, says so, and answers SHOW warden.policy_version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-demo-bundle-'));
    const shipped = readBundle(readBundleFile(join(import.meta.dirname, '../demo/bundle/bundle.json'))).hash;
    try {
      const lines: string[] = [];
      const demo = await startDemo({ dir, port: 0, log: (l) => lines.push(l) });
      try {
        assert.ok(
          lines.some((l) => /signed bundle version 1 .*test-only-ana.*test-only-ben/.test(l)),
          lines.join('\n'),
        );
        const c = new pg.Client({
          host: '127.0.0.1',
          port: demo.port,
          user: 'carol',
          password: demo.passwords['carol'],
          database: 'demo',
        });
        await c.connect();
        try {
          const r = await c.query<{ 'warden.policy_version': string }>('SHOW warden.policy_version');
          assert.equal(r.rows[0]?.['warden.policy_version'], `1 ${shipped}`);
        } finally {
          await c.end();
        }
        assert.ok(existsSync(join(dir, 'bundle.json')));
        assert.equal(JSON.parse(readFileSync(join(dir, 'bundle-state.json'), 'utf8')).hash, shipped);
        assert.equal(readFileSync(join(dir, 'warden.pid'), 'utf8').trim(), String(process.pid));
      } finally {
        await demo.stop();
      }
      assert.equal(existsSync(join(dir, 'warden.pid')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
