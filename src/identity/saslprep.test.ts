// Tests for SASLprep: RFC 4013 examples, PostgreSQL's raw-password fallback, and the table lookups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isWardenError } from '../core/errors.js';
import { saslprep, scramPasswordBytes } from './saslprep.js';

void test('RFC 4013 section 3 examples', () => {
  assert.equal(saslprep('I\u00adX'), 'IX'); // soft hyphen mapped to nothing
  assert.equal(saslprep('user'), 'user');
  assert.equal(saslprep('USER'), 'USER'); // case preserved
  assert.equal(saslprep('\u00aa'), 'a'); // NFKC
  assert.equal(saslprep('\u2168'), 'IX'); // NFKC
  assert.equal(saslprep('\u0627\u0031'), null); // bidi: RandALCat must also be last
});

void test('mapping, normalization and prohibited output', () => {
  assert.equal(saslprep('a\u3000b'), 'a b'); // ideographic space: C.1.2
  assert.equal(saslprep('a\u200bb\u00e9'), 'a b\u00e9'); // ZWSP is C.1.2 (checked before B.1)
  assert.equal(saslprep('e\u0301x\ufeff'), '\u00e9x'); // composed; BOM mapped to nothing
  assert.equal(saslprep('\u00e9\ue000'), null); // private use: C.3
  assert.equal(saslprep('\u00e9\u007f'), null); // ASCII control after non-ASCII: C.2.1
  assert.equal(saslprep('\u00e9\u0221'), null); // unassigned in Unicode 3.2: A.1
  assert.equal(saslprep('\u00e9\ud800'), null); // lone surrogate
  assert.equal(saslprep('\u00ad'), null); // maps to the empty string
  assert.equal(saslprep('\u05d0a\u05d1'), null); // RandALCat with LCat
  assert.equal(saslprep('\u05d01\u05d1'), '\u05d01\u05d1');
});

void test('pure ASCII is returned unchanged, even control characters and the empty string', () => {
  assert.equal(saslprep(''), '');
  assert.equal(saslprep('a\u0007b'), 'a\u0007b');
});

void test('scramPasswordBytes falls back to the raw password when SASLprep refuses it', () => {
  assert.deepEqual(scramPasswordBytes('\u2168'), Buffer.from('IX'));
  assert.deepEqual(scramPasswordBytes('\uff41\ue000'), Buffer.from('\uff41\ue000', 'utf8'));
  assert.throws(
    () => scramPasswordBytes('a\ud800'),
    (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
  );
});

void test('property: a prepared value is NFKC-stable and SASLprep is idempotent on it', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (s) => {
      const r = saslprep(s);
      if (r === null) return;
      assert.equal(r, r.normalize('NFKC'));
      assert.equal(saslprep(r), r);
    }),
    { numRuns: 2000 },
  );
});
