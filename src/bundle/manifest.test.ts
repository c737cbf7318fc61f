// Tests for install integrity: the manifest covers every file but itself; changed, missing and extra files are reported.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { isWardenError } from '../core/errors.js';
import { buildManifest, verifyInstall, writeManifest } from './manifest.js';

describe('install manifest', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'warden-manifest-'));
    mkdirSync(join(dir, 'cli'));
    writeFileSync(join(dir, 'main.js'), 'main');
    writeFileSync(join(dir, 'cli/main.js'), 'cli');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to verify without a manifest', () => {
    assert.throws(
      () => verifyInstall(dir),
      (e) => isWardenError(e, 'CONFIG_INVALID'),
    );
  });
  it('records every file with its SHA-256, not the manifest', () => {
    writeManifest(dir);
    const m = buildManifest(dir);
    assert.deepEqual(Object.keys(m.files), ['cli/main.js', 'main.js']);
    assert.equal(m.files['main.js'], createHash('sha256').update('main').digest('hex'));
    const r = verifyInstall(dir);
    assert.equal(r.ok, true);
    assert.equal(r.checked, 2);
  });
  it('reports a modified, a missing and an extra file', () => {
    writeFileSync(join(dir, 'main.js'), 'mAin');
    unlinkSync(join(dir, 'cli/main.js'));
    writeFileSync(join(dir, 'cli/evil.js'), 'x');
    const r = verifyInstall(dir);
    assert.equal(r.ok, false);
    assert.deepEqual(r.modified, ['main.js']);
    assert.deepEqual(r.missing, ['cli/main.js']);
    assert.deepEqual(r.extra, ['cli/evil.js']);
  });
});
