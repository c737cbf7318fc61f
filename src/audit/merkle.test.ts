// Tests for the RFC 6962/9162 Merkle tree: every transparency-dev vector, roots.json, and property tests against a naive reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  CompactRange,
  EMPTY_ROOT,
  MerkleTree,
  ProofError,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';

const VECTORS = join(import.meta.dirname, '../../test/fixtures/vectors/merkle');

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (name.endsWith('.json')) out.push(p);
  }
  return out.sort();
}

/** Parses a vector, keeping integers beyond 2^53 exact (as strings) so they are not silently rounded. */
function loadVector(path: string): Record<string, unknown> {
  const text = readFileSync(path, 'utf8').replace(/:\s*(\d{16,})/g, ': "$1"');
  return JSON.parse(text) as Record<string, unknown>;
}

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  const b = BigInt(v as string);
  // Beyond 2^53: pass a non-safe number, which the verifiers must refuse.
  return b > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER + 2 : Number(b);
}
const b64 = (s: unknown): Uint8Array => Buffer.from(s as string, 'base64');
const proofOf = (p: unknown): Uint8Array[] => ((p as string[] | null) ?? []).map(b64);

function outcome(f: () => void): 'ok' | 'err' {
  try {
    f();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof ProofError, `unexpected error type: ${String(e)}`);
    return 'err';
  }
}

// The one vector whose expectation we deliberately invert: 12-byte roots are refused by our strict
// hash-length check (see the INVARIANT in merkle.ts and test/fixtures/vectors/README.md).
const STRICT_LENGTH_OVERRIDE = 'consistency/additional/sizes-are-equal-one-and-proof-is-empty.json';

void test('every inclusion vector gives the expected result', () => {
  const list = files(join(VECTORS, 'inclusion'));
  assert.ok(list.length >= 90, `found ${list.length} inclusion vectors`);
  for (const f of list) {
    const v = loadVector(f);
    const got = outcome(() =>
      verifyInclusion(num(v.leafIdx), num(v.treeSize), b64(v.leafHash), proofOf(v.proof), b64(v.root)),
    );
    assert.equal(got, v.wantErr === true ? 'err' : 'ok', f);
  }
});

void test('every consistency vector gives the expected result (one documented override)', () => {
  const list = files(join(VECTORS, 'consistency'));
  assert.ok(list.length >= 90, `found ${list.length} consistency vectors`);
  let overridden = 0;
  for (const f of list) {
    const v = loadVector(f);
    const got = outcome(() =>
      verifyConsistency(num(v.size1), num(v.size2), proofOf(v.proof), b64(v.root1), b64(v.root2)),
    );
    let want: 'ok' | 'err' = v.wantErr === true ? 'err' : 'ok';
    if (f.endsWith(STRICT_LENGTH_OVERRIDE)) {
      assert.equal(want, 'ok');
      want = 'err';
      overridden++;
    }
    assert.equal(got, want, f);
  }
  assert.equal(overridden, 1);
});

void test('strict hash length: 12-byte equal roots are refused, the same case with 32-byte roots passes', () => {
  const short = Buffer.from('ZG9uJ3QgY2FyZSAy', 'base64');
  assert.equal(short.length, 12);
  assert.throws(() => verifyConsistency(1, 1, [], short, short), ProofError);
  const h = leafHash(Buffer.from('x'));
  verifyConsistency(1, 1, [], h, h);
});

void test('roots.json: tree hash of the first N leaves, incrementally and naively', () => {
  const v = JSON.parse(readFileSync(join(VECTORS, 'roots.json'), 'utf8')) as {
    leafInputsHex: string[];
    roots: Record<string, string>;
  };
  const hashes = v.leafInputsHex.map((h) => leafHash(Buffer.from(h, 'hex')));
  const range = new CompactRange();
  const tree = new MerkleTree();
  for (let n = 0; n <= hashes.length; n++) {
    const want = v.roots[String(n)];
    assert.ok(want !== undefined);
    assert.equal(Buffer.from(rootFromLeafHashes(hashes.slice(0, n))).toString('hex'), want, `naive ${n}`);
    assert.equal(Buffer.from(range.root()).toString('hex'), want, `compact ${n}`);
    assert.equal(Buffer.from(tree.root()).toString('hex'), want, `tree ${n}`);
    if (n < hashes.length) {
      range.append(hashes[n]!);
      tree.append(hashes[n]!);
    }
  }
  assert.deepEqual(Buffer.from(EMPTY_ROOT), createHash('sha256').digest());
});

/** The reference: RFC 6962 MTH computed by plain recursion with createHash, independent of merkle.ts. */
function refRoot(leaves: Uint8Array[]): Buffer {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1) return createHash('sha256').update(Buffer.of(0)).update(leaves[0]!).digest();
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return createHash('sha256')
    .update(Buffer.of(1))
    .update(refRoot(leaves.slice(0, k)))
    .update(refRoot(leaves.slice(k)))
    .digest();
}

// Leaves are made distinct (index prefix) so that "wrong index" mutations cannot legitimately verify.
const arbLeaves = fc
  .array(fc.uint8Array({ maxLength: 8 }), { minLength: 1, maxLength: 70 })
  .map((ls) => ls.map((l, i) => Uint8Array.from([i, ...l])));

