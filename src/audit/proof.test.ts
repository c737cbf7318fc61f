// Tests for the C2SP tlog-proof format: exact text, strict parsing, and offline verification (property-based).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MerkleTree, leafHash } from './merkle.js';
import { signCheckpoint } from './checkpoint.js';
import { generateSignerKey, parseSignerKey, parseVerifierKey } from './note.js';
import { TlogProofError, formatTlogProof, parseTlogProof, verifyTlogProof } from './proof.js';

const ORIGIN = 'proof.test/log';
const k = generateSignerKey(ORIGIN);
const signer = parseSignerKey(k.skey);
const trust = { origin: ORIGIN, verifiers: [parseVerifierKey(k.vkey)] };

void test('format: header, optional extra, index, hashes, blank line, checkpoint verbatim', () => {
  const cp = signCheckpoint({ origin: ORIGIN, size: 1, root: leafHash(Buffer.from('x')) }, [signer]);
  const text = Buffer.from(
    formatTlogProof({ index: 0, proof: [], checkpoint: cp, extra: Buffer.from('hi') }),
  ).toString();
  assert.equal(text, `c2sp.org/tlog-proof@v1\nextra aGk=\nindex 0\n\n${Buffer.from(cp).toString()}`);
  assert.deepEqual(parseTlogProof(Buffer.from(text)).extra, Buffer.from('hi'));
  for (const bad of [
    text.replace('c2sp.org/tlog-proof@v1', 'c2sp.org/tlog-proof@v2'),
    text.replace('index 0', 'index 00'),
    text.replace('index 0\n', 'index 0\nnot-base64\n'),
    text.replace('extra aGk=', 'extra aGk'),
  ]) {
    assert.throws(() => parseTlogProof(Buffer.from(bad)), TlogProofError);
  }
});

void test('property: every entry of every tree proves against its checkpoint, and no other entry does', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 70 }), fc.nat(), fc.nat(), (size, a, b) => {
      const t = new MerkleTree();
      const entries = Array.from({ length: size }, (_, i) => Buffer.from(`entry-${i}`));
      entries.forEach((e) => t.append(leafHash(e)));
      const index = a % size;
      const cp = signCheckpoint({ origin: ORIGIN, size, root: t.root() }, [signer]);
      const proof = parseTlogProof(
        formatTlogProof({ index, proof: t.inclusionProof(index), checkpoint: cp }),
      );
      assert.equal(verifyTlogProof(proof, entries[index]!, trust).size, size);
      const other = b % size;
      if (other !== index)
        assert.throws(() => verifyTlogProof(proof, entries[other]!, trust), TlogProofError);
    }),
    { numRuns: 60 },
  );
});
