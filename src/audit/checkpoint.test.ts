// Tests for C2SP checkpoints: exact body format, strict parsing, signing and opening with origin and key checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CheckpointError,
  formatCheckpoint,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
} from './checkpoint.js';
import { NoteError, generateSignerKey, parseSignerKey, parseVerifierKey } from './note.js';
import { leafHash } from './merkle.js';

const root = leafHash(Buffer.from('root'));
const rootB64 = Buffer.from(root).toString('base64');

void test('format gives the exact C2SP body, and parse inverts it', () => {
  const cp = { origin: 'example.com/log', size: 42, root };
  const text = formatCheckpoint(cp);
  assert.equal(text, `example.com/log\n42\n${rootB64}\n`);
  assert.deepEqual(parseCheckpoint(text), { ...cp, root: Buffer.from(root) });
  const ext = formatCheckpoint({ ...cp, extensions: ['— not a sig', 'x'] });
  assert.deepEqual(parseCheckpoint(ext).extensions, ['— not a sig', 'x']);
});

void test('parse refuses non-canonical bodies', () => {
  const bad = [
    `o\n42\n${rootB64}`, // no final newline
    `o\n042\n${rootB64}\n`,
    `o\n-1\n${rootB64}\n`,
    `o\n+1\n${rootB64}\n`,
    `o\n1e3\n${rootB64}\n`,
    `o\n99999999999999999999\n${rootB64}\n`,
    `\n1\n${rootB64}\n`,
    `o\n1\n${rootB64.slice(0, -4)}\n`,
    `o\n1\n${Buffer.from(root).toString('base64url')}\n`.replace(/-|_/g, '-'),
    `o\n1\n${rootB64}\n\n`, // empty extension line
    `o\n1\n`,
  ];
  for (const b of bad) assert.throws(() => parseCheckpoint(b), CheckpointError, JSON.stringify(b));
});

void test('sign and open: origin, key and signature are all checked', () => {
  const { skey, vkey } = generateSignerKey('example.com/log');
  const signer = parseSignerKey(skey);
  const v = parseVerifierKey(vkey);
  const note = signCheckpoint({ origin: 'example.com/log', size: 7, root }, [signer]);
  const { checkpoint } = openCheckpoint(note, { origin: 'example.com/log', verifiers: [v] });
  assert.equal(checkpoint.size, 7);
  assert.throws(() => openCheckpoint(note, { origin: 'other.example/log', verifiers: [v] }), CheckpointError);
  const other = parseVerifierKey(generateSignerKey('example.com/log').vkey);
  assert.throws(() => openCheckpoint(note, { origin: 'example.com/log', verifiers: [other] }), NoteError);
  // A note from another origin signed with the right key is still refused.
  const foreign = signCheckpoint({ origin: 'evil.example/log', size: 7, root }, [signer]);
  assert.throws(
    () => openCheckpoint(foreign, { origin: 'example.com/log', verifiers: [v] }),
    CheckpointError,
  );
});

void test('property: format/parse round-trip', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[a-z0-9./-]{1,30}$/),
      fc.nat(),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(fc.stringMatching(/^[a-z ]{1,10}$/), { maxLength: 3 }),
      (origin, size, r, extensions) => {
        const cp = extensions.length > 0 ? { origin, size, root: r, extensions } : { origin, size, root: r };
        const back = parseCheckpoint(formatCheckpoint(cp));
        assert.deepEqual({ ...back, root: Uint8Array.from(back.root) }, cp);
      },
    ),
  );
});
