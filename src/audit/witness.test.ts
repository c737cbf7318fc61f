// Tests for the witness cosigner: cosigns consistent growth only; refuses forks, truncations, stale sizes and bad signatures.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MerkleTree, leafHash } from './merkle.js';
import { signCheckpoint } from './checkpoint.js';
import { addSignatures, generateSignerKey, openNote, parseSignerKey, parseVerifierKey } from './note.js';
import { Witness, WitnessError, cosignatureVerifier, generateWitnessKey } from './witness.js';

const ORIGIN = 'witness.test/log';
const logKey = generateSignerKey(ORIGIN);
const signer = parseSignerKey(logKey.skey);
const logVerifier = parseVerifierKey(logKey.vkey);

function tree(prefix: string, n: number): MerkleTree {
  const t = new MerkleTree();
  for (let i = 0; i < n; i++) t.append(leafHash(Buffer.from(`${prefix}-${i}`)));
  return t;
}
const note = (t: MerkleTree, size = t.size): Uint8Array =>
  signCheckpoint({ origin: ORIGIN, size, root: t.root(size) }, [signer]);

function newWitness(): Witness {
  return new Witness({
    skey: generateWitnessKey('witness.example/w1').skey,
    logs: new Map([[ORIGIN, [logVerifier]]]),
    now: () => new Date('2024-03-20T12:00:00Z'),
  });
}

const refused = (reason: string) => (e: unknown) => e instanceof WitnessError && e.reason === reason;

describe('Witness', () => {
  it('cosigns the first checkpoint and then consistent growth; cosignatures verify as cosignature/v1', async () => {
    const w = newWitness();
    const t = tree('a', 13);
    const n1 = note(t, 5);
    const c1 = await w.addCheckpoint({ oldSize: 0, proof: [], checkpoint: n1 });
    const cosigned = addSignatures(n1, [c1]);
    const cv = cosignatureVerifier(w.verifierKey);
    const opened = openNote(cosigned, [logVerifier, cv]);
    assert.deepEqual(
      opened.signatures.map((s) => s.name),
      [ORIGIN, 'witness.example/w1'],
    );
    assert.equal(
      Buffer.from(c1.signature).readBigUInt64BE(0),
      1710936000n,
      'the timestamp is the POSIX time',
    );
    const c2 = await w.addCheckpoint({ oldSize: 5, proof: t.consistencyProof(5, 13), checkpoint: note(t) });
    assert.ok(openNote(addSignatures(note(t), [c2]), [cv]));
    // The same checkpoint again is fine (equal size, equal root, empty proof).
    await w.addCheckpoint({ oldSize: 13, proof: [], checkpoint: note(t) });
    // A tampered cosignature does not verify.
    const bad = Buffer.from(c2.signature);
    bad[20] = (bad[20] ?? 0) ^ 1;
    assert.throws(
      () => openNote(addSignatures(note(t), [{ ...c2, signature: bad }]), [cv]),
      /invalid signature/,
    );
  });

  it('refuses a fork: another root for a larger tree, or for the same size', async () => {
    const w = newWitness();
    const honest = tree('a', 8);
    await w.addCheckpoint({ oldSize: 0, proof: [], checkpoint: note(honest) });
    const fork = tree('a', 4);
    for (let i = 0; i < 8; i++) fork.append(leafHash(Buffer.from(`evil-${i}`)));
    await assert.rejects(
      w.addCheckpoint({ oldSize: 8, proof: fork.consistencyProof(8, 12), checkpoint: note(fork) }),
      refused('inconsistent'),
    );
    const sameSize = tree('b', 8);
    await assert.rejects(
      w.addCheckpoint({ oldSize: 8, proof: [], checkpoint: note(sameSize) }),
      refused('inconsistent'),
    );
    // The honest log can still extend: the refused checkpoints changed nothing.
    const more = tree('a', 10);
    await w.addCheckpoint({ oldSize: 8, proof: more.consistencyProof(8, 10), checkpoint: note(more) });
  });

  it('refuses a truncation and a stale old size (with the size it last cosigned)', async () => {
    const w = newWitness();
    const t = tree('a', 10);
    await w.addCheckpoint({ oldSize: 0, proof: [], checkpoint: note(t) });
    await assert.rejects(
      w.addCheckpoint({ oldSize: 10, proof: [], checkpoint: note(t, 6) }),
      refused('bad-request'),
    );
    await assert.rejects(
      w.addCheckpoint({ oldSize: 6, proof: [], checkpoint: note(t, 6) }),
      (e: unknown) => e instanceof WitnessError && e.reason === 'conflict' && e.latestSize === 10,
    );
    await assert.rejects(
      w.addCheckpoint({ oldSize: 0, proof: [], checkpoint: note(tree('a', 12)) }),
      refused('conflict'),
    );
  });

  it('refuses unknown logs and checkpoints not signed by the log key', async () => {
    const w = newWitness();
    const other = parseSignerKey(generateSignerKey(ORIGIN).skey);
    const t = tree('a', 3);
    const forged = signCheckpoint({ origin: ORIGIN, size: 3, root: t.root() }, [other]);
    await assert.rejects(
      w.addCheckpoint({ oldSize: 0, proof: [], checkpoint: forged }),
      refused('bad-signature'),
    );
    const elsewhere = parseSignerKey(generateSignerKey('other.log/x').skey);
    const unknown = signCheckpoint({ origin: 'other.log/x', size: 3, root: t.root() }, [elsewhere]);
    await assert.rejects(
      w.addCheckpoint({ oldSize: 0, proof: [], checkpoint: unknown }),
      refused('unknown-log'),
    );
  });
});
