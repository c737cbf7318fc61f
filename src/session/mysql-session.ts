// One MySQL client connection: handshake, TLS, authentication as a Warden user, the upstream link, and the command path through the statement hook.
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
// @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
//
// Life of a command: client bytes are framed (size-capped) and queued; commands run strictly one at a time.
// COM_QUERY, COM_STMT_PREPARE, COM_INIT_DB (as `USE db`) and COM_FIELD_LIST (as a read of the table) go to the
// StatementHook; COM_STMT_EXECUTE shows the hook a hash of its parameters. A denied command is answered by
// Warden with an ERR packet and never reaches the server. An allowed one is forwarded (rewritten if the hook
// says so) and the response is relayed packet by packet: rows stream through (only their first byte and length
// are looked at) while the response state machine (OK / ERR / column definitions / rows / EOF, more results)
// tells where the response ends; then the next command runs.

import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto';
import { isWardenError } from '../core/errors.js';
import type {
  BindRequest,
  SessionContext,
  SessionEvents,
  StatementHook,
  StatementPath,
  StatementRequest,
  StatementVerdict,
} from '../core/context.js';
import type { GatewayConfig, TargetConfig, UserConfig } from '../config/gateway-config.js';
import type { AuthThrottle } from '../identity/throttle.js';
import { parseVerifier, createVerifier, type ParsedVerifier } from '../identity/scram.js';
import {
  CACHING_SHA2_PLUGIN,
  NATIVE_PLUGIN,
  decryptRsaPassword,
  newScramble,
  sha2DoubleHash,
  verifyCleartext,
  verifyNative,
  verifySha2Fast,
  type FastAuthCache,
  type MysqlRsaKeys,
} from '../identity/mysql-auth.js';
import { CAP, COM, ER, MAX_PACKET_PAYLOAD, STATUS } from '../wire/mysql/constants.js';
import { PacketFramer, encodePacket, isMysqlWireError, packet, type Packet } from '../wire/mysql/framing.js';
import {
  decodeClientHello,
  decodeErr,
  decodeFieldList,
  decodeOk,
  decodePrepareOk,
  decodeStmtExecute,
  encodeAuthMoreData,
  encodeAuthSwitchRequest,
  encodeErr,
  encodeHandshakeV10,
  encodeOk,
  isEofPacket,
  statementIdOf,
  terminatorStatus,
  withStatementId,
  type ExecuteParam,
} from '../wire/mysql/codec.js';
import { mysqlErrorFor } from '../wire/mysql/errors.js';
import { connectMysqlUpstream, type MysqlEndpoint } from '../upstream/mysql-connect.js';
import type { UpstreamLogin } from '../upstream/pg-connect.js';
import { IdleWatch, type TargetSessionSettings } from './session-limits.js';
import {
  awaitVerdict,
  emitEvent,
  principalOf,
  targetEndpoint,
  tearDownSession,
  type VerdictHold,
} from './session-common.js';

/** What a MySQL session needs from the gateway around it. */
export interface MysqlSessionDeps {
  readonly config: GatewayConfig;
  readonly throttle: AuthThrottle;
  /** Statement hook per target. */
  hookFor(target: TargetConfig): StatementHook;
  readonly events: SessionEvents;
  /** Key for the stand-in verifier of unknown users (stable across restarts). */
  readonly fakeSaltKey: Buffer;
  readonly tlsContext?: tls.SecureContext;
  readonly rsaKeys: MysqlRsaKeys;
  readonly fastAuth: FastAuthCache;
  /** Called once when the session has fully closed. */
  onClose(session: MysqlSession): void;
  /** The target's settings from its running signed bundle (read at connect and at each idle wait); none: defaults. */
  settingsFor?(target: TargetConfig): TargetSessionSettings | undefined;
}

/** MySQL 8's errno for a session closed for inactivity (ER_CLIENT_INTERACTION_TIMEOUT, SQLSTATE HY000). */
const ER_CLIENT_INTERACTION_TIMEOUT = 4031;
/** Cap for the answer to the statement-timeout SET sent upstream at session start. */
const MAX_INIT_ANSWER = 64 * 1024;

/** The version string Warden announces; clients see the upstream's real version through `SELECT VERSION()`. */
export const SERVER_VERSION = '8.0.40-Warden';

/**
 * What the front end advertises. INVARIANT: never LOCAL_FILES (LOAD DATA LOCAL), COMPRESS/ZSTD, QUERY_ATTRIBUTES,
 * OPTIONAL_RESULTSET_METADATA, or anything else not implemented here. SSL only with a certificate. SESSION_TRACK only
 * changes the layout of OK packets after the status flags (relayed verbatim), so it is offered and passed on.
 */
export const FRONT_CAPABILITIES =
  CAP.LONG_PASSWORD |
  CAP.FOUND_ROWS |
  CAP.LONG_FLAG |
  CAP.CONNECT_WITH_DB |
  CAP.PROTOCOL_41 |
  CAP.INTERACTIVE |
  CAP.TRANSACTIONS |
  CAP.SECURE_CONNECTION |
  CAP.MULTI_STATEMENTS |
  CAP.MULTI_RESULTS |
  CAP.PS_MULTI_RESULTS |
  CAP.PLUGIN_AUTH |
  CAP.CONNECT_ATTRS |
  CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CAP.DEPRECATE_EOF |
  CAP.SESSION_TRACK;

/** Collations passed upstream as the client asked: the utf8 families (and binary). Anything else becomes utf8mb4. */
function upstreamCollation(id: number): number {
  if (id === 33 || id === 45 || id === 46 || id === 63 || id === 83) return id;
  if ((id >= 192 && id <= 215) || (id >= 224 && id <= 247)) return id;
  return 45;
}

/** Cap for one non-row upstream packet held for inspection (OK, ERR, column definitions, PREPARE_OK). */
const MAX_HELD_UPSTREAM_PACKET = 16 * 1024 * 1024 - 1;
/** Bytes of queued client input above which reading from the client pauses. */
const CLIENT_QUEUE_HIGH_WATER = 8 * 1024 * 1024;
/** Rounds of the authentication exchange before a client is cut off. */
const MAX_AUTH_ROUNDS = 4;

const utf8 = new TextDecoder('utf-8', { fatal: true });

type Phase = 'handshake' | 'auth' | 'connecting' | 'ready' | 'closed';
type AuthStep = 'switch' | 'native' | 'full' | 'rsa';
type ResponseKind = 'result' | 'prepare' | 'simple' | 'fieldlist';
type ParseState = 'first' | 'cols' | 'colsEof' | 'rows' | 'defs' | 'done';

interface OutcomeItem {
  readonly request: StatementRequest;
  readonly verdict: StatementVerdict;
  readonly started: number;
}

/** A prepared statement as the client knows it (Warden's id) and as the server knows it. */
interface PreparedStatement {
  readonly upstreamId: number;
  readonly paramCount: number;
  types: { type: number; unsigned: boolean }[] | undefined;
  readonly request: StatementRequest;
  readonly verdict: StatementVerdict;
  /** COM_STMT_SEND_LONG_DATA was sent for it: its next execute is refused. */
  longData: boolean;
}

