// End to end: the web console in real headless Chromium, served by a real gateway's admin API in front of a private PostgreSQL.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startPostgres, type PgInstance } from './harness/pg.js';
import { runPsql } from './harness/clients.js';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import { call } from '../src/admin-api/test-support.js';
import { addTokenToFile } from '../src/admin-api/token-file.js';
import { CONSOLE_CSP } from '../src/console/static.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env['CI'] === 'true';
// Outside CI a machine without Chromium skips; in CI the test must fail instead (see the `before` hook).
const SKIP =
  !HAVE_CHROMIUM && !IN_CI
    ? `${CHROMIUM} is absent (apt-get install -y chromium); skipped outside CI`
    : false;

const POLICY_DIR = fileURLToPath(new URL('./fixtures/approvals/policy', import.meta.url));
const SHOTS = fileURLToPath(new URL('../test-output/screenshots/', import.meta.url));
const UP_PASSWORD = 'up-secret-C7';
const BOB_PW = 'bob-pw-c1';
/** A statement held in wait mode (UPDATE without WHERE) whose text carries markup that must stay inert text. */
const HELD_SQL = "UPDATE orders SET amount = length('<img src=x id=pwn>')";

async function shot(page: Page, name: string): Promise<void> {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

describe('web console in headless Chromium', { skip: SKIP }, () => {
  let upstream: PgInstance;
  let gw: TestGateway;
  let browser: Browser;
  let dir: string;
  let base: string;
  const tokens = { alice: '', carol: '' };

  before(async () => {
    assert.ok(HAVE_CHROMIUM, `${CHROMIUM} is missing: CI must install the Debian chromium package (.ci/run)`);
    mkdirSync(SHOTS, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), 'warden-console-'));
    const tokenFile = join(dir, 'api-tokens.yaml');
    tokens.alice = addTokenToFile(tokenFile, { user: 'alice', roles: ['viewer', 'auditor'] }).token;
    tokens.carol = addTokenToFile(tokenFile, { user: 'carol', roles: ['approver'] }).token;
    upstream = await startPostgres({
      auth: 'scram',
      users: [{ name: 'app', password: UP_PASSWORD }],
      databases: [{ name: 'appdb', owner: 'app' }],
    });
    await upstream.query('SET ROLE app; CREATE TABLE public.orders (id int, amount int)', 'appdb');
    await upstream.query('INSERT INTO public.orders SELECT g, g * 10 FROM generate_series(1, 5) g', 'appdb');
    gw = await startTestGateway({
      targets: [
        {
          port: upstream.port,
          database: 'appdb',
          user: 'app',
          password: UP_PASSWORD,
          policyFolder: POLICY_DIR,
        },
      ],
      users: [{ name: 'bob', password: BOB_PW }],
      audit: { dir: 'audit', origin: 'e2e.warden.test/console', checkpoint_interval_ms: 60_000 },
      adminApi: { listen: { host: '127.0.0.1', port: 0 }, tokens_file: tokenFile },
      gatewayOptions: { log: () => undefined },
    });
    assert.ok(gw.gateway.adminApi);
    base = `http://127.0.0.1:${gw.gateway.adminApi.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    await upstream?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh page (own sessionStorage) that failed on any page error or CSP violation it reports. */
  async function signIn(token: string): Promise<{ page: Page; problems: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    await page.goto(`${base}/`);
    await page.locator('#token').fill(token);
    await page.locator('#login-form button[type=submit]').click();
    await page.locator('#who-user').waitFor();
    return { page, problems };
  }

  it('serves the console with a strict CSP and nosniff; a bad token is refused on the login page', async () => {
    for (const path of ['/', '/console/', '/console/app.js', '/console/console.css']) {
      const r = await fetch(`${base}${path}`);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('content-security-policy'), CONSOLE_CSP, path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
    }
    assert.equal((await fetch(`${base}/console/..%2Fstatic.ts`)).status, 404);
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    await page.locator('#token').fill('wdn_not-a-real-token');
    await page.locator('#login-form button[type=submit]').click();
    await page.locator('#login-error').filter({ hasText: 'Sign-in refused' }).waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    await shot(page, 'console-login-refused');
    await page.close();
  });

  it('approver: a held psql statement appears in the queue, is approved in the page without a reload, and runs', async () => {
    const { page, problems } = await signIn(tokens.carol);
    assert.equal(await page.locator('#who-roles').textContent(), 'viewer, approver');
    // Hidden for this role: the audit explorer (auditor only).
    assert.equal(await page.locator('#tab-audit').count(), 0);
    await page.locator('#tab-approvals').click();
    await page.locator('#approvals').waitFor();
    await page.evaluate("window.marker = 'same-document'");

    // bob's real psql session is held by the wait-mode rule until someone approves.
    const psql = runPsql({
      host: '127.0.0.1',
      port: gw.port,
      user: 'bob',
      password: BOB_PW,
      database: 'main',
      args: ['-c', HELD_SQL],
      timeoutMs: 60_000,
    });
    const row = page.locator('#approvals tbody tr').filter({ hasText: HELD_SQL });
    await row.waitFor({ timeout: 20_000 });
    const id = await row.getAttribute('data-approval-id');
    assert.match(id ?? '', /^ar_[0-9a-f]{16}$/);
    // The SQL is shown as text: its markup made no element.
    assert.equal(await page.locator('#pwn').count(), 0);
    assert.equal(await row.locator('code.sql').textContent(), HELD_SQL);
    await shot(page, 'console-approvals-pending');

    // Approving without a reason is refused in the page; nothing is sent.
    await row.locator('button.approve').click();
    await page.locator('#approvals-note').filter({ hasText: 'A reason is required' }).waitFor();
    await row.locator('input.reason').fill('planned reset, ticket OPS-12');
    await row.locator('button.approve').click();
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await page
      .locator('#approvals-note')
      .filter({ hasText: `Approved ${id}` })
      .waitFor();

    const res = await psql;
    assert.equal(res.code, 0, `psql failed: ${res.stderr}`);
    const rows = await upstream.query('SELECT count(*) AS n FROM public.orders WHERE amount = 18', 'appdb');
    assert.equal(Number(rows[0]?.['n']), 5);
    const a = await call(gw.gateway.adminApi?.port ?? 0, 'GET', `/api/approvals/${id}`, {
      token: tokens.carol,
    });
    assert.notEqual(a.json.state, 'pending', a.text);
    assert.equal(a.json.decisions[0]?.by, 'carol');
    assert.equal(a.json.decisions[0]?.reason, 'planned reset, ticket OPS-12');

    // A further poll keeps the queue free of it, still in the same document (no reload happened).
    await page.waitForTimeout(2500);
    assert.equal(await page.locator(`#approvals tr[data-approval-id="${id}"]`).count(), 0);
    assert.equal(await page.evaluate('window.marker'), 'same-document');
    await shot(page, 'console-approvals-after');
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('auditor: searches the log, opens an entry with its inclusion proof, and sees the log verified', async () => {
    const { page, problems } = await signIn(tokens.alice);
    assert.equal(await page.locator('#who-roles').textContent(), 'viewer, auditor');
    await page.locator('#tab-audit').click();
    await page.locator('#verify-status').filter({ hasText: 'Log verified' }).waitFor({ timeout: 20_000 });
    await page.locator('#audit-search input[name=user]').fill('bob');
    await page.locator('#audit-search button[type=submit]').click();
    const hit = page.locator('#audit-table tbody tr').filter({ hasText: HELD_SQL }).first();
    await hit.waitFor();
    await hit.locator('button.open').click();
    await page.locator('#proof-status').filter({ hasText: 'valid:' }).waitFor();
    const json = JSON.parse((await page.locator('#entry-json').textContent()) ?? '{}') as {
      kind?: string;
      text?: string;
    };
    assert.equal(json.kind, 'statement');
    assert.equal(json.text, HELD_SQL);
    assert.equal(await page.locator('#pwn').count(), 0);
    await shot(page, 'console-audit-entry');

    // The same status the API reports from verifying the log.
    const v = await call(gw.gateway.adminApi?.port ?? 0, 'GET', '/api/audit/verify', { token: tokens.alice });
    assert.equal(v.json.ok, true);
    // The page's proof check is real: the same proof with a wrong root does not verify in the browser.
    const index = Number(await hit.getAttribute('data-index'));
    const e = await call(gw.gateway.adminApi?.port ?? 0, 'GET', `/api/audit/entries/${index}`, {
      token: tokens.alice,
    });
    const check = (root: string): Promise<unknown> =>
      page.evaluate(
        `import('/console/merkle.js').then((m) => m.verifyInclusion(${index}, ${Number(e.json.proof.size)}, ` +
          `${JSON.stringify(e.json.leafHash)}, ${JSON.stringify(e.json.proof.hashes)}, ${JSON.stringify(root)}))`,
      );
    assert.equal(await check(e.json.proof.root as string), true);
    assert.equal(await check(Buffer.alloc(32, 7).toString('base64')), false);

    await page.locator('#tab-access').click();
    await page.locator('#access-rows table').waitFor();
    const principals = await page.locator('#access-rows tbody tr td:first-child').allTextContents();
    assert.ok(principals.includes('bob') && principals.includes('alice'), principals.join(','));
    await shot(page, 'console-access-matrix');

    await page.locator('#tab-policy').click();
    await page.locator('#policy-running .status').waitFor();
    await shot(page, 'console-policy');
    assert.deepEqual(problems, []);
    await page.close();
  });

  it('sessions: a live session and its timeline of statements and decisions', async () => {
    const { page, problems } = await signIn(tokens.alice);
    const bob = await gw.connect('bob', BOB_PW);
    await bob.query('SELECT count(*) FROM orders');
    await page.locator('#tab-sessions').click();
    const sessionRow = page.locator('#sessions tbody tr').filter({ hasText: 'bob' }).first();
    for (let i = 0; i < 20 && (await sessionRow.count()) === 0; i++) {
      await page.waitForTimeout(200);
      await page.locator('#view > button').click();
    }
    await sessionRow.waitFor();
    await sessionRow.locator('button').click();
    await page.locator('#timeline tbody tr').filter({ hasText: 'SELECT count(*) FROM orders' }).waitFor();
    await shot(page, 'console-session-timeline');
    await bob.end();
    assert.deepEqual(problems, []);
    await page.close();
  });
});
