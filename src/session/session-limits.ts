// What a target's signed bundle asks of client sessions, and the idle-session clock: shared by the PostgreSQL and MySQL sessions.
// @see docs/bundles.md (Settings)

/** What a target's signed bundle asks of its sessions (src/bundle/settings.ts). */
export interface TargetSessionSettings {
  /** The upstream statement timeout of new sessions (PostgreSQL: `statement_timeout`; MySQL: see mysql-session). */
  readonly statementTimeoutMs?: number;
  /** The gateway closes a session whose client stays idle this long. */
  readonly idleSessionTimeoutMs?: number;
  /** Refusal of a session that may not use the target (e.g. plaintext, or a source outside the allowed ranges). */
  admit?(session: {
    readonly tls: boolean;
    readonly sourceAddress: string;
  }): { readonly sqlstate: string; readonly setting?: string; readonly message: string } | undefined;
}

export interface IdleWatchOptions {
  /** The timeout in force now (re-read at each expiry: a new bundle may change it); undefined: none. */
  timeoutMs(): number | undefined;
  /** Whether the session is working (a command queued, being decided or answered): never idle then. */
  busy(): boolean;
  /** The session was idle for `ms`: end it. */
  expire(ms: number): void;
}

/**
 * The idle-session clock of one session. `touch()` on client activity arms it when a timeout is set; at expiry
 * it re-reads the timeout and the busy state, re-arms for the remainder, or calls `expire`.
 */
export class IdleWatch {
  private timer: NodeJS.Timeout | null = null;
  private last = performance.now();

  constructor(private readonly opts: IdleWatchOptions) {}

  /** Client activity: restarts the idle clock, arming the timer if a timeout is set. */
  touch(): void {
    this.last = performance.now();
    if (this.timer !== null) return;
    const ms = this.opts.timeoutMs();
    if (ms !== undefined) this.arm(ms);
  }

  /** The end of an answer: restarts the clock while it runs (idleness counts from the last answer). */
  mark(): void {
    if (this.timer !== null) this.last = performance.now();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.fire(), ms);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    const ms = this.opts.timeoutMs();
    if (ms === undefined) return; // re-armed by the next activity if a later bundle sets it
    const busy = this.opts.busy();
    const idleFor = performance.now() - this.last;
    if (busy || idleFor < ms) {
      this.arm(busy ? ms : Math.max(1, ms - idleFor));
      return;
    }
    this.opts.expire(ms);
  }
}