/** The response being relayed for the command in flight. */
interface Pending {
  readonly kind: ResponseKind;
  state: ParseState;
  /** Column definitions still expected in the current result set (or definitions of a PREPARE_OK). */
  remaining: number;
  /** For PREPARE_OK: the groups of definitions still to come (params, then columns). */
  defGroups: number[];
  /** Added to each upstream sequence id to get the one the client expects. */
  seqDelta: number;
  rows: number;
  affected: number;
  results: number;
  sqlstate?: string;
  readonly outcome?: OutcomeItem;
  /** PREPARE: the id Warden gives the statement, and what the hook saw. */
  readonly prepare?: {
    readonly id: number;
    readonly request: StatementRequest;
    readonly verdict: StatementVerdict;
  };
  /** LOAD DATA LOCAL was requested by the server: the client got an ERR; the rest is swallowed. */
  swallow: boolean;
}

export class MysqlSession {
  readonly id = randomUUID();
  private phase: Phase = 'handshake';
  private client: net.Socket;
  private readonly rawSocket: net.Socket;
  private readonly framer: PacketFramer;
  private startupTimer: NodeJS.Timeout | null;
  private tls = false;
  private readonly scramble = newScramble();
  private readonly connectionId = randomInt(1, 2 ** 31);
  /** Sequence id of the next packet Warden sends during the connection phase. */
  private seq = 1;
  private clientCaps = 0;
  private clientCharset = 45;
  private user = '';
  private database = '';
  private applicationName = '';
  private userConfig: UserConfig | null = null;
  private authStep: AuthStep | null = null;
  private authRounds = 0;
  private context: SessionContext | null = null;
  private target: TargetConfig | null = null;
  private hook: StatementHook | null = null;
  private upstream: net.Socket | null = null;
  private closeReason = '';
  /** The gateway is shutting down: end the session at the next idle point. */
  private draining = false;
  /** What `KILL QUERY` needs to stop this session's upstream statement from another connection. */
  private killer: {
    readonly endpoint: MysqlEndpoint;
    readonly login: UpstreamLogin;
    readonly threadId: number;
    readonly database: string;
  } | null = null;
  /** Server status flags of the last OK / EOF from upstream (SERVER_STATUS_IN_TRANS tells an open transaction). */
  private serverStatus = 0;
  private readonly idle = new IdleWatch({
    timeoutMs: () =>
      this.phase === 'ready' && this.target !== null
        ? this.deps.settingsFor?.(this.target)?.idleSessionTimeoutMs
        : undefined,
    busy: () => this.busy(),
    expire: (ms) =>
      this.fatal(
        ER_CLIENT_INTERACTION_TIMEOUT,
        'HY000',
        `The client was disconnected by Warden because of inactivity (idle_session_timeout_ms ${ms} of the target's signed bundle)`,
        'idle-session timeout',
      ),
  });

  // command path
  private readonly queue: Packet[] = [];
  private queuedBytes = 0;
  private processing = false;
  private pending: Pending | null = null;
  private holdAbort: AbortController | null = null;
  private readonly statements = new Map<number, PreparedStatement>();
  private nextStatementId = 1;

  // upstream scanner
  private uHdr = Buffer.alloc(4);
  private uHdrLen = 0;
  /** A header whose first payload byte has not arrived yet. */
  private uWaitFirst: { hdr: Buffer; len: number } | null = null;
  private uStream = 0;
  private uCont = false;
  private uCap: { hdr: Buffer; len: number; parts: Buffer[]; got: number } | null = null;

  constructor(
    socket: net.Socket,
    private readonly deps: MysqlSessionDeps,
  ) {
    this.client = socket;
    this.rawSocket = socket;
    this.framer = new PacketFramer(deps.config.limits.maxMessageBytes);
    socket.setNoDelay(true);
    this.startupTimer = setTimeout(
      () =>
        this.fatal(
          ER.HANDSHAKE,
          '08S01',
          'handshake timed out: no complete authentication within the allowed time',
          'startup timeout',
        ),
      deps.config.limits.startupTimeoutMs,
    );
    this.attachClient(socket);
    const caps = (FRONT_CAPABILITIES | (deps.tlsContext ? CAP.SSL : 0)) >>> 0;
    socket.write(
      packet(
        0,
        encodeHandshakeV10({
          serverVersion: SERVER_VERSION,
          connectionId: this.connectionId,
          authPluginData: this.scramble,
          capabilities: caps,
          charset: 45,
          status: STATUS.AUTOCOMMIT,
          authPluginName: CACHING_SHA2_PLUGIN,
        }),
      ),
    );
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  get sourceAddress(): string {
    return this.rawSocket.remoteAddress ?? 'unknown';
  }

  /** The session as policy and audit see it, once authenticated. */
  get sessionContext(): SessionContext | null {
    return this.context;
  }

  get reason(): string {
    return this.closeReason;
  }

  private get frontCaps(): number {
    return (FRONT_CAPABILITIES | (this.deps.tlsContext ? CAP.SSL : 0)) >>> 0;
  }

  private attachClient(s: net.Socket): void {
    s.on('data', (chunk: Buffer) => this.onClientData(chunk));
    s.on('error', () => this.close('client connection error'));
    s.on('close', () => this.close('client disconnected'));
  }

  // ---------------------------------------------------------------- client input

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    try {
      this.framer.push(chunk);
      for (let p = this.framer.next(); p; p = this.framer.next()) {
        if (this.phase === 'handshake') this.onHello(p);
        else if (this.phase === 'auth') this.onAuthPacket(p);
        else if (this.phase === 'connecting' || this.phase === 'ready') {
          this.enqueue(p);
          this.idle.touch();
        }
        if (this.isClosed()) return;
      }
      if (this.phase === 'ready') this.kick();
    } catch (e) {
      this.onProtocolError(e);
    }
  }

  private onProtocolError(e: unknown): void {
    if (isMysqlWireError(e) && e.kind === 'oversized') {
      this.fatal(
        ER.NET_PACKET_TOO_LARGE,
        '08S01',
        'Got a packet bigger than the allowed size',
        `protocol error: ${e.message}`,
      );
    } else if (isMysqlWireError(e)) {
      this.fatal(ER.NET_READ_ERROR, '08S01', 'malformed packet', `protocol error: ${e.message}`);
    } else {
      this.fatal(ER.NET_READ_ERROR, '08S01', 'invalid packet from client', `protocol error: ${String(e)}`);
    }
  }

