// Tests for C2SP signed notes: the Go sumdb and C2SP vectors byte for byte, strict parsing, key handling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  NoteError,
  computeKeyId,
  generateSignerKey,
  openNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
} from './note.js';
import type { NoteSigner } from './note.js';

const V = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../test/fixtures/vectors/signed-note/vectors.json'), 'utf8'),
) as {
  goSumdbSign: { skey: string; vkey: string; text: string; signatureBase64: string };
  c2spExample: { vkey: string; text: string; signatureBase64: string };
};

const noteOf = (text: string, name: string, b64: string): Buffer =>
  Buffer.from(`${text}\n\u2014 ${name} ${b64}\n`, 'utf8');

function reason(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof NoteError, String(e));
    return e.reason;
  }
  return 'ok';
}

void test('Go sumdb vector: signer key gives the verifier key and the exact signature line', () => {
  const g = V.goSumdbSign;
  const signer = parseSignerKey(g.skey);
  assert.equal(signer.name, 'PeterNeumann');
  assert.equal(signer.keyId, 0xc74f20a3);
  assert.equal(signer.verifierKey, g.vkey);
  const note = signNote(g.text, [signer]);
  assert.equal(
    Buffer.from(note).toString('utf8'),
    noteOf(g.text, 'PeterNeumann', g.signatureBase64).toString('utf8'),
  );
  const opened = openNote(note, [parseVerifierKey(g.vkey)]);
  assert.equal(opened.text, g.text);
  assert.equal(opened.signatures.length, 1);
});

void test('C2SP example verifies; any change to the text fails', () => {
  const c = V.c2spExample;
  const v = parseVerifierKey(c.vkey);
  assert.equal(v.keyId, 0x530d903a);
  const pub = v.publicKey;
  assert.equal(computeKeyId('example.com/foo', 1, pub), 0x530d903a);
  const note = noteOf(c.text, 'example.com/foo', c.signatureBase64);
  assert.equal(openNote(note, [v]).text, c.text);
  const changed = noteOf(c.text.replace('example', 'exbmple'), 'example.com/foo', c.signatureBase64);
  assert.equal(
    reason(() => openNote(changed, [v])),
    'invalid-signature',
  );
});

void test('strict parsing: malformed notes and signature lines are refused', () => {
  const g = V.goSumdbSign;
  const v = parseVerifierKey(g.vkey);
  const good = noteOf(g.text, 'PeterNeumann', g.signatureBase64).toString('utf8');
  const line = `\u2014 PeterNeumann ${g.signatureBase64}\n`;
  const cases: Array<[string, string]> = [
    [good.slice(0, -1), 'malformed'], // no final newline
    [g.text + line, 'malformed'], // no blank line
    [g.text + '\n', 'malformed'], // empty signature block
    [g.text + '\n- PeterNeumann ' + g.signatureBase64 + '\n', 'malformed'], // hyphen, not em dash
    [g.text + '\n\u2014 PeterNeumann  ' + g.signatureBase64 + '\n', 'malformed'], // two spaces
    [g.text + '\n\u2014 PeterNeumann ' + g.signatureBase64.slice(0, -1) + '\n', 'malformed'], // bad base64
    [g.text + '\n\u2014 Peter+Neumann ' + g.signatureBase64 + '\n', 'malformed'], // bad name
    [g.text + '\n\u2014 PeterNeumann AAAA\n', 'malformed'], // too short
    [g.text.replace('If', 'I\tf') + '\n' + line, 'malformed'], // control character
    [good + line, 'duplicate'],
    [g.text + '\n\u2014 someone ' + g.signatureBase64 + '\n', 'unverified'],
  ];
  for (const [n, want] of cases)
    assert.equal(
      reason(() => openNote(Buffer.from(n, 'utf8'), [v])),
      want,
      JSON.stringify(n),
    );
  assert.equal(
    reason(() => openNote(Buffer.from(good), [])),
    'unverified',
  );
  assert.equal(
    reason(() => openNote(Buffer.from(good), [v, v])),
    'ambiguous',
  );
  assert.equal(
    reason(() => openNote(Buffer.from([0xff, 0x0a, 0x0a]), [v])),
    'malformed',
  );
  assert.equal(
    reason(() => signNote('no newline', [parseSignerKey(g.skey)])),
    'malformed',
  );
});

void test('unknown signatures are ignored when a known key signed', () => {
  const a = parseSignerKey(generateSignerKey('log.example/a').skey);
  const b = parseSignerKey(generateSignerKey('witness.example/b').skey);
  const note = signNote('hello\nworld\n', [a, b]);
  const opened = openNote(note, [parseVerifierKey(a.verifierKey)]);
  assert.equal(opened.signatures.length, 1);
  assert.equal(opened.unverified.length, 1);
  assert.equal(opened.unverified[0]!.name, 'log.example/b'.replace('log', 'witness'));
  // A different key under the same name and a bad key id are unknown, so unverified.
  const c = parseSignerKey(generateSignerKey('log.example/a').skey);
  assert.equal(
    reason(() => openNote(note, [parseVerifierKey(c.verifierKey)])),
    'unverified',
  );
});

void test('keys: malformed, mismatched and low-order verifier keys are refused', () => {
  const g = V.goSumdbSign;
  const parts = g.vkey.split('+');
  assert.equal(
    reason(() => parseVerifierKey(`${parts[0]}+00000000+${parts[2]}`)),
    'bad-key',
  );
  assert.equal(
    reason(() => parseVerifierKey(`Other+${parts[1]}+${parts[2]}`)),
    'bad-key',
  );
  assert.equal(
    reason(() => parseVerifierKey(`${parts[0]}+${parts[1]}`)),
    'bad-key',
  );
  assert.equal(
    reason(() => parseSignerKey(g.vkey)),
    'bad-key',
  );
  // An all-zero public key has low order: refused even with a correct key id.
  const zero = new Uint8Array(32);
  const id = computeKeyId('zero', 1, zero).toString(16).padStart(8, '0');
  const vk = `zero+${id}+${Buffer.concat([Buffer.of(1), zero]).toString('base64')}`;
  assert.equal(
    reason(() => parseVerifierKey(vk)),
    'bad-key',
  );
});

void test('property: signed notes round-trip and any byte flip in the text breaks them', () => {
  const signer: NoteSigner = parseSignerKey(generateSignerKey('prop').skey);
  const v = parseVerifierKey((signer as ReturnType<typeof parseSignerKey>).verifierKey);
  fc.assert(
    fc.property(
      fc.array(fc.stringMatching(/^[a-z0-9 ./+=-]{1,20}$/), { minLength: 1, maxLength: 5 }),
      fc.nat(),
      (lines, pos) => {
        const text = lines.join('\n') + '\n';
        const note = signNote(text, [signer]);
        assert.equal(openNote(note, [v]).text, text);
        const bad = Buffer.from(note);
        const i = pos % (text.length - 1);
        bad[i] = bad[i] === 0x61 ? 0x62 : 0x61;
        assert.notEqual(
          reason(() => openNote(bad, [v])),
          'ok',
        );
      },
    ),
    { numRuns: 50 },
  );
});
