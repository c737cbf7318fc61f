// Tests for line diffs: the edit script spells both texts (property), hunk headers, missing final newlines, bundle diffs.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { diffBundles, diffLines, splitLines, unifiedDiff } from './diff.js';

describe('diffLines', () => {
  it('spells the old text with kept and removed lines, the new one with kept and added lines', () => {
    const lines = fc.array(fc.constantFrom('a\n', 'b\n', 'c\n', 'd', ''), { maxLength: 30 });
    fc.assert(
      fc.property(lines, lines, (a, b) => {
        const ops = diffLines(a, b);
        assert.deepEqual(
          ops.filter((o) => o.op !== '+').map((o) => o.line),
          a,
        );
        assert.deepEqual(
          ops.filter((o) => o.op !== '-').map((o) => o.line),
          b,
        );
      }),
      { numRuns: 300 },
    );
  });
  it('is minimal on a small case (keeps the longest common subsequence)', () => {
    const ops = diffLines(['a', 'b', 'c', 'd'], ['a', 'c', 'd', 'e']);
    assert.equal(ops.filter((o) => o.op === ' ').length, 3);
  });
});

describe('unifiedDiff', () => {
  it('is empty for equal texts', () => {
    assert.equal(unifiedDiff('a', 'b', 'x\n', 'x\n'), '');
  });
  it('writes hunks with context and GNU-style ranges', () => {
    const a = '1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n';
    const b = '1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n';
    assert.equal(
      unifiedDiff('a/x', 'b/x', a, b),
      '--- a/x\n+++ b/x\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n',
    );
  });
  it('splits distant changes into two hunks', () => {
    const a = Array.from({ length: 20 }, (_, i) => `${i}\n`).join('');
    const b = a.replace('1\n', 'one\n').replace('18\n', 'eighteen\n');
    const out = unifiedDiff('a', 'b', a, b);
    assert.deepEqual(out.match(/^@@.*@@$/gm), ['@@ -1,5 +1,5 @@', '@@ -16,5 +16,5 @@']);
  });
  it('marks a missing final newline', () => {
    assert.equal(
      unifiedDiff('a', 'b', 'x', 'y'),
      '--- a\n+++ b\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+y\n\\ No newline at end of file\n',
    );
  });
  it('shows a new file as added from line 0', () => {
    assert.equal(unifiedDiff('/dev/null', 'b', '', 'x\n'), '--- /dev/null\n+++ b\n@@ -0,0 +1 @@\n+x\n');
  });
  it('splits lines keeping terminators', () => {
    assert.deepEqual(splitLines('a\n\nb'), ['a\n', '\n', 'b']);
  });
});

describe('diffBundles', () => {
  it('shows added, removed and changed policy files and settings', () => {
    const running = {
      version: 1,
      policy: { 'a.yaml': 'x: 1\n', 'gone.yaml': 'y: 1\n' },
      settings: { port: 1 },
    };
    const next = { version: 2, policy: { 'a.yaml': 'x: 2\n', 'new.yaml': 'z: 1\n' }, settings: { port: 2 } };
    const out = diffBundles(running, next);
    assert.match(out, /--- a\/policy\/a\.yaml\n\+\+\+ b\/policy\/a\.yaml\n@@ -1 \+1 @@\n-x: 1\n\+x: 2\n/);
    assert.match(out, /--- a\/policy\/gone\.yaml\n\+\+\+ \/dev\/null\n@@ -1 \+0,0 @@\n-y: 1\n/);
    assert.match(out, /--- \/dev\/null\n\+\+\+ b\/policy\/new\.yaml\n/);
    assert.match(out, /- {2}"port": 1\n\+ {2}"port": 2\n/);
    assert.equal(diffBundles(next, next), '');
  });
});
