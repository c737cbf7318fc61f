// Bounds-checked reader over a message body; every overrun is a protocol violation, never an exception of another kind.

import { WardenError } from '../../core/errors.js';

export class BodyReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new WardenError('PROTOCOL_VIOLATION', `truncated ${this.what} message`);
    }
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  byte(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** A NUL-terminated string, decoded as UTF-8. */
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new WardenError('PROTOCOL_VIOLATION', `unterminated string in ${this.what} message`);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  /** Requires the body to be fully consumed: trailing bytes mean a malformed message. */
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new WardenError('PROTOCOL_VIOLATION', `unexpected trailing bytes in ${this.what} message`);
    }
  }
}

/** Builds one message body field by field; `frame` adds the type byte and length word. */
export class BodyBuilder {
  private parts: Buffer[] = [];
  private size = 0;
  private add(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }
  int16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(v);
    return this.add(b);
  }
  int32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v | 0);
    return this.add(b);
  }
  byte(v: number): this {
    return this.add(Buffer.from([v & 0xff]));
  }
  /** A NUL-terminated string. INVARIANT: an embedded NUL cannot split a field (it is replaced). */
  cstring(s: string): this {
    const b = Buffer.from(s.includes('\0') ? s.replaceAll('\0', ' ') : s, 'utf8');
    this.add(b);
    return this.add(Buffer.from([0]));
  }
  bytes(b: Uint8Array): this {
    return this.add(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }
  build(): Buffer {
    return this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
  }
}

/** Frames a body as a typed message (type byte + int32 length), or an untyped startup-phase one when type is null. */
export function frame(type: number | null, body: Buffer = Buffer.alloc(0)): Buffer {
  const headerLen = type === null ? 4 : 5;
  const out = Buffer.allocUnsafe(headerLen + body.length);
  if (type !== null) out[0] = type;
  out.writeInt32BE(body.length + 4, headerLen - 4);
  body.copy(out, headerLen);
  return out;
}
