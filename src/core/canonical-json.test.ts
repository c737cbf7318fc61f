// Unit tests for canonical JSON: sorted keys, no whitespace, integers only, errors that name the field.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NotCanonicalError, canonicalJsonText } from './canonical-json.js';

describe('canonical JSON', () => {
  it('sorts keys by UTF-16 code units and writes no whitespace', () => {
    assert.equal(
      canonicalJsonText({ b: [1, true, null], a: { z: 'x', é: 1, Z: -0 } }),
      '{"a":{"Z":0,"z":"x","é":1},"b":[1,true,null]}',
    );
  });

  it('is stable under key order and round-trips through JSON.parse', () => {
    fc.assert(
      fc.property(
        fc.jsonValue().filter((v) => !JSON.stringify(v).match(/\d\.\d|e[+-]?\d/i)),
        (v) => {
          let text: string;
          try {
            text = canonicalJsonText(v);
          } catch (e) {
            assert.ok(e instanceof NotCanonicalError);
            return;
          }
          assert.equal(canonicalJsonText(JSON.parse(text)), text);
        },
      ),
    );
  });

  it('refuses floats, non-plain objects and undefined, naming the field', () => {
    assert.throws(
      () => canonicalJsonText({ a: [1, 1.5] }),
      (e) => e instanceof NotCanonicalError && e.path === '$.a[1]',
    );
    assert.throws(() => canonicalJsonText({ d: new Date(0) }), /\$\.d is not a plain object/);
    assert.throws(() => canonicalJsonText({ u: undefined }), /\$\.u has unsupported type undefined/);
    assert.throws(() => canonicalJsonText({ n: NaN }), /\$\.n is not a safe integer/);
  });
});
