// The witness over HTTP: the C2SP tlog-witness add-checkpoint endpoint, a durable per-origin state file, and the log-side client.
// @see https://c2sp.org/tlog-witness (add-checkpoint request/response, status codes 400/403/404/409/422)
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WardenError } from '../core/errors.js';
import { HASH_SIZE } from './merkle.js';
import { addSignatures, decodeBase64Strict } from './note.js';
import type { NoteSignature } from './note.js';
import { checkpointSizeOf } from './store-file.js';
import { WitnessError } from './witness.js';
import type {
  AddCheckpointRequest,
  Witness,
  WitnessErrorReason,
  WitnessStateStore,
  WitnessedTree,
} from './witness.js';

export const ADD_CHECKPOINT_PATH = '/add-checkpoint';
const MAX_BODY = 1 << 20;
const MAX_PROOF_LINES = 63;

const STATUS: Readonly<Record<WitnessErrorReason, number>> = {
  'bad-request': 400,
  'bad-signature': 403,
  'unknown-log': 404,
  conflict: 409,
  inconsistent: 422,
};

/**
 * The tree a witness last cosigned per origin, kept in a JSON file. `set` returns only after the new state is
 * durable (write to a temporary file, fsync, rename over, fsync the folder), so a cosignature is never handed out
 * for a state a crash could forget.
 */
export class FileWitnessState implements WitnessStateStore {
  private constructor(
    readonly path: string,
    private readonly logs: Map<string, WitnessedTree>,
  ) {}

  static async open(path: string): Promise<FileWitnessState> {
    const logs = new Map<string, WitnessedTree>();
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (text !== undefined) {
      let doc: { v?: unknown; logs?: Record<string, { size?: unknown; root?: unknown }> };
      try {
        doc = JSON.parse(text) as typeof doc;
      } catch (e) {
        throw new WardenError('CONFIG_INVALID', `witness state ${path} is not JSON`, { cause: e });
      }
      if (doc.v !== 1 || typeof doc.logs !== 'object' || doc.logs === null)
        throw new WardenError('CONFIG_INVALID', `witness state ${path} has an unknown format`);
      for (const [origin, t] of Object.entries(doc.logs)) {
        const root = typeof t.root === 'string' ? decodeBase64Strict(t.root) : undefined;
        if (!Number.isSafeInteger(t.size) || (t.size as number) < 0 || root?.length !== HASH_SIZE)
          throw new WardenError('CONFIG_INVALID', `witness state ${path}: bad entry for ${origin}`);
        logs.set(origin, { size: t.size as number, root });
      }
    }
    return new FileWitnessState(path, logs);
  }

  get(origin: string): WitnessedTree | undefined {
    return this.logs.get(origin);
  }