  private onHello(p: Packet): void {
    this.seq = (p.lastSeq + 1) & 0xff;
    const hello = decodeClientHello(p.payload);
    if (hello.kind === 'ssl') {
      const ctx = this.deps.tlsContext;
      if (!ctx || this.tls) {
        this.fatal(ER.HANDSHAKE, '08S01', 'Bad handshake: TLS is not available', 'unexpected SSL request');
        return;
      }
      // Clients start TLS right after the SSL request (no answer comes first): bytes already read are the start
      // of the TLS handshake and go to the TLS layer, never to the framer.
      this.upgradeTls(ctx, this.framer.drain());
      return;
    }
    const cfg = this.deps.config;
    this.clientCaps = (hello.capabilities & this.frontCaps) >>> 0;
    this.clientCharset = hello.charset;
    this.user = hello.username;
    this.database = hello.database ?? '';
    this.applicationName = hello.attributes.get('program_name') ?? hello.attributes.get('_client_name') ?? '';
    if (!(hello.capabilities & CAP.PLUGIN_AUTH) || !(hello.capabilities & CAP.SECURE_CONNECTION)) {
      this.fatal(
        ER.HANDSHAKE,
        '08S01',
        'Bad handshake: the client must support plugin authentication',
        'old client',
      );
      return;
    }
    if (cfg.tls?.required && !this.tls) {
      this.fatal(
        ER.SECURE_TRANSPORT_REQUIRED,
        'HY000',
        'Connections using insecure transport are prohibited: Warden requires TLS (ssl-mode=REQUIRED)',
        'plaintext refused',
      );
      return;
    }
    if (this.user === '') {
      this.authFailed('no user name');
      return;
    }
    this.userConfig = cfg.users.get(this.user) ?? null;
    this.phase = 'auth';
    const plugin = hello.authPluginName ?? NATIVE_PLUGIN;
    if (plugin === NATIVE_PLUGIN && this.nativePath()) {
      this.finishAuth(
        verifyNative(hello.authResponse, this.scramble, this.userConfig?.mysqlNativeHash ?? null),
        null,
        false,
      );
      return;
    }
    if (plugin === CACHING_SHA2_PLUGIN) {
      this.onSha2Scramble(hello.authResponse);
      return;
    }
    // Any other plugin, or native for a user without a native hash: continue with caching_sha2_password.
    this.authStep = 'switch';
    this.sendAuth(
      encodeAuthSwitchRequest(CACHING_SHA2_PLUGIN, Buffer.concat([this.scramble, Buffer.from([0])])),
    );
  }

  /** Whether this user authenticates with mysql_native_password (unknown users: as most configured users do). */
  private nativePath(): boolean {
    return this.userConfig
      ? this.userConfig.mysqlNativeHash !== undefined
      : unknownUsersUseNative(this.deps.config);
  }

  private upgradeTls(ctx: tls.SecureContext, early: Buffer): void {
    const raw = this.client;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    raw.on('error', () => this.close('client connection error'));
    let carrier: Duplex = raw;
    if (early.length > 0) {
      // The TLS layer must see the bytes already read first: a stream that replays them, then the socket.
      const d = new Duplex({
        read: () => {
          raw.resume();
        },
        write: (chunk: Buffer, _enc, cb) => {
          raw.write(chunk, cb);
        },
        final: (cb) => {
          raw.end();
          cb();
        },
        destroy: (err, cb) => {
          raw.destroy();
          cb(err);
        },
      });
      d.push(early);
      raw.on('data', (b: Buffer) => {
        if (!d.push(b)) raw.pause();
      });
      raw.on('end', () => d.push(null));
      raw.on('close', () => d.destroy());
      carrier = d;
    }
    const t = new tls.TLSSocket(carrier, { isServer: true, secureContext: ctx });
    this.client = t;
    this.tls = true;
    t.on('secure', () => t.setNoDelay(true));
    this.attachClient(t);
  }

  private sendAuth(payload: Buffer): void {
    const e = encodePacket(this.seq, payload);
    this.seq = e.nextSeq;
    this.client.write(e.data);
  }

  /** A caching_sha2_password scramble: the fast path when the user's hash is cached, otherwise full authentication. */
  private onSha2Scramble(response: Buffer): void {
    if (response.length === 0 || (response.length === 1 && response[0] === 0)) {
      // An empty password never matches a Warden user.
      this.finishAuth(false, null, false);
      return;
    }
    const cached = this.deps.fastAuth.get(this.user, this.userConfig?.verifier ?? null);
    if (verifySha2Fast(response, this.scramble, cached)) {
      this.finishAuth(true, null, true);
      return;
    }
    // Without TLS, a user with a native hash (and unknown users, when most users have one) continues with
    // mysql_native_password rather than a full authentication some clients answer with the cleartext password.
    if (!this.tls && this.nativePath()) {
      this.authStep = 'native';
      this.sendAuth(encodeAuthSwitchRequest(NATIVE_PLUGIN, Buffer.concat([this.scramble, Buffer.from([0])])));
      return;
    }
    // INVARIANT: a miss asks for full authentication whatever the reason (unknown user, nothing cached, wrong
    // password), so the exchange looks the same for every user name of one kind.
    this.authStep = 'full';
    this.sendAuth(encodeAuthMoreData(Buffer.from([0x04])));
  }

  private onAuthPacket(p: Packet): void {
    this.seq = (p.lastSeq + 1) & 0xff;
    if (++this.authRounds > MAX_AUTH_ROUNDS) {
      this.fatal(ER.HANDSHAKE, '08S01', 'Bad handshake', 'too many authentication rounds');
      return;
    }
    const data = p.payload;
    switch (this.authStep) {
      case 'switch':
        this.authStep = null;
        this.onSha2Scramble(data);
        return;
      case 'native':
        this.authStep = null;
        this.finishAuth(
          verifyNative(data, this.scramble, this.userConfig?.mysqlNativeHash ?? null),
          null,
          false,
        );
        return;
      case 'full':
        if (this.tls) {
          // Inside TLS the client sends the cleartext password, NUL-terminated.
          this.verifyPassword(cstring(data));
          return;
        }
        if (data.length === 1 && data[0] === 0x02) {
          this.authStep = 'rsa';
          this.sendAuth(encodeAuthMoreData(this.deps.rsaKeys.publicPem));
          return;
        }
        if (data.length === 256) {
          this.verifyPassword(decryptRsaPassword(this.deps.rsaKeys, data, this.scramble));
          return;
        }
        // A cleartext password over plaintext: refused unread, answered like a wrong password.
        this.finishAuth(false, null, false);
        return;
      case 'rsa':
        this.verifyPassword(decryptRsaPassword(this.deps.rsaKeys, data, this.scramble));
        return;
      default:
        this.fatal(ER.HANDSHAKE, '08S01', 'Bad handshake', 'unexpected authentication packet');
    }
  }

  private verifyPassword(password: string | null): void {
    this.authStep = null;
    const verifier = this.userConfig?.verifier ?? null;
    const ok =
      password !== null && verifyCleartext(password, verifier, standInVerifier(this.deps.fakeSaltKey));
    this.finishAuth(ok, ok ? password : null, false);
  }

  private authFailed(reason: string): void {
    void emitEvent(() =>
      this.deps.events.authFailed?.({
        user: this.user,
        target: this.database,
        sourceAddress: this.sourceAddress,
        reason,
      }),
    );
    // INVARIANT: the same answer whether or not the user exists.
    this.fatal(
      ER.ACCESS_DENIED,
      '28000',
      `Access denied for user '${this.user.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)}' (using password: YES)`,
      'authentication failed',
    );
  }

