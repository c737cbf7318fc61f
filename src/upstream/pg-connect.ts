// Opens an authenticated connection to an upstream PostgreSQL server with the credentials only Warden holds.
// @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP

import net from 'node:net';
import tls from 'node:tls';
import { WardenError } from '../core/errors.js';
import { connectTcp, upgradeToTls } from './upstream-socket.js';
import { Framer, type Frame } from '../wire/pg/framing.js';
import {
  MSG,
  decodeFields,
  encodeStartup,
  passwordMessage,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  cancelRequest,
} from '../wire/pg/messages.js';
import { BodyReader } from '../wire/pg/reader.js';
import { ScramClient, md5Password } from './auth.js';

export type UpstreamTlsMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

export interface UpstreamEndpoint {
  readonly host: string;
  readonly port: number;
  readonly tls: UpstreamTlsMode;
  readonly caFile?: string;
  readonly serverName?: string;
  readonly connectTimeoutMs?: number;
}

export interface UpstreamLogin {
  readonly user: string;
  /** Resolved secret; undefined for trust authentication. Never logged. */
  readonly password?: string;
}

export interface UpstreamConnection {
  readonly socket: net.Socket;
  /** ParameterStatus values the server sent during startup. */
  readonly parameters: Map<string, string>;
  readonly backendPid: number;
  readonly backendSecret: number;
  /** Bytes that arrived after the first ReadyForQuery (normally none). */
  readonly leftover: Buffer;
  readonly tls: boolean;
}

/** Reads from a socket through a framer until `want` returns a value. */
class MessagePump {
  private readonly framer: Framer;
  private waiting: ((f: Frame) => void) | null = null;
  private failed: Error | null = null;
  private fail: ((e: Error) => void) | null = null;
  private readonly queue: Frame[] = [];
  private readonly onData = (chunk: Buffer): void => {
    this.framer.push(chunk);
    try {
      for (let f = this.framer.next(); f; f = this.framer.next()) this.queue.push(f);
    } catch (e) {
      this.abort(e as Error);
      return;
    }
    this.deliver();
  };
  private readonly onClose = (): void =>
    this.abort(new WardenError('UPSTREAM_UNAVAILABLE', 'upstream closed the connection during startup'));
  private readonly onError = (e: Error): void =>
    this.abort(
      new WardenError('UPSTREAM_UNAVAILABLE', 'upstream connection failed during startup', { cause: e }),
    );

  constructor(private readonly socket: net.Socket) {
    // Upstream messages during startup are small; a large cap only guards against a hostile server.
    this.framer = new Framer(64 * 1024 * 1024, { startup: false });
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }
  private abort(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    this.fail?.(e);
  }
  private deliver(): void {
    if (this.waiting && this.queue.length > 0) {
      const w = this.waiting;
      this.waiting = null;
      this.fail = null;
      w(this.queue.shift() as Frame);
    }
  }
  next(): Promise<Frame> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift() as Frame);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.fail = reject;
    });
  }
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    const rest = this.queue.map((f) => f.raw);
    rest.push(this.framer.drain());
    return Buffer.concat(rest);
  }
}

function upstreamError(f: Frame): WardenError {
  const fields = decodeFields(f.body);
  const code = fields.get('C') ?? 'XX000';
  const msg = fields.get('M') ?? 'unknown error';
  // The upstream login is Warden's secret business: report the class of failure, not the server's words about it.
  if (code.startsWith('28')) {
    return new WardenError('UPSTREAM_UNAVAILABLE', 'Warden could not authenticate to the upstream database', {
      detail: `upstream SQLSTATE ${code}`,
    });
  }
  return new WardenError('UPSTREAM_UNAVAILABLE', `upstream refused the connection: ${msg}`, {
    detail: `upstream SQLSTATE ${code}`,
  });
}

async function startTls(socket: net.Socket, ep: UpstreamEndpoint): Promise<tls.TLSSocket> {
  socket.write(sslRequest());
  const answer = await new Promise<Buffer>((resolve, reject) => {
    socket.once('data', resolve);
    socket.once('error', reject);
  });
  if (answer.length !== 1 || answer[0] !== 0x53) {
    socket.destroy();
    throw new WardenError(
      'UPSTREAM_UNAVAILABLE',
      `upstream ${ep.host}:${ep.port} does not support TLS, which the target requires`,
    );
  }
  return await upgradeToTls(socket, ep);
}

