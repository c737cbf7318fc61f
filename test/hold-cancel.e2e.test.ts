// End to end: a statement the hook holds (as approvals in wait mode do) is ended by the client's CancelRequest through the lazily created abort signal, and the session stays usable.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { cancelRequest } from '../src/wire/pg/messages.js';

const UP_PASSWORD = 'up-hold-Q7';
const ALICE = 'alice-hold-pw';

describe('cancel of a held statement', () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let aborted = 0;

  before(async () => {
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    gw = await startTestGateway({
      targets: [{ port: upstream.port, database: 'appdb', user: 'app', password: UP_PASSWORD }],
      users: [{ name: 'alice', password: ALICE }],
      hook: {
        check(req) {
          if (!req.sql.includes('/* hold */')) return Promise.resolve({ action: 'allow' });
          // Held for a long time unless aborted: only a working cancel ends it quickly.
          return new Promise((resolve) => {
            const t = setTimeout(() => resolve({ action: 'allow' }), 30_000);
            req.signal.addEventListener('abort', () => {
              aborted++;
              clearTimeout(t);
              resolve({ action: 'allow' });
            });
          });
        },
      },
    });
  });

  after(async () => {
    await gw?.stop();
    await upstream?.stop();
  });

  it('cancels the held statement with 57014 and runs the next one', async () => {
    const c = await gw.connect('alice', ALICE);
    try {
      const internals = c as unknown as { processID: number; secretKey: number };
      const started = Date.now();
      const held = c.query('SELECT 1 AS one /* hold */');
      await new Promise((r) => setTimeout(r, 300));
      const s = net.connect({ host: '127.0.0.1', port: gw.port });
      s.end(cancelRequest(internals.processID, internals.secretKey));
      await assert.rejects(held, { code: '57014' });
      assert.ok(Date.now() - started < 20_000, 'the cancel ended the hold');
      assert.equal(aborted, 1);
      const r = await c.query('SELECT 2 AS two');
      assert.equal(r.rows[0]?.two, 2);
    } finally {
      await c.end();
    }
  });
});
