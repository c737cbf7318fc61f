// A tlog-witness-style cosigner: cosigns a log checkpoint only when a consistency proof shows it extends the last one it cosigned.
// @see https://c2sp.org/tlog-witness (add-checkpoint semantics) and https://c2sp.org/tlog-cosignature (Ed25519 cosignature/v1)
import type { KeyObject } from 'node:crypto';
import {
  ed25519Sign,
  ed25519Verify,
  generateSeed,
  privateKeyFromSeed,
  publicKeyFromRaw,
  rawPublicKey,
} from './ed25519.js';
import { computeKeyId, decodeBase64Strict, isValidKeyName, openNote } from './note.js';
import type { NoteSignature, NoteVerifier } from './note.js';
import { parseCheckpoint } from './checkpoint.js';
import { verifyConsistency } from './merkle.js';

/** Signature type byte of Ed25519 cosignature/v1 keys (tlog-cosignature). */
export const ALG_COSIGNATURE_V1 = 0x04;

export type WitnessErrorReason =
  | 'unknown-log' // no trusted key for the checkpoint's origin (tlog-witness: 404)
  | 'bad-signature' // the log's signature does not verify (403)
  | 'conflict' // old size is not the size this witness last cosigned (409; latestSize says which)
  | 'bad-request' // malformed request, or the checkpoint is smaller than the old size (400)
  | 'inconsistent'; // the consistency proof does not show the new tree extends the old one (422)

export class WitnessError extends Error {
  readonly code = 'AUDIT_WITNESS_REFUSED';
  constructor(
    readonly reason: WitnessErrorReason,
    message: string,
    /** For 'conflict': the size the witness last cosigned, so the log can send a proof from there. */
    readonly latestSize?: number,
  ) {
    super(message);
    this.name = 'WitnessError';
  }
}

export interface WitnessedTree {
  readonly size: number;
  readonly root: Uint8Array;
}

/** Where a witness keeps, per origin, the tree it last cosigned. A durable implementation must write before returning. */
export interface WitnessStateStore {
  get(origin: string): Promise<WitnessedTree | undefined> | WitnessedTree | undefined;
  set(origin: string, tree: WitnessedTree): Promise<void> | void;
}

export class MemoryWitnessState implements WitnessStateStore {
  private readonly m = new Map<string, WitnessedTree>();
  get(origin: string): WitnessedTree | undefined {
    return this.m.get(origin);
  }
  set(origin: string, tree: WitnessedTree): void {
    this.m.set(origin, tree);
  }
}