  private finishAuth(ok: boolean, password: string | null, fast: boolean): void {
    this.phase = 'connecting';
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.startupTimer = null;
    const delay = this.deps.throttle.delayMs(this.sourceAddress, this.user);
    const finish = (): void => {
      if (this.phase === 'closed') return;
      const user = this.userConfig;
      if (!ok || !user) {
        this.deps.throttle.failure(this.sourceAddress, this.user);
        this.authFailed(user ? 'wrong password' : 'unknown user');
        return;
      }
      this.deps.throttle.success(this.sourceAddress, this.user);
      if (user.clientCert !== undefined) {
        // The second factor (a TLS client certificate) is not checked on this front end: refuse, never skip it.
        this.fatal(
          ER.ACCESS_DENIED,
          '28000',
          `user '${user.name}' requires a TLS client certificate, which the MySQL front end does not check; use the PostgreSQL front end`,
          'client certificate required',
        );
        return;
      }
      if (password !== null) this.deps.fastAuth.set(user.name, user.verifier, sha2DoubleHash(password));
      if (fast) this.sendAuth(encodeAuthMoreData(Buffer.from([0x03])));
      void this.connect(user);
    };
    if (delay > 0) setTimeout(finish, delay);
    else finish();
  }

  /** The target the client asked for, or the user's only MySQL target when it named none. */
  private resolveTarget(user: UserConfig): TargetConfig | undefined {
    const targets = this.deps.config.targets;
    if (this.database !== '') {
      const t = targets.get(this.database);
      return t && t.engine === 'mysql' && user.logins[t.name] !== undefined ? t : undefined;
    }
    const mine = Object.keys(user.logins)
      .map((n) => targets.get(n))
      .filter((t): t is TargetConfig => t !== undefined && t.engine === 'mysql');
    return mine.length === 1 ? mine[0] : undefined;
  }

  private async connect(user: UserConfig): Promise<void> {
    const target = this.resolveTarget(user);
    if (!target) {
      if (this.database === '') {
        this.fatal(
          ER.NO_DB,
          '3D000',
          'No database selected: name the Warden target as the database',
          'no target',
        );
      } else {
        this.fatal(
          ER.BAD_DB,
          '42000',
          `Unknown database '${this.database}' (or not available to user '${user.name}')`,
          'unknown target',
        );
      }
      return;
    }
    const login = target.logins.get(user.logins[target.name] as string);
    if (!login) {
      this.fatal(ER.UNKNOWN, 'HY000', 'target login misconfigured', 'login missing');
      return;
    }
    let hook: StatementHook;
    try {
      hook = this.deps.hookFor(target);
    } catch (e) {
      this.fatal(
        ER.UNKNOWN,
        'HY000',
        'no policy is available for this target',
        `policy unavailable: ${String(e)}`,
      );
      return;
    }
    this.target = target;
    this.hook = hook;
    const settings = this.deps.settingsFor?.(target);
    const refused = settings?.admit?.({ tls: this.tls, sourceAddress: this.sourceAddress });
    if (refused !== undefined) {
      // After authentication, before any upstream connection: the bundle of the target refuses this session.
      const errno = refused.setting === 'require_tls' ? ER.SECURE_TRANSPORT_REQUIRED : ER.ACCESS_DENIED;
      this.fatal(errno, refused.sqlstate, refused.message, `refused by target settings: ${refused.message}`);
      return;
    }
    const principal = principalOf(user);
    const endpoint: MysqlEndpoint = targetEndpoint(target);
    try {
      const conn = await connectMysqlUpstream(endpoint, login, {
        database: target.database,
        clientCapabilities: this.clientCaps,
        charset: upstreamCollation(this.clientCharset),
      });
      if (this.isClosed()) {
        conn.socket.destroy();
        return;
      }
      this.killer = { endpoint, login, threadId: conn.handshake.connectionId, database: target.database };
      let leftover = conn.leftover;
      if (settings?.statementTimeoutMs !== undefined) {
        // INVARIANT: the session never runs a client command without the bundle's statement timeout in place.
        const ms = settings.statementTimeoutMs;
        const sql = /mariadb/i.test(conn.handshake.serverVersion)
          ? `SET SESSION max_statement_time = ${(ms / 1000).toFixed(3)}`
          : `SET SESSION max_execution_time = ${ms}`;
        try {
          leftover = await upstreamInit(conn.socket, leftover, sql);
        } catch (e) {
          conn.socket.destroy();
          this.fatal(
            ER.UNKNOWN,
            'HY000',
            `cannot apply statement_timeout_ms of the target's signed bundle upstream: ${(e as Error).message}`,
            'statement timeout not applied',
          );
          return;
        }
        if (this.isClosed()) {
          conn.socket.destroy();
          return;
        }
      }
      this.upstream = conn.socket;
      this.serverStatus = conn.status;
      this.context = {
        sessionId: this.id,
        protocol: 'mysql',
        principal,
        target: target.name,
        environment: target.environment,
        database: target.database,
        sourceAddress: this.sourceAddress,
        tls: this.tls,
        applicationName: this.applicationName,
        startedAt: new Date(),
      };
      this.sendAuth(encodeOk({ status: conn.status }));
      this.phase = 'ready';
      this.upstream.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
      this.upstream.on('error', () => this.upstreamLost());
      this.upstream.on('close', () => this.upstreamLost());
      if (leftover.length > 0) this.onUpstreamData(leftover);
      void emitEvent(() => this.deps.events.authenticated?.(this.context as SessionContext));
      this.idle.touch();
      this.kick();
    } catch (e) {
      const msg = isWardenError(e) ? e.message : 'cannot connect to the upstream database';
      this.fatal(ER.NET_READ_ERROR, '08S01', msg, 'upstream connect failed');
    }
  }

  // ---------------------------------------------------------------- command path

  private enqueue(p: Packet): void {
    this.queue.push(p);
    this.queuedBytes += p.raw.length;
    if (this.queuedBytes > CLIENT_QUEUE_HIGH_WATER) this.client.pause();
  }

  private kick(): void {
    if (this.processing || this.phase !== 'ready' || this.pending) return;
    this.processing = true;
    void this.drainQueue();
  }

