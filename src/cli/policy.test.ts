// Tests for `warden policy check | explain | test | who-can`, called as functions with captured output.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseColumnsOptions,
  policyCheck,
  policyCommands,
  policyExplain,
  policyTest,
  policyWhoCan,
} from './policy.js';
import type { Io } from './policy.js';

const DEMO = new URL('../../demo/policy', import.meta.url).pathname;
const BAD = new URL('../../test/fixtures/policy/bad', import.meta.url).pathname;

function capture(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l) };
}

void describe('warden policy check', () => {
  it('accepts the demo policy', async () => {
    const io = capture();
    assert.equal(await policyCheck([DEMO], io), 0);
    assert.match(io.stdout.join('\n'), /^ok: 3 file\(s\), 3 user\(s\)/);
  });

  it('prints every problem as file:line:col: message and exits 1', async () => {
    const io = capture();
    assert.equal(await policyCheck([BAD], io), 1);
    const problems = io.stderr.filter((l) => /^\/.+\.yaml:\d+:\d+: /.test(l));
    assert.ok(problems.length >= 2, io.stderr.join('\n'));
    assert.ok(problems.some((l) => l.includes('schema-errors.yaml')));
    assert.match(io.stderr.at(-1) ?? '', new RegExp(`^${problems.length} problem\\(s\\)$`));
  });

  it('exits 1 on a missing folder', async () => {
    const io = capture();
    assert.equal(await policyCheck(['/nonexistent/warden-policy'], io), 1);
  });
});

void describe('warden policy explain', () => {
  const cols = ['--columns', 'public.customers=id,name,email,ssn,tenant_id'];
  it('prints the decision, its rules and the rewritten SQL', async () => {
    const io = capture();
    const code = await policyExplain(
      ['--policy', DEMO, '--user', 'alice', '--sql', 'SELECT c FROM customers c', ...cols],
      io,
    );
    const text = io.stdout.join('\n');
    assert.equal(code, 0, text);
    assert.match(text, /^decision: allow/);
    assert.match(text, /mask:public\.customers\.ssn/);
    assert.match(text, /rewritten sql: SELECT c FROM \( SELECT id, name, email, CASE/);
    assert.match(text, /WHERE tenant_id = 1/);
  });

  it('explains a denial and exits 1; without column lists a masked table is denied (fail closed)', async () => {
    const io = capture();
    assert.equal(
      await policyExplain(['--policy', DEMO, '--user', 'bob', '--sql', 'DELETE FROM ledger'], io),
      1,
    );
    assert.match(io.stdout.join('\n'), /message: denied by append_only:public\.ledger/);
    const io2 = capture();
    assert.equal(
      await policyExplain(['--policy', DEMO, '--user', 'alice', '--sql', 'SELECT ssn FROM customers'], io2),
      1,
    );
    assert.match(io2.stdout.join('\n'), /catalog-unavailable/);
  });

  it('prints JSON with --json, and rejects a bad --at', async () => {
    const io = capture();
    await policyExplain(['--policy', DEMO, '--user', 'carol', '--sql', 'SELECT 1 FROM ledger', '--json'], io);
    const r = JSON.parse(io.stdout.join('\n')) as { action: string; decision: { rules: string[] } };
    assert.equal(r.action, 'allow');
    assert.deepEqual(r.decision.rules, ['role:approver/grant:1']);
    const bad = capture();
    assert.equal(
      await policyExplain(['--policy', DEMO, '--user', 'a', '--sql', 'SELECT 1', '--at', 'soon'], bad),
      2,
    );
  });

  it('parses --columns and refuses malformed ones', () => {
    assert.deepEqual(parseColumnsOptions(['s.t=a, b,c']), new Map([['s.t', ['a', 'b', 'c']]]));
    assert.throws(() => parseColumnsOptions(['t=a']), /schema\.table/);
    assert.throws(() => parseColumnsOptions(['s.t=']), /no columns/);
  });
});

void describe('warden policy test', () => {
  it('runs the demo cases (SQL through the analyser) and exits 0', async () => {
    const io = capture();
    const code = await policyTest([join(DEMO, 'demo.tests.yaml')], io);
    assert.equal(code, 0, io.stdout.join('\n') + io.stderr.join('\n'));
    assert.match(io.stdout.at(-1) ?? '', /^9 of 9 case\(s\) passed$/);
  });

  it('exits 1 when a case fails, and says which', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-policy-test-'));
    try {
      const file = join(dir, 'wrong.tests.yaml');
      writeFileSync(
        file,
        'cases:\n  - { name: wrong, user: alice, sql: "DELETE FROM orders WHERE id = 1", expect: allow }\n' +
          '  - { name: garbage, user: alice, sql: "SELEC 1", expect: deny, rule: unsupported }\n',
      );
      const io = capture();
      assert.equal(await policyTest([file, '--policy', DEMO], io), 1);
      assert.match(io.stdout.join('\n'), /FAIL .*wrong — expected allow, got deny/);
      assert.match(io.stdout.join('\n'), /ok {3}.*garbage/);
      assert.match(io.stdout.at(-1) ?? '', /^1 of 2 case/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

void describe('warden policy who-can', () => {
  it('prints the access matrix of a table', async () => {
    const io = capture();
    assert.equal(await policyWhoCan(['--policy', DEMO, '--table', 'public.ledger'], io), 0);
    const text = io.stdout.join('\n');
    assert.match(text, /^public\.ledger is append-only/);
    assert.match(text, /^bob \(writer, role:writer\/grant:1\) \| target \* \| select,insert \| columns \*$/m);
    assert.equal(/update|delete/.test(text), false, text);
    const io2 = capture();
    await policyWhoCan(['--policy', DEMO, '--table', 'public.customers'], io2);
    assert.match(
      io2.stdout.join('\n'),
      /alice .*masks ssn=partial\(keep_first=0, keep_last=4\) \| rows where/,
    );
  });

  it('lists the four subcommands', () => {
    assert.deepEqual(Object.keys(policyCommands).sort(), ['check', 'explain', 'test', 'who-can']);
  });
});