void test('property: tree root equals the reference root', () => {
  fc.assert(
    fc.property(arbLeaves, (leaves) => {
      const tree = new MerkleTree();
      for (const l of leaves) tree.append(leafHash(l));
      assert.deepEqual(Buffer.from(tree.root()), refRoot(leaves));
    }),
  );
});

void test('property: inclusion proofs verify against the reference root; mutations fail', () => {
  fc.assert(
    fc.property(arbLeaves, fc.nat(), fc.nat(), fc.nat(), (leaves, a, b, bit) => {
      const tree = new MerkleTree();
      for (const l of leaves) tree.append(leafHash(l));
      const size = 1 + (a % leaves.length);
      const index = b % size;
      const root = refRoot(leaves.slice(0, size));
      const proof = tree.inclusionProof(index, size);
      assert.deepEqual(proof, inclusionProof(index, size, leaves.map(leafHash)));
      verifyInclusion(index, size, leafHash(leaves[index]!), proof, root);
      // Mutations: flip one bit of one component, drop one, add one, wrong index, wrong size.
      if (proof.length > 0) {
        const m = proof.map((p) => Uint8Array.from(p));
        const c = m[bit % m.length]!;
        c[(bit >> 3) % 32]! ^= 1 << (bit % 8);
        assert.throws(() => verifyInclusion(index, size, leafHash(leaves[index]!), m, root), ProofError);
        assert.throws(
          () => verifyInclusion(index, size, leafHash(leaves[index]!), proof.slice(1), root),
          ProofError,
        );
      }
      assert.throws(
        () => verifyInclusion(index, size, leafHash(leaves[index]!), [...proof, root], root),
        ProofError,
      );
      const other = leafHash(Buffer.concat([leaves[index]!, Buffer.of(1)]));
      assert.throws(() => verifyInclusion(index, size, other, proof, root), ProofError);
      if (size > 1) {
        assert.throws(
          () => verifyInclusion((index + 1) % size, size, leafHash(leaves[index]!), proof, root),
          ProofError,
        );
      }
    }),
  );
});

void test('property: consistency proofs verify against reference roots; mutations fail', () => {
  fc.assert(
    fc.property(arbLeaves, fc.nat(), fc.nat(), fc.nat(), (leaves, a, b, bit) => {
      const tree = new MerkleTree();
      for (const l of leaves) tree.append(leafHash(l));
      const size2 = 1 + (a % leaves.length);
      const size1 = 1 + (b % size2);
      const root1 = refRoot(leaves.slice(0, size1));
      const root2 = refRoot(leaves.slice(0, size2));
      const proof = tree.consistencyProof(size1, size2);
      assert.deepEqual(proof, consistencyProof(size1, size2, leaves.map(leafHash)));
      verifyConsistency(size1, size2, proof, root1, root2);
      if (proof.length > 0) {
        const m = proof.map((p) => Uint8Array.from(p));
        const c = m[bit % m.length]!;
        c[(bit >> 3) % 32]! ^= 1 << (bit % 8);
        assert.throws(() => verifyConsistency(size1, size2, m, root1, root2), ProofError);
        assert.throws(() => verifyConsistency(size1, size2, proof.slice(0, -1), root1, root2), ProofError);
        assert.throws(() => verifyConsistency(size1, size2, proof, root2, root1), ProofError);
      }
      assert.throws(() => verifyConsistency(size1, size2, [...proof, root1], root1, root2), ProofError);
    }),
  );
});

void test('large tree: cached subtrees give the same proofs as the naive path, and append is incremental', () => {
  const n = 5000;
  const hashes: Uint8Array[] = [];
  const tree = new MerkleTree();
  for (let i = 0; i < n; i++) {
    const h = leafHash(Buffer.from(`entry ${i}`));
    hashes.push(h);
    tree.append(h);
  }
  assert.deepEqual(tree.root(), rootFromLeafHashes(hashes));
  for (const [i, s] of [
    [0, n],
    [4095, n],
    [4999, n],
    [17, 1000],
    [2047, 2048],
  ] as const) {
    const p = tree.inclusionProof(i, s);
    assert.deepEqual(p, inclusionProof(i, s, hashes));
    verifyInclusion(i, s, hashes[i]!, p, rootFromLeafHashes(hashes.slice(0, s)));
  }
  for (const [a, b] of [
    [1, n],
    [1024, n],
    [3000, 4999],
    [4096, n],
  ] as const) {
    const p = tree.consistencyProof(a, b);
    assert.deepEqual(p, consistencyProof(a, b, hashes));
    verifyConsistency(a, b, p, tree.root(a), tree.root(b));
  }
});

void test('node hash refuses inputs that are not 32 bytes; proofs refuse bad ranges', () => {
  const h = leafHash(Buffer.of());
  assert.throws(() => nodeHash(h, h.subarray(1)), ProofError);
  assert.throws(() => inclusionProof(3, 3, [h, h, h]), ProofError);
  assert.throws(() => consistencyProof(0, 3, [h, h, h]), ProofError);
  assert.throws(() => consistencyProof(2, 4, [h, h, h]), ProofError);
  assert.deepEqual(consistencyProof(3, 3, [h, h, h]), []);
});