  private async drainQueue(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.phase === 'ready' && !this.pending) {
        const p = this.queue.shift() as Packet;
        this.queuedBytes -= p.raw.length;
        await this.onCommand(p);
      }
      if (this.queuedBytes <= CLIENT_QUEUE_HIGH_WATER && this.client.isPaused()) this.client.resume();
    } catch (e) {
      this.onProtocolError(e);
    } finally {
      this.processing = false;
    }
    if (this.queue.length > 0 && this.phase === 'ready' && !this.pending) this.kick();
    else if (this.draining && this.isIdle()) this.shutdown();
  }

  /** Answers the command in flight with an ERR made by Warden. */
  private replyErr(p: Packet, errno: number, sqlstate: string, message: string): void {
    this.client.write(packet(p.lastSeq + 1, encodeErr({ errno, sqlstate, message })));
  }

  private replyDenial(p: Packet, v: Extract<StatementVerdict, { action: 'deny' }>): void {
    const m = mysqlErrorFor(v.sqlstate);
    const text = v.detail !== undefined ? `${v.message} (${v.detail})` : v.message;
    this.replyErr(p, m.errno, m.sqlstate, text);
  }

  private async onCommand(p: Packet): Promise<void> {
    const cmd = p.payload[0];
    switch (cmd) {
      case COM.QUERY: {
        const sql = decodeText(p.payload.subarray(1));
        if (sql === null)
          return this.replyErr(p, ER.PARSE, '42000', 'denied: the statement is not valid UTF-8');
        return this.onSql(p, 'mysql-query', sql, 'result');
      }
      case COM.STMT_PREPARE: {
        const sql = decodeText(p.payload.subarray(1));
        if (sql === null)
          return this.replyErr(p, ER.PARSE, '42000', 'denied: the statement is not valid UTF-8');
        return this.onSql(p, 'mysql-prepare', sql, 'prepare');
      }
      case COM.INIT_DB: {
        const db = decodeText(p.payload.subarray(1));
        if (db === null || db === '') return this.replyErr(p, ER.NO_DB, '3D000', 'No database selected');
        // A database switch is decided like the statement `USE db`.
        return this.onSql(p, 'mysql-query', `USE ${quoteIdent(db)}`, 'simple', p.payload);
      }
      case COM.FIELD_LIST: {
        const f = decodeFieldList(p.payload);
        if (decodeText(Buffer.from(f.table, 'utf8')) === null || f.table === '') {
          return this.replyErr(p, ER.PARSE, '42000', 'denied: invalid table name');
        }
        // Listing a table's columns is decided as a read of that table.
        return this.onSql(p, 'mysql-query', `SELECT * FROM ${quoteIdent(f.table)}`, 'fieldlist', p.payload);
      }
      case COM.STMT_EXECUTE:
        return this.onExecute(p);
      case COM.STMT_CLOSE: {
        const id = statementIdOf(p.payload);
        const st = this.statements.get(id);
        // No response either way (protocol).
        if (!st) return;
        this.statements.delete(id);
        this.sendUpstream(p, withStatementId(p.payload, st.upstreamId), null);
        return;
      }
      case COM.STMT_RESET: {
        const id = statementIdOf(p.payload);
        const st = this.statements.get(id);
        if (!st)
          return this.replyErr(
            p,
            ER.UNKNOWN_STMT_HANDLER,
            'HY000',
            `Unknown prepared statement handler (${id}) given to mysqld_stmt_reset`,
          );
        st.longData = false;
        this.sendUpstream(p, withStatementId(p.payload, st.upstreamId), this.newPending('simple'));
        return;
      }
      case COM.STMT_SEND_LONG_DATA: {
        // No response (protocol). Long data would bypass the parameter hash: the next execute is refused.
        const st = this.statements.get(statementIdOf(p.payload));
        if (st) st.longData = true;
        return;
      }
      case COM.PING:
        this.sendUpstream(p, p.payload, this.newPending('simple'));
        return;
      case COM.SET_OPTION:
        // Multi-statements on/off: harmless, the hook sees every statement of a multi-statement text anyway.
        this.sendUpstream(p, p.payload, this.newPending('simple'));
        return;
      case COM.QUIT:
        this.upstream?.end(packet(0, Buffer.from([COM.QUIT])));
        this.close('client quit', true);
        return;
      case COM.CHANGE_USER:
        return this.replyErr(
          p,
          ER.NOT_SUPPORTED_YET,
          '42000',
          'COM_CHANGE_USER is not supported through Warden: open a new connection as the other user',
        );
      default:
        return this.replyErr(p, ER.UNKNOWN_COM, '08S01', 'Unknown command');
    }
  }

  private newPending(kind: ResponseKind, extra: Partial<Pending> = {}): Pending {
    return {
      kind,
      state: 'first',
      remaining: 0,
      defGroups: [],
      seqDelta: 0, // set by sendUpstream
      rows: 0,
      affected: 0,
      results: 0,
      swallow: false,
      ...extra,
    };
  }

  /**
   * Forwards a command payload (as one logical packet from sequence 0) and expects its response, if any.
   * The client's sequence ids continue from its own command's last packet.
   */
  private sendUpstream(p: Packet, payload: Buffer, pending: Pending | null): void {
    const up = this.upstream;
    if (!up) return;
    const e = encodePacket(0, payload);
    const upstreamLast = (e.nextSeq - 1) & 0xff;
    if (pending) {
      pending.seqDelta = (p.lastSeq - upstreamLast) & 0xff;
      this.pending = pending;
    }
    if (!up.write(e.data)) {
      this.client.pause();
      up.once('drain', () => {
        if (this.queuedBytes <= CLIENT_QUEUE_HIGH_WATER) this.client.resume();
      });
    }
  }

  private request(
    sql: string,
    path: StatementPath,
    statementName: string | undefined,
    controller: () => AbortController,
  ): StatementRequest {
    return {
      session: this.context as SessionContext,
      sql,
      path,
      ...(statementName !== undefined ? { statementName } : {}),
      receivedAt: new Date(),
      // The MySQL protocol has no asynchronous notices; a held statement simply waits.
      notice: () => undefined,
      get signal() {
        return controller().signal;
      },
    };
  }

  /** A held command is cancelled when the client goes away; a failing hook denies (see awaitVerdict). */
  private verdictHold(
    controller: () => AbortController,
    aborted: () => boolean,
    what: 'statement' | 'parameters',
  ): VerdictHold {
    return {
      setHold: (abort) => {
        this.holdAbort = abort === null ? null : controller();
      },
      abort: () => controller().abort(),
      aborted,
      undecidable: `denied: the ${what} could not be decided`,
    };
  }

  /**
   * A command carrying SQL (or decided as SQL): the hook decides; a denial is answered here, an allowed command
   * is forwarded. `original` is forwarded as is for commands decided through a stand-in statement.
   */
  private async onSql(
    p: Packet,
    path: StatementPath,
    sql: string,
    kind: ResponseKind,
    original?: Buffer,
  ): Promise<void> {
    const hook = this.hook as StatementHook;
    let abort: AbortController | null = null;
    const controller = (): AbortController => (abort ??= new AbortController());
    const statementId = kind === 'prepare' ? this.nextStatementId++ : undefined;
    const request = this.request(
      sql,
      path,
      statementId !== undefined ? String(statementId) : undefined,
      controller,
    );
    const verdict = (await awaitVerdict(
      () => hook.check(request),
      this.verdictHold(controller, () => abort?.signal.aborted === true, 'statement'),
    )) ?? {
      action: 'deny',
      sqlstate: '42501',
      message: 'denied: the statement could not be decided',
    };
    if (this.phase !== 'ready') return;
    if (verdict.action === 'deny') {
      this.replyDenial(p, verdict);
      return;
    }
    let payload: Buffer;
    if (original !== undefined) payload = original;
    else if (verdict.sql === undefined || verdict.sql === sql) payload = p.payload;
    else payload = Buffer.concat([Buffer.from([p.payload[0] as number]), Buffer.from(verdict.sql, 'utf8')]);
    const outcome: OutcomeItem = { request, verdict, started: performance.now() };
    this.sendUpstream(
      p,
      payload,
      this.newPending(kind, {
        outcome,
        ...(statementId !== undefined ? { prepare: { id: statementId, request, verdict } } : {}),
      }),
    );
  }

  private async onExecute(p: Packet): Promise<void> {
    const id = statementIdOf(p.payload);
    const st = this.statements.get(id);
    if (!st) {
      this.replyErr(
        p,
        ER.UNKNOWN_STMT_HANDLER,
        'HY000',
        `Unknown prepared statement handler (${id}) given to mysqld_stmt_execute`,
      );
      return;
    }
    if (st.longData) {
      this.replyErr(
        p,
        ER.NOT_SUPPORTED_YET,
        '42000',
        'COM_STMT_SEND_LONG_DATA is not supported through Warden: bind the value in the execute',
      );
      return;
    }
    const ex = decodeStmtExecute(p.payload, st.paramCount, st.types);
    if (ex.flags !== 0) {
      this.replyErr(
        p,
        ER.NOT_SUPPORTED_YET,
        '42000',
        'cursors (COM_STMT_EXECUTE flags) are not supported through Warden',
      );
      return;
    }
    const hook = this.hook as StatementHook;
    if (hook.bind) {
      // A held execute (approval) is aborted when the client goes away.
      const abort = new AbortController();
      const request: BindRequest = {
        session: this.context as SessionContext,
        statementName: String(id),
        portal: '',
        paramsHash: hashExecuteParams(ex.params),
        paramCount: ex.params.length,
        notice: () => undefined,
        signal: abort.signal,
      };
      const verdict = await awaitVerdict(
        () => hook.bind?.(request),
        this.verdictHold(
          () => abort,
          () => abort.signal.aborted,
          'parameters',
        ),
      );
      if (this.phase !== 'ready') return;
      if (verdict !== undefined && verdict.action === 'deny') {
        this.replyDenial(p, verdict);
        return;
      }
    }
    if (ex.newParamsBound) st.types = ex.params.map((x) => ({ type: x.type, unsigned: x.unsigned }));
    this.sendUpstream(
      p,
      withStatementId(p.payload, st.upstreamId),
      this.newPending('result', {
        outcome: { request: st.request, verdict: st.verdict, started: performance.now() },
      }),
    );
  }

  // ---------------------------------------------------------------- upstream output

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase !== 'ready') return;
    const out: Buffer[] = [];
    const n = chunk.length;
    let pos = 0;
    let start = 0;
    const flushRun = (): void => {
      if (start < pos && !this.pending?.swallow) out.push(chunk.subarray(start, pos));
      start = pos;
    };
    try {
      while (pos < n) {
        if (this.uStream > 0) {
          const k = Math.min(this.uStream, n - pos);
          pos += k;
          this.uStream -= k;
          continue;
        }
        if (this.uCap) {
          const cap = this.uCap;
          const k = Math.min(cap.len - cap.got, n - pos);
          flushRun();
          cap.parts.push(chunk.subarray(pos, pos + k));
          cap.got += k;
          pos += k;
          start = pos;
          if (cap.got === cap.len) {
            this.uCap = null;
            this.onUpstreamPacket(cap.hdr, Buffer.concat(cap.parts), out);
          }
          continue;
        }
        if (this.uWaitFirst) {
          const w = this.uWaitFirst;
          this.uWaitFirst = null;
          flushRun();
          this.beginPacket(w.hdr, w.len, chunk[pos] as number, out);
          start = pos;
          continue;
        }
        if (this.uHdrLen > 0 || n - pos < 5) {
          // A header split across chunks (or not followed by its first payload byte yet).
          flushRun();
          if (this.uHdrLen < 4) {
            const k = Math.min(4 - this.uHdrLen, n - pos);
            chunk.copy(this.uHdr, this.uHdrLen, pos, pos + k);
            this.uHdrLen += k;
            pos += k;
            start = pos;
            if (this.uHdrLen < 4) break;
          }
          this.uHdrLen = 0;
          const hdr = Buffer.from(this.uHdr);
          const len = hdr.readUIntLE(0, 3);
          if (len === 0 || this.uCont) {
            this.beginPacket(hdr, len, 0, out);
          } else if (pos < n) {
            this.beginPacket(hdr, len, chunk[pos] as number, out);
          } else {
            this.uWaitFirst = { hdr, len };
          }
          start = pos;
          continue;
        }
        // Header and first payload byte inside this chunk: decide in place.
        const len = chunk.readUIntLE(pos, 3);
        const hdrAt = pos;
        pos += 4;
        const decision = this.classify(len, len > 0 ? (chunk[pos] as number) : 0);
        this.fixSeq(chunk, hdrAt);
        if (decision === 'stream') {
          this.uStream = len;
          continue;
        }
        // Captured: end the run before its header.
        pos = hdrAt;
        flushRun();
        const hdr = Buffer.from(chunk.subarray(hdrAt, hdrAt + 4));
        pos = hdrAt + 4;
        start = pos;
        if (n - pos >= len) {
          const body = chunk.subarray(pos, pos + len);
          pos += len;
          start = pos;
          this.onUpstreamPacket(hdr, body, out);
        } else {
          this.startCapture(hdr, len);
        }
      }
      flushRun();
    } catch (e) {
      this.fatal(
        ER.NET_READ_ERROR,
        '08S01',
        'lost synchronisation with the upstream database',
        `upstream protocol error: ${String(e)}`,
      );
      return;
    }
    this.writeClient(out);
    if (this.pending === null) this.idle.mark();
    if (this.draining && this.isIdle()) this.shutdown();
  }

  /** Rewrites the sequence id of a header in place to the one the client expects. */
  private fixSeq(buf: Buffer, hdrAt: number): void {
    const d = this.pending?.seqDelta ?? 0;
    if (d !== 0) buf[hdrAt + 3] = ((buf[hdrAt + 3] as number) + d) & 0xff;
  }

  /** A packet whose header (and first payload byte) is known but which arrived split from the scanner's view. */
  private beginPacket(hdr: Buffer, len: number, first: number, out: Buffer[]): void {
    const decision = this.classify(len, first);
    this.fixSeq(hdr, 0);
    if (decision === 'stream') {
      if (!this.pending?.swallow) out.push(hdr);
      this.uStream = len;
    } else if (len === 0) {
      this.onUpstreamPacket(hdr, Buffer.alloc(0), out);
    } else {
      this.startCapture(hdr, len);
    }
  }

  private startCapture(hdr: Buffer, len: number): void {
    if (len > MAX_HELD_UPSTREAM_PACKET - 1) throw new Error('upstream control packet too large');
    this.uCap = { hdr, len, parts: [], got: 0 };
  }

  /**
   * Whether a packet passes through unread (a row, or the continuation of a 16 MiB row) or is captured whole
   * to drive the response state machine. Counts streamed rows.
   */
  private classify(len: number, first: number): 'stream' | 'capture' {
    const pend = this.pending;
    if (this.uCont) {
      this.uCont = len === MAX_PACKET_PAYLOAD;
      return 'stream';
    }
    if (!pend) throw new Error('unsolicited packet from upstream');
    if (pend.state === 'rows' && first !== 0xff && !this.isTerminator(len, first)) {
      pend.rows++;
      this.uCont = len === MAX_PACKET_PAYLOAD;
      return 'stream';
    }
    return 'capture';
  }

  private get deprecateEof(): boolean {
    return (this.clientCaps & CAP.DEPRECATE_EOF) !== 0;
  }

  /** An EOF (or, under CLIENT_DEPRECATE_EOF, an OK with the 0xFE header) that ends rows. */
  private isTerminator(len: number, first: number): boolean {
    if (first !== 0xfe) return false;
    return this.deprecateEof ? len < MAX_PACKET_PAYLOAD : len < 9;
  }

  /** A whole captured packet: drive the state machine, then pass it (or its replacement) on. */
  private onUpstreamPacket(hdr: Buffer, body: Buffer, out: Buffer[]): void {
    const pend = this.pending;
    if (!pend) throw new Error('unsolicited packet from upstream');
    const emit = (b: Buffer): void => {
      if (!pend.swallow) out.push(b);
    };
    const head = body[0];
    switch (pend.state) {
      case 'first': {
        if (pend.kind === 'simple') {
          if (head === 0xff) pend.sqlstate = decodeErr(body).sqlstate;
          else if (head === 0x00) this.serverStatus = decodeOk(body).status;
          emit(hdr);
          emit(body);
          return this.finishResponse();
        }
        if (head === 0xff) {
          pend.sqlstate = decodeErr(body).sqlstate;
          emit(hdr);
          emit(body);
          return this.finishResponse();
        }
        if (pend.kind === 'fieldlist') {
          // Column definitions until an EOF (or a 0xFE OK under CLIENT_DEPRECATE_EOF).
          emit(hdr);
          emit(body);
          if (head === 0xfe && this.isTerminator(body.length, head)) return this.finishResponse();
          return;
        }
        if (pend.kind === 'prepare') {
          const ok = decodePrepareOk(body);
          const id = (pend.prepare as NonNullable<Pending['prepare']>).id;
          this.statements.set(id, {
            upstreamId: ok.statementId,
            paramCount: ok.numParams,
            types: undefined,
            request: (pend.prepare as NonNullable<Pending['prepare']>).request,
            verdict: (pend.prepare as NonNullable<Pending['prepare']>).verdict,
            longData: false,
          });
          // The client knows the statement by Warden's id.
          emit(hdr);
          emit(withStatementId(body, id));
          pend.defGroups = [ok.numParams, ok.numColumns].filter((x) => x > 0);
          return this.nextDefGroup(pend);
        }
        if (head === 0x00) {
          const ok = decodeOk(body);
          this.serverStatus = ok.status;
          pend.affected += ok.affectedRows;
          pend.results++;
          emit(hdr);
          emit(body);
          if (!(ok.status & STATUS.MORE_RESULTS_EXISTS)) return this.finishResponse();
          return;
        }
        if (head === 0xfb) {
          // LOAD DATA LOCAL INFILE request: never honoured. The server gets an empty file, the client an ERR,
          // and the rest of this response is swallowed.
          this.upstream?.write(packet(((hdr[3] as number) - pend.seqDelta + 1) & 0xff, Buffer.alloc(0)));
          const seq = hdr[3] as number;
          out.push(
            packet(
              seq,
              encodeErr({
                errno: ER.NOT_ALLOWED_COMMAND,
                sqlstate: '42000',
                message: 'denied by protocol: LOAD DATA LOCAL is not allowed through Warden',
              }),
            ),
          );
          pend.swallow = true;
          pend.sqlstate = '42000';
          return;
        }
        // A result set: the column count.
        const count = columnCount(body);
        pend.remaining = count;
        pend.state = 'cols';
        emit(hdr);
        emit(body);
        return;
      }
      case 'cols':
        emit(hdr);
        emit(body);
        if (--pend.remaining === 0) pend.state = this.deprecateEof ? 'rows' : 'colsEof';
        return;
      case 'colsEof':
        if (!isEofPacket(body)) throw new Error('expected EOF after column definitions');
        emit(hdr);
        emit(body);
        pend.state = 'rows';
        return;
      case 'rows': {
        emit(hdr);
        emit(body);
        pend.results++;
        if (head === 0xff) {
          pend.sqlstate = decodeErr(body).sqlstate;
          return this.finishResponse();
        }
        const status = terminatorStatus(body);
        this.serverStatus = status;
        if (status & STATUS.MORE_RESULTS_EXISTS) {
          pend.state = 'first';
          return;
        }
        return this.finishResponse();
      }
      case 'defs':
        emit(hdr);
        emit(body);
        if (pend.remaining > 0) {
          if (--pend.remaining === 0 && this.deprecateEof) return this.nextDefGroup(pend);
          return;
        }
        // The EOF after a group of definitions.
        if (!isEofPacket(body)) throw new Error('expected EOF after statement definitions');
        return this.nextDefGroup(pend);
      default:
        throw new Error('packet after the end of a response');
    }
  }

  private nextDefGroup(pend: Pending): void {
    const g = pend.defGroups.shift();
    if (g === undefined) return this.finishResponse();
    pend.state = 'defs';
    pend.remaining = g;
  }

  private finishResponse(): void {
    const pend = this.pending;
    if (!pend) return;
    pend.state = 'done';
    this.pending = null;
    const hook = this.hook;
    if (pend.outcome && hook?.outcome) {
      const tags =
        pend.kind === 'prepare'
          ? ['PREPARE']
          : pend.rows > 0 || pend.kind === 'fieldlist'
            ? [`SELECT ${pend.rows}`]
            : [`OK ${pend.affected}`];
      try {
        hook.outcome({
          request: pend.outcome.request,
          verdict: pend.outcome.verdict,
          commandTags: tags,
          rows: pend.rows + pend.affected,
          ...(pend.sqlstate !== undefined ? { sqlstate: pend.sqlstate } : {}),
          durationMs: performance.now() - pend.outcome.started,
        });
      } catch {
        // outcome sinks never break the session
      }
    }
    // The next command runs once this response has been handed to the client's socket.
    queueMicrotask(() => this.kick());
  }

  private writeClient(out: Buffer[]): void {
    if (out.length === 0) return;
    const c = this.client;
    let ok = true;
    c.cork();
    for (const b of out) ok = c.write(b) && ok;
    c.uncork();
    if (!ok) {
      this.upstream?.pause();
      c.once('drain', () => this.upstream?.resume());
    }
  }

  private upstreamLost(): void {
    if (this.phase !== 'ready') return;
    this.fatal(
      ER.NET_READ_ERROR,
      '08S01',
      'the connection to the upstream database was lost',
      'upstream lost',
    );
  }

  // ---------------------------------------------------------------- closing

  /** Sends an ERR to the client and closes the session. */
  private fatal(errno: number, sqlstate: string, message: string, reason: string): void {
    if (this.phase === 'closed') return;
    try {
      const seq = this.phase === 'ready' ? (this.pending ? 1 : 0) : this.seq;
      if (this.client.writable) this.client.write(packet(seq, encodeErr({ errno, sqlstate, message })));
    } catch {
      // the socket may already be gone
    }
    this.close(reason, true);
  }

  close(reason: string, graceful = false): void {
    if (this.phase === 'closed') return;
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.closeReason = reason;
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.idle.stop();
    this.holdAbort?.abort();
    tearDownSession({
      sessionId: this.id,
      reason,
      graceful,
      client: this.client,
      rawSocket: this.rawSocket,
      upstream: this.upstream,
      hook: this.hook,
      events: this.deps.events,
      closedContext: wasReady ? this.context : null,
    });
    this.deps.onClose(this);
  }

  /**
   * Ends the session now because the gateway is shutting down (ERR 1053). A statement still running upstream is
   * stopped with `KILL QUERY` from a separate connection (closing the socket alone does not stop it).
   */
  shutdown(): void {
    if (this.phase === 'ready' && this.pending !== null && this.killer !== null) {
      killUpstreamQuery(this.killer).catch(() => undefined);
    }
    this.fatal(
      ER.SERVER_SHUTDOWN,
      '08S01',
      'Server shutdown in progress: Warden is shutting down',
      'gateway shutdown',
    );
  }

  /**
   * Graceful drain: a session with no command in flight and no open transaction ends now (ERR 1053); any other
   * session ends as soon as its current command and transaction are over. The listener cuts the rest with
   * `shutdown()` when its drain time is up.
   */
  beginDrain(): void {
    if (this.phase === 'closed') return;
    this.draining = true;
    if (this.phase !== 'ready' || this.isIdle()) this.shutdown();
  }

  /** A command queued, being decided (or held for approval), or its response still coming. */
  private busy(): boolean {
    return (
      this.queue.length > 0 ||
      this.processing ||
      this.pending !== null ||
      this.holdAbort !== null ||
      this.uCap !== null ||
      this.uStream > 0 ||
      this.uCont
    );
  }

  /** Nothing in flight and outside a transaction. */
  private isIdle(): boolean {
    return !this.busy() && (this.serverStatus & STATUS.IN_TRANS) === 0;
  }
}

