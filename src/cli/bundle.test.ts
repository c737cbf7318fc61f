// Tests for the bundle commands, run as functions: keygen, root-create, propose, sign, status, verify, diff, verify-install.

import { describe, it, before, after, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleCommands, keygenCommand, topLevelCommands, verifyInstallCommand } from './bundle.js';
import { writeManifest } from '../bundle/manifest.js';
import { parsePublicKey } from '../bundle/keys.js';

const POLICY = join(import.meta.dirname, '../../test/fixtures/policy/demo');

/** Runs a command, capturing what it prints. */
async function run(
  cmd: { run(argv: string[]): Promise<number> } | undefined,
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  assert.ok(cmd);
  const out: string[] = [];
  const err: string[] = [];
  const log = mock.method(console, 'log', (...a: unknown[]) => void out.push(a.join(' ')));
  const error = mock.method(console, 'error', (...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await cmd.run(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
}

describe('warden keygen / bundle / verify-install', () => {
  let dir = '';
  const p = (name: string): string => join(dir, name);
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'warden-bundle-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exposes the commands the lead mounts', () => {
    assert.deepEqual(Object.keys(topLevelCommands).sort(), ['bundle', 'keygen', 'verify-install']);
    assert.deepEqual(Object.keys(bundleCommands).sort(), [
      'activate',
      'diff',
      'propose',
      'root-create',
      'sign',
      'status',
      'verify',
    ]);
  });

  it('keygen writes a 0600 private key and a public key, and refuses to overwrite', async () => {
    for (const n of ['ana', 'ben', 'dev']) {
      const r = await run(keygenCommand, ['--name', n, '--out', p(`${n}.key`)]);
      assert.equal(r.code, 0);
      assert.equal(statSync(p(`${n}.key`)).mode & 0o777, 0o600);
      assert.equal(parsePublicKey(readFileSync(p(`${n}.key.pub`), 'utf8')).name, n);
      assert.doesNotMatch(r.out, /PRIVATE/);
    }
    const before = readFileSync(p('ana.key'), 'utf8');
    await assert.rejects(run(keygenCommand, ['--name', 'ana', '--out', p('ana.key')]), /exists/);
    assert.equal(readFileSync(p('ana.key'), 'utf8'), before);
  });

  it('creates and signs a root', async () => {
    const r = await run(bundleCommands['root-create'], [
      '--origin',
      'test.warden',
      '--threshold',
      '2',
      '--out',
      p('root.json'),
      '--approver',
      p('ana.key.pub'),
      '--approver',
      p('ben.key.pub'),
      '--author',
      p('dev.key.pub'),
    ]);
    assert.equal(r.code, 0);
    assert.equal((await run(bundleCommands.verify, [p('root.json')])).code, 1);
    for (const k of ['ana', 'ben'])
      assert.equal((await run(bundleCommands.sign, [p('root.json'), '--key', p(`${k}.key`)])).code, 0);
    const v = await run(bundleCommands.verify, [p('root.json')]);
    assert.equal(v.code, 0, v.err);
    assert.match(v.out, /verified root test\.warden version 1/);
  });

  it('proposes, collects signatures and verifies a bundle', async () => {
    const r = await run(bundleCommands.propose, [
      '--policy',
      POLICY,
      '--key',
      p('dev.key'),
      '--origin',
      'test.warden',
      '--out',
      p('b1.json'),
    ]);
    assert.equal(r.code, 0, r.err);
    const alone = await run(bundleCommands.verify, [p('b1.json'), '--root', p('root.json')]);
    assert.equal(alone.code, 1);
    assert.match(alone.err, /refused \(author-only\)/);
    await assert.rejects(run(bundleCommands.sign, [p('b1.json'), '--key', p('dev.key')]), /author/);
    assert.equal(
      (await run(bundleCommands.sign, [p('b1.json'), '--key', p('ana.key'), '--root', p('root.json')])).code,
      0,
    );
    const st = await run(bundleCommands.status, [p('b1.json'), '--root', p('root.json')]);
    assert.match(st.out, /\[x\] ana\+/);
    assert.match(st.out, /\[ \] ben\+/);
    assert.match(st.out, /approvals 1 of 2 required - 1 missing/);
    assert.match(st.out, /^settings \(none: gateway defaults\)$/m);
    assert.match(
      (await run(bundleCommands.verify, [p('b1.json'), '--root', p('root.json')])).err,
      /below-threshold/,
    );
    await run(bundleCommands.sign, [p('b1.json'), '--key', p('ben.key')]);
    const ok = await run(bundleCommands.verify, [p('b1.json'), '--root', p('root.json')]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /version 1 .*approved by ana\+[0-9a-f]{8}, ben\+[0-9a-f]{8}/);
    await assert.rejects(
      run(bundleCommands.propose, [
        '--policy',
        POLICY,
        '--key',
        p('dev.key'),
        '--origin',
        'x',
        '--out',
        p('b1.json'),
      ]),
      /exists/,
    );
  });

  it('chains the next version, refuses rollback and diffs against the running bundle', async () => {
    writeFileSync(p('bad-settings.yaml'), 'limits:\n  max_connections: 50\n');
    const refused = await run(bundleCommands.propose, [
      '--policy',
      POLICY,
      '--key',
      p('dev.key'),
      '--previous',
      p('b1.json'),
      '--settings',
      p('bad-settings.yaml'),
      '--out',
      p('bad.json'),
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /refused \(settings-invalid\): .*unknown setting "limits"/);
    writeFileSync(p('settings.yaml'), 'statement_timeout_ms: 30000\nrequire_tls: true\n');
    const r = await run(bundleCommands.propose, [
      '--policy',
      POLICY,
      '--key',
      p('dev.key'),
      '--previous',
      p('b1.json'),
      '--settings',
      p('settings.yaml'),
      '--out',
      p('b2.json'),
    ]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /version 2/);
    for (const k of ['ana', 'ben']) await run(bundleCommands.sign, [p('b2.json'), '--key', p(`${k}.key`)]);
    const st2 = await run(bundleCommands.status, [p('b2.json'), '--root', p('root.json')]);
    assert.match(st2.out, /^settings \{"require_tls":true,"statement_timeout_ms":30000\}$/m);
    assert.equal(
      (await run(bundleCommands.verify, [p('b2.json'), '--root', p('root.json'), '--running', p('b1.json')]))
        .code,
      0,
    );
    const back = await run(bundleCommands.verify, [
      p('b1.json'),
      '--root',
      p('root.json'),
      '--running',
      p('b2.json'),
    ]);
    assert.equal(back.code, 1);
    assert.match(back.err, /refused \(rollback\)/);
    const d = await run(bundleCommands.diff, [p('b2.json'), '--running', p('b1.json')]);
    assert.match(d.out, /# version 1 -> 2/);
    assert.match(
      d.out,
      /--- a\/settings\.json\n\+\+\+ b\/settings\.json\n@@ -1 \+1,4 @@\n-\{\}\n\+\{\n\+ {2}"require_tls": true,\n\+ {2}"statement_timeout_ms": 30000/,
    );
    assert.doesNotMatch(d.out, /policy\//);
    const first = await run(bundleCommands.diff, [p('b1.json')]);
    assert.match(first.out, /--- \/dev\/null\n\+\+\+ b\/policy\/roles\.yaml/);
  });

  it('verify-install passes on an intact dist and fails on a changed file', async () => {
    const dist = p('dist');
    mkdirSync(join(dist, 'cli'), { recursive: true });
    writeFileSync(join(dist, 'cli/main.js'), 'console.log(1)\n');
    writeManifest(dist);
    const ok = await run(verifyInstallCommand, ['--dist', dist]);
    assert.equal(ok.code, 0);
    assert.match(ok.out, /^ok: 1 files/m);
    writeFileSync(join(dist, 'cli/main.js'), 'console.log(2)\n');
    const bad = await run(verifyInstallCommand, ['--dist', dist]);
    assert.equal(bad.code, 1);
    assert.match(bad.out, /modified: cli\/main\.js/);
  });

  it('bundle without a subcommand prints usage', async () => {
    const r = await run(topLevelCommands.bundle, []);
    assert.equal(r.code, 2);
    assert.match(r.err, /propose/);
  });
});
