// One PostgreSQL client connection: startup, TLS, SCRAM authentication, the upstream link, and the statement path.
// @see https://www.postgresql.org/docs/current/protocol-flow.html
//
// Life of a statement: a client message is framed (size-capped), queued, and handled strictly in order.
// Query and Parse messages (and nothing else that carries SQL) go to the StatementHook and wait for its
// verdict; everything before them has already been forwarded, everything after waits. An allowed
// statement is forwarded (possibly rewritten). A denied one is replaced by an injected statement that
// the upstream rejects as a syntax error; its ErrorResponse is recognised by a per-session token and
// replaced by Warden's denial. The upstream thus orders the error correctly among pipelined responses and
// applies real error semantics (batch skipped until Sync, transaction aborted), so nothing partial runs.

import net from 'node:net';
import tls from 'node:tls';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { WardenError, isWardenError } from '../core/errors.js';
import type {
  BindRequest,
  SessionContext,
  SessionEvents,
  StatementHook,
  StatementPath,
  StatementRequest,
  StatementVerdict,
} from '../core/context.js';
import { Framer, type Frame } from '../wire/pg/framing.js';
import {
  MSG,
  authOk,
  authSasl,
  authSaslContinue,
  authSaslFinal,
  backendKeyData,
  decodeBind,
  decodeFields,
  decodeParse,
  decodeQuery,
  decodeSaslInitial,
  decodeStartup,
  encodeParse,
  errorResponse,
  noticeResponse,
  parameterStatus,
  query as queryMessage,
  readyForQuery,
  terminate,
  type BindMessage,
  type ErrorFields,
} from '../wire/pg/messages.js';
import { ScramServerSession } from '../identity/scram.js';
import type { AuthThrottle } from '../identity/throttle.js';
import type {
  ClientCertRequirement,
  GatewayConfig,
  TargetConfig,
  UserConfig,
} from '../config/gateway-config.js';
import { connectUpstream, sendUpstreamCancel, type UpstreamEndpoint } from '../upstream/pg-connect.js';
import type { CancelRegistry } from './cancel-registry.js';
import { IdleWatch, type TargetSessionSettings } from './session-limits.js';
import {
  awaitVerdict,
  emitEvent,
  principalOf,
  targetEndpoint,
  tearDownSession,
  type VerdictHold,
} from './session-common.js';

export type { TargetSessionSettings } from './session-limits.js';

/** What a session needs from the gateway around it. */
export interface SessionDeps {
  readonly config: GatewayConfig;
  readonly throttle: AuthThrottle;
  readonly cancels: CancelRegistry;
  /** Statement hook per target name. */
  hookFor(target: TargetConfig): StatementHook;
  readonly events: SessionEvents;
  /** Key for deriving fake SCRAM salts of unknown users (stable across restarts). */
  readonly fakeSaltKey: Buffer;
  readonly tlsContext?: tls.SecureContext;
  /** Called once when the session has fully closed. */
  onClose(session: PgSession): void;
  /** The target's settings from its running signed bundle (read at connect and at each idle wait); none: defaults. */
  settingsFor?(target: TargetConfig): TargetSessionSettings | undefined;
}

/** Client startup parameters forwarded upstream. Anything else (role, options, replication, ...) is never forwarded. */
const FORWARDED_PARAMS = new Set([
  'application_name',
  'client_encoding',
  'datestyle',
  'timezone',
  'extra_float_digits',
  'intervalstyle',
]);

/** Message types whose bodies may be large and are streamed through without being held. */
const STREAMED: ReadonlySet<number> = new Set([MSG.DataRow, MSG.CopyData]);

/** Cap for a single non-streamed upstream message held for inspection. */
const MAX_HELD_UPSTREAM_MESSAGE = 64 * 1024 * 1024;

/** Bytes of queued client input above which reading from the client pauses. */
const CLIENT_QUEUE_HIGH_WATER = 8 * 1024 * 1024;

type Phase = 'startup' | 'auth' | 'connecting' | 'ready' | 'closed';

interface Denial {
  readonly fields: ErrorFields;
  readonly batch: number;
}

interface PendingOutcome {
  readonly request: StatementRequest;
  readonly verdict: StatementVerdict;
  readonly started: number;
}

