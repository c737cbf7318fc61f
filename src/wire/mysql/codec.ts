// MySQL message codecs: length-encoded values, handshake and auth messages, OK/ERR/EOF, column definitions, text and binary rows, COM_* bodies; pure functions over buffers.
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets.html
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_response_packets.html
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset.html
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html

import { CAP, TYPE } from './constants.js';
import { MysqlWireError } from './framing.js';

// ------------------------------------------------------------------------------------------------ reading

/** A bounds-checked cursor over one payload; every overrun is a MysqlWireError('truncated'). */
export class PayloadReader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw new MysqlWireError('truncated', 'packet is truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] as number;
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const v = this.buf.readUIntLE(this.pos, 3);
    this.pos += 3;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  /** An 8-byte integer; values above 2^53 are refused (no row count or id of ours gets near). */
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MysqlWireError('malformed', 'integer too large');
    return Number(v);
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
  rest(): Buffer {
    const b = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return b;
  }
  /** Length-encoded integer; null for the NULL marker 0xFB. 0xFF is never a valid first byte. */
  lenencOrNull(): number | null {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) return this.u24();
    if (first === 0xfe) return this.u64();
    throw new MysqlWireError('malformed', 'invalid length-encoded integer');
  }
  lenenc(): number {
    const v = this.lenencOrNull();
    if (v === null) throw new MysqlWireError('malformed', 'unexpected NULL length');
    return v;
  }
  lenencBytes(): Buffer {
    return this.bytes(this.lenenc());
  }
  lenencString(): string {
    return this.lenencBytes().toString('utf8');
  }
  /** Bytes up to a NUL (consumed, not returned); a missing NUL is truncation. */
  nulBytes(): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new MysqlWireError('truncated', 'missing NUL terminator');
    const b = this.buf.subarray(this.pos, end);
    this.pos = end + 1;
    return b;
  }
  nulString(): string {
    return this.nulBytes().toString('utf8');
  }
  /** A NUL-terminated string, or the rest of the payload when it ends without one (lenient clients). */
  nulOrRestString(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) return this.rest().toString('utf8');
    return this.nulString();
  }
}

// ------------------------------------------------------------------------------------------------ writing

