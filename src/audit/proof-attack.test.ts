// Attack tests on the offline proof form (C2SP tlog-proof): every tampered field of a real proof is refused, each for its own reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MerkleTree, leafHash } from './merkle.js';
import { CheckpointError, signCheckpoint } from './checkpoint.js';
import { NoteError, generateSignerKey, parseSignerKey, parseVerifierKey } from './note.js';
import { TlogProofError, formatTlogProof, parseTlogProof, verifyTlogProof } from './proof.js';

const ORIGIN = 'proof-attack.test/log';
const k = generateSignerKey(ORIGIN);
const signer = parseSignerKey(k.skey);
const trust = { origin: ORIGIN, verifiers: [parseVerifierKey(k.vkey)] };

const SIZE = 37;
const INDEX = 21;
const entries = Array.from({ length: SIZE }, (_, i) => Buffer.from(`{"entry":${i}}`));
const tree = new MerkleTree();
for (const e of entries) tree.append(leafHash(e));
const checkpoint = signCheckpoint({ origin: ORIGIN, size: SIZE, root: tree.root() }, [signer]);
const good = Buffer.from(
  formatTlogProof({ index: INDEX, proof: tree.inclusionProof(INDEX), checkpoint }),
).toString('utf8');

/** Parses and verifies a (tampered) proof text for entry INDEX. */
const check = (text: string, entry: Uint8Array = entries[INDEX]!): unknown =>
  verifyTlogProof(parseTlogProof(Buffer.from(text, 'utf8')), entry, trust);

const lines = good.split('\n');
const hashLine = lines.findIndex((l, i) => i > 1 && l.length === 44);
const flipB64 = (b64: string): string => {
  const b = Buffer.from(b64, 'base64');
  b[5]! ^= 0x20;
  return b.toString('base64');
};

void test('the untouched proof verifies (the baseline the attacks start from)', () => {
  assert.equal((check(good) as { size: number }).size, SIZE);
});

void test('attack: another index, with the same path, is not proven', () => {
  for (const i of [INDEX - 1, INDEX + 1, 0, SIZE - 1]) {
    assert.throws(
      () => check(good.replace(`index ${INDEX}\n`, `index ${i}\n`)),
      (e: unknown) => e instanceof TlogProofError && /is not proven/.test(e.message),
    );
  }
  assert.throws(
    () => check(good.replace(`index ${INDEX}\n`, `index ${SIZE}\n`)),
    (e: unknown) => e instanceof TlogProofError && /not below size/.test(e.message),
  );
});

void test('attack: a flipped, dropped, added or reordered path hash is refused', () => {
  const variants = [
    lines.map((l, i) => (i === hashLine ? flipB64(l) : l)),
    lines.filter((_l, i) => i !== hashLine),
    [...lines.slice(0, hashLine), lines[hashLine]!, ...lines.slice(hashLine)],
    [...lines.slice(0, hashLine), lines[hashLine + 1]!, lines[hashLine]!, ...lines.slice(hashLine + 2)],
  ];
  for (const v of variants) {
    assert.throws(
      () => check(v.join('\n')),
      (e: unknown) => e instanceof TlogProofError && /is not proven/.test(e.message),
    );
  }
});

void test('attack: a path hash that is not 32 bytes, or not canonical base64, is refused by the parser', () => {
  const short = lines.map((l, i) => (i === hashLine ? Buffer.alloc(31).toString('base64') : l));
  const loose = lines.map((l, i) => (i === hashLine ? l.slice(0, -1) : l));
  for (const v of [short, loose]) {
    assert.throws(
      () => check(v.join('\n')),
      (e: unknown) => e instanceof TlogProofError && /is not base64 of 32 bytes/.test(e.message),
    );
  }
});

void test('attack: an edited checkpoint size or root breaks the log signature', () => {
  const root = Buffer.from(tree.root()).toString('base64');
  for (const t of [
    good.replace(`${ORIGIN}\n${SIZE}\n`, `${ORIGIN}\n${SIZE + 1}\n`),
    good.replace(`\n${root}\n`, `\n${flipB64(root)}\n`),
  ]) {
    assert.throws(
      () => check(t),
      (e: unknown) => e instanceof NoteError && e.reason === 'invalid-signature',
    );
  }
});

void test('attack: a checkpoint re-signed by an unknown key, or of another origin, is refused', () => {
  const forger = parseSignerKey(generateSignerKey(ORIGIN).skey);
  const forged = signCheckpoint({ origin: ORIGIN, size: SIZE, root: tree.root() }, [forger]);
  const sep = good.indexOf('\n\n') + 2;
  assert.throws(
    () => check(good.slice(0, sep) + Buffer.from(forged).toString('utf8')),
    (e: unknown) => e instanceof NoteError && e.reason === 'unverified',
  );
  const evil = parseSignerKey(generateSignerKey('evil.example/log').skey);
  const other = signCheckpoint({ origin: 'evil.example/log', size: SIZE, root: tree.root() }, [evil, signer]);
  assert.throws(
    () =>
      verifyTlogProof(
        parseTlogProof(Buffer.from(good.slice(0, sep) + Buffer.from(other).toString())),
        entries[INDEX]!,
        trust,
      ),
    (e: unknown) => e instanceof CheckpointError && /origin "evil\.example\/log" is not/.test(e.message),
  );
});

void test('attack: the proof of one entry does not prove an edited entry', () => {
  const edited = Buffer.from(entries[INDEX]!);
  edited[3]! ^= 1;
  assert.throws(
    () => check(good, edited),
    (e: unknown) => e instanceof TlogProofError && /is not proven/.test(e.message),
  );
});

void test('the header and blank line are required', () => {
  for (const t of [good.replace('c2sp.org/tlog-proof@v1\n', ''), good.replace('\n\n', '\n')]) {
    assert.throws(() => check(t), TlogProofError);
  }
});
