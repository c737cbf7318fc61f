// The `warden audit` commands: verify a log folder offline, prove inclusion and consistency, tail, search and export entries.
import { parseArgs } from 'node:util';
import { readFile, writeFile, stat, rename } from 'node:fs/promises';
import { userInfo } from 'node:os';
import pg from 'pg';
import { join, resolve } from 'node:path';
import { verifyLog, verifyPgLog } from '../audit/verify.js';
import type { VerifyResult } from '../audit/verify.js';
import { AuditLog } from '../audit/log.js';
import { DEFAULT_RETENTION_DAYS } from '../audit/redaction.js';
import { cosignatureVerifier } from '../audit/witness.js';
import { submitToWitness } from '../audit/witness-http.js';
import { COSIGNATURES_DIR, readCosignedCheckpoints } from '../audit/witness-publisher.js';
import { pgConnectionFor } from '../audit/open.js';
import type { AuditConfig } from '../config/gateway-config.js';
import { LogSnapshot, readEntriesFrom, scanEntries } from '../audit/reader.js';
import type { FollowPosition } from '../audit/reader.js';
import { PgLogSnapshot, scanPgEntries } from '../audit/pg-reader.js';
import type { MerkleTree } from '../audit/merkle.js';
import type { RecordVisitor } from '../audit/records.js';
import { formatTlogProof, parseTlogProof, verifyTlogProof } from '../audit/proof.js';
import { openCheckpoint } from '../audit/checkpoint.js';
import { openNote, parseSignerKey, parseVerifierKey } from '../audit/note.js';
import type { NoteVerifier } from '../audit/note.js';
import { verifyConsistency } from '../audit/merkle.js';
import { decodeEntry } from '../audit/entry.js';
import type { AuditEntry } from '../audit/entry.js';
import { LOG_KEY_FILE } from '../audit/log.js';
import { isWardenError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { CHECKPOINTS_FILE, checkpointSizeOf } from '../audit/store-file.js';
import { CHECKPOINTS_MAGIC, scanRecordFile } from '../audit/records.js';

/** Where the command writes; replaceable in tests. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal (progress bars only then). */
  readonly errIsTTY: boolean;
  /** Stops `tail --follow`. */
  readonly signal?: AbortSignal;
  /** Poll interval of `tail --follow` (ms). */
  readonly followIntervalMs?: number;
}

export interface AuditCommand {
  readonly about: string;
  run(argv: string[]): Promise<number>;
}

/** The folder `warden demo` keeps its audit log in. */
export const DEMO_AUDIT_DIR = join('.warden-demo', 'audit');
/** Where `witness-submit` keeps the latest witness-cosigned checkpoint, and `verify --witness-key` looks for it. */
export const COSIGNED_FILE = 'cosigned-checkpoint';

/** A command-line mistake: printed as usage, exit code 2. */
class UsageError extends Error {}

interface Trust {
  readonly origin: string;
  readonly verifiers: NoteVerifier[];
  /** True when the key was derived from the signer key stored beside the log (integrity, not authenticity). */
  readonly fromLogKey: boolean;
}

/**
 * The keys to trust: `--key FILE` (one verifier key per line), else the public half of `DIR/log.key`.
 * The origin defaults to the first key's name (a log's key name is its origin).
 */