/** The message an Ed25519 cosignature/v1 signs: header, time line, then the checkpoint body. */
export function cosignedMessage(body: string, timestamp: number): Uint8Array {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${body}`, 'utf8');
}

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/** Generates a cosigner key; `skey` (a secret) is `PRIVATE+KEY+name+id+base64(0x04 || seed)`. */
export function generateWitnessKey(name: string): { skey: string; vkey: string } {
  const seed = generateSeed();
  const pub = rawPublicKey(privateKeyFromSeed(seed));
  const id = hex8(computeKeyId(name, ALG_COSIGNATURE_V1, pub));
  return {
    skey: `PRIVATE+KEY+${name}+${id}+${Buffer.concat([Buffer.of(ALG_COSIGNATURE_V1), seed]).toString('base64')}`,
    vkey: `${name}+${id}+${Buffer.concat([Buffer.of(ALG_COSIGNATURE_V1), pub]).toString('base64')}`,
  };
}

function splitKey(s: string): { name: string; keyId: number; material: Uint8Array } {
  const a = s.indexOf('+');
  const b = a < 0 ? -1 : s.indexOf('+', a + 1);
  if (b < 0) throw new WitnessError('bad-request', 'malformed cosigner key');
  const name = s.slice(0, a);
  const raw = decodeBase64Strict(s.slice(b + 1));
  if (
    !isValidKeyName(name) ||
    !/^[0-9a-f]{8}$/.test(s.slice(a + 1, b)) ||
    raw?.[0] !== ALG_COSIGNATURE_V1 ||
    raw.length !== 33
  ) {
    throw new WitnessError('bad-request', 'malformed or non-cosignature/v1 key');
  }
  return { name, keyId: parseInt(s.slice(a + 1, b), 16), material: raw.subarray(1) };
}

/** A note verifier for a cosigner's cosignature/v1 signatures (for `openNote`, alongside the log's verifier). */
export function cosignatureVerifier(vkey: string): NoteVerifier & { readonly publicKey: Uint8Array } {
  const { name, keyId, material } = splitKey(vkey);
  if (computeKeyId(name, ALG_COSIGNATURE_V1, material) !== keyId)
    throw new WitnessError('bad-request', 'cosigner key id does not match its key');
  const pub = publicKeyFromRaw(material);
  return {
    name,
    keyId,
    publicKey: Uint8Array.from(material),
    verify(text, sig) {
      if (sig.length !== 8 + 64) return false;
      const ts = Buffer.from(sig).readBigUInt64BE(0);
      if (ts > BigInt(Number.MAX_SAFE_INTEGER)) return false;
      return ed25519Verify(
        pub,
        cosignedMessage(Buffer.from(text).toString('utf8'), Number(ts)),
        sig.subarray(8),
      );
    },
  };
}

export interface AddCheckpointRequest {
  /** The size of the tree the log believes this witness last cosigned (0 the first time). */
  readonly oldSize: number;
  /** Consistency proof from `oldSize` to the checkpoint's size (empty when oldSize is 0 or equal). */
  readonly proof: readonly Uint8Array[];
  /** The log's signed checkpoint note. */
  readonly checkpoint: Uint8Array;
}

export interface WitnessOptions {
  /** The cosigner's key (`PRIVATE+KEY+...` from generateWitnessKey). Secret: never logged. */
  readonly skey: string;
  /** Trusted log keys by origin. */
  readonly logs: ReadonlyMap<string, readonly NoteVerifier[]>;
  readonly state?: WitnessStateStore;
  readonly now?: () => Date;
}

export class Witness {
  readonly name: string;
  readonly keyId: number;
  readonly verifierKey: string;
  private readonly key: KeyObject;
  private readonly state: WitnessStateStore;
  private readonly now: () => Date;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: WitnessOptions) {
    if (!opts.skey.startsWith('PRIVATE+KEY+'))
      throw new WitnessError('bad-request', 'malformed cosigner signer key');
    const { name, keyId, material } = splitKey(opts.skey.slice('PRIVATE+KEY+'.length));
    this.key = privateKeyFromSeed(material);
    const pub = rawPublicKey(this.key);
    if (computeKeyId(name, ALG_COSIGNATURE_V1, pub) !== keyId)
      throw new WitnessError('bad-request', 'cosigner key id does not match its key');
    this.name = name;
    this.keyId = keyId;
    this.verifierKey = `${name}+${hex8(keyId)}+${Buffer.concat([Buffer.of(ALG_COSIGNATURE_V1), pub]).toString('base64')}`;
    this.state = opts.state ?? new MemoryWitnessState();
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * tlog-witness add-checkpoint: verifies the log's signature, that `oldSize` is what this witness last cosigned,
   * and the consistency proof; then records the new tree and returns the cosignature line to append to the note.
   * INVARIANT: the recorded tree only moves forward along one consistent history: a fork (other root for a
   * size, or a tree that does not extend the recorded one) or a truncation (a smaller size) is refused.
   */
  addCheckpoint(req: AddCheckpointRequest): Promise<NoteSignature> {
    const p = this.chain.then(() => this.add(req));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async add(req: AddCheckpointRequest): Promise<NoteSignature> {
    if (!Number.isSafeInteger(req.oldSize) || req.oldSize < 0)
      throw new WitnessError('bad-request', 'old size is invalid');
    let text: string;
    let origin: string;
    try {
      const head = Buffer.from(req.checkpoint).toString('utf8');
      origin = head.slice(0, Math.max(0, head.indexOf('\n')));
    } catch {
      throw new WitnessError('bad-request', 'checkpoint is malformed');
    }
    const verifiers = this.opts.logs.get(origin);
    if (verifiers === undefined) throw new WitnessError('unknown-log', `unknown log "${origin}"`);
    try {
      text = openNote(req.checkpoint, verifiers).text;
    } catch (e) {
      throw new WitnessError('bad-signature', `the log's signature does not verify: ${(e as Error).message}`);
    }
    let cp;
    try {
      cp = parseCheckpoint(text);
    } catch (e) {
      throw new WitnessError('bad-request', (e as Error).message);
    }
    if (cp.origin !== origin) throw new WitnessError('bad-request', 'origin mismatch');
    const last = await this.state.get(origin);
    const lastSize = last?.size ?? 0;
    if (req.oldSize !== lastSize) {
      throw new WitnessError(
        'conflict',
        `old size ${req.oldSize} is not the last cosigned size ${lastSize}`,
        lastSize,
      );
    }
    if (cp.size < req.oldSize) {
      throw new WitnessError(
        'bad-request',
        `checkpoint size ${cp.size} is smaller than the cosigned size ${req.oldSize} (truncation)`,
      );
    }
    if (last !== undefined && last.size > 0) {
      try {
        verifyConsistency(last.size, cp.size, req.proof, last.root, cp.root);
      } catch (e) {
        throw new WitnessError(
          'inconsistent',
          `checkpoint does not extend the cosigned tree: ${(e as Error).message}`,
        );
      }
    } else if (req.proof.length !== 0) {
      throw new WitnessError('bad-request', 'a proof from the empty tree must be empty');
    }
    await this.state.set(origin, { size: cp.size, root: Uint8Array.from(cp.root) });
    const ts = Math.floor(this.now().getTime() / 1000);
    const sig = Buffer.alloc(8 + 64);
    sig.writeBigUInt64BE(BigInt(ts), 0);
    Buffer.from(ed25519Sign(this.key, cosignedMessage(text, ts))).copy(sig, 8);
    return { name: this.name, keyId: this.keyId, signature: sig };
  }
}
