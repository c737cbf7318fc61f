// RFC 6962 / RFC 9162 Merkle tree: hashing, incremental compact range, proof generation and verification.
// @see https://www.rfc-editor.org/rfc/rfc6962#section-2.1
// @see https://www.rfc-editor.org/rfc/rfc9162#section-2.1.3 (inclusion proofs)
// @see https://www.rfc-editor.org/rfc/rfc9162#section-2.1.4 (consistency proofs)
import { hash } from 'node:crypto';
import { recordArray, type RecordArray, type RecordStorage } from './record-array.js';

export const HASH_SIZE = 32;

/** SHA-256 of the empty string: the root of the empty tree (RFC 6962 §2.1). */
export const EMPTY_ROOT: Uint8Array = hash('sha256', new Uint8Array(0), 'buffer');

/** A proof or input that failed verification. Callers test `code`. */
export class ProofError extends Error {
  readonly code = 'AUDIT_PROOF_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ProofError';
  }
}

/** Leaf hash: SHA-256(0x00 || entry). */
export function leafHash(entry: Uint8Array): Uint8Array {
  const buf = Buffer.allocUnsafe(entry.length + 1);
  buf[0] = 0x00;
  buf.set(entry, 1);
  return hash('sha256', buf, 'buffer');
}

const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE);
/** Interior node hash: SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE)
    throw new ProofError('node hash input is not 32 bytes');
  nodeScratch[0] = 0x01;
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return hash('sha256', nodeScratch, 'buffer');
}

function assertSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ProofError(`${what} is not a non-negative safe integer`);
}

/** Largest power of two strictly less than n (n >= 2). Arithmetic, not bit ops: sizes may exceed 2^32. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

/**
 * Incremental Merkle frontier (compact range [0, size)): the roots of the perfect subtrees that make
 * up the tree, largest first. Appending is amortised O(1) hashes, the root O(log n).
 * INVARIANT: hashes[i] is the root of a perfect subtree whose size is the i-th set bit of `size`, from the top.
 */
export class CompactRange {
  private readonly stack: Uint8Array[] = [];
  private n = 0;
  private cachedRoot: Uint8Array | undefined = EMPTY_ROOT;

  get size(): number {
    return this.n;
  }

  /**
   * Appends one leaf hash. `onNode(level, index, hash)` is told of each perfect subtree completed at
   * level >= 1 (size 2^level, covering leaves [index * 2^level, (index + 1) * 2^level)).
   */
  append(leaf: Uint8Array, onNode?: (level: number, index: number, hash: Uint8Array) => void): void {
    if (leaf.length !== HASH_SIZE) throw new ProofError('leaf hash is not 32 bytes');
    let h = leaf;
    let m = this.n;
    let level = 0;
    let index = this.n;
    while (m % 2 === 1) {
      const left = this.stack.pop();
      if (left === undefined) throw new Error('compact range stack underflow');
      h = nodeHash(left, h);
      m = Math.floor(m / 2);
      level++;
      index = Math.floor(index / 2);
      onNode?.(level, index, h);
    }
    this.stack.push(h);
    this.n++;
    this.cachedRoot = undefined;
  }

  /** Root of the tree of all leaves appended so far. */
  root(): Uint8Array {
    if (this.cachedRoot !== undefined) return this.cachedRoot;
    let acc: Uint8Array | undefined;
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const h = this.stack[i]!;
      acc = acc === undefined ? h : nodeHash(h, acc);
    }
    this.cachedRoot = acc ?? EMPTY_ROOT;
    return this.cachedRoot;
  }
}

/** Where proof generation reads hashes from. */
export interface HashSource {
  readonly size: number;
  leafHash(index: number): Uint8Array;
  /** Optional cache: root of the perfect subtree of 2^level leaves at position `index`, if known. */
  perfectSubtree?(level: number, index: number): Uint8Array | undefined;
}

function arraySource(hashes: readonly Uint8Array[]): HashSource {
  return {
    size: hashes.length,
    leafHash: (i) => {
      const h = hashes[i];
      if (h === undefined || h.length !== HASH_SIZE)
        throw new ProofError(`leaf hash ${i} missing or not 32 bytes`);
      return h;
    },
  };
}