async function loadTrust(
  dir: string,
  keyFile: string | undefined,
  origin: string | undefined,
  logKeyFile: string = join(dir, LOG_KEY_FILE),
): Promise<Trust> {
  let verifiers: (NoteVerifier & { name: string })[];
  let fromLogKey = false;
  if (keyFile !== undefined) {
    const lines = (await readFile(keyFile, 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    if (lines.length === 0) throw new UsageError(`${keyFile} holds no verifier key`);
    verifiers = lines.map((l) => parseVerifierKey(l));
  } else {
    let text: string;
    try {
      text = readSecret({ file: logKeyFile }, 'log key file');
    } catch (e) {
      if (isWardenError(e) && /group or others/.test(e.message)) throw e;
      throw new UsageError(`no --key given and no ${logKeyFile} to derive it from`);
    }
    // Only the public half is used; the secret never leaves this function.
    verifiers = [parseVerifierKey(parseSignerKey(text.trim()).verifierKey)];
    fromLogKey = true;
  }
  return { origin: origin ?? verifiers[0]!.name, verifiers, fromLogKey };
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function progressBar(io: CliIo, total: number): ((done: number) => void) | undefined {
  if (!io.errIsTTY || total < 100_000) return undefined;
  return (done) => {
    const f = Math.min(1, done / total);
    const w = 30;
    const n = Math.round(f * w);
    io.err(`\r[${'#'.repeat(n)}${' '.repeat(w - n)}] ${Math.round(f * 100)}% ${done}/${total} entries`);
  };
}

/** Parses `--since`/`--until`: an RFC 3339 time, a date, or a duration ago such as `15m`, `2h`, `7d`. */
export function parseTime(s: string, now: Date = new Date()): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(s);
  if (m !== null) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now.getTime() - Number(m[1]) * unit);
  }
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new UsageError(`not a time: ${s}`);
  return new Date(t);
}

function intArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^(0|[1-9][0-9]*)$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(v);
}

/** One entry as a JSON line: its index, RFC 6962 leaf hash (base64) and the entry (or its raw bytes if invalid). */
function entryLine(index: number, payload: Uint8Array, leaf: Uint8Array, redacted = false): string {
  if (redacted) return JSON.stringify({ index, leafHash: b64(leaf), redacted: true });
  let entry: AuditEntry | undefined;
  try {
    entry = decodeEntry(payload);
  } catch {
    entry = undefined;
  }
  return JSON.stringify(
    entry === undefined
      ? { index, leafHash: b64(leaf), invalid: true, raw: b64(payload) }
      : { index, leafHash: b64(leaf), entry },
  );
}

export interface SearchFilter {
  readonly user?: string;
  readonly target?: string;
  readonly table?: string;
  readonly decision?: 'allow' | 'deny';
  readonly since?: Date;
  readonly until?: Date;
}

type TableMatcher = (sql: string, table: string) => boolean;