/** Builds one payload. */
export class PayloadWriter {
  private parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.from([v & 0xff]));
    return this;
  }
  u16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE(v & 0xffff);
    this.parts.push(b);
    return this;
  }
  u24(v: number): this {
    const b = Buffer.allocUnsafe(3);
    b.writeUIntLE(v & 0xffffff, 0, 3);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  zeros(n: number): this {
    this.parts.push(Buffer.alloc(n));
    return this;
  }
  lenenc(v: number): this {
    this.parts.push(encodeLenenc(v));
    return this;
  }
  lenencBytes(b: Buffer): this {
    return this.lenenc(b.length).bytes(b);
  }
  lenencString(s: string): this {
    return this.lenencBytes(Buffer.from(s, 'utf8'));
  }
  nulString(s: string): this {
    const b = Buffer.from(s, 'utf8');
    if (b.includes(0)) throw new MysqlWireError('malformed', 'string contains NUL');
    this.parts.push(b, Buffer.from([0]));
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function encodeLenenc(v: number): Buffer {
  if (!Number.isSafeInteger(v) || v < 0) throw new MysqlWireError('malformed', 'invalid length');
  if (v < 0xfb) return Buffer.from([v]);
  if (v <= 0xffff) {
    const b = Buffer.allocUnsafe(3);
    b[0] = 0xfc;
    b.writeUInt16LE(v, 1);
    return b;
  }
  if (v <= 0xffffff) {
    const b = Buffer.allocUnsafe(4);
    b[0] = 0xfd;
    b.writeUIntLE(v, 1, 3);
    return b;
  }
  const b = Buffer.allocUnsafe(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(v), 1);
  return b;
}

// ------------------------------------------------------------------------------------------------ handshake

/** Protocol::HandshakeV10 (server greeting). */
export interface HandshakeV10 {
  readonly serverVersion: string;
  readonly connectionId: number;
  /** The scramble (20 bytes for both native and caching_sha2). */
  readonly authPluginData: Buffer;
  readonly capabilities: number;
  readonly charset: number;
  readonly status: number;
  readonly authPluginName: string;
}

export function encodeHandshakeV10(h: HandshakeV10): Buffer {
  const data = h.authPluginData;
  if (data.length < 8) throw new MysqlWireError('malformed', 'scramble too short');
  const w = new PayloadWriter()
    .u8(10)
    .nulString(h.serverVersion)
    .u32(h.connectionId)
    .bytes(data.subarray(0, 8))
    .u8(0)
    .u16(h.capabilities & 0xffff)
    .u8(h.charset)
    .u16(h.status)
    .u16((h.capabilities >>> 16) & 0xffff)
    .u8(data.length + 1)
    .zeros(10)
    .bytes(data.subarray(8))
    .u8(0);
  if (h.capabilities & CAP.PLUGIN_AUTH) w.nulString(h.authPluginName);
  return w.build();
}

export function decodeHandshakeV10(payload: Buffer): HandshakeV10 {
  const r = new PayloadReader(payload);
  const version = r.u8();
  if (version !== 10)
    throw new MysqlWireError('malformed', `unsupported handshake protocol version ${version}`);
  const serverVersion = r.nulString();
  const connectionId = r.u32();
  const part1 = r.bytes(8);
  r.skip(1);
  let capabilities = r.u16();
  let charset = 0;
  let status = 0;
  let part2: Buffer = Buffer.alloc(0);
  let authPluginName = 'mysql_native_password';
  if (r.remaining > 0) {
    charset = r.u8();
    status = r.u16();
    capabilities = (capabilities | (r.u16() << 16)) >>> 0;
    const dataLen = r.u8();
    r.skip(10);
    if (capabilities & CAP.SECURE_CONNECTION) {
      const n = Math.max(13, dataLen - 8);
      part2 = r.bytes(n);
      // The scramble part is NUL-terminated inside those bytes.
      if (part2[part2.length - 1] === 0) part2 = part2.subarray(0, part2.length - 1);
    }
    if (capabilities & CAP.PLUGIN_AUTH) authPluginName = r.nulOrRestString();
  }
  return {
    serverVersion,
    connectionId,
    authPluginData: Buffer.concat([part1, part2]),
    capabilities,
    charset,
    status,
    authPluginName,
  };
}

/** Protocol::SSLRequest: the first 32 bytes of a HandshakeResponse41 with CLIENT_SSL set. */
export function encodeSslRequest(capabilities: number, charset: number, maxPacketSize = 0x1000000): Buffer {
  return new PayloadWriter()
    .u32(capabilities | CAP.SSL)
    .u32(maxPacketSize)
    .u8(charset)
    .zeros(23)
    .build();
}

/** Protocol::HandshakeResponse41 (or its SSLRequest prefix, `ssl` true and the rest absent). */
export interface HandshakeResponse41 {
  readonly capabilities: number;
  readonly maxPacketSize: number;
  readonly charset: number;
  readonly username: string;
  readonly authResponse: Buffer;
  readonly database?: string;
  readonly authPluginName?: string;
  readonly attributes: ReadonlyMap<string, string>;
}

export type ClientHello =
  | { readonly kind: 'ssl'; readonly capabilities: number; readonly charset: number }
  | ({ readonly kind: 'response' } & HandshakeResponse41);

/** Most connection attributes a client may send (count); the packet cap bounds their size. */
const MAX_CONNECT_ATTRS = 64;

export function decodeClientHello(payload: Buffer): ClientHello {
  const r = new PayloadReader(payload);
  const capabilities = r.u32();
  if (!(capabilities & CAP.PROTOCOL_41)) {
    throw new MysqlWireError('malformed', 'clients older than protocol 4.1 are not supported');
  }
  const maxPacketSize = r.u32();
  const charset = r.u8();
  r.skip(23);
  if (r.remaining === 0) {
    if (!(capabilities & CAP.SSL)) throw new MysqlWireError('truncated', 'handshake response is truncated');
    return { kind: 'ssl', capabilities, charset };
  }
  const username = r.nulString();
  let authResponse: Buffer;
  if (capabilities & CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA) authResponse = r.lenencBytes();
  else if (capabilities & CAP.SECURE_CONNECTION) authResponse = r.bytes(r.u8());
  else authResponse = r.nulBytes();
  let database: string | undefined;
  let authPluginName: string | undefined;
  if (capabilities & CAP.CONNECT_WITH_DB && r.remaining > 0) database = r.nulOrRestString();
  if (capabilities & CAP.PLUGIN_AUTH && r.remaining > 0) authPluginName = r.nulOrRestString();
  const attributes = new Map<string, string>();
  if (capabilities & CAP.CONNECT_ATTRS && r.remaining > 0) {
    const len = r.lenenc();
    const a = new PayloadReader(r.bytes(len));
    while (a.remaining > 0) {
      if (attributes.size >= MAX_CONNECT_ATTRS)
        throw new MysqlWireError('malformed', 'too many connection attributes');
      const k = a.lenencString();
      attributes.set(k, a.lenencString());
    }
  }
  return {
    kind: 'response',
    capabilities,
    maxPacketSize,
    charset,
    username,
    authResponse: Buffer.from(authResponse),
    ...(database !== undefined ? { database } : {}),
    ...(authPluginName !== undefined ? { authPluginName } : {}),
    attributes,
  };
}

export function encodeHandshakeResponse41(h: HandshakeResponse41): Buffer {
  const w = new PayloadWriter()
    .u32(h.capabilities)
    .u32(h.maxPacketSize)
    .u8(h.charset)
    .zeros(23)
    .nulString(h.username);
  if (h.capabilities & CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA) w.lenencBytes(h.authResponse);
  else {
    if (h.authResponse.length > 255) throw new MysqlWireError('malformed', 'auth response too long');
    w.u8(h.authResponse.length).bytes(h.authResponse);
  }
  if (h.capabilities & CAP.CONNECT_WITH_DB) w.nulString(h.database ?? '');
  if (h.capabilities & CAP.PLUGIN_AUTH) w.nulString(h.authPluginName ?? '');
  if (h.capabilities & CAP.CONNECT_ATTRS) {
    const a = new PayloadWriter();
    for (const [k, v] of h.attributes) a.lenencString(k).lenencString(v);
    w.lenencBytes(a.build());
  }
  return w.build();
}

/** Protocol::AuthSwitchRequest: 0xFE, plugin name, plugin data (the scramble and a NUL). */
export function encodeAuthSwitchRequest(plugin: string, data: Buffer): Buffer {
  return new PayloadWriter().u8(0xfe).nulString(plugin).bytes(data).build();
}

export function decodeAuthSwitchRequest(payload: Buffer): { plugin: string; data: Buffer } {
  const r = new PayloadReader(payload);
  if (r.u8() !== 0xfe) throw new MysqlWireError('malformed', 'not an auth switch request');
  const plugin = r.nulOrRestString();
  let data = r.rest();
  if (data.length > 0 && data[data.length - 1] === 0) data = data.subarray(0, data.length - 1);
  return { plugin, data };
}

/** Protocol::AuthMoreData: 0x01 and plugin data. */
export function encodeAuthMoreData(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x01]), data]);
}