  async set(origin: string, tree: WitnessedTree): Promise<void> {
    const next = new Map(this.logs).set(origin, tree);
    const doc = {
      v: 1,
      logs: Object.fromEntries(
        [...next].map(([o, t]) => [o, { size: t.size, root: Buffer.from(t.root).toString('base64') }]),
      ),
    };
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    const d = await open(dirname(this.path), 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
    // INVARIANT: memory moves forward only after the file did.
    this.logs.set(origin, tree);
  }
}

/** Parses an add-checkpoint body: `old N`, proof hashes (base64, one per line), a blank line, the checkpoint note. */
export function parseAddCheckpoint(body: Buffer): AddCheckpointRequest {
  const text = body.toString('utf8');
  const bad = (m: string): WitnessError => new WitnessError('bad-request', m);
  const blank = text.indexOf('\n\n');
  if (blank < 0) throw bad('no blank line before the checkpoint');
  const head = text.slice(0, blank).split('\n');
  const m = /^old (0|[1-9][0-9]*)$/.exec(head[0] ?? '');
  if (m === null) throw bad('first line must be "old <size>"');
  const oldSize = Number(m[1]);
  if (!Number.isSafeInteger(oldSize)) throw bad('old size is too large');
  const lines = head.slice(1);
  if (lines.length > MAX_PROOF_LINES) throw bad('too many proof lines');
  const proof = lines.map((l) => {
    const h = decodeBase64Strict(l);
    if (h?.length !== HASH_SIZE) throw bad('a proof line is not base64 of 32 bytes');
    return h;
  });
  return { oldSize, proof, checkpoint: Buffer.from(text.slice(blank + 2), 'utf8') };
}

function formatSignatureLines(sigs: readonly NoteSignature[]): string {
  return Buffer.from(addSignatures(new Uint8Array(0), sigs)).toString('utf8');
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) return undefined;
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** An HTTP server answering POST /add-checkpoint with the witness's cosignature. Nothing else is served. */
export function createWitnessServer(witness: Witness, onError?: (e: unknown) => void): Server {
  const send = (
    res: ServerResponse,
    status: number,
    body: string,
    type = 'text/plain; charset=utf-8',
  ): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.url !== ADD_CHECKPOINT_PATH) return send(res, 404, 'not found\n');
    if (req.method !== 'POST') return send(res, 405, 'method not allowed\n');
    const body = await readBody(req);
    if (body === undefined) return send(res, 413, 'request too large\n');
    try {
      const sig = await witness.addCheckpoint(parseAddCheckpoint(body));
      send(res, 200, formatSignatureLines([sig]));
    } catch (e) {
      if (!(e instanceof WitnessError)) throw e;
      if (e.reason === 'conflict') return send(res, 409, `${e.latestSize ?? 0}\n`, 'text/x.tlog.size');
      send(res, STATUS[e.reason], `${e.message}\n`);
    }
  };
  return createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      onError?.(e);
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
}

export interface RunningWitness {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** Listens on `host:port` (default 127.0.0.1, a free port). */
export async function startWitnessServer(
  witness: Witness,
  opts: { host?: string; port?: number; onError?: (e: unknown) => void } = {},
): Promise<RunningWitness> {
  const server = createWitnessServer(witness, opts.onError);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A witness's refusal as the log sees it. */
export class WitnessSubmitError extends Error {
  readonly code = 'AUDIT_WITNESS_REFUSED';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'WitnessSubmitError';
  }
}

/**
 * Submits a signed checkpoint to a witness and returns the note with the witness's cosignature appended. Starts
 * from `oldSize` (default 0); on 409 retries once from the size the witness reports, with a consistency proof
 * from `proof(old, size)`.
 */
export async function submitToWitness(
  witnessUrl: string,
  note: Uint8Array,
  proof: (oldSize: number, newSize: number) => readonly Uint8Array[],
  oldSize = 0,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const size = checkpointSizeOf(note);
  if (size === undefined) throw new WitnessSubmitError(0, 'not a checkpoint note');
  const url = new URL(ADD_CHECKPOINT_PATH, witnessUrl).toString();
  let old = oldSize;
  for (let attempt = 0; attempt < 2; attempt++) {
    if (old > size)
      throw new WitnessSubmitError(409, `the witness has cosigned size ${old}, larger than ${size}`);
    const lines = old === 0 || old === size ? [] : proof(old, size);
    const body = Buffer.concat([
      Buffer.from(`old ${old}\n${lines.map((h) => `${Buffer.from(h).toString('base64')}\n`).join('')}\n`),
      Buffer.from(note),
    ]);
    const res = await fetch(url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/plain' },
      ...(signal !== undefined ? { signal } : {}),
    });
    const text = await res.text();
    if (res.status === 200) return addSignaturesText(note, text);
    if (res.status === 409 && attempt === 0 && /^(0|[1-9][0-9]*)\n?$/.test(text)) {
      old = Number(text.trim());
      continue;
    }
    throw new WitnessSubmitError(res.status, `witness refused (${res.status}): ${text.trim()}`);
  }
  throw new WitnessSubmitError(409, 'witness kept reporting a conflict');
}

function addSignaturesText(note: Uint8Array, lines: string): Uint8Array {
  if (!lines.startsWith('— ') || !lines.endsWith('\n'))
    throw new WitnessSubmitError(200, 'witness answered with a malformed cosignature');
  return Buffer.concat([Buffer.from(note), Buffer.from(lines, 'utf8')]);
}
