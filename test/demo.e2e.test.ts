// End to end: the embedded demo (PGlite behind Warden) starts, serves psql with the printed credentials, and reuses its state.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDemo } from '../src/demo/demo.js';
import { runPsql } from './harness/clients.js';

describe('warden demo', () => {
  it('starts, prints ready-to-paste psql strings, serves psql, and reuses its state on a second start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-demo-'));
    try {
      const lines: string[] = [];
      let demo = await startDemo({ dir, port: 0, log: (l) => lines.push(l) });
      const passwords = { ...demo.passwords };
      const alice = lines.find((l) => l.includes('postgresql://alice:'));
      assert.ok(alice, `no psql line for alice in:\n${lines.join('\n')}`);
      assert.match(
        alice,
        new RegExp(`psql "postgresql://alice:${passwords['alice']}@127\\.0\\.0\\.1:${demo.port}/demo"`),
      );
      const r = await runPsql({
        host: '127.0.0.1',
        port: demo.port,
        user: 'alice',
        password: passwords['alice'] as string,
        database: 'demo',
        args: ['-At', '-c', 'SELECT count(*) FROM public.orders'],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), '5');
      const wrong = await runPsql({
        host: '127.0.0.1',
        port: demo.port,
        user: 'alice',
        password: 'wrong',
        database: 'demo',
        args: ['-c', 'SELECT 1'],
      });
      assert.notEqual(wrong.code, 0);
      await demo.stop();
      assert.ok(existsSync(join(dir, 'pgdata')));

      demo = await startDemo({ dir, port: 0, log: () => undefined });
      assert.deepEqual(demo.passwords, passwords, 'the second start reuses the credentials');
      const again = await runPsql({
        host: '127.0.0.1',
        port: demo.port,
        user: 'bob',
        password: passwords['bob'] as string,
        database: 'demo',
        args: ['-At', '-c', 'SELECT count(*) FROM public.customers'],
      });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout.trim(), '4', 'the sample data was not loaded twice');
      await demo.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