// ------------------------------------------------------------------------------------------------ responses

export interface OkPacket {
  readonly affectedRows: number;
  readonly lastInsertId: number;
  readonly status: number;
  readonly warnings: number;
  readonly info: string;
}

/** Decodes an OK packet (header 0x00, or 0xFE when it ends a result set under CLIENT_DEPRECATE_EOF). */
export function decodeOk(payload: Buffer): OkPacket {
  const r = new PayloadReader(payload);
  const h = r.u8();
  if (h !== 0x00 && h !== 0xfe) throw new MysqlWireError('malformed', 'not an OK packet');
  const affectedRows = r.lenenc();
  const lastInsertId = r.lenenc();
  const status = r.u16();
  const warnings = r.u16();
  return { affectedRows, lastInsertId, status, warnings, info: r.rest().toString('utf8') };
}

export function encodeOk(o: Partial<OkPacket> & { header?: 0x00 | 0xfe } = {}): Buffer {
  return new PayloadWriter()
    .u8(o.header ?? 0x00)
    .lenenc(o.affectedRows ?? 0)
    .lenenc(o.lastInsertId ?? 0)
    .u16(o.status ?? 0)
    .u16(o.warnings ?? 0)
    .bytes(Buffer.from(o.info ?? '', 'utf8'))
    .build();
}

export interface ErrPacket {
  readonly errno: number;
  readonly sqlstate: string;
  readonly message: string;
}