export class PgSession {
  readonly id = randomUUID();
  private phase: Phase = 'startup';
  private client: net.Socket;
  /** The TCP socket under TLS (same as `client` without TLS); destroyed with the session. */
  private readonly rawSocket: net.Socket;
  private readonly framer: Framer;
  private startupTimer: NodeJS.Timeout | null;
  private tls = false;
  private user = '';
  private database = '';
  private applicationName = '';
  private clientParams = new Map<string, string>();
  private scram: ScramServerSession | null = null;
  private userConfig: UserConfig | null = null;
  private context: SessionContext | null = null;
  private target: TargetConfig | null = null;
  private endpoint: UpstreamEndpoint | null = null;
  private hook: StatementHook | null = null;
  private upstream: net.Socket | null = null;
  private upstreamPid = 0;
  private upstreamSecret = 0;
  private myKey: { pid: number; secret: number } | null = null;
  private closeReason = '';
  /** Releases this session's waiting slot in the authentication throttle (while a slowed answer is pending). */
  private releaseAuthSlot: (() => void) | null = null;
  /** Idle-session timeout (bundle setting `idle_session_timeout_ms`; FATAL 57P05). */
  private readonly idle = new IdleWatch({
    timeoutMs: () =>
      this.target === null ? undefined : this.deps.settingsFor?.(this.target)?.idleSessionTimeoutMs,
    busy: () =>
      this.queue.length > 0 ||
      this.processing ||
      this.holdAbort !== null ||
      this.syncsAcked < this.syncsForwarded ||
      !this.atUpstreamBoundary(),
    expire: (ms) => {
      if (this.phase !== 'ready') return;
      this.fatal(
        '57P05',
        `terminating connection due to idle-session timeout (idle_session_timeout_ms ${ms} of the target's signed bundle)`,
        'idle-session timeout',
      );
    },
  });

  // statement path state
  private readonly queue: Frame[] = [];
  private queuedBytes = 0;
  private processing = false;
  private outBuf: Buffer[] = [];
  /** Aborts the statement or Bind being held; the AbortController behind it is created only if needed. */
  private holdAbort: { abort(): void } | null = null;
  private readonly token = `warden_denied_${randomBytes(6).toString('hex')}`;
  private readonly tokenBuf: Buffer;
  private tokenSeq = 0;
  private readonly denials = new Map<string, Denial>();
  private syncsForwarded = 0;
  private syncsAcked = 0;
  private synthetic: { after: number; data: Buffer }[] = [];
  private batchOutcomes: PendingOutcome[] = [];
  private readonly outcomeQueue: { batch: number; items: PendingOutcome[] }[] = [];
  private batchTags: string[] = [];
  private batchError: string | undefined;
  /** Transaction status from the last ReadyForQuery the upstream sent. */
  private txStatus = 0x49; // 'I'
  /** The gateway is shutting down: end the session at the next idle point. */
  private draining = false;

  // upstream stream scanner state
  private uHdr = Buffer.alloc(5);
  private uHdrLen = 0;
  private uSkip = 0;
  private uCap: { type: number; len: number; parts: Buffer[]; got: number; hdr: Buffer } | null = null;

  constructor(
    socket: net.Socket,
    private readonly deps: SessionDeps,
  ) {
    this.client = socket;
    this.rawSocket = socket;
    this.tokenBuf = Buffer.from(this.token);
    this.framer = new Framer(deps.config.limits.maxMessageBytes, { startup: true });
    socket.setNoDelay(true);
    this.startupTimer = setTimeout(
      () =>
        this.fatal(
          '08P01',
          'startup timed out: no complete authentication within the allowed time',
          'startup timeout',
        ),
      deps.config.limits.startupTimeoutMs,
    );
    this.attachClient(socket);
  }

  /** Re-reads the phase (a call may have closed the session; defeats control-flow narrowing). */
  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  get sourceAddress(): string {
    return this.client.remoteAddress ?? 'unknown';
  }

  /** The session as policy and audit see it, once authenticated. */
  get sessionContext(): SessionContext | null {
    return this.context;
  }

  private attachClient(s: net.Socket): void {
    s.on('data', (chunk: Buffer) => this.onClientData(chunk));
    s.on('error', () => this.close('client connection error'));
    s.on('close', () => this.close('client disconnected'));
  }

