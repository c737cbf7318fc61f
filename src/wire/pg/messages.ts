// PostgreSQL v3 message codecs used by the gateway: pure functions over buffers, no sockets.
// @see https://www.postgresql.org/docs/current/protocol-message-formats.html

import { WardenError } from '../../core/errors.js';
import { BodyBuilder, BodyReader, frame } from './reader.js';

/** Message type bytes, named as in the protocol docs. */
export const MSG = {
  // frontend
  Query: 0x51, // 'Q'
  Parse: 0x50, // 'P'
  Bind: 0x42, // 'B'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Sync: 0x53, // 'S'
  Flush: 0x48, // 'H'
  Close: 0x43, // 'C'
  Terminate: 0x58, // 'X'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  FunctionCall: 0x46, // 'F'
  Password: 0x70, // 'p' (PasswordMessage, SASLInitialResponse, SASLResponse)
  // backend
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  ParameterStatus: 0x53, // 'S'
  ReadyForQuery: 0x5a, // 'Z'
  ErrorResponse: 0x45, // 'E'
  NoticeResponse: 0x4e, // 'N'
  CommandComplete: 0x43, // 'C'
  NotificationResponse: 0x41, // 'A'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  DataRow: 0x44, // 'D'
  RowDescription: 0x54, // 'T'
  NegotiateProtocolVersion: 0x76, // 'v'
} as const;

export const PROTOCOL_3_0 = 196608;
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number }
  | { kind: 'startup'; protocol: number; params: Map<string, string> };

/** Decodes a startup-phase packet (length word included). */
export function decodeStartup(packet: Buffer): StartupPacket {
  const r = new BodyReader(packet, 'startup');
  r.int32(); // length, checked by the framer
  const code = r.int32();
  if (code === SSL_REQUEST_CODE) {
    r.end();
    return { kind: 'ssl' };
  }
  if (code === GSSENC_REQUEST_CODE) {
    r.end();
    return { kind: 'gssenc' };
  }
  if (code === CANCEL_REQUEST_CODE) {
    const pid = r.int32();
    const secret = r.int32();
    r.end();
    return { kind: 'cancel', pid, secret };
  }
  if (code >> 16 !== 3) {
    throw new WardenError(
      'FEATURE_NOT_SUPPORTED',
      `unsupported frontend protocol ${code >> 16}.${code & 0xffff}: Warden supports 3.0`,
    );
  }
  const params = new Map<string, string>();
  for (;;) {
    const key = r.cstring();
    if (key === '') break;
    const value = r.cstring();
    if (params.has(key)) throw new WardenError('PROTOCOL_VIOLATION', `duplicate startup parameter "${key}"`);
    params.set(key, value);
  }
  r.end();
  return { kind: 'startup', protocol: code, params };
}

export function decodeQuery(body: Buffer): string {
  const r = new BodyReader(body, 'Query');
  const sql = r.cstring();
  r.end();
  return sql;
}

export interface ParseMessage {
  readonly name: string;
  readonly sql: string;
  readonly paramTypes: number[];
}

export function decodeParse(body: Buffer): ParseMessage {
  const r = new BodyReader(body, 'Parse');
  const name = r.cstring();
  const sql = r.cstring();
  const n = r.int16();
  if (n < 0) throw new WardenError('PROTOCOL_VIOLATION', 'negative parameter count in Parse message');
  const paramTypes: number[] = [];
  for (let i = 0; i < n; i++) paramTypes.push(r.uint32());
  r.end();
  return { name, sql, paramTypes };
}

export function encodeParse(m: ParseMessage): Buffer {
  const b = new BodyBuilder().cstring(m.name).cstring(m.sql).int16(m.paramTypes.length);
  for (const t of m.paramTypes) b.int32(t);
  return frame(MSG.Parse, b.build());
}

export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  readonly paramFormats: number[];
  /** null is SQL NULL; kept distinct from an empty value. */
  readonly params: (Buffer | null)[];
  readonly resultFormats: number[];
}

export function decodeBind(body: Buffer): BindMessage {
  const r = new BodyReader(body, 'Bind');
  const portal = r.cstring();
  const statement = r.cstring();
  const nf = r.int16();
  if (nf < 0) throw new WardenError('PROTOCOL_VIOLATION', 'negative format count in Bind message');
  const paramFormats: number[] = [];
  for (let i = 0; i < nf; i++) paramFormats.push(r.int16());
  const np = r.int16();
  if (np < 0) throw new WardenError('PROTOCOL_VIOLATION', 'negative parameter count in Bind message');
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < np; i++) {
    const len = r.int32();
    if (len < -1) throw new WardenError('PROTOCOL_VIOLATION', 'invalid parameter length in Bind message');
    params.push(len === -1 ? null : r.bytes(len));
  }
  const nr = r.int16();
  if (nr < 0) throw new WardenError('PROTOCOL_VIOLATION', 'negative result format count in Bind message');
  const resultFormats: number[] = [];
  for (let i = 0; i < nr; i++) resultFormats.push(r.int16());
  r.end();
  return { portal, statement, paramFormats, params, resultFormats };
}

