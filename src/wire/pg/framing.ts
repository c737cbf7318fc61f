// PostgreSQL message framing: splits a byte stream into whole messages, enforcing a size cap; pure, no sockets.
// @see https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS

import { WardenError } from '../../core/errors.js';

/** A regular (typed) protocol message. `body` excludes the type byte and the length word. */
export interface Frame {
  readonly type: number;
  readonly body: Buffer;
  /** The whole message as received (type + length + body), for verbatim forwarding. */
  readonly raw: Buffer;
}

/**
 * Accumulates chunks and yields whole messages. In startup mode messages have no type byte.
 * INVARIANT: never buffers more than `maxMessageBytes` + one chunk for a single message; a larger
 * declared length is refused before its body arrives ("don't believe nonsense").
 */
export class Framer {
  private buf: Buffer = Buffer.alloc(0);
  private startup: boolean;
  constructor(
    private readonly maxMessageBytes: number,
    opts: { startup: boolean },
  ) {
    this.startup = opts.startup;
  }

  /** Switch from untyped startup messages to typed messages (after the StartupMessage). */
  setStartup(startup: boolean): void {
    this.startup = startup;
  }

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** Bytes received but not yet returned as messages (e.g. the first TLS bytes after SSLRequest). */
  get pending(): number {
    return this.buf.length;
  }

  /** Takes the unconsumed bytes out of the framer. */
  drain(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** Next startup-phase message (length-prefixed, no type byte), or null if incomplete. */
  nextStartup(): Buffer | null {
    if (this.buf.length < 4) return null;
    const len = this.buf.readInt32BE(0);
    if (len < 8) throw new WardenError('PROTOCOL_VIOLATION', `invalid startup packet length ${len}`);
    // A startup packet is small; PostgreSQL caps it at 10000 bytes (MAX_STARTUP_PACKET_LENGTH).
    if (len > 10000) throw new WardenError('PROTOCOL_VIOLATION', `startup packet too long (${len} bytes)`);
    if (this.buf.length < len) return null;
    const msg = this.buf.subarray(0, len);
    this.buf = this.buf.subarray(len);
    return msg;
  }

  /** Next typed message, or null if incomplete. */
  next(): Frame | null {
    if (this.startup) throw new Error('Framer.next() called in startup mode');
    if (this.buf.length < 5) return null;
    const type = this.buf[0] as number;
    const len = this.buf.readInt32BE(1);
    if (len < 4) throw new WardenError('PROTOCOL_VIOLATION', `invalid message length ${len}`);
    if (len > this.maxMessageBytes) {
      throw new WardenError(
        'PROTOCOL_VIOLATION',
        `message of type '${printable(type)}' is ${len} bytes, over the limit of ${this.maxMessageBytes}`,
      );
    }
    if (this.buf.length < len + 1) return null;
    const raw = this.buf.subarray(0, len + 1);
    this.buf = this.buf.subarray(len + 1);
    return { type, body: raw.subarray(5), raw };
  }
}

export function printable(type: number): string {
  return type >= 0x20 && type < 0x7f ? String.fromCharCode(type) : `0x${type.toString(16)}`;
}