  // ---------------------------------------------------------------- client input

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'ready') this.idle.touch();
    try {
      this.framer.push(chunk);
      if (this.phase === 'startup') {
        this.handleStartupPhase();
        return;
      }
      for (let f = this.framer.next(); f; f = this.framer.next()) {
        if (this.phase === 'auth') this.handleAuthMessage(f);
        else this.enqueue(f);
        if (this.isClosed()) return;
      }
      if (this.phase === 'ready') this.kick();
    } catch (e) {
      this.onProtocolError(e);
    }
  }

  private onProtocolError(e: unknown): void {
    if (isWardenError(e)) this.fatal(e.sqlstate, e.message, `protocol error: ${e.message}`);
    else this.fatal('08P01', 'invalid message from client', `protocol error: ${String(e)}`);
  }

  private handleStartupPhase(): void {
    for (let p = this.framer.nextStartup(); p; p = this.framer.nextStartup()) {
      const pkt = decodeStartup(p);
      switch (pkt.kind) {
        case 'ssl': {
          if (this.tls) throw new WardenError('PROTOCOL_VIOLATION', 'SSLRequest received twice');
          const ctx = this.deps.tlsContext;
          if (!ctx) {
            this.client.write('N');
            continue;
          }
          // INVARIANT: no plaintext may follow the SSLRequest before the handshake (CVE-2021-23214 class).
          if (this.framer.pending > 0) {
            throw new WardenError('PROTOCOL_VIOLATION', 'received unencrypted data after SSL request');
          }
          this.client.write('S');
          this.upgradeTls(ctx);
          return;
        }
        case 'gssenc':
          this.client.write('N');
          continue;
        case 'cancel':
          this.deps.cancels.cancel(pkt.pid, pkt.secret);
          this.close('cancel request handled', true);
          return;
        case 'startup':
          this.onStartup(pkt.params);
          return;
      }
    }
  }

  private upgradeTls(ctx: tls.SecureContext): void {
    const raw = this.client;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    raw.on('error', () => this.close('client connection error'));
    // With a client CA configured every client is asked for a certificate; none is required at the TLS layer (a
    // missing or untrusted one fails authentication later, only for users who need one, looking like a bad password).
    const requestCert = this.deps.config.tls?.clientCaFile !== undefined;
    const t = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: ctx,
      ...(requestCert ? { requestCert: true, rejectUnauthorized: false } : {}),
    });
    this.client = t;
    this.tls = true;
    t.on('secure', () => t.setNoDelay(true));
    this.attachClient(t);
  }

  private onStartup(params: Map<string, string>): void {
    const cfg = this.deps.config;
    this.framer.setStartup(false);
    this.clientParams = params;
    this.user = params.get('user') ?? '';
    this.database = params.get('database') || this.user;
    this.applicationName = params.get('application_name') ?? '';
    if (this.user === '') {
      this.fatal('28000', 'no user name specified in the startup packet', 'no user');
      return;
    }
    const replication = params.get('replication');
    if (replication !== undefined && !['false', 'off', '0', 'no'].includes(replication.toLowerCase())) {
      this.fatal('0A000', 'replication connections are not allowed through Warden', 'replication refused');
      return;
    }
    if ((params.get('options') ?? '').trim() !== '') {
      this.fatal(
        '0A000',
        'startup "options" are not allowed through Warden; set settings with SET, subject to policy',
        'options refused',
      );
      return;
    }
    if (cfg.tls?.required && !this.tls) {
      this.fatal(
        '28000',
        'Warden requires TLS: connect with sslmode=require or stronger',
        'plaintext refused',
      );
      return;
    }
    this.phase = 'auth';
    this.userConfig = cfg.users.get(this.user) ?? null;
    this.client.write(authSasl(['SCRAM-SHA-256']));
  }

  // ---------------------------------------------------------------- authentication

  private handleAuthMessage(f: Frame): void {
    if (f.type !== MSG.Password) {
      throw new WardenError('PROTOCOL_VIOLATION', 'expected a SASL response during authentication');
    }
    if (!this.scram) {
      const init = decodeSaslInitial(f.body);
      if (init.mechanism !== 'SCRAM-SHA-256') {
        throw new WardenError('PROTOCOL_VIOLATION', `unsupported SASL mechanism "${init.mechanism}"`);
      }
      this.scram = new ScramServerSession(this.userConfig?.verifier ?? null, {
        fakeSaltKey: this.deps.fakeSaltKey,
        username: this.user,
      });
      this.client.write(authSaslContinue(this.scram.clientFirst(init.data.toString('utf8'))));
      return;
    }
    const result = this.scram.clientFinal(f.body.toString('utf8'));
    this.phase = 'connecting'; // further client bytes are queued until the verdict
    // The client has said all it has to say; what follows is bounded by the throttle cap and the upstream
    // connect timeout, so the silent-client timer must not cut a deliberately slowed answer short.
    if (this.startupTimer) clearTimeout(this.startupTimer);
    this.startupTimer = null;
    const delay = this.deps.throttle.delayMs(this.sourceAddress, this.user);
    // The second factor is checked only once the password is right, and fails with the very same answer.
    const certProblem =
      result.ok && this.userConfig?.clientCert !== undefined
        ? clientCertProblem(this.client, this.userConfig.clientCert)
        : undefined;
    const finish = (): void => {
      if (this.phase === 'closed') return;
      if (!result.ok || !this.userConfig || certProblem !== undefined) {
        const reason = !this.userConfig
          ? 'unknown user'
          : !result.ok
            ? 'wrong password'
            : `client certificate: ${certProblem ?? ''}`;
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
          '28P01',
          `password authentication failed for user "${this.user}"`,
          'authentication failed',
        );
        return;
      }
      this.deps.throttle.success(this.sourceAddress, this.user);
      this.client.write(Buffer.concat([authSaslFinal(result.serverFinal), authOk()]));
      void this.connect(this.userConfig);
    };
    // A failure counts at once, not when it is answered, so that parallel guesses see each other's failures.
    if (!result.ok || !this.userConfig || certProblem !== undefined) {
      this.deps.throttle.failure(this.sourceAddress, this.user);
    }
    if (delay === 0) {
      finish();
      return;
    }
    // Only a few slowed-down attempts per address wait at a time; more are refused without an answer on the password.
    const release = this.deps.throttle.enterDelay(this.sourceAddress);
    if (release === null) {
      void emitEvent(() =>
        this.deps.events.authFailed?.({
          user: this.user,
          target: this.database,
          sourceAddress: this.sourceAddress,
          reason: 'throttled: too many attempts waiting from this address',
        }),
      );
      this.fatal(
        '53300',
        'too many authentication attempts from this address; try again later',
        'authentication throttled',
      );
      return;
    }
    this.releaseAuthSlot = release;
    setTimeout(() => {
      release();
      this.releaseAuthSlot = null;
      finish();
    }, delay);
  }

  private async connect(user: UserConfig): Promise<void> {
    const found = this.deps.config.targets.get(this.database);
    // A MySQL target is reached through the MySQL front end only.
    const target = found?.engine === 'mysql' ? undefined : found;
    const loginName = target ? user.logins[target.name] : undefined;
    if (!target || loginName === undefined) {
      this.fatal(
        '3D000',
        `database "${this.database}" does not exist or is not available to user "${user.name}"`,
        'unknown target',
      );
      return;
    }
    const login = target.logins.get(loginName);
    if (!login) {
      this.fatal('XX000', 'target login misconfigured', 'login missing');
      return;
    }
    const principal = principalOf(user);
    this.target = target;
    this.endpoint = targetEndpoint(target);
    let hook: StatementHook;
    try {
      hook = this.deps.hookFor(target);
    } catch (e) {
      this.fatal('XX000', 'no policy is available for this target', `policy unavailable: ${String(e)}`);
      return;
    }
    this.hook = hook;
    const settings = this.deps.settingsFor?.(target);
    const refused = settings?.admit?.({ tls: this.tls, sourceAddress: this.sourceAddress });
    if (refused !== undefined) {
      this.fatal(refused.sqlstate, refused.message, `refused by target settings: ${refused.message}`);
      return;
    }
    const up = new Map<string, string>();
    for (const [k, v] of this.clientParams) if (FORWARDED_PARAMS.has(k.toLowerCase())) up.set(k, v);
    up.set('database', target.database);
    // INVARIANT: name resolution is pinned. pg_catalog, left implicit, is searched first; new objects go to
    // the first configured schema; the temp schema is listed last so temp tables never shadow anything.
    up.set('search_path', [...target.searchPath, 'pg_temp'].map(quoteIdent).join(', '));
    // A startup parameter is the session's reset value: RESET and DISCARD ALL return to it; SET is refused by the guard.
    if (settings?.statementTimeoutMs !== undefined)
      up.set('statement_timeout', String(settings.statementTimeoutMs));
    try {
      const conn = await connectUpstream(this.endpoint, login, up);
      if (this.phase === 'closed') {
        conn.socket.destroy();
        return;
      }
      this.upstream = conn.socket;
      this.upstreamPid = conn.backendPid;
      this.upstreamSecret = conn.backendSecret;
      this.myKey = this.deps.cancels.issue(this);
      this.context = {
        sessionId: this.id,
        protocol: 'postgres',
        principal,
        target: target.name,
        environment: target.environment,
        database: target.database,
        sourceAddress: this.sourceAddress,
        tls: this.tls,
        applicationName: this.applicationName,
        startedAt: new Date(),
      };
      const hello: Buffer[] = [];
      for (const [k, v] of conn.parameters) hello.push(parameterStatus(k, v));
      hello.push(backendKeyData(this.myKey.pid, this.myKey.secret), readyForQuery('I'));
      if (this.startupTimer) clearTimeout(this.startupTimer);
      this.startupTimer = null;
      this.phase = 'ready';
      this.idle.touch();
      this.client.write(Buffer.concat(hello));
      this.upstream.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
      this.upstream.on('error', () => this.upstreamLost());
      this.upstream.on('close', () => this.upstreamLost());
      if (conn.leftover.length > 0) this.onUpstreamData(conn.leftover);
      void emitEvent(() => this.deps.events.authenticated?.(this.context as SessionContext));
      this.kick();
    } catch (e) {
      const msg = isWardenError(e) ? e.message : 'cannot connect to the upstream database';
      this.fatal('08001', msg, 'upstream connect failed');
    }
  }

  // ---------------------------------------------------------------- statement path

  private enqueue(f: Frame): void {
    this.queue.push(f);
    this.queuedBytes += f.raw.length;
    if (this.queuedBytes > CLIENT_QUEUE_HIGH_WATER) this.client.pause();
  }

  /** Processes queued client messages in order; re-entrancy safe. */
  private kick(): void {
    if (this.processing || this.phase !== 'ready') return;
    this.processing = true;
    void this.drainQueue();
  }

  private async drainQueue(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.phase === 'ready') {
        const f = this.queue.shift() as Frame;
        this.queuedBytes -= f.raw.length;
        switch (f.type) {
          case MSG.Query:
            await this.onSql('simple', decodeQuery(f.body), f, undefined, undefined);
            break;
          case MSG.Parse: {
            const p = decodeParse(f.body);
            await this.onSql('parse', p.sql, f, p.name, p.paramTypes);
            break;
          }
          case MSG.Bind:
            if (this.hook?.bind) await this.onBind(f);
            else this.forward(f.raw);
            break;
          case MSG.Sync:
            this.forward(f.raw);
            this.syncPoint();
            break;
          case MSG.FunctionCall:
            // The fastpath function interface calls functions by OID, bypassing SQL analysis: always refused.
            this.inject('simple', {
              severity: 'ERROR',
              code: '42501',
              message:
                'denied by protocol: the fastpath function call interface is not allowed through Warden',
            });
            break;
          case MSG.Terminate:
            this.flushUpstream();
            this.upstream?.end(terminate());
            this.close('client terminated', true);
            return;
          default:
            this.forward(f.raw);
        }
      }
      this.flushUpstream();
      if (this.queuedBytes <= CLIENT_QUEUE_HIGH_WATER && this.client.isPaused()) this.client.resume();
    } catch (e) {
      this.onProtocolError(e);
    } finally {
      this.processing = false;
    }
    if (this.queue.length > 0 && this.phase === 'ready') this.kick();
    else if (this.draining && this.phase === 'ready' && this.isIdle()) this.shutdown();
  }

  private forward(raw: Buffer): void {
    this.outBuf.push(raw);
  }

  private flushUpstream(): void {
    if (this.outBuf.length === 0 || !this.upstream) return;
    const data = this.outBuf.length === 1 ? (this.outBuf[0] as Buffer) : Buffer.concat(this.outBuf);
    this.outBuf = [];
    if (!this.upstream.write(data)) {
      this.client.pause();
      this.upstream.once('drain', () => {
        if (this.queuedBytes <= CLIENT_QUEUE_HIGH_WATER) this.client.resume();
      });
    }
  }

  /** A Query or Sync was forwarded: one ReadyForQuery will come back for it. */
  private syncPoint(): void {
    this.syncsForwarded++;
    this.outcomeQueue.push({ batch: this.syncsForwarded, items: this.batchOutcomes });
    this.batchOutcomes = [];
  }

  private async onSql(
    path: StatementPath,
    sql: string,
    f: Frame,
    statementName: string | undefined,
    paramTypes: number[] | undefined,
  ): Promise<void> {
    const ctx = this.context as SessionContext;
    const hook = this.hook as StatementHook;
    // The abort signal is only needed by hooks that hold; create it on first use (it is not free).
    let abort: AbortController | null = null;
    const controller = (): AbortController => (abort ??= new AbortController());
    const aborted = (): boolean => abort?.signal.aborted === true;
    const request: StatementRequest = {
      session: ctx,
      sql,
      path,
      ...(statementName !== undefined ? { statementName } : {}),
      ...(paramTypes !== undefined ? { paramTypes } : {}),
      receivedAt: new Date(),
      notice: (message: string) =>
        this.emitSynthetic(noticeResponse({ severity: 'NOTICE', code: '00000', message })),
      get signal() {
        return controller().signal;
      },
    };
    // Held: forward what came before, then wait; cancel or disconnect aborts the wait. A failing hook denies.
    const verdict = (await awaitVerdict(
      () => hook.check(request),
      this.verdictHold(controller, aborted, 'statement'),
    )) ?? { action: 'deny', sqlstate: '42501', message: 'denied: the statement could not be decided' };
    if (this.phase !== 'ready') return;
    if (verdict.action === 'allow') {
      this.batchOutcomes.push({ request, verdict, started: performance.now() });
      if (verdict.sql === undefined || verdict.sql === sql) this.forward(f.raw);
      else if (path === 'simple') this.forward(queryMessage(verdict.sql));
      else
        this.forward(
          encodeParse({ name: statementName ?? '', sql: verdict.sql, paramTypes: paramTypes ?? [] }),
        );
      if (path === 'simple') this.syncPoint();
      return;
    }
    const fields: ErrorFields = { severity: 'ERROR', code: verdict.sqlstate, message: verdict.message };
    if (verdict.detail !== undefined) fields.detail = verdict.detail;
    if (verdict.hint !== undefined) fields.hint = verdict.hint;
    this.inject(path === 'simple' ? 'simple' : 'parse', fields);
  }

  /** How a held Query/Parse/Bind is flushed, cancelled and denied (see awaitVerdict). */
  private verdictHold(
    controller: () => AbortController,
    aborted: () => boolean,
    what: 'statement' | 'parameters',
  ): VerdictHold {
    return {
      beforeHold: () => this.flushUpstream(),
      setHold: (abort) => {
        this.holdAbort = abort === null ? null : { abort };
      },
      abort: () => controller().abort(),
      aborted,
      undecidable: `denied: the ${what} could not be decided`,
    };
  }

  /** A Bind, when the hook wants to see parameters: hashed, shown to the hook, then forwarded or refused. */
  private async onBind(f: Frame): Promise<void> {
    const hook = this.hook as StatementHook & Required<Pick<StatementHook, 'bind'>>;
    const b = decodeBind(f.body);
    // As for statements: a hook that holds the Bind (approval in wait mode) gets notices and an abort signal.
    let abort: AbortController | null = null;
    const controller = (): AbortController => (abort ??= new AbortController());
    const aborted = (): boolean => abort?.signal.aborted === true;
    const request: BindRequest = {
      session: this.context as SessionContext,
      statementName: b.statement,
      portal: b.portal,
      paramsHash: hashParams(b),
      paramCount: b.params.length,
      notice: (message: string) =>
        this.emitSynthetic(noticeResponse({ severity: 'NOTICE', code: '00000', message })),
      get signal() {
        return controller().signal;
      },
    };
    const verdict = await awaitVerdict(
      () => hook.bind(request),
      this.verdictHold(controller, aborted, 'parameters'),
    );
    if (this.phase !== 'ready') return;
    if (verdict === undefined || verdict.action === 'allow') {
      this.forward(f.raw);
      return;
    }
    const fields: ErrorFields = { severity: 'ERROR', code: verdict.sqlstate, message: verdict.message };
    if (verdict.detail !== undefined) fields.detail = verdict.detail;
    // The injected Parse fails; the upstream then skips the rest of the batch (this Execute included) until Sync.
    this.inject('parse', fields);
  }

  /**
   * Replaces a refused message with one the upstream rejects as a syntax error; the error that comes back
   * carries the token and is swapped for `fields`. Ordering and error semantics come from the server.
   */
  private inject(kind: 'simple' | 'parse', fields: ErrorFields): void {
    const tok = `${this.token}_${++this.tokenSeq}`;
    this.denials.set(tok, { fields, batch: this.syncsForwarded + 1 });
    if (kind === 'simple') {
      this.forward(queryMessage(tok));
      this.syncPoint();
    } else {
      this.forward(encodeParse({ name: '', sql: tok, paramTypes: [] }));
    }
  }

  /** Sends a Warden-made message once every response the client is owed before it has been delivered. */
  private emitSynthetic(data: Buffer): void {
    if (this.phase !== 'ready') return;
    if (this.syncsAcked >= this.syncsForwarded && this.atUpstreamBoundary()) this.client.write(data);
    else this.synthetic.push({ after: this.syncsForwarded, data });
  }

  private atUpstreamBoundary(): boolean {
    return this.uSkip === 0 && this.uCap === null && this.uHdrLen === 0;
  }

  /** Cancel from a CancelRequest carrying this session's key. */
  cancel(): void {
    if (this.holdAbort) {
      this.holdAbort.abort();
      return;
    }
    if (this.endpoint && this.upstreamPid !== 0) {
      sendUpstreamCancel(this.endpoint, this.upstreamPid, this.upstreamSecret).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- upstream output

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase !== 'ready') return;
    const out: Buffer[] = [];
    const n = chunk.length;
    let pos = 0;
    let start = 0;
    try {
      while (pos < n) {
        if (this.uSkip > 0) {
          const k = Math.min(this.uSkip, n - pos);
          pos += k;
          this.uSkip -= k;
          continue;
        }
        if (this.uCap) {
          const cap = this.uCap;
          const k = Math.min(cap.len - cap.got, n - pos);
          cap.parts.push(chunk.subarray(pos, pos + k));
          cap.got += k;
          pos += k;
          start = pos;
          if (cap.got === cap.len) {
            this.uCap = null;
            const body = Buffer.concat(cap.parts);
            this.onUpstreamMessage(cap.type, body, Buffer.concat([cap.hdr, body]), out);
          }
          continue;
        }
        if (this.uHdrLen > 0 || n - pos < 5) {
          if (start < pos) out.push(chunk.subarray(start, pos));
          const k = Math.min(5 - this.uHdrLen, n - pos);
          chunk.copy(this.uHdr, this.uHdrLen, pos, pos + k);
          this.uHdrLen += k;
          pos += k;
          start = pos;
          if (this.uHdrLen < 5) break;
          this.uHdrLen = 0;
          const hdr = Buffer.from(this.uHdr);
          this.beginUpstreamMessage(hdr, out);
          continue;
        }
        const type = chunk[pos] as number;
        const len = chunk.readInt32BE(pos + 1);
        if (len < 4) throw new WardenError('CONNECTION_FAILURE', 'invalid message from upstream');
        if (STREAMED.has(type)) {
          pos += 5;
          this.uSkip = len - 4;
          continue;
        }
        if (start < pos) out.push(chunk.subarray(start, pos));
        if (n - pos - 5 >= len - 4) {
          const raw = chunk.subarray(pos, pos + 1 + len);
          pos += 1 + len;
          start = pos;
          this.onUpstreamMessage(type, raw.subarray(5), raw, out);
        } else {
          this.startCapture(type, len, chunk.subarray(pos, pos + 5));
          pos += 5;
          start = pos;
        }
      }
      if (start < pos) out.push(chunk.subarray(start, pos));
    } catch (e) {
      this.fatal(
        '08006',
        'lost synchronisation with the upstream database',
        `upstream protocol error: ${String(e)}`,
      );
      return;
    }
    this.writeClient(out);
    if (this.draining && this.isIdle()) this.shutdown();
  }

  private startCapture(type: number, len: number, hdr: Buffer): void {
    if (len - 4 > MAX_HELD_UPSTREAM_MESSAGE) {
      throw new WardenError('CONNECTION_FAILURE', 'upstream message too large');
    }
    this.uCap = { type, len: len - 4, parts: [], got: 0, hdr };
  }

  private beginUpstreamMessage(hdr: Buffer, out: Buffer[]): void {
    const type = hdr[0] as number;
    const len = hdr.readInt32BE(1);
    if (len < 4) throw new WardenError('CONNECTION_FAILURE', 'invalid message from upstream');
    if (STREAMED.has(type)) {
      out.push(hdr);
      this.uSkip = len - 4;
    } else if (len === 4) {
      this.onUpstreamMessage(type, Buffer.alloc(0), hdr, out);
    } else {
      this.startCapture(type, len, hdr);
    }
  }

  /** A whole non-streamed upstream message: observe it, and forward it (or its replacement). */
  private onUpstreamMessage(type: number, body: Buffer, raw: Buffer, out: Buffer[]): void {
    switch (type) {
      case MSG.ErrorResponse: {
        const at = body.indexOf(this.tokenBuf);
        if (at >= 0) {
          const end = body.indexOf(0x22, at); // closing quote in: syntax error at or near "<token>"
          const tok = body.toString('utf8', at, end > at ? end : undefined).replace(/[^a-z0-9_]/g, '');
          const d = this.denials.get(tok);
          if (d) {
            this.denials.delete(tok);
            this.batchError = d.fields.code;
            out.push(errorResponse(d.fields));
            return;
          }
        }
        this.batchError = decodeFields(body).get('C');
        out.push(raw);
        return;
      }
      case MSG.CommandComplete:
        this.batchTags.push(body.toString('utf8', 0, Math.max(0, body.length - 1)));
        out.push(raw);
        return;
      case MSG.ReadyForQuery: {
        out.push(raw);
        this.txStatus = body[0] ?? 0x49;
        this.syncsAcked++;
        this.idle.mark();
        this.finishBatch(this.syncsAcked);
        if (this.synthetic.length > 0) {
          const keep: { after: number; data: Buffer }[] = [];
          for (const s of this.synthetic) {
            if (s.after <= this.syncsAcked) out.push(s.data);
            else keep.push(s);
          }
          this.synthetic = keep;
        }
        return;
      }
      default:
        out.push(raw);
    }
  }

  private finishBatch(batch: number): void {
    for (const [tok, d] of this.denials) if (d.batch <= batch) this.denials.delete(tok);
    const head = this.outcomeQueue[0];
    const tags = this.batchTags;
    const sqlstate = this.batchError;
    this.batchTags = [];
    this.batchError = undefined;
    if (!head || head.batch !== batch) return;
    this.outcomeQueue.shift();
    const hook = this.hook;
    if (!hook?.outcome || head.items.length === 0) return;
    const now = performance.now();
    let rows = 0;
    for (const t of tags) {
      const m = /(\d+)$/.exec(t);
      if (m) rows += Number(m[1]);
    }
    for (const item of head.items) {
      try {
        hook.outcome({
          request: item.request,
          verdict: item.verdict,
          commandTags: tags,
          rows,
          ...(sqlstate !== undefined ? { sqlstate } : {}),
          durationMs: now - item.started,
        });
      } catch {
        // outcome sinks never break the session
      }
    }
  }

  private writeClient(out: Buffer[]): void {
    if (out.length === 0) return;
    const data = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out);
    if (!this.client.write(data)) {
      this.upstream?.pause();
      this.client.once('drain', () => this.upstream?.resume());
    }
  }

  private upstreamLost(): void {
    if (this.phase !== 'ready') return;
    this.fatal('08006', 'the connection to the upstream database was lost', 'upstream lost');
  }

  // ---------------------------------------------------------------- closing

  /** Sends a FATAL error to the client and closes the session. */
  private fatal(code: string, message: string, reason: string): void {
    if (this.phase === 'closed') return;
    try {
      if (this.client.writable) this.client.write(errorResponse({ severity: 'FATAL', code, message }));
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
    this.releaseAuthSlot?.();
    this.idle.stop();
    this.holdAbort?.abort();
    if (this.myKey) this.deps.cancels.release(this.myKey.pid);
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

  get reason(): string {
    return this.closeReason;
  }

  /** Ends the session now because the gateway is shutting down (FATAL 57P01); a running statement is cancelled. */
  shutdown(): void {
    if (this.phase === 'closed') return;
    if (this.phase === 'ready' && !this.isIdle() && this.endpoint && this.upstreamPid !== 0) {
      sendUpstreamCancel(this.endpoint, this.upstreamPid, this.upstreamSecret).catch(() => undefined);
    }
    this.fatal('57P01', 'terminating connection: Warden is shutting down', 'gateway shutdown');
  }

  /**
   * Graceful drain: a session with no statement in flight and no open transaction ends now (57P01); any
   * other session ends as soon as its current statement and transaction are over. The caller cuts the rest
   * with `shutdown()` when its drain time is up.
   */
  beginDrain(): void {
    if (this.phase === 'closed') return;
    this.draining = true;
    if (this.phase !== 'ready' || this.isIdle()) this.shutdown();
  }

  /** No client message waiting or being decided, every forwarded statement answered, outside a transaction. */
  private isIdle(): boolean {
    return (
      this.queue.length === 0 &&
      !this.processing &&
      this.outBuf.length === 0 &&
      this.syncsAcked >= this.syncsForwarded &&
      this.txStatus === 0x49 &&
      this.atUpstreamBoundary()
    );
  }
}

/**
 * OpenSSL's verdict on the client's certificate chain (against the context's `ca`), or null when it verified.
 * A TLSSocket made outside a tls.Server never sets `authorized`, so this asks the handle the way tls.Server does
 * (`_handle.verifyError()`); if that ever goes away, every certificate counts as untrusted (fail closed).
 */
function peerVerifyError(t: tls.TLSSocket): string | null {
  const handle = (t as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })
    ._handle;
  if (typeof handle?.verifyError !== 'function') return 'verification unavailable';
  const e = handle.verifyError();
  return e === null || e === undefined ? null : (e.code ?? e.message);
}

