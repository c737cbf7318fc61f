// MySQL packet framing: 3-byte length + sequence id, 16 MiB continuation packets joined, a hard cap on a message; pure, no sockets.
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html

import { MAX_PACKET_PAYLOAD } from './constants.js';

export type MysqlWireErrorKind = 'truncated' | 'malformed' | 'oversized' | 'sequence';

/**
 * The one error type the MySQL codecs throw on bad input. Callers end the session with an ERR packet; nothing
 * else may escape a decoder (property-tested).
 */
export class MysqlWireError extends Error {
  constructor(
    readonly kind: MysqlWireErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'MysqlWireError';
  }
}

export function isMysqlWireError(e: unknown): e is MysqlWireError {
  return e instanceof MysqlWireError;
}

/** One logical message: the payload of one or more physical packets. */
export interface Packet {
  /** Sequence id of the first physical packet. */
  readonly seq: number;
  /** Sequence id of the last physical packet (the next packet in the exchange uses lastSeq + 1). */
  readonly lastSeq: number;
  readonly payload: Buffer;
  /** The physical packets as received, for verbatim forwarding. */
  readonly raw: Buffer;
}

/**
 * Accumulates chunks and yields whole logical messages.
 * INVARIANT: a message whose declared size would exceed `maxMessageBytes` is refused as soon as its header is
 * seen ("don't believe nonsense"); never more than the cap plus one chunk is buffered.
 */
export class PacketFramer {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly maxMessageBytes: number) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** Bytes received and not yet returned (e.g. TLS bytes that arrived with an SSL request). */
  get pending(): number {
    return this.buf.length;
  }

  /** Takes the bytes received and not yet returned out of the framer (e.g. the first TLS bytes). */
  drain(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** The next whole message, or null if more bytes are needed. */
  next(): Packet | null {
    const b = this.buf;
    let pos = 0;
    let total = 0;
    let first = -1;
    let last = -1;
    const parts: Buffer[] = [];
    for (;;) {
      if (b.length - pos < 4) return null;
      const len = b.readUIntLE(pos, 3);
      const seq = b[pos + 3] as number;
      if (first < 0) first = seq;
      else if (seq !== ((last + 1) & 0xff)) {
        throw new MysqlWireError('sequence', 'packets out of order in a continued message');
      }
      last = seq;
      total += len;
      if (total > this.maxMessageBytes) {
        throw new MysqlWireError(
          'oversized',
          `message larger than the allowed ${this.maxMessageBytes} bytes`,
        );
      }
      if (b.length - pos - 4 < len) return null;
      parts.push(b.subarray(pos + 4, pos + 4 + len));
      pos += 4 + len;
      if (len < MAX_PACKET_PAYLOAD) break;
    }
    const raw = b.subarray(0, pos);
    this.buf = b.subarray(pos);
    const payload = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    return { seq: first, lastSeq: last, payload, raw };
  }
}

/**
 * Encodes a payload as physical packets starting at sequence id `seq`; a payload of a multiple of 16 MiB - 1
 * bytes ends with an empty packet, as the protocol requires.
 */
export function encodePacket(seq: number, payload: Buffer): { data: Buffer; nextSeq: number } {
  if (payload.length < MAX_PACKET_PAYLOAD) {
    const data = Buffer.allocUnsafe(4 + payload.length);
    data.writeUIntLE(payload.length, 0, 3);
    data[3] = seq & 0xff;
    payload.copy(data, 4);
    return { data, nextSeq: (seq + 1) & 0xff };
  }
  const out: Buffer[] = [];
  let s = seq;
  let pos = 0;
  for (;;) {
    const n = Math.min(MAX_PACKET_PAYLOAD, payload.length - pos);
    const h = Buffer.allocUnsafe(4);
    h.writeUIntLE(n, 0, 3);
    h[3] = s & 0xff;
    out.push(h, payload.subarray(pos, pos + n));
    s = (s + 1) & 0xff;
    pos += n;
    if (n < MAX_PACKET_PAYLOAD) break;
  }
  return { data: Buffer.concat(out), nextSeq: s };
}

/** One packet with the given sequence id (shorthand when the next sequence id is not needed). */
export function packet(seq: number, payload: Buffer): Buffer {
  return encodePacket(seq, payload).data;
}
