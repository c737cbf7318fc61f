// Read-only access to a PostgreSQL audit store for the command line (tail, search, export, prove, consistency): the same shape as the folder reader.
import { leafHash, MerkleTree } from './merkle.js';
import type { RecordVisitor } from './records.js';
import { AuditCorruptionError } from './store-file.js';
import { readPgCheckpoints, readPgEntries } from './store-pg.js';
import type { PgAuditTables, PgQueryable } from './store-pg.js';

const EMPTY = Buffer.alloc(0);

/**
 * Calls `visit` for every row from index `from`, in order (a redacted row, payload NULL, is flagged and visited with
 * its stored leaf hash). Throws AuditCorruptionError at a gap in the numbering or a payload that does not match its
 * stored leaf hash: the tools refuse to present tampered data as the log (`warden audit verify --pg` says more).
 * Returns the number of the next index.
 */
export async function scanPgEntries(
  q: PgQueryable,
  tables: PgAuditTables,
  visit: RecordVisitor,
  from = 0,
): Promise<number> {
  let next = from;
  for await (const row of readPgEntries(q, tables, from)) {
    if (row.index !== next) throw new AuditCorruptionError('pg', next, next, `entry ${next} is missing`);
    if (row.payload === null) {
      visit(row.index, EMPTY, row.storedLeafHash, row.index, true);
    } else {
      const leaf = Buffer.from(leafHash(row.payload));
      if (!leaf.equals(row.storedLeafHash))
        throw new AuditCorruptionError('pg', row.index, row.index, 'payload does not match its leaf hash');
      visit(row.index, row.payload, leaf, row.index, false);
    }
    next++;
  }
  return next;
}

/** The PostgreSQL counterpart of LogSnapshot: the tree of the rows present when it was opened, and the checkpoints. */
export class PgLogSnapshot {
  private constructor(
    private readonly q: PgQueryable,
    private readonly tables: PgAuditTables,
    readonly tree: MerkleTree,
    readonly checkpoints: readonly Uint8Array[],
  ) {}

  /** Reads the checkpoints first, then every row (so each checkpoint's size is covered by the rows read). */
  static async open(q: PgQueryable, tables: PgAuditTables): Promise<PgLogSnapshot> {
    const checkpoints = await readPgCheckpoints(q, tables);
    const tree = new MerkleTree();
    await scanPgEntries(q, tables, (_i, _p, leaf) => tree.append(leaf));
    return new PgLogSnapshot(q, tables, tree, checkpoints);
  }

  get size(): number {
    return this.tree.size;
  }

  get latestCheckpoint(): Uint8Array | undefined {
    return this.checkpoints[this.checkpoints.length - 1];
  }

  /** The bytes of entry `index` (empty for a redacted entry); refused if they do not match the snapshot's leaf. */
  async read(index: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.size)
      throw new RangeError(`no entry ${index} (the log has ${this.size})`);
    let out: Uint8Array | undefined;
    for await (const row of readPgEntries(this.q, this.tables, index)) {
      if (row.index !== index) break;
      out = row.payload ?? EMPTY;
      break;
    }
    if (out === undefined) throw new AuditCorruptionError('pg', index, index, `entry ${index} is missing`);
    if (out.length > 0 && !Buffer.from(leafHash(out)).equals(this.tree.leafHash(index)))
      throw new AuditCorruptionError('pg', index, index, 'payload changed since the snapshot');
    return out;
  }
}
