// Tests that mask expressions compute what they promise, run by a real PostgreSQL (PGlite, in process).

import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { maskSql } from './masks.js';
import type { MaskSpec } from './masks.js';
import { parseTemplate } from './template.js';
import type { Template } from './template.js';

let db: PGlite;

before(async () => {
  db = new PGlite();
  await db.exec(`CREATE TABLE t (id int, s text, n int);
    INSERT INTO t VALUES (1, '123-45-6789', 7), (2, 'ab', 8), (3, NULL, NULL), (4, 'é''x\\y', 9);`);
});
after(async () => {
  await db.close();
});

async function column(spec: MaskSpec, col = 's'): Promise<unknown[]> {
  const r = await db.query<{ v: unknown }>(`SELECT ${maskSql(spec, `"${col}"`)} AS v FROM t ORDER BY id`);
  return r.rows.map((x) => x.v);
}

const sha = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

void test('partial keeps only the allowed characters; short values are hidden entirely; NULL stays NULL', async () => {
  assert.deepEqual(await column({ kind: 'partial', keepFirst: 0, keepLast: 4 }), [
    '*******6789',
    '**',
    null,
    "*'x\\y",
  ]);
  assert.deepEqual(await column({ kind: 'partial', keepFirst: 1, keepLast: 1 }), [
    '1*********9',
    '**',
    null,
    'é***y',
  ]);
});

void test('hash is the hex sha256 of the text, salted when asked', async () => {
  assert.deepEqual(await column({ kind: 'hash' }), [sha('123-45-6789'), sha('ab'), null, sha("é'x\\y")]);
  assert.deepEqual((await column({ kind: 'hash', salt: "pe'pper" }))[1], sha("pe'pperab"));
  assert.deepEqual(await column({ kind: 'hash' }, 'n'), [sha('7'), sha('8'), null, sha('9')]);
});

void test('redact, null and expr', async () => {
  assert.deepEqual(await column({ kind: 'redact' }), ['***', '***', null, '***']);
  assert.deepEqual(await column({ kind: 'redact', type: 'integer' }, 'n'), [null, null, null, null]);
  assert.deepEqual(await column({ kind: 'null' }), [null, null, null, null]);
  const t = parseTemplate("left({{ column }}, 2) || '…'", 'mask') as Template;
  assert.deepEqual(await column({ kind: 'expr', template: t }), ['12…', 'ab…', null, "é'…"]);
});
