// Tests of the MySQL pre-lexer: quoting and comments as the server reads them, refusals, the multi-statement split.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lex, lexStatements } from './lexer.js';

const split = (sql: string): string[] => {
  const r = lexStatements(sql);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.statements.map((s) => s.text);
};
const refused = (sql: string): string => {
  const r = lexStatements(sql);
  assert.ok(!r.ok, `expected a refusal of ${JSON.stringify(sql)}`);
  return r.error;
};

describe('mysql pre-lexer', () => {
  it('splits at top-level semicolons only', () => {
    assert.deepEqual(split("SELECT ';'; SELECT 2"), ["SELECT ';'", 'SELECT 2']);
    assert.deepEqual(split('SELECT `a;b`;;SELECT "x;"'), ['SELECT `a;b`', 'SELECT "x;"']);
    assert.deepEqual(split("SELECT 'a\\';' ; DELETE FROM t"), ["SELECT 'a\\';'", 'DELETE FROM t']);
    assert.deepEqual(split("SELECT 'it''s;'; SELECT 1"), ["SELECT 'it''s;'", 'SELECT 1']);
    assert.deepEqual(split('SELECT 1 -- c ; x\n; SELECT 2'), ['SELECT 1', 'SELECT 2']);
    assert.deepEqual(split('SELECT 1 # c ; x\n; SELECT 2'), ['SELECT 1', 'SELECT 2']);
    assert.deepEqual(split('SELECT /* ; */ 1; SELECT 2;'), ['SELECT /* ; */ 1', 'SELECT 2']);
  });

  it('reads `--` as a comment only before whitespace, like the server', () => {
    assert.deepEqual(split('SELECT 1 --1\n; SELECT 2'), ['SELECT 1 --1', 'SELECT 2']);
    const r = lex('SELECT 1 --1');
    assert.ok(r.ok);
    assert.equal(r.tokens.filter((t) => t.kind === 'op' && t.value === '-').length, 2);
  });

  it('blanks comments in the text the parser reads, keeping offsets', () => {
    const r = lexStatements('SELECT /* x */ 1 # y');
    assert.ok(r.ok);
    const s = r.statements[0];
    assert.equal(s?.clean, 'SELECT         1');
    assert.equal(s?.text.length, s?.clean.length);
  });

  it('decodes quoted strings and identifiers', () => {
    const r = lex('SELECT \'a\\nb\', "c""d", `e``f`');
    assert.ok(r.ok);
    assert.deepEqual(
      r.tokens.filter((t) => t.kind !== 'word' && t.kind !== 'op').map((t) => [t.kind, t.value]),
      [
        ['string', 'a\nb'],
        ['string', 'c"d'],
        ['ident', 'e`f'],
      ],
    );
  });

  it('refuses executable comments, hints, NUL bytes, DELIMITER and what it cannot read', () => {
    assert.match(refused('/*! DELETE FROM t */'), /executable/);
    assert.match(refused('SELECT 1 /*!50000 , 2 */'), /executable/);
    assert.match(refused('/*M! SELECT 1 */'), /executable/);
    assert.match(refused('/*m!100000 SELECT 1 */'), /executable/);
    assert.match(refused('SELECT /*+ SET_VAR(sql_mode=ANSI) */ 1'), /hint/);
    assert.match(refused('SELECT 1\u0000'), /NUL/);
    assert.match(refused('SELECT 1 -- \u0000'), /NUL/);
    assert.match(refused('DELIMITER //'), /DELIMITER/);
    assert.match(refused("SELECT 'unterminated"), /unterminated/);
    assert.match(refused('SELECT `x'), /unterminated/);
    assert.match(refused('SELECT 1 /* open'), /unterminated/);
    assert.match(refused('SELECT {d "2020-01-01"}'), /ODBC/);
    assert.match(refused('SELECT 1 \\G'), /unexpected character/);
    assert.match(refused('SELECT [1]'), /unexpected character/);
  });
});