/**
 * Why the client's TLS certificate does not satisfy a user's requirement, or undefined when it does. The chain
 * was verified by the TLS layer against `tls.client_ca_file`; the reason goes to the audit log only.
 */
export function clientCertProblem(client: net.Socket, req: ClientCertRequirement): string | undefined {
  if (!(client instanceof tls.TLSSocket)) return 'none presented (no TLS)';
  const cert = client.getPeerCertificate();
  if (cert === null || typeof cert !== 'object' || Object.keys(cert).length === 0) return 'none presented';
  const verifyError = peerVerifyError(client);
  if (verifyError !== null) return `not trusted (${verifyError})`;
  if (req.subjectCn !== undefined) {
    const cn = cert.subject?.CN;
    // A subject with several CNs is refused rather than matched on one of them.
    if (typeof cn !== 'string' || cn !== req.subjectCn) return 'subject CN does not match';
  }
  if (req.fingerprintSha256 !== undefined && cert.fingerprint256 !== req.fingerprintSha256) {
    return 'fingerprint does not match';
  }
  return undefined;
}

/** SHA-256 over the Bind's parameter formats and values, length-prefixed so that no two bindings collide. */
export function hashParams(b: BindMessage): string {
  const h = createHash('sha256');
  const n = Buffer.alloc(4);
  n.writeInt32BE(b.paramFormats.length);
  h.update(n);
  for (const f of b.paramFormats) {
    n.writeInt32BE(f);
    h.update(n);
  }
  n.writeInt32BE(b.params.length);
  h.update(n);
  for (const p of b.params) {
    n.writeInt32BE(p === null ? -1 : p.length);
    h.update(n);
    if (p !== null) h.update(p);
  }
  return h.digest('hex');
}

function quoteIdent(s: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s.replaceAll('"', '""')}"`;
}