/** A textual fallback: the table name as a whole (optionally quoted, optionally schema-qualified) word. */
const textTableMatch: TableMatcher = (sql, table) => {
  const name = table.includes('.') ? table.split('.').pop()! : table;
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9_$])"?${esc}"?($|[^A-Za-z0-9_$])`, 'i').test(sql);
};

async function sqlTableMatcher(): Promise<TableMatcher> {
  try {
    const { initSqlAnalyser, analyzeCached } = await import('../sql/analyze.js');
    await initSqlAnalyser();
    return (sql, table) => {
      const a = analyzeCached(sql, { searchPath: ['public'] });
      if (a.error !== undefined) return textTableMatch(sql, table);
      const want = table.toLowerCase();
      return a.statements.some((s) =>
        s.relations.some((r) => r.name === want || `${r.schema}.${r.name}` === want),
      );
    };
  } catch {
    return textTableMatch;
  }
}

/** Whether an entry passes the filter. Statement-level filters (table, decision) select statement entries only. */
export function matchesFilter(
  e: AuditEntry,
  f: SearchFilter,
  tableMatch: TableMatcher = textTableMatch,
): boolean {
  const t = Date.parse(e.time);
  if (f.since !== undefined && t < f.since.getTime()) return false;
  if (f.until !== undefined && t > f.until.getTime()) return false;
  const r = e as unknown as Partial<Record<string, unknown>>;
  if (f.user !== undefined) {
    const p = r.principal as { name?: string } | undefined;
    const user =
      p?.name ?? (typeof r.user === 'string' ? r.user : typeof r.actor === 'string' ? r.actor : undefined);
    if (user !== f.user) return false;
  }
  if (f.target !== undefined && r.target !== f.target) return false;
  if (f.decision !== undefined || f.table !== undefined) {
    if (e.kind !== 'statement') return false;
    if (f.decision !== undefined && e.decision.effect !== f.decision) return false;
    if (f.table !== undefined && !tableMatch(e.text, f.table)) return false;
  }
  return true;
}

/** What the read-only commands need from a store: a local folder or, with `--pg`, a PostgreSQL store. */
interface LogSource {
  snapshot(): Promise<{
    readonly tree: MerkleTree;
    readonly size: number;
    readonly latestCheckpoint: Uint8Array | undefined;
    read(index: number): Promise<Uint8Array>;
  }>;
  /** Visits every entry in order; `more` then visits only the ones appended since. */
  scan(visit: RecordVisitor): Promise<void>;
  more(visit: RecordVisitor): Promise<void>;
  close(): Promise<void>;
}

async function openSource(values: {
  dir?: string | undefined;
  pg?: string | undefined;
  schema?: string | undefined;
  table?: string | undefined;
}): Promise<LogSource> {
  if (values.pg === undefined) {
    const dir = resolve(values.dir ?? DEMO_AUDIT_DIR);
    let pos: FollowPosition = { offset: 0, index: 0 };
    return {
      snapshot: () => LogSnapshot.open(dir),
      async scan(visit) {
        const r = await scanEntries(dir, visit);
        pos = { offset: r.goodEnd, index: r.count };
      },
      async more(visit) {
        const got = await readEntriesFrom(dir, pos);
        for (const rec of got.records)
          visit(rec.index, Buffer.from(rec.payload), Buffer.from(rec.leafHash), 0, rec.redacted === true);
        pos = got.next;
      },
      close: () => Promise.resolve(),
    };
  }
  const client = new pg.Client({ connectionString: values.pg });
  client.on('error', () => undefined);
  await client.connect();
  const tables = {
    ...(values.schema !== undefined ? { schema: values.schema } : {}),
    ...(values.table !== undefined ? { table: values.table } : {}),
  };
  let next = 0;
  return {
    snapshot: () => PgLogSnapshot.open(client, tables),
    async scan(visit) {
      next = await scanPgEntries(client, tables, visit);
    },
    async more(visit) {
      next = await scanPgEntries(client, tables, visit, next);
    },
    close: () => client.end(),
  };
}

export function makeAuditCommands(io: CliIo): Record<string, AuditCommand> {
  const dirOpt = { dir: { type: 'string' } } as const;
  /** The read-only commands also read a PostgreSQL store: --pg URL [--schema S] [--table T]. */
  const srcOpt = {
    ...dirOpt,
    pg: { type: 'string' },
    schema: { type: 'string' },
    table: { type: 'string' },
  } as const;
  const trustOpts = { ...srcOpt, origin: { type: 'string' }, key: { type: 'string' } } as const;

  const verify: AuditCommand = {
    about:
      'verify a log folder offline: recompute the tree, check every checkpoint signature (--dir D --origin O --key VKEY_FILE --last-seen CHECKPOINT_FILE --witness-key VKEY_FILE --witnesses N --config WARDEN_YAML --pg URL; --strict also decodes every entry as a canonical, valid entry)',
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: {
          ...trustOpts,
          'last-seen': { type: 'string' },
          strict: { type: 'boolean' },
          // The default since the integrity check became it; kept so that existing scripts still run.
          fast: { type: 'boolean' },
          'witness-key': { type: 'string', multiple: true },
          witnesses: { type: 'string' },
          cosigned: { type: 'string' },
          config: { type: 'string' },
        },
      });
      // --config: the gateway's configuration supplies the folder, origin, store and witness keys.
      const cfg = values.config === undefined ? undefined : await loadAuditConfig(values.config);
      const dir = resolve(values.dir ?? cfg?.dir ?? DEMO_AUDIT_DIR);
      const pgConn: pg.ClientConfig | undefined =
        values.pg !== undefined
          ? { connectionString: values.pg }
          : cfg?.postgres !== undefined
            ? pgConnectionFor(cfg.postgres)
            : undefined;
      const pgTables =
        values.pg !== undefined
          ? {
              ...(values.schema !== undefined ? { schema: values.schema } : {}),
              ...(values.table !== undefined ? { table: values.table } : {}),
            }
          : { schema: cfg?.postgres?.schema, table: cfg?.postgres?.table };
      if (values.pg !== undefined && values.key === undefined)
        throw new UsageError('--pg needs --key (the published verifier key)');
      if (pgConn === undefined) {
        try {
          await stat(dir);
        } catch {
          throw new UsageError(`no audit log folder at ${dir}`);
        }
      }
      const logKeyFile = cfg?.keyFile ?? join(dir, LOG_KEY_FILE);
      const trust = await loadTrust(dir, values.key, values.origin ?? cfg?.origin, logKeyFile);
      if (trust.fromLogKey) {
        io.err(
          `note: trusting the key stored beside the log (${logKeyFile}); this checks integrity only. Pass --key with the published verifier key to check authenticity.\n`,
        );
      }
      const lastSeen: Uint8Array | undefined =
        values['last-seen'] === undefined ? undefined : await readFile(values['last-seen']);
      const witnessKeys = [
        ...(await Promise.all((values['witness-key'] ?? []).map((f) => readKeyLines(f)))).flat(),
        ...(cfg?.witnesses ?? []).map((w) => w.key),
      ];
      const need = intArg(values.witnesses, 'witnesses');
      if (need !== undefined && need > 0 && witnessKeys.length === 0)
        throw new UsageError(
          "--witnesses N needs the witnesses' verifier keys (--witness-key FILE, or audit.witnesses with --config)",
        );
      let witnessed = '';
      const cosignedNotes: Uint8Array[] = [];
      if (witnessKeys.length > 0) {
        // Cosigned checkpoints anchor the log: each one's signatures must verify, each one must match the
        // entries (verified below as a checkpoint seen earlier), and enough distinct given witnesses must have
        // cosigned (default: every one given).
        const cosigners = [...new Set(witnessKeys)].map(cosignatureVerifier);
        const required = need ?? cosigners.length;
        if (required > cosigners.length)
          throw new UsageError(`--witnesses ${required} but only ${cosigners.length} witness key(s) given`);
        const found = await collectCosigned(dir, values.cosigned);
        if (found.length === 0) {
          throw new UsageError(
            `no witness-cosigned checkpoint in ${join(dir, COSIGNATURES_DIR)} or ${join(dir, COSIGNED_FILE)} (configure audit.witnesses, or run warden audit witness-submit)`,
          );
        }
        const sizeBy = new Map<string, number>();
        for (const { file, note } of found) {
          let sigs;
          try {
            sigs = openNote(note, [...trust.verifiers, ...cosigners]).signatures;
          } catch (e) {
            io.out(`FAIL witness-cosignature: ${file}: ${(e as Error).message}\n`);
            return 1;
          }
          const byWitness = cosigners.filter((c) =>
            sigs.some((x) => x.name === c.name && x.keyId === c.keyId),
          );
          if (byWitness.length === 0) continue;
          cosignedNotes.push(note);
          for (const c of byWitness) {
            const k = `${c.name}+${c.keyId}`;
            sizeBy.set(k, Math.max(sizeBy.get(k) ?? 0, checkpointSizeOf(note) ?? 0));
          }
        }
        const missing = cosigners.filter((c) => !sizeBy.has(`${c.name}+${c.keyId}`));
        if (cosigners.length - missing.length < required) {
          io.out(
            `FAIL witness-cosignature: ${cosigners.length - missing.length} of ${required} required witness(es) cosigned; not cosigned by ${missing.map((m) => m.name).join(', ')}\n`,
          );
          return 1;
        }
        const by = cosigners.filter((c) => sizeBy.has(`${c.name}+${c.keyId}`));
        witnessed = `, cosigned by ${by.map((c) => `${c.name} at size ${sizeBy.get(`${c.name}+${c.keyId}`)}`).join(', ')}`;
      }
      const common = {
        origin: trust.origin,
        verifierKeys: trust.verifiers,
        strictEntries: values.strict === true,
        ...(lastSeen !== undefined ? { lastSeenCheckpoint: lastSeen } : {}),
        ...(cosignedNotes.length > 0 ? { lastSeenCheckpoints: cosignedNotes } : {}),
      };
      let r: VerifyResult;
      if (pgConn !== undefined) {
        const client = new pg.Client(pgConn);
        client.on('error', () => undefined);
        await client.connect();
        try {
          r = await verifyPgLog(
            client,
            {
              ...(pgTables.schema !== undefined ? { schema: pgTables.schema } : {}),
              ...(pgTables.table !== undefined ? { table: pgTables.table } : {}),
            },
            common,
          );
        } finally {
          await client.end();
        }
      } else {
        const bar = progressBar(io, await latestStoredSize(dir));
        r = await verifyLog(dir, { ...common, ...(bar !== undefined ? { onProgress: bar } : {}) });
        if (bar !== undefined) io.err('\n');
      }
      if (!r.ok) {
        const e = r.firstError!;
        io.out(
          `FAIL ${e.kind}${e.index !== undefined ? ` at entry ${e.index}` : ''}${e.checkpoint !== undefined ? ` (checkpoint ${e.checkpoint === -1 ? 'last seen' : e.checkpoint})` : ''}: ${e.message}\n`,
        );
        return 1;
      }
      io.out(
        `OK ${r.size} entries, root ${b64(r.root)}, ${r.checkpointsChecked} checkpoint(s) verified for ${trust.origin}${witnessed}${r.redacted > 0 ? `, ${r.redacted} redacted (each one logged)` : ''}${r.tornTail ? ' (an interrupted, never-acknowledged write at the end was ignored)' : ''}\n`,
      );
      if (r.checkpointsChecked === 0) {
        io.err('warning: the log has no signed checkpoint yet, so nothing anchors its entries\n');
      }
      return 0;
    },
  };

  const prove: AuditCommand = {
    about:
      'print a c2sp.org/tlog-proof@v1 inclusion proof of entry N against the latest checkpoint (--index N [--entry-out FILE] [--out FILE])',
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: {
          ...trustOpts,
          index: { type: 'string' },
          out: { type: 'string' },
          'entry-out': { type: 'string' },
        },
      });
      const index = intArg(values.index, 'index');
      if (index === undefined) throw new UsageError('--index is required');
      if (values.pg !== undefined && values.key === undefined)
        throw new UsageError('--pg needs --key (the published verifier key)');
      const dir = resolve(values.dir ?? DEMO_AUDIT_DIR);
      const trust = await loadTrust(dir, values.key, values.origin);
      const source = await openSource(values);
      try {
        const snap = await source.snapshot();
        const note = snap.latestCheckpoint;
        if (index >= snap.size)
          throw new UsageError(`the log has ${snap.size} entries; there is no entry ${index}`);
        const cp = note === undefined ? undefined : openCheckpoint(note, trust).checkpoint;
        if (cp === undefined || cp.size <= index) {
          io.err(
            `no signed checkpoint covers entry ${index} yet (the latest covers ${cp?.size ?? 0}); try again after the next checkpoint\n`,
          );
          return 1;
        }
        // INVARIANT: never hand out a proof against a checkpoint the local entries do not match.
        if (!Buffer.from(snap.tree.root(cp.size)).equals(cp.root)) {
          io.err(
            `the entries do not match the signed checkpoint of size ${cp.size}: run warden audit verify\n`,
          );
          return 1;
        }
        const text = formatTlogProof({
          index,
          proof: snap.tree.inclusionProof(index, cp.size),
          checkpoint: note!,
        });
        const entry = await snap.read(index);
        verifyTlogProof(parseTlogProof(text), entry, trust);
        if (values['entry-out'] !== undefined) await writeFile(values['entry-out'], entry);
        if (values.out !== undefined) await writeFile(values.out, text);
        else io.out(Buffer.from(text).toString('utf8'));
        return 0;
      } finally {
        await source.close();
      }
    },
  };

  const checkProof: AuditCommand = {
    about:
      'verify a tlog-proof offline: warden audit check-proof PROOF_FILE --entry ENTRY_FILE --key VKEY_FILE [--origin O]',
    async run(argv) {
      const { values, positionals } = parseArgs({
        args: argv,
        allowPositionals: true,
        options: { entry: { type: 'string' }, key: { type: 'string' }, origin: { type: 'string' } },
      });
      const file = positionals[0];
      if (file === undefined || values.entry === undefined || values.key === undefined) {
        throw new UsageError('usage: warden audit check-proof PROOF_FILE --entry ENTRY_FILE --key VKEY_FILE');
      }
      const trust = await loadTrust('.', values.key, values.origin);
      const proof = parseTlogProof(await readFile(file));
      try {
        const cp = verifyTlogProof(proof, await readFile(values.entry), trust);
        io.out(`OK entry ${proof.index} is in ${cp.origin} at size ${cp.size}, root ${b64(cp.root)}\n`);
        return 0;
      } catch (e) {
        io.out(`FAIL ${(e as Error).message}\n`);
        return 1;
      }
    },
  };

  const consistency: AuditCommand = {
    about:
      'print an RFC 9162 consistency proof between tree sizes A and B (--from A [--to B], B defaults to the latest checkpoint)',
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: { ...srcOpt, from: { type: 'string' }, to: { type: 'string' } },
      });
      const from = intArg(values.from, 'from');
      if (from === undefined) throw new UsageError('--from is required');
      const source = await openSource(values);
      const snap = await source.snapshot().finally(() => source.close());
      const latest =
        snap.latestCheckpoint === undefined ? undefined : checkpointSizeOf(snap.latestCheckpoint);
      const to = intArg(values.to, 'to') ?? latest ?? snap.size;
      if (from < 1 || from > to || to > snap.size) {
        throw new UsageError(`need 1 <= from <= to <= ${snap.size} (got from ${from}, to ${to})`);
      }
      const root1 = snap.tree.root(from);
      const root2 = snap.tree.root(to);
      const proof = snap.tree.consistencyProof(from, to);
      verifyConsistency(from, to, proof, root1, root2);
      io.out(
        `size1 ${from}\nroot1 ${b64(root1)}\nsize2 ${to}\nroot2 ${b64(root2)}\n${proof.map((h) => `${b64(h)}\n`).join('')}`,
      );
      return 0;
    },
  };

  const tail: AuditCommand = {
    about: 'print the last N entries as JSON lines ([-n N] [--follow])',
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: { ...srcOpt, n: { type: 'string', short: 'n' }, follow: { type: 'boolean', short: 'f' } },
      });
      const n = intArg(values.n, 'n') ?? 10;
      const source = await openSource(values);
      try {
        const ring: string[] = [];
        await source.scan((index, payload, leaf, _o, redacted) => {
          if (n === 0) return;
          ring.push(entryLine(index, payload, leaf, redacted));
          if (ring.length > n) ring.shift();
        });
        for (const l of ring) io.out(`${l}\n`);
        if (values.follow !== true) return 0;
        const every = io.followIntervalMs ?? 500;
        while (io.signal?.aborted !== true) {
          await new Promise<void>((r) => {
            const t = setTimeout(r, every);
            io.signal?.addEventListener('abort', () => {
              clearTimeout(t);
              r();
            });
          });
          await source.more((index, payload, leaf, _o, redacted) =>
            io.out(`${entryLine(index, payload, leaf, redacted)}\n`),
          );
        }
        return 0;
      } finally {
        await source.close();
      }
    },
  };

  const search: AuditCommand = {
    about:
      'print matching entries as JSON lines ([--user U] [--target T] [--table T] [--decision allow|deny] [--since TIME] [--until TIME])',
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: {
          ...srcOpt,
          user: { type: 'string' },
          target: { type: 'string' },
          table: { type: 'string' },
          decision: { type: 'string' },
          since: { type: 'string' },
          until: { type: 'string' },
        },
      });
      if (values.decision !== undefined && values.decision !== 'allow' && values.decision !== 'deny') {
        throw new UsageError('--decision must be allow or deny');
      }
      const filter: SearchFilter = {
        ...(values.user !== undefined ? { user: values.user } : {}),
        ...(values.target !== undefined ? { target: values.target } : {}),
        ...(values.table !== undefined ? { table: values.table.toLowerCase() } : {}),
        ...(values.decision !== undefined ? { decision: values.decision } : {}),
        ...(values.since !== undefined ? { since: parseTime(values.since) } : {}),
        ...(values.until !== undefined ? { until: parseTime(values.until) } : {}),
      };
      const tableMatch = filter.table !== undefined ? await sqlTableMatcher() : textTableMatch;
      let count = 0;
      const source = await openSource(values);
      try {
        await source.scan((index, payload, leaf, _o, redacted) => {
          if (redacted) return;
          let e: AuditEntry;
          try {
            e = decodeEntry(payload);
          } catch {
            return;
          }
          if (!matchesFilter(e, filter, tableMatch)) return;
          count++;
          io.out(`${entryLine(index, payload, leaf)}\n`);
        });
      } finally {
        await source.close();
      }
      io.err(`${count} matching entr${count === 1 ? 'y' : 'ies'}\n`);
      return 0;
    },
  };

  const exportCmd: AuditCommand = {
    about: 'export every entry as JSON lines (index, leaf hash, entry), then the latest checkpoint',
    async run(argv) {
      const { values } = parseArgs({ args: argv, options: { ...srcOpt } });
      const source = await openSource(values);
      let note: Uint8Array | undefined;
      try {
        const snap = await source.snapshot();
        note = snap.latestCheckpoint;
        // Entries beyond the snapshot (appended meanwhile) are left out, so the export is one consistent prefix.
        await source.scan((index, payload, leaf, _o, redacted) => {
          if (index < snap.size) io.out(`${entryLine(index, payload, leaf, redacted)}\n`);
        });
      } finally {
        await source.close();
      }
      if (note !== undefined) {
        io.out(
          `${JSON.stringify({ checkpoint: Buffer.from(note).toString('utf8'), size: checkpointSizeOf(note) ?? null })}\n`,
        );
      }
      return 0;
    },
  };

  const redact: AuditCommand = {
    about:
      "remove entry N's payload, keeping its leaf hash; logged as an audit.redaction entry (--index N --reason TEXT [--lawful-erasure] [--actor NAME] [--retention-days D]); stop the gateway first",
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: {
          ...dirOpt,
          index: { type: 'string' },
          reason: { type: 'string' },
          'lawful-erasure': { type: 'boolean' },
          actor: { type: 'string' },
          'retention-days': { type: 'string' },
          'key-file': { type: 'string' },
        },
      });
      const index = intArg(values.index, 'index');
      if (index === undefined || values.reason === undefined)
        throw new UsageError('--index and --reason are required');
      const dir = resolve(values.dir ?? DEMO_AUDIT_DIR);
      const keyFile = values['key-file'] ?? join(dir, LOG_KEY_FILE);
      let origin: string;
      try {
        origin = parseSignerKey(readSecret({ file: keyFile }, 'log key file').trim()).name;
      } catch (e) {
        if (isWardenError(e) && /group or others/.test(e.message)) throw e;
        throw new UsageError(`cannot read the log key ${keyFile}`);
      }
      const log = await AuditLog.openDir(dir, { origin, keyFile });
      try {
        const r = await log.redact(index, {
          reason: values.reason,
          actor: values.actor ?? userInfo().username,
          lawfulErasure: values['lawful-erasure'] === true,
          retentionDays: intArg(values['retention-days'], 'retention-days') ?? DEFAULT_RETENTION_DAYS,
        });
        await log.checkpoint();
        io.out(`redacted entry ${index}; the redaction is entry ${r.redactionIndex}\n`);
        return 0;
      } catch (e) {
        if ((e as { code?: string }).code === 'AUDIT_REDACTION_REFUSED') {
          io.err(`warden audit redact: refused: ${(e as Error).message}\n`);
          return 1;
        }
        throw e;
      } finally {
        await log.close();
      }
    },
  };

  const witnessSubmit: AuditCommand = {
    about: `have a witness cosign the latest checkpoint (--witness URL [--out FILE], default DIR/${COSIGNED_FILE})`,
    async run(argv) {
      const { values } = parseArgs({
        args: argv,
        options: { ...dirOpt, witness: { type: 'string' }, out: { type: 'string' } },
      });
      if (values.witness === undefined) throw new UsageError('--witness URL is required');
      const dir = resolve(values.dir ?? DEMO_AUDIT_DIR);
      const snap = await LogSnapshot.open(dir);
      const note = snap.latestCheckpoint;
      if (note === undefined) throw new UsageError('the log has no signed checkpoint yet');
      const cosigned = await submitToWitness(values.witness, note, (a, b) =>
        snap.tree.consistencyProof(a, b),
      );
      const out = values.out ?? join(dir, COSIGNED_FILE);
      await writeFile(`${out}.tmp`, cosigned, { mode: 0o644 });
      await rename(`${out}.tmp`, out);
      io.out(`OK checkpoint of size ${checkpointSizeOf(note) ?? '?'} cosigned; written to ${out}\n`);
      return 0;
    },
  };

  const commands: Record<string, AuditCommand> = {
    verify,
    prove,
    'check-proof': checkProof,
    consistency,
    tail,
    search,
    export: exportCmd,
    redact,
    'witness-submit': witnessSubmit,
  };
  // Usage mistakes print a message and exit 2; other errors propagate to the caller's handler.
  const wrapped: Record<string, AuditCommand> = {};
  for (const [name, c] of Object.entries(commands)) {
    wrapped[name] = {
      about: c.about,
      async run(argv) {
        try {
          return await c.run(argv);
        } catch (e) {
          if (
            e instanceof UsageError ||
            (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true
          ) {
            io.err(`warden audit ${name}: ${(e as Error).message}\n`);
            return 2;
          }
          throw e;
        }
      },
    };
  }
  return wrapped;
}

/** Cosigned checkpoints: `--cosigned FILE`, `DIR/cosigned-checkpoint` and every `DIR/cosignatures/*.cosigned`. */
async function collectCosigned(
  dir: string,
  explicit: string | undefined,
): Promise<{ file: string; note: Uint8Array }[]> {
  const out: { file: string; note: Uint8Array }[] = [];
  for (const file of explicit !== undefined ? [explicit] : [join(dir, COSIGNED_FILE)]) {
    try {
      out.push({ file, note: await readFile(file) });
    } catch (e) {
      if (explicit !== undefined) throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
    }
  }
  if (explicit === undefined) out.push(...(await readCosignedCheckpoints(join(dir, COSIGNATURES_DIR))));
  return out;
}