export function decodeErr(payload: Buffer): ErrPacket {
  const r = new PayloadReader(payload);
  if (r.u8() !== 0xff) throw new MysqlWireError('malformed', 'not an ERR packet');
  const errno = r.u16();
  let sqlstate = 'HY000';
  if (r.remaining >= 6 && payload[r.pos] === 0x23) {
    r.skip(1);
    sqlstate = r.bytes(5).toString('latin1');
  }
  return { errno, sqlstate, message: r.rest().toString('utf8') };
}

/** Longest error message Warden sends (MySQL's MYSQL_ERRMSG_SIZE is 512). */
const MAX_ERR_MESSAGE = 512;

export function encodeErr(e: ErrPacket): Buffer {
  const state = /^[0-9A-Z]{5}$/.test(e.sqlstate) ? e.sqlstate : 'HY000';
  let msg = Buffer.from(e.message, 'utf8');
  if (msg.length > MAX_ERR_MESSAGE) msg = msg.subarray(0, MAX_ERR_MESSAGE);
  return new PayloadWriter()
    .u8(0xff)
    .u16(e.errno)
    .u8(0x23)
    .bytes(Buffer.from(state, 'latin1'))
    .bytes(msg)
    .build();
}

export interface EofPacket {
  readonly warnings: number;
  readonly status: number;
}

/** An EOF packet: 0xFE and fewer than 9 bytes (a longer 0xFE payload is a row or a DEPRECATE_EOF OK). */
export function isEofPacket(payload: Buffer): boolean {
  return payload.length > 0 && payload.length < 9 && payload[0] === 0xfe;
}

export function decodeEof(payload: Buffer): EofPacket {
  const r = new PayloadReader(payload);
  if (r.u8() !== 0xfe) throw new MysqlWireError('malformed', 'not an EOF packet');
  if (r.remaining < 4) return { warnings: 0, status: 0 };
  const warnings = r.u16();
  return { warnings, status: r.u16() };
}

export function encodeEof(e: Partial<EofPacket> = {}): Buffer {
  return new PayloadWriter()
    .u8(0xfe)
    .u16(e.warnings ?? 0)
    .u16(e.status ?? 0)
    .build();
}

/** The status flags of a packet that ends a result (OK, EOF, or DEPRECATE_EOF-style OK). */
export function terminatorStatus(payload: Buffer): number {
  return isEofPacket(payload) ? decodeEof(payload).status : decodeOk(payload).status;
}

// ------------------------------------------------------------------------------------------------ result sets

/** Protocol::ColumnDefinition41. */
export interface ColumnDefinition {
  readonly catalog: string;
  readonly schema: string;
  readonly table: string;
  readonly orgTable: string;
  readonly name: string;
  readonly orgName: string;
  readonly charset: number;
  readonly length: number;
  readonly type: number;
  readonly flags: number;
  readonly decimals: number;
}

export function decodeColumnDefinition(payload: Buffer): ColumnDefinition {
  const r = new PayloadReader(payload);
  const catalog = r.lenencString();
  const schema = r.lenencString();
  const table = r.lenencString();
  const orgTable = r.lenencString();
  const name = r.lenencString();
  const orgName = r.lenencString();
  const fixed = r.lenenc();
  if (fixed < 0x0c) throw new MysqlWireError('malformed', 'column definition too short');
  const charset = r.u16();
  const length = r.u32();
  const type = r.u8();
  const flags = r.u16();
  const decimals = r.u8();
  return { catalog, schema, table, orgTable, name, orgName, charset, length, type, flags, decimals };
}

export function encodeColumnDefinition(c: Partial<ColumnDefinition> & { name: string }): Buffer {
  return new PayloadWriter()
    .lenencString(c.catalog ?? 'def')
    .lenencString(c.schema ?? '')
    .lenencString(c.table ?? '')
    .lenencString(c.orgTable ?? '')
    .lenencString(c.name)
    .lenencString(c.orgName ?? c.name)
    .lenenc(0x0c)
    .u16(c.charset ?? 45)
    .u32(c.length ?? 0)
    .u8(c.type ?? TYPE.VAR_STRING)
    .u16(c.flags ?? 0)
    .u8(c.decimals ?? 0)
    .zeros(2)
    .build();
}