/**
 * Runs one statement answered by an OK on an upstream connection, before any other command on it (the bundle's
 * statement timeout, KILL QUERY); resolves with the bytes after the answer, rejects on an ERR, a close or 10 s.
 */
function upstreamInit(socket: net.Socket, leftover: Buffer, sql: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = leftover;
    const done = (err: Error | null, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(rest as Buffer);
    };
    const onData = (b: Buffer): void => {
      buf = buf.length === 0 ? b : Buffer.concat([buf, b]);
      if (buf.length < 4) return;
      const len = buf.readUIntLE(0, 3);
      if (len > MAX_INIT_ANSWER) return done(new Error('answer too large'));
      if (buf.length < 4 + len) return;
      const body = buf.subarray(4, 4 + len);
      if (body[0] === 0x00) return done(null, Buffer.from(buf.subarray(4 + len)));
      if (body[0] === 0xff) {
        const e = decodeErr(body);
        return done(new Error(`server said ${e.errno} (${e.sqlstate}): ${e.message}`));
      }
      done(new Error('unexpected answer'));
    };
    const onError = (e: Error): void => done(e);
    const onClose = (): void => done(new Error('connection closed'));
    const timer = setTimeout(() => done(new Error('no answer in time')), 10_000);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(packet(0, Buffer.concat([Buffer.from([COM.QUERY]), Buffer.from(sql, 'utf8')])));
    if (buf.length > 0) onData(Buffer.alloc(0));
  });
}