/** The `audit` section of a gateway configuration file (`warden serve --config`). */
async function loadAuditConfig(file: string): Promise<AuditConfig> {
  const { loadGatewayConfig } = await import('../config/gateway-config.js');
  const audit = loadGatewayConfig(file).audit;
  if (audit === undefined) throw new UsageError(`${file} has no audit section`);
  return audit;
}

async function readKeyLines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

async function latestStoredSize(dir: string): Promise<number> {
  try {
    const snapNotes: Uint8Array[] = [];
    await scanRecordFile(join(dir, CHECKPOINTS_FILE), CHECKPOINTS_MAGIC, (_i, p) => {
      snapNotes.length = 0;
      snapNotes.push(Buffer.from(p));
    });
    const last = snapNotes[0];
    return last === undefined ? 0 : (checkpointSizeOf(last) ?? 0);
  } catch {
    return 0;
  }
}

/** The commands on the process's stdout/stderr, for `src/cli/main.ts`. */
export const auditCommands: Record<string, AuditCommand> = makeAuditCommands({
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  get errIsTTY() {
    return process.stderr.isTTY;
  },
});

/** `warden audit <sub> ...`: dispatches to `auditCommands`. */
export async function runAudit(argv: string[], io?: CliIo): Promise<number> {
  const cmds = io === undefined ? auditCommands : makeAuditCommands(io);
  const [sub, ...rest] = argv;
  const c = sub === undefined ? undefined : cmds[sub];
  if (c === undefined) {
    const lines = Object.entries(cmds).map(([n, x]) => `  ${n.padEnd(12)} ${x.about}`);
    (io?.err ?? ((t: string) => process.stderr.write(t)))(
      `usage: warden audit <command> [options]\n\ncommands:\n${lines.join('\n')}\n`,
    );
    return sub === undefined || sub === 'help' ? 0 : 2;
  }
  return c.run(rest);
}