/** A text-protocol row: one length-encoded string or NULL (0xFB) per column. */
export function decodeTextRow(payload: Buffer, columns: number): (Buffer | null)[] {
  const r = new PayloadReader(payload);
  const out: (Buffer | null)[] = [];
  for (let i = 0; i < columns; i++) {
    const n = r.lenencOrNull();
    out.push(n === null ? null : r.bytes(n));
  }
  if (r.remaining !== 0) throw new MysqlWireError('malformed', 'trailing bytes in a text row');
  return out;
}

export function encodeTextRow(values: readonly (Buffer | string | null)[]): Buffer {
  const w = new PayloadWriter();
  for (const v of values) {
    if (v === null) w.u8(0xfb);
    else w.lenencBytes(typeof v === 'string' ? Buffer.from(v, 'utf8') : v);
  }
  return w.build();
}

/** Bytes a binary-protocol value of `type` occupies at the reader's position (fixed, or length-prefixed). */
function readBinaryValue(r: PayloadReader, type: number): Buffer {
  switch (type) {
    case TYPE.NULL:
      return Buffer.alloc(0);
    case TYPE.TINY:
      return r.bytes(1);
    case TYPE.SHORT:
    case TYPE.YEAR:
      return r.bytes(2);
    case TYPE.LONG:
    case TYPE.INT24:
    case TYPE.FLOAT:
      return r.bytes(4);
    case TYPE.LONGLONG:
    case TYPE.DOUBLE:
      return r.bytes(8);
    case TYPE.DATE:
    case TYPE.DATETIME:
    case TYPE.TIMESTAMP:
    case TYPE.TIME: {
      const n = r.u8();
      r.pos -= 1;
      return r.bytes(n + 1);
    }
    default: {
      // Strings, decimals, blobs, JSON, BIT, ENUM, SET, GEOMETRY: a length-encoded string.
      const start = r.pos;
      const n = r.lenenc();
      r.skip(n);
      return r.buf.subarray(start, r.pos);
    }
  }
}

/** A binary-protocol row: 0x00, a NULL bitmap (offset 2), then the non-NULL values by column type. */
export function decodeBinaryRow(payload: Buffer, types: readonly number[]): (Buffer | null)[] {
  const r = new PayloadReader(payload);
  if (r.u8() !== 0x00) throw new MysqlWireError('malformed', 'not a binary row');
  const bitmap = r.bytes(Math.floor((types.length + 7 + 2) / 8));
  const out: (Buffer | null)[] = [];
  types.forEach((t, i) => {
    const bit = i + 2;
    if (((bitmap[bit >> 3] as number) >> (bit & 7)) & 1) out.push(null);
    else out.push(readBinaryValue(r, t));
  });
  if (r.remaining !== 0) throw new MysqlWireError('malformed', 'trailing bytes in a binary row');
  return out;
}

/** Encodes a binary row from already-encoded values (as `decodeBinaryRow` returns them). */
export function encodeBinaryRow(values: readonly (Buffer | null)[]): Buffer {
  const bitmap = Buffer.alloc(Math.floor((values.length + 7 + 2) / 8));
  values.forEach((v, i) => {
    const bit = i + 2;
    if (v === null) bitmap[bit >> 3] = (bitmap[bit >> 3] as number) | (1 << (bit & 7));
  });
  return Buffer.concat([Buffer.from([0]), bitmap, ...values.filter((v): v is Buffer => v !== null)]);
}

// ------------------------------------------------------------------------------------------------ commands

/** COM_STMT_PREPARE_OK. */
export interface PrepareOk {
  readonly statementId: number;
  readonly numColumns: number;
  readonly numParams: number;
  readonly warnings: number;
}

export function decodePrepareOk(payload: Buffer): PrepareOk {
  const r = new PayloadReader(payload);
  if (r.u8() !== 0x00) throw new MysqlWireError('malformed', 'not a COM_STMT_PREPARE_OK');
  const statementId = r.u32();
  const numColumns = r.u16();
  const numParams = r.u16();
  let warnings = 0;
  if (r.remaining >= 3) {
    r.skip(1);
    warnings = r.u16();
  }
  return { statementId, numColumns, numParams, warnings };
}

export function encodePrepareOk(p: PrepareOk): Buffer {
  return new PayloadWriter()
    .u8(0)
    .u32(p.statementId)
    .u16(p.numColumns)
    .u16(p.numParams)
    .u8(0)
    .u16(p.warnings)
    .build();
}