function toSource(src: HashSource | readonly Uint8Array[]): HashSource {
  return Array.isArray(src) ? arraySource(src as readonly Uint8Array[]) : (src as HashSource);
}

/** MTH(D[start : start + n]) for n >= 1 (RFC 6962 §2.1), using the source's perfect-subtree cache where it can. */
function rangeHash(src: HashSource, start: number, n: number): Uint8Array {
  if (n === 1) return src.leafHash(start);
  if (src.perfectSubtree !== undefined && isPowerOfTwo(n) && start % n === 0) {
    const level = Math.log2(n);
    const cached = src.perfectSubtree(level, start / n);
    if (cached !== undefined) return cached;
  }
  const k = splitPoint(n);
  return nodeHash(rangeHash(src, start, k), rangeHash(src, start + k, n - k));
}

/** Root of the tree over the given leaf hashes (naive, O(n)). */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Uint8Array {
  return rootOf(arraySource(hashes), hashes.length);
}

/** Root of the first `size` leaves of the source. */
export function rootOf(source: HashSource | readonly Uint8Array[], size: number): Uint8Array {
  const src = toSource(source);
  assertSize(size, 'size');
  if (size > src.size) throw new ProofError(`size ${size} exceeds the tree size ${src.size}`);
  return size === 0 ? EMPTY_ROOT : rangeHash(src, 0, size);
}

function copy(h: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(h);
}

/** RFC 9162 §2.1.3.1: the inclusion proof of leaf `index` in the tree of the first `size` leaves. */
export function inclusionProof(
  index: number,
  size: number,
  source: HashSource | readonly Uint8Array[],
): Uint8Array[] {
  const src = toSource(source);
  assertSize(index, 'index');
  assertSize(size, 'size');
  if (index >= size) throw new ProofError(`index ${index} is not below size ${size}`);
  if (size > src.size) throw new ProofError(`size ${size} exceeds the tree size ${src.size}`);
  const out: Uint8Array[] = [];
  const path = (m: number, start: number, n: number): void => {
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      path(m, start, k);
      out.push(copy(rangeHash(src, start + k, n - k)));
    } else {
      path(m - k, start + k, n - k);
      out.push(copy(rangeHash(src, start, k)));
    }
  };
  path(index, 0, size);
  return out;
}

/** RFC 9162 §2.1.4.1: the consistency proof between the first `size1` and the first `size2` leaves (0 < size1 <= size2). */
export function consistencyProof(
  size1: number,
  size2: number,
  source: HashSource | readonly Uint8Array[],
): Uint8Array[] {
  const src = toSource(source);
  assertSize(size1, 'size1');
  assertSize(size2, 'size2');
  if (size1 === 0) throw new ProofError('no consistency proof from the empty tree');
  if (size1 > size2) throw new ProofError(`size1 ${size1} exceeds size2 ${size2}`);
  if (size2 > src.size) throw new ProofError(`size2 ${size2} exceeds the tree size ${src.size}`);
  const out: Uint8Array[] = [];
  const subproof = (m: number, start: number, n: number, b: boolean): void => {
    if (m === n) {
      if (!b) out.push(copy(rangeHash(src, start, n)));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      subproof(m, start, k, b);
      out.push(copy(rangeHash(src, start + k, n - k)));
    } else {
      subproof(m - k, start + k, n - k, false);
      out.push(copy(rangeHash(src, start, k)));
    }
  };
  subproof(size1, 0, size2, true);
  return out;
}

