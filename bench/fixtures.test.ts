// Tests that the benchmark inputs exercise the real paths: statements analyse fully, audit entries are valid.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, initSqlAnalyser } from '../src/sql/analyze.js';
import { decodeEntry, encodeEntry } from '../src/audit/entry.js';
import { CASES } from './analysis.js';
import { statementEntry } from './audit.js';

describe('analysis bench statements', () => {
  before(() => initSqlAnalyser());

  it('each is one statement the analyser fully understands (no parse error, nothing unsupported)', () => {
    for (const c of CASES) {
      const a = analyze(c.sql, { searchPath: ['public'] });
      assert.equal(a.error, undefined, c.name);
      assert.equal(a.statements.length, 1, c.name);
      assert.equal(a.statements[0]?.unsupported, undefined, `${c.name}: ${a.statements[0]?.unsupported}`);
      assert.ok((a.statements[0]?.relations.length ?? 0) > 0, `${c.name} reads or writes a relation`);
    }
  });
});

describe('audit bench entries', () => {
  it('are valid, canonical statement entries of realistic size with fresh ids', () => {
    const a = encodeEntry(statementEntry(1));
    const b = encodeEntry(statementEntry(1));
    assert.equal(decodeEntry(a).kind, 'statement');
    assert.notEqual(decodeEntry(a).id, decodeEntry(b).id);
    assert.ok(a.length >= 300 && a.length <= 2000, `entry is ${a.length} bytes`);
  });
});