/** One bound parameter of COM_STMT_EXECUTE: its type (with the unsigned flag) and encoded value, or NULL. */
export interface ExecuteParam {
  readonly type: number;
  readonly unsigned: boolean;
  readonly value: Buffer | null;
}

export interface StmtExecute {
  readonly statementId: number;
  readonly flags: number;
  readonly iterations: number;
  /** Whether this packet carried parameter types (new_params_bind_flag). */
  readonly newParamsBound: boolean;
  readonly params: readonly ExecuteParam[];
}

/**
 * Decodes a COM_STMT_EXECUTE payload (command byte included). `paramCount` comes from the statement's
 * PREPARE_OK; `previousTypes` are the types bound by an earlier execute, used when this one sends none.
 */
export function decodeStmtExecute(
  payload: Buffer,
  paramCount: number,
  previousTypes: readonly { type: number; unsigned: boolean }[] | undefined,
): StmtExecute {
  const r = new PayloadReader(payload);
  if (r.u8() !== 0x17) throw new MysqlWireError('malformed', 'not a COM_STMT_EXECUTE');
  const statementId = r.u32();
  const flags = r.u8();
  const iterations = r.u32();
  const params: ExecuteParam[] = [];
  let newParamsBound = false;
  if (paramCount > 0) {
    const bitmap = r.bytes(Math.floor((paramCount + 7) / 8));
    newParamsBound = r.u8() === 1;
    let types: { type: number; unsigned: boolean }[];
    if (newParamsBound) {
      types = [];
      for (let i = 0; i < paramCount; i++) {
        const t = r.u8();
        const f = r.u8();
        types.push({ type: t, unsigned: (f & 0x80) !== 0 });
      }
    } else {
      if (!previousTypes || previousTypes.length !== paramCount) {
        throw new MysqlWireError('malformed', 'execute without parameter types before any were bound');
      }
      types = [...previousTypes];
    }
    for (let i = 0; i < paramCount; i++) {
      const t = types[i] as { type: number; unsigned: boolean };
      const isNull = (((bitmap[i >> 3] as number) >> (i & 7)) & 1) === 1;
      params.push({ type: t.type, unsigned: t.unsigned, value: isNull ? null : readBinaryValue(r, t.type) });
    }
  }
  return { statementId, flags, iterations, newParamsBound, params };
}

export function encodeStmtExecute(e: StmtExecute): Buffer {
  const w = new PayloadWriter().u8(0x17).u32(e.statementId).u8(e.flags).u32(e.iterations);
  const n = e.params.length;
  if (n > 0) {
    const bitmap = Buffer.alloc(Math.floor((n + 7) / 8));
    e.params.forEach((p, i) => {
      if (p.value === null) bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7));
    });
    w.bytes(bitmap).u8(e.newParamsBound ? 1 : 0);
    if (e.newParamsBound) for (const p of e.params) w.u8(p.type).u8(p.unsigned ? 0x80 : 0);
    for (const p of e.params) if (p.value !== null) w.bytes(p.value);
  }
  return w.build();
}

/** A command with a statement id right after the command byte (EXECUTE, CLOSE, RESET, SEND_LONG_DATA, FETCH). */
export function statementIdOf(payload: Buffer): number {
  const r = new PayloadReader(payload);
  r.skip(1);
  return r.u32();
}

/** A copy of `payload` with its statement id (bytes 1..4) replaced. */
export function withStatementId(payload: Buffer, id: number): Buffer {
  if (payload.length < 5) throw new MysqlWireError('truncated', 'command has no statement id');
  const b = Buffer.from(payload);
  b.writeUInt32LE(id >>> 0, 1);
  return b;
}

/** COM_FIELD_LIST: a NUL-terminated table name and a wildcard. */
export function decodeFieldList(payload: Buffer): { table: string; wildcard: string } {
  const r = new PayloadReader(payload);
  r.skip(1);
  const table = r.nulString();
  return { table, wildcard: r.rest().toString('utf8') };
}

/** COM_CHANGE_USER: the fields Warden needs to answer it. */
export function decodeChangeUser(payload: Buffer): { user: string } {
  const r = new PayloadReader(payload);
  r.skip(1);
  return { user: r.nulString() };
}