function equalHash(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

// INVARIANT: every verifier checks that each hash it is given is exactly 32 bytes before using it.
// A strict length check is the secure choice: it refuses e.g. the transparency-dev vector
// consistency/additional/sizes-are-equal-one-and-proof-is-empty.json (12-byte roots, wantErr false there),
// because a truncated or padded "hash" is never a SHA-256 output and accepting it lets malformed input pass.
function assertHash(h: Uint8Array, what: string): void {
  if (h.length !== HASH_SIZE) throw new ProofError(`${what} is ${h.length} bytes, not ${HASH_SIZE}`);
}

/**
 * RFC 9162 §2.1.3.2: verifies that `leaf` is at `index` in the tree of `size` leaves with root `root`.
 * Throws ProofError on failure.
 */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  assertSize(index, 'index');
  assertSize(size, 'size');
  assertHash(leaf, 'leaf hash');
  assertHash(root, 'root');
  proof.forEach((p, i) => assertHash(p, `proof[${i}]`));
  if (index >= size) throw new ProofError(`index ${index} is not below size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new ProofError('inclusion proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new ProofError('inclusion proof is too short');
  if (!equalHash(r, root)) throw new ProofError('inclusion proof does not lead to the root');
}

/**
 * RFC 9162 §2.1.4.2: verifies that the tree (size2, root2) extends the tree (size1, root1). Throws ProofError.
 * Edge cases: size1 > size2 fails; size1 == size2 needs an empty proof and equal roots; size1 == 0 always
 * fails (a proof from the empty tree proves nothing: callers treat "from nothing" themselves, as the
 * transparency-dev "additional" vectors require).
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  assertSize(size1, 'size1');
  assertSize(size2, 'size2');
  assertHash(root1, 'root1');
  assertHash(root2, 'root2');
  proof.forEach((p, i) => assertHash(p, `proof[${i}]`));
  if (size1 > size2) throw new ProofError(`size1 ${size1} exceeds size2 ${size2}`);
  if (size1 === 0) throw new ProofError('consistency with the empty tree is not provable');
  if (size1 === size2) {
    if (proof.length !== 0) throw new ProofError('sizes are equal but the proof is not empty');
    if (!equalHash(root1, root2)) throw new ProofError('sizes are equal but the roots differ');
    return;
  }
  if (proof.length === 0) throw new ProofError('empty consistency proof');
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) throw new ProofError('consistency proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new ProofError('consistency proof is too short');
  if (!equalHash(fr, root1)) throw new ProofError('consistency proof does not lead to root1');
  if (!equalHash(sr, root2)) throw new ProofError('consistency proof does not lead to root2');
}

/** Perfect subtrees of at least 2^CACHE_LEVEL leaves are cached, so proofs cost O(log n) lookups plus O(2^CACHE_LEVEL) hashes. */
const CACHE_LEVEL = 4;

/**
 * The tree of a log: leaf hashes (32 bytes each), a cache of large perfect subtrees and the frontier.
 * Appending is amortised O(1) hashes; root O(log n); proofs O(log n) lookups.
 * With `spill` storage the leaf and subtree hashes live in unlinked temporary files under a folder, so a
 * long-running gateway's memory does not grow with the log (the frontier is O(log n)); in memory otherwise.
 */
export class MerkleTree implements HashSource {
  private readonly leaves: RecordArray;
  private readonly levels: (RecordArray | undefined)[] = [];
  private readonly range = new CompactRange();

  constructor(private readonly storage: RecordStorage = { kind: 'memory' }) {
    this.leaves = recordArray(HASH_SIZE, storage);
  }

  /** Releases spill files; the tree must not be used afterwards. */
  close(): void {
    this.leaves.close();
    // Levels below the cache level are holes in the array.
    for (const l of this.levels) l?.close();
  }

  get size(): number {
    return this.leaves.length;
  }

  append(leaf: Uint8Array): void {
    this.range.append(leaf, (level, index, h) => {
      if (level < CACHE_LEVEL) return;
      let arr = this.levels[level];
      if (arr === undefined) {
        // Subtree levels fill 2^level times slower than the leaves: small write batches.
        arr = recordArray(HASH_SIZE, this.storage, 128);
        this.levels[level] = arr;
      }
      // INVARIANT: subtrees at one level complete in index order.
      if (arr.length !== index) throw new Error('merkle cache out of order');
      arr.push(h);
    });
    this.leaves.push(leaf);
  }

  leafHash(index: number): Uint8Array {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.leaves.length) {
      throw new ProofError(`leaf ${index} is outside the tree of size ${this.leaves.length}`);
    }
    return this.leaves.get(index);
  }

  perfectSubtree(level: number, index: number): Uint8Array | undefined {
    const arr = this.levels[level];
    return arr !== undefined && index < arr.length ? arr.get(index) : undefined;
  }

  /** Root of the whole tree (or of its first `size` leaves). */
  root(size: number = this.size): Uint8Array {
    return size === this.size ? this.range.root() : rootOf(this, size);
  }

  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    return inclusionProof(index, size, this);
  }

  consistencyProof(size1: number, size2: number = this.size): Uint8Array[] {
    return consistencyProof(size1, size2, this);
  }
}
