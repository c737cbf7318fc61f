// A raw PostgreSQL protocol client for the corpus: sends simple and extended-protocol messages and keeps every byte it receives.
// @see https://www.postgresql.org/docs/current/protocol-flow.html
import type net from 'node:net';
import { connectUpstream } from '../../src/upstream/pg-connect.js';
import { Framer } from '../../src/wire/pg/framing.js';
import { MSG, decodeFields, query as queryMessage, sync } from '../../src/wire/pg/messages.js';
import { BodyBuilder, frame } from '../../src/wire/pg/reader.js';

export interface Message {
  readonly type: string;
  readonly body: Buffer;
}

/** One error or notice, as the client saw it. */
export interface Fields {
  readonly code: string;
  readonly message: string;
  readonly all: ReadonlyMap<string, string>;
}

export const parseMsg = (name: string, sql: string): Buffer =>
  frame(MSG.Parse, new BodyBuilder().cstring(name).cstring(sql).int16(0).build());

export function bindMsg(stmt: string, params: readonly (string | null)[] = [], portal = ''): Buffer {
  const b = new BodyBuilder().cstring(portal).cstring(stmt).int16(0).int16(params.length);
  for (const p of params) {
    if (p === null) b.int32(-1);
    else {
      const v = Buffer.from(p, 'utf8');
      b.int32(v.length).bytes(v);
    }
  }
  return frame(MSG.Bind, b.int16(0).build());
}

export const describeMsg = (kind: 'S' | 'P', name: string): Buffer =>
  frame(MSG.Describe, new BodyBuilder().byte(kind.charCodeAt(0)).cstring(name).build());
export const executeMsg = (portal = ''): Buffer =>
  frame(MSG.Execute, new BodyBuilder().cstring(portal).int32(0).build());
export const closeMsg = (kind: 'S' | 'P', name: string): Buffer =>
  frame(MSG.Close, new BodyBuilder().byte(kind.charCodeAt(0)).cstring(name).build());
export const syncMsg = sync;
export const copyFailMsg = (why: string): Buffer =>
  frame(MSG.CopyFail, new BodyBuilder().cstring(why).build());
export const copyDataMsg = (data: string): Buffer => frame(MSG.CopyData, Buffer.from(data, 'utf8'));
export const copyDoneMsg = (): Buffer => frame(MSG.CopyDone);
export { queryMessage };

/** Decoded ErrorResponse / NoticeResponse body. */
export function fieldsOf(body: Buffer): Fields {
  const all = decodeFields(body);
  return { code: all.get('C') ?? '', message: all.get('M') ?? '', all };
}

/**
 * A connection through the gateway. `raw()` returns every byte received since the last `reset()`, so the
 * canary check sees row data, errors, notices, parameter statuses and COPY data alike.
 */
export class WireClient {
  private readonly framer = new Framer(1 << 30, { startup: false });
  private readonly queue: Message[] = [];
  private chunks: Buffer[] = [];
  private wake: (() => void) | null = null;
  private isClosed = false;
  /** Transaction status of the last ReadyForQuery ('I' idle, 'T' in a transaction, 'E' failed transaction). */
  lastStatus = 'I';
  /** Called for CopyInResponse: what to send (default: CopyFail, so a wrongly allowed COPY FROM cannot hang). */
  onCopyIn: () => Buffer[] = () => [copyFailMsg('corpus: no data')];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.framer.push(c);
      for (let f = this.framer.next(); f; f = this.framer.next()) {
        this.queue.push({ type: String.fromCharCode(f.type), body: f.body });
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.isClosed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number, user: string, password: string, database = 'main'): Promise<WireClient> {
    const conn = await connectUpstream(
      { host: '127.0.0.1', port, tls: 'disable', connectTimeoutMs: 10_000 },
      { user, password },
      new Map([
        ['database', database],
        ['application_name', 'warden-corpus'],
      ]),
    );
    const c = new WireClient(conn.socket);
    if (conn.leftover.length > 0) conn.socket.emit('data', conn.leftover);
    return c;
  }

  get closed(): boolean {
    return this.isClosed || this.socket.destroyed;
  }

  /** Everything received since the last reset. */
  raw(): Buffer {
    return Buffer.concat(this.chunks);
  }

  reset(): void {
    this.chunks = [];
  }

  send(...msgs: Buffer[]): void {
    this.socket.write(Buffer.concat(msgs));
  }

  private async next(deadline: number): Promise<Message> {
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) throw new Error('connection closed by the gateway');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for the gateway');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /**
   * Reads messages until `readys` ReadyForQuery messages arrived. Answers COPY IN with `onCopyIn()` and
   * records it. Returns the messages read.
   */
  async until(readys: number, timeoutMs: number): Promise<Message[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Message[] = [];
    let seen = 0;
    while (seen < readys) {
      const m = await this.next(deadline);
      out.push(m);
      if (m.type === 'G') this.send(...this.onCopyIn());
      if (m.type === 'Z') {
        seen++;
        this.lastStatus = String.fromCharCode(m.body[0] ?? 0x49);
      }
    }
    return out;
  }

  /** Simple query helper for set-up and follow-up checks; throws on an error response. */
  async simple(sql: string, timeoutMs = 10_000): Promise<string[][]> {
    this.send(queryMessage(sql));
    const msgs = await this.until(1, timeoutMs);
    const err = msgs.find((m) => m.type === 'E');
    if (err) {
      const f = fieldsOf(err.body);
      throw new Error(`${f.code}: ${f.message}`);
    }
    return msgs.filter((m) => m.type === 'D').map((m) => dataRow(m.body));
  }

  close(): void {
    if (!this.closed) this.socket.end(frame(MSG.Terminate));
    this.socket.destroy();
  }
}

/** Text values of a DataRow (NULL as '\N'). */
export function dataRow(body: Buffer): string[] {
  const n = body.readInt16BE(0);
  const out: string[] = [];
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const len = body.readInt32BE(pos);
    pos += 4;
    if (len < 0) out.push('\\N');
    else {
      out.push(body.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return out;
}