/** Describe and Close name a statement ('S') or a portal ('P'). */
export function decodeTarget(body: Buffer, what: string): { kind: 'S' | 'P'; name: string } {
  const r = new BodyReader(body, what);
  const k = r.byte();
  if (k !== 0x53 && k !== 0x50) throw new WardenError('PROTOCOL_VIOLATION', `invalid ${what} target type`);
  const name = r.cstring();
  r.end();
  return { kind: k === 0x53 ? 'S' : 'P', name };
}

export function decodeExecute(body: Buffer): { portal: string; maxRows: number } {
  const r = new BodyReader(body, 'Execute');
  const portal = r.cstring();
  const maxRows = r.int32();
  r.end();
  return { portal, maxRows };
}

export function decodeSaslInitial(body: Buffer): { mechanism: string; data: Buffer } {
  const r = new BodyReader(body, 'SASLInitialResponse');
  const mechanism = r.cstring();
  const len = r.int32();
  const data = len === -1 ? Buffer.alloc(0) : r.bytes(len);
  r.end();
  return { mechanism, data };
}

// ---- backend messages (Warden → client) ----

export const authOk = (): Buffer => frame(MSG.Authentication, new BodyBuilder().int32(0).build());

export function authSasl(mechanisms: readonly string[]): Buffer {
  const b = new BodyBuilder().int32(10);
  for (const m of mechanisms) b.cstring(m);
  b.byte(0);
  return frame(MSG.Authentication, b.build());
}
export const authSaslContinue = (data: string): Buffer =>
  frame(MSG.Authentication, new BodyBuilder().int32(11).bytes(Buffer.from(data, 'utf8')).build());
export const authSaslFinal = (data: string): Buffer =>
  frame(MSG.Authentication, new BodyBuilder().int32(12).bytes(Buffer.from(data, 'utf8')).build());

export const parameterStatus = (name: string, value: string): Buffer =>
  frame(MSG.ParameterStatus, new BodyBuilder().cstring(name).cstring(value).build());

export const backendKeyData = (pid: number, secret: number): Buffer =>
  frame(MSG.BackendKeyData, new BodyBuilder().int32(pid).int32(secret).build());

export type TxStatus = 'I' | 'T' | 'E';
export const readyForQuery = (status: TxStatus): Buffer =>
  frame(MSG.ReadyForQuery, Buffer.from([status.charCodeAt(0)]));

/** ErrorResponse / NoticeResponse fields, by their one-letter codes. */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function encodeFields(type: number, f: ErrorFields): Buffer {
  const b = new BodyBuilder();
  b.byte(0x53).cstring(f.severity); // S
  b.byte(0x56).cstring(f.severity); // V (non-localized)
  b.byte(0x43).cstring(f.code); // C
  b.byte(0x4d).cstring(f.message); // M
  if (f.detail !== undefined) b.byte(0x44).cstring(f.detail); // D
  if (f.hint !== undefined) b.byte(0x48).cstring(f.hint); // H
  b.byte(0);
  return frame(type, b.build());
}
export const errorResponse = (f: ErrorFields): Buffer => encodeFields(MSG.ErrorResponse, f);
export const noticeResponse = (f: ErrorFields): Buffer => encodeFields(MSG.NoticeResponse, f);

/** Decodes ErrorResponse/NoticeResponse fields into a map keyed by the field letter. */
export function decodeFields(body: Buffer): Map<string, string> {
  const r = new BodyReader(body, 'ErrorResponse');
  const out = new Map<string, string>();
  for (;;) {
    const t = r.byte();
    if (t === 0) break;
    out.set(String.fromCharCode(t), r.cstring());
  }
  return out;
}

// ---- frontend messages (Warden → upstream) ----

export function encodeStartup(params: ReadonlyMap<string, string>): Buffer {
  const b = new BodyBuilder().int32(PROTOCOL_3_0);
  for (const [k, v] of params) b.cstring(k).cstring(v);
  b.byte(0);
  return frame(null, b.build());
}
export const sslRequest = (): Buffer => frame(null, new BodyBuilder().int32(SSL_REQUEST_CODE).build());
export const cancelRequest = (pid: number, secret: number): Buffer =>
  frame(null, new BodyBuilder().int32(CANCEL_REQUEST_CODE).int32(pid).int32(secret).build());
export const passwordMessage = (password: string): Buffer =>
  frame(MSG.Password, new BodyBuilder().cstring(password).build());
export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const d = Buffer.from(data, 'utf8');
  return frame(MSG.Password, new BodyBuilder().cstring(mechanism).int32(d.length).bytes(d).build());
}
export const saslResponse = (data: string): Buffer => frame(MSG.Password, Buffer.from(data, 'utf8'));
export const query = (sql: string): Buffer => frame(MSG.Query, new BodyBuilder().cstring(sql).build());
export const sync = (): Buffer => frame(MSG.Sync);
export const terminate = (): Buffer => frame(MSG.Terminate);