/** Stops the statement running on upstream thread `threadId` (best effort): `KILL QUERY` over a new connection. */
async function killUpstreamQuery(k: {
  readonly endpoint: MysqlEndpoint;
  readonly login: UpstreamLogin;
  readonly threadId: number;
  readonly database: string;
}): Promise<void> {
  const conn = await connectMysqlUpstream({ ...k.endpoint, connectTimeoutMs: 5000 }, k.login, {
    database: k.database,
  });
  try {
    await upstreamInit(conn.socket, conn.leftover, `KILL QUERY ${k.threadId}`);
  } finally {
    conn.socket.end(packet(0, Buffer.from([COM.QUIT])));
    setTimeout(() => conn.socket.destroy(), 1000).unref();
  }
}

/** Whether unknown users take the native path: when most configured users carry a native hash, so they blend in. */
function unknownUsersUseNative(cfg: GatewayConfig): boolean {
  let native = 0;
  for (const u of cfg.users.values()) if (u.mysqlNativeHash !== undefined) native++;
  return native * 2 > cfg.users.size;
}

const standIns = new WeakMap<Buffer, ParsedVerifier>();
/** A verifier with the default cost and a salt derived from the fake-salt key, for unknown users. */
function standInVerifier(key: Buffer): ParsedVerifier {
  let v = standIns.get(key);
  if (!v) {
    const salt = createHash('sha256').update(key).update('mysql-stand-in').digest().subarray(0, 16);
    v = parseVerifier(createVerifier(randomBytes(24).toString('hex'), { salt }));
    standIns.set(key, v);
  }
  return v;
}

