// Tests for the column-list cache: TTL, shared fetches, invalidation racing a fetch, fail closed, TLS options.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isWardenError } from '../core/errors.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { CatalogCache, pgSslOptions } from './catalog-cache.js';

function counting(cols: Record<string, string[]>): {
  calls: string[];
  fetch: (s: string, t: string) => Promise<string[]>;
} {
  const calls: string[] = [];
  return {
    calls,
    fetch: (s, t) => {
      calls.push(`${s}.${t}`);
      return Promise.resolve([...(cols[`${s}.${t}`] ?? [])]);
    },
  };
}

void describe('CatalogCache', () => {
  it('caches a column list until its TTL ends', async () => {
    let now = 1000;
    const f = counting({ 'public.t': ['a', 'b'] });
    const c = new CatalogCache('x', f.fetch, { ttlMs: 100, now: () => now });
    assert.deepEqual(await c.columns('public', 't'), ['a', 'b']);
    now += 99;
    assert.deepEqual(await c.columns('public', 't'), ['a', 'b']);
    assert.equal(f.calls.length, 1);
    now += 1;
    await c.columns('public', 't');
    assert.equal(f.calls.length, 2);
  });

  it('shares one fetch between concurrent callers', async () => {
    const f = counting({ 'public.t': ['a'] });
    const c = new CatalogCache('x', f.fetch);
    const all = await Promise.all([c.columns('public', 't'), c.columns('public', 't')]);
    assert.deepEqual(all, [['a'], ['a']]);
    assert.equal(f.calls.length, 1);
  });

  it('drops entries on invalidation, one table or all', async () => {
    const f = counting({ 'public.t': ['a'], 'public.u': ['b'] });
    const c = new CatalogCache('x', f.fetch);
    await c.columns('public', 't');
    await c.columns('public', 'u');
    c.invalidate('public', 't');
    assert.equal(c.size, 1);
    c.invalidate();
    assert.equal(c.size, 0);
    await c.columns('public', 'u');
    assert.deepEqual(f.calls, ['public.t', 'public.u', 'public.u']);
  });

  it('does not cache a list fetched before an invalidation (DDL raced the fetch)', async () => {
    let release: (v: string[]) => void = () => undefined;
    const c = new CatalogCache(
      'x',
      () =>
        new Promise<string[]>((r) => {
          release = r;
        }),
    );
    const p = c.columns('public', 't');
    c.invalidate('public', 't');
    release(['old']);
    assert.deepEqual(await p, ['old']);
    assert.equal(c.size, 0);
  });

  it('fails closed: an unknown table or a failing upstream rejects, and nothing is cached', async () => {
    const c = new CatalogCache('x', counting({}).fetch);
    await assert.rejects(c.columns('public', 'missing'), (e) => isWardenError(e));
    const broken = new CatalogCache('x', () => Promise.reject(new Error('connection refused')));
    await assert.rejects(broken.columns('public', 't'), /connection refused/);
    assert.equal(broken.size, 0);
  });

  it('bounds its size', async () => {
    const c = new CatalogCache('x', (_s, t) => Promise.resolve([t]), { maxEntries: 3 });
    for (const t of ['a', 'b', 'c', 'd', 'e']) await c.columns('public', t);
    assert.equal(c.size, 3);
  });
});

void describe('pgSslOptions', () => {
  const target = (mode: TargetConfig['tls']['mode']): TargetConfig => ({
    name: 't',
    host: 'db.example',
    port: 5432,
    database: 'd',
    environment: 'e',
    tls: { mode },
    searchPath: ['public'],
    logins: new Map(),
    policy: { kind: 'allow_all' },
  });
  it('maps the target TLS modes', () => {
    assert.equal(pgSslOptions(target('disable')), false);
    assert.deepEqual(pgSslOptions(target('require')), { rejectUnauthorized: false });
    const ca = pgSslOptions(target('verify-ca'));
    assert.ok(typeof ca === 'object' && ca.rejectUnauthorized === true);
    const full = pgSslOptions(target('verify-full'));
    assert.ok(
      typeof full === 'object' && full.rejectUnauthorized === true && full.servername === 'db.example',
    );
  });
});