/** Connects, negotiates TLS if configured, authenticates (SCRAM-SHA-256, md5, cleartext or trust), and waits for ReadyForQuery. */
export async function connectUpstream(
  ep: UpstreamEndpoint,
  login: UpstreamLogin,
  startupParams: ReadonlyMap<string, string>,
): Promise<UpstreamConnection> {
  let socket: net.Socket = await connectTcp(ep);
  try {
    if (ep.tls !== 'disable') socket = await startTls(socket, ep);
    socket.setNoDelay(true);
    const pump = new MessagePump(socket);
    const params = new Map(startupParams);
    params.set('user', login.user);
    socket.write(encodeStartup(params));
    let scram: ScramClient | null = null;
    const parameters = new Map<string, string>();
    let pid = 0;
    let secret = 0;
    for (;;) {
      const f = await pump.next();
      if (f.type === MSG.ErrorResponse) throw upstreamError(f);
      if (f.type === MSG.NoticeResponse || f.type === MSG.NegotiateProtocolVersion) continue;
      if (f.type === MSG.ParameterStatus) {
        const r = new BodyReader(f.body, 'ParameterStatus');
        parameters.set(r.cstring(), r.cstring());
        continue;
      }
      if (f.type === MSG.BackendKeyData) {
        const r = new BodyReader(f.body, 'BackendKeyData');
        pid = r.int32();
        secret = r.int32();
        continue;
      }
      if (f.type === MSG.ReadyForQuery) {
        const leftover = pump.detach();
        return {
          socket,
          parameters,
          backendPid: pid,
          backendSecret: secret,
          leftover,
          tls: socket instanceof tls.TLSSocket,
        };
      }
      if (f.type !== MSG.Authentication) {
        throw new WardenError(
          'UPSTREAM_UNAVAILABLE',
          `unexpected message '${String.fromCharCode(f.type)}' from upstream during startup`,
        );
      }
      const r = new BodyReader(f.body, 'Authentication');
      const kind = r.int32();
      const needPassword = (): string => {
        if (login.password === undefined) {
          throw new WardenError(
            'UPSTREAM_UNAVAILABLE',
            'upstream asks for a password but the target login has none configured',
          );
        }
        return login.password;
      };
      switch (kind) {
        case 0: // AuthenticationOk
          break;
        case 3: // CleartextPassword
          if (ep.tls === 'disable') {
            throw new WardenError(
              'UPSTREAM_UNAVAILABLE',
              'upstream asks for a cleartext password over an unencrypted connection; Warden refuses to send it',
            );
          }
          socket.write(passwordMessage(needPassword()));
          break;
        case 5: // MD5Password
          socket.write(passwordMessage(md5Password(login.user, needPassword(), r.bytes(4))));
          break;
        case 10: {
          // SASL
          const mechs: string[] = [];
          for (let m = r.cstring(); m !== ''; m = r.cstring()) mechs.push(m);
          if (!mechs.includes('SCRAM-SHA-256')) {
            throw new WardenError(
              'UPSTREAM_UNAVAILABLE',
              `upstream offers no supported SASL mechanism (${mechs.join(', ')})`,
            );
          }
          scram = new ScramClient(needPassword());
          socket.write(saslInitialResponse('SCRAM-SHA-256', scram.clientFirst()));
          break;
        }
        case 11: // SASLContinue
          if (!scram) throw new WardenError('UPSTREAM_UNAVAILABLE', 'unexpected SASLContinue from upstream');
          socket.write(saslResponse(scram.serverFirst(r.rest().toString('utf8'))));
          break;
        case 12: // SASLFinal
          if (!scram) throw new WardenError('UPSTREAM_UNAVAILABLE', 'unexpected SASLFinal from upstream');
          scram.verifyServerFinal(r.rest().toString('utf8'));
          break;
        default:
          throw new WardenError(
            'UPSTREAM_UNAVAILABLE',
            `upstream asks for an unsupported authentication method (${kind})`,
          );
      }
    }
  } catch (e) {
    socket.destroy();
    if (e instanceof WardenError) throw e;
    throw new WardenError('UPSTREAM_UNAVAILABLE', 'upstream connection failed', { cause: e });
  }
}

/** Sends a CancelRequest for an upstream backend on a new connection (fire and forget). */
export async function sendUpstreamCancel(ep: UpstreamEndpoint, pid: number, secret: number): Promise<void> {
  let socket: net.Socket = await connectTcp(ep);
  if (ep.tls !== 'disable') socket = await startTls(socket, ep);
  await new Promise<void>((resolve) => {
    socket.end(cancelRequest(pid, secret), () => resolve());
  });
  socket.destroy();
}
