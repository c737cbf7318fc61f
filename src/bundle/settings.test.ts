// Tests for bundle settings: the strict schema (unknown keys and bad values refuse the bundle, naming the key) and the session admission checks.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SETTINGS_SCHEMA, SettingsEnforcer, parseSettings } from './settings.js';
import { isBundleError } from './errors.js';

const refusedNaming = (key: string) => (e: unknown) => {
  assert.ok(isBundleError(e, 'settings-invalid'), String(e));
  assert.match((e as Error).message, new RegExp(`"${key}"`));
  return true;
};

describe('parseSettings', () => {
  it('accepts every known setting and maps it', () => {
    assert.deepEqual(
      parseSettings({
        statement_timeout_ms: 30_000,
        idle_session_timeout_ms: 600_000,
        require_tls: true,
        allowed_source_cidrs: ['10.0.0.0/8', '::1', '192.168.1.7'],
      }),
      {
        statementTimeoutMs: 30_000,
        idleSessionTimeoutMs: 600_000,
        requireTls: true,
        allowedSourceCidrs: ['10.0.0.0/8', '::1', '192.168.1.7'],
      },
    );
    assert.deepEqual(parseSettings({}), {});
  });

  it('refuses an unknown key, naming it (gateway plumbing is not a bundle setting)', () => {
    for (const k of ['listen', 'limits', 'state_dir', 'statement_timeout', 'tls'])
      assert.throws(() => parseSettings({ [k]: 1 }), refusedNaming(k));
    // one bad key among good ones still refuses the whole object
    assert.throws(
      () => parseSettings({ statement_timeout_ms: 1000, max_rows: 5 }),
      refusedNaming('max_rows'),
    );
  });

  it('refuses ill-typed and out-of-range values, naming the key', () => {
    const bad: [string, unknown][] = [
      ['statement_timeout_ms', 0],
      ['statement_timeout_ms', 1.5],
      ['statement_timeout_ms', '1000'],
      ['statement_timeout_ms', 86_400_001],
      ['idle_session_timeout_ms', 999],
      ['require_tls', 'yes'],
      ['require_tls', 1],
      ['allowed_source_cidrs', []],
      ['allowed_source_cidrs', '10.0.0.0/8'],
      ['allowed_source_cidrs', ['10.0.0.1/8']],
      ['allowed_source_cidrs', ['10.0.0.0/33']],
      ['allowed_source_cidrs', ['nonsense']],
      ['allowed_source_cidrs', [7]],
      ['allowed_source_cidrs', Array.from({ length: 257 }, () => '10.0.0.0/8')],
    ];
    for (const [k, v] of bad)
      assert.throws(() => parseSettings({ [k]: v }), refusedNaming(k), `${k}=${String(v)}`);
    assert.throws(
      () => parseSettings([]),
      (e: unknown) => isBundleError(e, 'settings-invalid'),
    );
    assert.throws(
      () => parseSettings(null),
      (e: unknown) => isBundleError(e, 'settings-invalid'),
    );
  });

  it('the schema lists exactly the settings parseSettings maps', () => {
    assert.deepEqual(Object.keys(SETTINGS_SCHEMA).sort(), [
      'allowed_source_cidrs',
      'idle_session_timeout_ms',
      'require_tls',
      'statement_timeout_ms',
    ]);
  });
});

describe('SettingsEnforcer.admit', () => {
  it('admits everyone without settings', () => {
    const e = new SettingsEnforcer({}, 'bundle version 1');
    assert.equal(e.admit({ tls: false, sourceAddress: '203.0.113.9' }), undefined);
  });

  it('require_tls refuses plaintext sessions with 28000, naming the setting and the bundle', () => {
    const e = new SettingsEnforcer({ requireTls: true }, 'bundle version 4');
    assert.equal(e.admit({ tls: true, sourceAddress: '127.0.0.1' }), undefined);
    const r = e.admit({ tls: false, sourceAddress: '127.0.0.1' });
    assert.equal(r?.sqlstate, '28000');
    assert.equal(r?.setting, 'require_tls');
    assert.match(r?.message ?? '', /bundle version 4/);
  });

  it('allowed_source_cidrs admits addresses inside a range (IPv4, mapped IPv6, IPv6) and refuses the rest', () => {
    const e = new SettingsEnforcer(
      { allowedSourceCidrs: ['10.1.0.0/16', '2001:db8::/32'] },
      'bundle version 2',
    );
    for (const a of ['10.1.2.3', '::ffff:10.1.200.1', '2001:db8::5'])
      assert.equal(e.admit({ tls: false, sourceAddress: a }), undefined, a);
    for (const a of ['10.2.0.1', '127.0.0.1', '2001:db9::1', 'unknown', '']) {
      const r = e.admit({ tls: false, sourceAddress: a });
      assert.equal(r?.setting, 'allowed_source_cidrs', a);
      assert.equal(r?.sqlstate, '28000');
    }
  });
});
