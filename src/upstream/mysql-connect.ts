// Opens an authenticated connection to an upstream MySQL or MariaDB server with the credentials only Warden holds.
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
//
// Life of a connect: TCP → HandshakeV10 → (SSLRequest → TLS, per the target's tls.mode) → HandshakeResponse41
// with a fixed, safe capability set (never LOCAL_FILES, compression, query attributes, ...) and the target
// database → mysql_native_password or caching_sha2_password (fast path, or full: cleartext only over TLS; never
// RSA with a public key fetched over plain TCP, which anyone in the middle could replace), AuthSwitchRequest
// followed → OK.

import net from 'node:net';
import { WardenError } from '../core/errors.js';
import { connectTcp, upgradeToTls } from './upstream-socket.js';
import { CAP, CHARSET_UTF8MB4 } from '../wire/mysql/constants.js';
import { PacketFramer, packet, type Packet } from '../wire/mysql/framing.js';
import {
  decodeAuthSwitchRequest,
  decodeErr,
  decodeHandshakeV10,
  decodeOk,
  encodeHandshakeResponse41,
  encodeSslRequest,
  type HandshakeV10,
} from '../wire/mysql/codec.js';
import { CACHING_SHA2_PLUGIN, NATIVE_PLUGIN, nativeScramble, sha2Scramble } from '../identity/mysql-auth.js';
import type { UpstreamLogin, UpstreamTlsMode } from './pg-connect.js';

export interface MysqlEndpoint {
  readonly host: string;
  readonly port: number;
  readonly tls: UpstreamTlsMode;
  readonly caFile?: string;
  readonly serverName?: string;
  readonly connectTimeoutMs?: number;
}

export interface MysqlConnectOptions {
  /** The database to select at connect (the target's database). */
  readonly database: string;
  /**
   * Capability bits the client negotiated that are passed on: only those in PASSABLE_CAPABILITIES are; anything
   * else is dropped here, whatever the caller asks.
   */
  readonly clientCapabilities?: number;
  /** Collation id to announce (default utf8mb4_general_ci). */
  readonly charset?: number;
}

export interface MysqlUpstreamConnection {
  readonly socket: net.Socket;
  readonly handshake: HandshakeV10;
  /** The capabilities in force on this connection (what Warden sent, which the server supports). */
  readonly capabilities: number;
  /** Status flags of the final OK. */
  readonly status: number;
  /** Bytes that arrived after the final OK (normally none). */
  readonly leftover: Buffer;
  readonly tls: boolean;
}

/** Capability bits a client's choice may switch on upstream: they change result formats, never what runs where. */
export const PASSABLE_CAPABILITIES =
  CAP.FOUND_ROWS | CAP.MULTI_STATEMENTS | CAP.DEPRECATE_EOF | CAP.INTERACTIVE | CAP.SESSION_TRACK;

/** What Warden always asks for. */
const BASE_CAPABILITIES =
  CAP.LONG_PASSWORD |
  CAP.LONG_FLAG |
  CAP.PROTOCOL_41 |
  CAP.TRANSACTIONS |
  CAP.SECURE_CONNECTION |
  CAP.MULTI_RESULTS |
  CAP.PS_MULTI_RESULTS |
  CAP.PLUGIN_AUTH |
  CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CAP.CONNECT_WITH_DB;

/** Upstream packets during the connection phase are small; the cap guards against a hostile server. */
const MAX_CONNECT_PACKET = 1024 * 1024;