/** Text up to the first NUL (a client's cleartext password). */
function cstring(b: Buffer): string | null {
  const end = b.indexOf(0);
  return decodeText(end >= 0 ? b.subarray(0, end) : b);
}

/** Strict UTF-8: a statement the analyser would read differently from the server is never decided. */
function decodeText(b: Buffer): string | null {
  try {
    return utf8.decode(b);
  } catch {
    return null;
  }
}

function quoteIdent(s: string): string {
  return `\`${s.replaceAll('`', '``')}\``;
}

function columnCount(body: Buffer): number {
  const first = body[0] as number;
  if (first < 0xfb) return first;
  if (first === 0xfc && body.length >= 3) return body.readUInt16LE(1);
  if (first === 0xfd && body.length >= 4) return body.readUIntLE(1, 3);
  throw new Error('invalid column count');
}

/**
 * SHA-256 over the bound parameters of an execute: count, then per parameter its NULL flag, type, unsigned flag,
 * length and value bytes; the same values hash the same whether or not the types were re-sent.
 */
export function hashExecuteParams(params: readonly ExecuteParam[]): string {
  const h = createHash('sha256');
  const n = Buffer.alloc(4);
  n.writeUInt32BE(params.length);
  h.update(n);
  for (const p of params) {
    const head = Buffer.alloc(7);
    head[0] = p.value === null ? 1 : 0;
    head[1] = p.type;
    head[2] = p.unsigned ? 1 : 0;
    head.writeUInt32BE(p.value === null ? 0 : p.value.length, 3);
    h.update(head);
    if (p.value !== null) h.update(p.value);
  }
  return h.digest('hex');
}