/** Reads whole packets from one socket during the connection phase. */
class PacketPump {
  private readonly framer = new PacketFramer(MAX_CONNECT_PACKET);
  private readonly queue: Packet[] = [];
  private waiting: { resolve: (p: Packet) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;
  private readonly onData = (chunk: Buffer): void => {
    try {
      this.framer.push(chunk);
      for (let p = this.framer.next(); p; p = this.framer.next()) this.queue.push(p);
    } catch (e) {
      this.abort(
        new WardenError('UPSTREAM_UNAVAILABLE', `invalid packet from upstream: ${(e as Error).message}`),
      );
      return;
    }
    this.deliver();
  };
  private readonly onClose = (): void =>
    this.abort(
      new WardenError('UPSTREAM_UNAVAILABLE', 'upstream closed the connection during the handshake'),
    );
  private readonly onError = (e: Error): void =>
    this.abort(
      new WardenError('UPSTREAM_UNAVAILABLE', 'upstream connection failed during the handshake', {
        cause: e,
      }),
    );

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
  }
  private abort(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    const w = this.waiting;
    this.waiting = null;
    w?.reject(e);
  }
  private deliver(): void {
    if (this.waiting && this.queue.length > 0) {
      const w = this.waiting;
      this.waiting = null;
      w.resolve(this.queue.shift() as Packet);
    }
  }
  next(timeoutMs: number): Promise<Packet> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new WardenError('UPSTREAM_UNAVAILABLE', 'upstream did not complete the handshake in time'));
      }, timeoutMs);
      this.waiting = {
        resolve: (p) => {
          clearTimeout(timer);
          resolve(p);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }
  /** Stops reading; returns bytes received and not consumed. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    const rest = this.queue.map((p) => p.raw);
    return Buffer.concat(rest);
  }
  get pendingBytes(): number {
    return this.framer.pending + this.queue.length;
  }
}

function upstreamErr(payload: Buffer): WardenError {
  let errno = 0;
  let message = 'unknown error';
  try {
    const e = decodeErr(payload);
    errno = e.errno;
    message = e.message;
  } catch {
    // keep the generic text
  }
  // The upstream login is Warden's secret business: report the class of failure, not the server's words about it.
  if (errno === 1045 || errno === 1698 || errno === 1251) {
    return new WardenError('UPSTREAM_UNAVAILABLE', 'Warden could not authenticate to the upstream database', {
      detail: `upstream errno ${errno}`,
    });
  }
  return new WardenError('UPSTREAM_UNAVAILABLE', `upstream refused the connection: ${message}`, {
    detail: `upstream errno ${errno}`,
  });
}

function scrambleFor(plugin: string, password: string, scramble: Buffer): Buffer {
  if (plugin === CACHING_SHA2_PLUGIN) return sha2Scramble(password, scramble);
  return nativeScramble(password, scramble);
}

/** Connects, negotiates TLS per the endpoint, authenticates, selects the database. */
export async function connectMysqlUpstream(
  ep: MysqlEndpoint,
  login: UpstreamLogin,
  opts: MysqlConnectOptions,
): Promise<MysqlUpstreamConnection> {
  const timeout = ep.connectTimeoutMs ?? 10_000;
  const raw = await connectTcp(ep);
  let socket: net.Socket = raw;
  let pump = new PacketPump(socket);
  try {
    const first = await pump.next(timeout);
    if (first.payload[0] === 0xff) throw upstreamErr(first.payload);
    let hs: HandshakeV10;
    try {
      hs = decodeHandshakeV10(first.payload);
    } catch (e) {
      throw new WardenError(
        'UPSTREAM_UNAVAILABLE',
        `upstream sent an invalid handshake: ${(e as Error).message}`,
      );
    }
    const required = CAP.PROTOCOL_41 | CAP.SECURE_CONNECTION | CAP.PLUGIN_AUTH;
    if ((hs.capabilities & required) !== required) {
      throw new WardenError(
        'UPSTREAM_UNAVAILABLE',
        'upstream server is too old (needs protocol 4.1 with plugin auth)',
      );
    }
    const passed = (opts.clientCapabilities ?? 0) & PASSABLE_CAPABILITIES;
    if (passed & ~hs.capabilities) {
      throw new WardenError(
        'UPSTREAM_UNAVAILABLE',
        'upstream server lacks a protocol capability the client negotiated (e.g. CLIENT_DEPRECATE_EOF)',
      );
    }
    // INVARIANT: only BASE_CAPABILITIES and PASSABLE_CAPABILITIES ever reach the server.
    let caps = ((BASE_CAPABILITIES | passed) & hs.capabilities) >>> 0;
    caps = (caps | CAP.PROTOCOL_41 | CAP.CONNECT_WITH_DB) >>> 0;
    const charset = opts.charset ?? CHARSET_UTF8MB4;
    let seq = (first.lastSeq + 1) & 0xff;
    let useTls = false;
    if (ep.tls !== 'disable') {
      if (!(hs.capabilities & CAP.SSL)) {
        throw new WardenError(
          'UPSTREAM_UNAVAILABLE',
          `upstream ${ep.host}:${ep.port} does not support TLS, which the target requires`,
        );
      }
      caps = (caps | CAP.SSL) >>> 0;
      socket.write(packet(seq, encodeSslRequest(caps, charset)));
      seq = (seq + 1) & 0xff;
      if (pump.pendingBytes > 0)
        throw new WardenError('UPSTREAM_UNAVAILABLE', 'upstream sent data before TLS');
      pump.detach();
      socket = await upgradeToTls(socket, ep);
      pump = new PacketPump(socket);
      useTls = true;
    }
    const password = login.password ?? '';
    let plugin = hs.authPluginName === CACHING_SHA2_PLUGIN ? CACHING_SHA2_PLUGIN : NATIVE_PLUGIN;
    let scramble = hs.authPluginData.subarray(0, 20);
    socket.write(
      packet(
        seq,
        encodeHandshakeResponse41({
          capabilities: caps,
          maxPacketSize: 0x1000000,
          charset,
          username: login.user,
          authResponse: scrambleFor(plugin, password, scramble),
          database: opts.database,
          authPluginName: plugin,
          attributes: new Map(),
        }),
      ),
    );
    for (let rounds = 0; rounds < 8; rounds++) {
      const p = await pump.next(timeout);
      seq = (p.lastSeq + 1) & 0xff;
      const head = p.payload[0];
      if (head === 0x00) {
        const ok = decodeOk(p.payload);
        const leftover = pump.detach();
        return { socket, handshake: hs, capabilities: caps, status: ok.status, leftover, tls: useTls };
      }
      if (head === 0xff) throw upstreamErr(p.payload);
      if (head === 0xfe) {
        const sw = decodeAuthSwitchRequest(p.payload);
        scramble = sw.data.subarray(0, 20);
        if (sw.plugin === NATIVE_PLUGIN || sw.plugin === CACHING_SHA2_PLUGIN) {
          plugin = sw.plugin;
          socket.write(packet(seq, scrambleFor(plugin, password, scramble)));
        } else if (sw.plugin === 'mysql_clear_password' && useTls) {
          plugin = sw.plugin;
          socket.write(packet(seq, Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])])));
        } else {
          throw new WardenError(
            'UPSTREAM_UNAVAILABLE',
            `upstream asks for unsupported authentication "${sw.plugin}"`,
          );
        }
        continue;
      }
      if (head === 0x01 && plugin === CACHING_SHA2_PLUGIN) {
        const data = p.payload.subarray(1);
        if (data.length === 1 && data[0] === 0x03) continue; // fast auth success; the OK follows
        if (data.length === 1 && data[0] === 0x04) {
          // Full authentication: the cleartext only inside TLS.
          if (useTls) {
            socket.write(packet(seq, Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])])));
            continue;
          }
          // INVARIANT: no password for a key anyone could have sent. The public key comes over the same unencrypted,
          // unauthenticated connection: someone in the middle would send theirs and decrypt the password (MySQL's
          // own client refuses this too unless told --get-server-public-key). Use TLS towards this target.
          throw new WardenError(
            'UPSTREAM_UNAVAILABLE',
            'upstream requires full caching_sha2_password authentication, which Warden performs only over TLS; set tls.mode on the target',
          );
        }
      }
      throw new WardenError('UPSTREAM_UNAVAILABLE', 'unexpected packet from upstream during authentication');
    }
    throw new WardenError('UPSTREAM_UNAVAILABLE', 'upstream authentication did not finish');
  } catch (e) {
    pump.detach();
    socket.destroy();
    raw.destroy();
    throw e;
  }
}
