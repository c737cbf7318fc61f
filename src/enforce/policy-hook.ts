// The policy statement hook: analyses each statement with the real parser, decides it against the declarative policy, and rewrites it for masks and row filters.
//
// Life of a statement here: analyse (cached by text) → resolve EXECUTE to what this session prepared → evaluate
// (cached by principal, context and text) → deny, refuse for approval, or allow → fetch column lists of masked or
// filtered tables → rewrite (cached) → allow with the rewritten SQL. Every verdict carries a plain-data decision.
// INVARIANT: default deny. A parse error, an unknown prepared statement, an unreadable column list, a rewrite
// refusal or any exception is a denial; nothing reaches the database that the policy did not allow as written.
// INVARIANT: every cache belongs to one hook, and one hook to one immutable Policy: a new policy means a new
// hook, so no allow is ever served from a previous policy.

import type { StatementSummary } from '../core/access.js';
import type {
  BindRequest,
  SessionContext,
  StatementHook,
  StatementOutcome,
  StatementPath,
  StatementRequest,
  StatementVerdict,
} from '../core/context.js';
import { ERRORS, WardenError, isWardenError } from '../core/errors.js';
import type { TargetConfig } from '../config/gateway-config.js';
import { analyzeCached, initSqlAnalyser } from '../sql/analyze.js';
import { analyzeShaped } from '../sql/fast-path.js';
import { rewrite } from '../sql/rewrite.js';
import { parseSql, unwrap } from '../sql/parser.js';
import type { TableProtection as RewriteProtection } from '../sql/rewrite.js';
import { DecisionCache, decisionCacheKey, evaluate, loadPolicy } from '../policy/index.js';
import type { ApprovalRequirement, Decision, Denial, Policy } from '../policy/index.js';
import { DDL_KINDS } from '../policy/catalog.js';
import { CatalogCache } from './catalog-cache.js';
import type { DialectDenial, SqlDialect } from './dialect.js';
import type { Analysis } from '../sql/analyze.js';
import type { ApprovalService } from '../approvals/service.js';
import type { ApprovalRequest } from '../approvals/model.js';

/** The decision as plain, JSON-serialisable data: what the audit log records. */
export interface HookDecision {
  readonly effect: 'allow' | 'deny' | 'approval';
  /** Rule ids that decided, e.g. "role:analyst/grant:0", "append_only:public.ledger", "parse-error". */
  readonly rules: readonly string[];
  readonly reasons: readonly string[];
  readonly denied?: Denial;
  readonly approval?: ApprovalRequirement;
  readonly message?: string;
  /** Masks (column → SQL) and row filter per "schema.table", as the policy decided them. */
  readonly protections: Readonly<Record<string, { masks: Record<string, string>; rowFilter?: string }>>;
  /** Whether the SQL forwarded differs from what the client sent. */
  readonly rewritten: boolean;
  /** Whether the policy decision came from the decision cache. */
  readonly cached: boolean;
  /** The approval request the statement waited for or ran under (also in `rules` as "approval-request:<id>"). */
  readonly approvalRequest?: string;
  /** Just-in-time roles the principal held for this decision. */
  readonly jitRoles?: readonly string[];
}

export interface PolicyHookOptions {
  /**
   * The target's SQL dialect: analysis, rewriting, column catalog and the policy-version question. Default: the
   * built-in PostgreSQL one (libpg-query). MySQL targets use src/enforce/mysql-dialect.ts.
   */
  readonly dialect?: SqlDialect;
  /** Column lists for the rewriter; default: a cache over the target's upstream (first login). */
  readonly catalog?: CatalogCache;
  /** Clock for time conditions; default: the request's `receivedAt`. */
  readonly now?: () => Date;
  /** Decision cache capacity (default 10 000). */
  readonly decisionCacheSize?: number;
  /** Sessions whose prepared statements are tracked at once (default 10 000, least recently used dropped). */
  readonly maxSessions?: number;
  /**
   * The approvals service: statements the policy sends to approval become requests (refused with WA001 or held,
   * by the rule's mode), and the principal's just-in-time roles join every decision. Without it, such statements
   * are refused with WA001 saying approvals are unavailable.
   */
  readonly approvals?: ApprovalService;
  /** While a statement is held for approval, a notice is sent this often (ms, default 5000). */
  readonly approvalNoticeMs?: number;
  /**
   * The running policy's identity. When set, exactly `SHOW warden.policy_version` (answered `'<label> <hash>'`)
   * and `SHOW warden.policy_hash` (answered `'<hash>'`) are answered by rewriting them to a constant SELECT,
   * for every session, without consulting the policy.
   */
  readonly version?: PolicyVersion;
  /**
   * Statements that differ only in plain literals share one analysis and decision (src/sql/fast-path.ts, MySQL:
   * src/sql-mysql/fast-path.ts); default true. False analyses and caches every text on its own (benchmarks,
   * differential tests); a dialect is told so.
   */
  readonly fastPath?: boolean;
}

/** How a policy is named to operators: a bundle's version number (or "folder") and its hash. */
export interface PolicyVersion {
  readonly label: string;
  readonly hash: string;
}

/** The settings `SHOW` answers from the running policy. */
export const POLICY_VERSION_SETTINGS = ['warden.policy_version', 'warden.policy_hash'] as const;

/** A StatementHook that also reports session ends and can release its upstream catalog connection. */
export interface PolicyHook extends StatementHook {
  readonly policy: Policy;
  readonly target: TargetConfig;
  check(request: StatementRequest): Promise<StatementVerdict>;
  /**
   * A Bind (MySQL: COM_STMT_EXECUTE) of a statement whose Parse (COM_STMT_PREPARE) the policy sent to approval:
   * decided here, bound to the parameters' hash
   * (run if an approval for this exact text and these parameters can be claimed; else refused or held). Present
   * only with an approvals service (without one, such a Parse is refused), so sessions skip Binds otherwise.
   */
  bind?(request: BindRequest): Promise<StatementVerdict | undefined> | StatementVerdict | undefined;
  /** Forget a session's prepared statements (wire to SessionEvents.closed). */
  sessionClosed(sessionId: string): void;
  /** Number of sessions whose prepared statements are tracked (tests, metrics). */
  readonly trackedSessions: number;
  /**
   * Takes over the prepared statements `previous` tracks (their summaries, never their decisions), so a session's
   * `EXECUTE` after a policy swap is decided anew under this hook's policy instead of refused as unknown.
   */
  inheritSessions(previous: PolicyHook): void;
  close(): Promise<void>;
}

/** Prepared statement name → every body that may be prepared under it in the session (all are decided). */
type PreparedMap = Map<string, readonly StatementSummary[]>;

/**
 * A statement prepared (Parse, MySQL COM_STMT_PREPARE, or SQL PREPARE) that the policy sends to approval: each Bind
 * (MySQL: each COM_STMT_EXECUTE) of it is gated.
 */
interface GatedBody {
  /** The text the approval binds to (the Parse or prepare text as the client sent it, or the PREPARE statement). */
  readonly sql: string;
  /** The path the approval request names: 'parse' (PostgreSQL, incl. SQL PREPARE) or 'mysql-prepare'. */
  readonly path: StatementPath;
  readonly decision: Decision;
  readonly need: ApprovalRequirement;
  readonly cached: boolean;
}

/** What one gated execution is bound to: who, where, which text, which parameters (null: none, simple query). */
interface GateInput {
  readonly session: SessionContext;
  readonly sql: string;
  readonly path: StatementPath;
  readonly paramsHash: string | null;
  /** The prepared statement a Bind names (for the audit trail of its use). */
  readonly statementName?: string;
  notice(message: string): void;
  readonly signal: AbortSignal;
}

const MAX_PREPARED_PER_SESSION = 1000;
/** Bodies kept per name (a driver that re-parses one name after closing it would otherwise grow the list). */
const MAX_BODIES_PER_NAME = 16;
const REWRITE_CACHE_MAX = 2000;
const SQLSTATE_DENIED: string = ERRORS.INSUFFICIENT_PRIVILEGE.sqlstate;

function plain(d: Decision, rewritten: boolean, cached: boolean): HookDecision {
  const protections: Record<string, { masks: Record<string, string>; rowFilter?: string }> = {};
  for (const [t, p] of d.protections) {
    protections[t] = {
      masks: Object.fromEntries(p.masks),
      ...(p.rowFilter === undefined ? {} : { rowFilter: p.rowFilter }),
    };
  }
  return {
    effect: d.effect,
    rules: d.rules,
    reasons: d.reasons,
    ...(d.denied === undefined ? {} : { denied: d.denied }),
    ...(d.approval === undefined ? {} : { approval: d.approval }),
    ...(d.message === undefined ? {} : { message: d.message }),
    protections,
    rewritten,
    cached,
  };
}

/** A denial that the hook itself reaches (not the evaluator): still plain data naming a rule and a reason. */
function hookDenial(rule: string, reason: string, sqlstate = SQLSTATE_DENIED): StatementVerdict {
  const message = `denied by ${rule}: ${reason}`;
  const decision: HookDecision = {
    effect: 'deny',
    rules: [rule],
    reasons: [reason],
    denied: { statement: 0, rule, reason },
    message,
    protections: {},
    rewritten: false,
    cached: false,
  };
  return { action: 'deny', sqlstate, message, decision };
}

function approvalMessage(a: ApprovalRequirement): string {
  const who = a.approvers.map((x) => `${x.count} of group ${x.group}`).join(' and ');
  return (
    `approval required by ${a.rule} (approvers: ${who}); ` +
    'the approvals service is not available in this version of Warden, so the statement was not run'
  );
}

function remember(
  old: readonly StatementSummary[] | undefined,
  added: readonly StatementSummary[],
): readonly StatementSummary[] {
  return [...(old ?? []), ...added].slice(-MAX_BODIES_PER_NAME);
}

function isDdl(s: StatementSummary): boolean {
  return (
    DDL_KINDS.has(s.kind) ||
    s.relations.some((r) => r.operation === 'create' || r.operation === 'alter' || r.operation === 'drop')
  );
}

class Hook implements PolicyHook {
  private readonly decisions: DecisionCache;
  private readonly rewrites = new Map<string, string>();
  private readonly sessions = new Map<string, PreparedMap>();
  private readonly ddlVerdicts = new WeakSet<StatementVerdict>();
  /**
   * Per session: statement name → the approval-gated bodies that may be live under it. '' (the unnamed statement)
   * is replaced by every Parse; a named one keeps older gated bodies (a Parse of a taken name fails upstream, so
   * the old body may still be the one that runs). INVARIANT: a Bind of a name listed here never runs unapproved.
   */
  private readonly gated = new Map<string, Map<string, readonly GatedBody[]>>();
  /** Set only with an approvals service: a session forwards Binds unexamined when its hook has no `bind`. */
  readonly bind?: (req: BindRequest) => Promise<StatementVerdict | undefined> | undefined;
  private readonly searchPath: readonly string[];
  private readonly maxSessions: number;

  constructor(
    readonly target: TargetConfig,
    readonly policy: Policy,
    private readonly catalog: CatalogCache,
    private readonly opts: PolicyHookOptions,
  ) {
    this.decisions = new DecisionCache(opts.decisionCacheSize ?? 10_000);
    this.searchPath = target.searchPath;
    this.maxSessions = opts.maxSessions ?? 10_000;
    const approvals = opts.approvals;
    if (approvals !== undefined) this.bind = (req) => this.bindGate(approvals, req);
  }

  get trackedSessions(): number {
    return this.sessions.size;
  }

  async check(req: StatementRequest): Promise<StatementVerdict> {
    // Every Parse drops the unnamed statement upstream: the client's own replaces it, and a refused Parse is
    // replaced by an unnamed one that fails. So the unnamed statement's gate goes with it.
    const parse = req.path === 'parse';
    if (parse && (req.statementName ?? '') === '') this.dropGate(req.session.sessionId, '');
    let verdict: StatementVerdict;
    try {
      verdict = await this.decide(req);
    } catch (e) {
      // INVARIANT: a hook error is a denial (the session would deny too, but say so here, with a rule).
      verdict = hookDenial(
        'internal-error',
        `the statement could not be decided (${e instanceof Error ? e.message : String(e)})`,
      );
    }
    if (parse && verdict.action === 'deny') this.dropGate(req.session.sessionId, '');
    return verdict;
  }

  private bindGate(
    approvals: ApprovalService,
    req: BindRequest,
  ): Promise<StatementVerdict | undefined> | undefined {
    const bodies = this.gated.get(req.session.sessionId)?.get(req.statementName);
    if (bodies === undefined || bodies.length === 0) return undefined;
    return this.bindGated(approvals, req, bodies).then(
      (v) => {
        // A refused Bind is replaced upstream by an unnamed Parse that fails, which drops the unnamed statement.
        if (v.action === 'deny') this.dropGate(req.session.sessionId, '');
        return v;
      },
      (e: unknown) => {
        this.dropGate(req.session.sessionId, '');
        return hookDenial(
          'internal-error',
          `the parameters could not be decided (${e instanceof Error ? e.message : String(e)})`,
        );
      },
    );
  }

  /**
   * A Bind of an approval-gated statement: the approval is bound to the statement text and this Bind's
   * parameters. Several different gated bodies that may be live under one name cannot be told apart: refused.
   */
  private async bindGated(
    approvals: ApprovalService,
    req: BindRequest,
    bodies: readonly GatedBody[],
  ): Promise<StatementVerdict> {
    const texts = new Set(bodies.map((b) => b.sql));
    const body = bodies[bodies.length - 1] as GatedBody;
    if (texts.size > 1) {
      return hookDenial(
        'approval:ambiguous-statement',
        `prepared statement "${req.statementName}" may hold any of ${texts.size} statements that need approval ` +
          '(it was prepared again under the same name); prepare it under a new name',
        ERRORS.APPROVAL_REQUIRED.sqlstate,
      );
    }
    await approvals.sync();
    const signal = req.signal ?? new AbortController().signal;
    const input: GateInput = {
      session: req.session,
      sql: body.sql,
      path: body.path,
      paramsHash: req.paramsHash,
      statementName: req.statementName,
      notice: (m) => req.notice?.(m),
      signal,
    };
    const gated = await this.gate(approvals, input, body.decision, body.need, body.cached);
    if ('action' in gated) return gated;
    // The request id rides on the verdict too, so the audit entry of this Bind names it.
    return {
      action: 'allow',
      decision: ranUnder(plain(body.decision, false, body.cached), gated),
      approvalRequestId: gated.id,
    };
  }

  private dropGate(sessionId: string, name: string): void {
    const names = this.gated.get(sessionId);
    if (names === undefined || !names.delete(name)) return;
    if (names.size === 0) this.gated.delete(sessionId);
  }

  /**
   * After an allowed statement: which prepared names are now gated. A Parse the policy sent to approval gates its
   * name; an SQL PREPARE in a string that needed (and got) approval gates its name too, since a protocol Bind can
   * execute it. A later ungated Parse of a taken name does not clear the gate (it fails upstream).
   */
  private noteGates(
    req: StatementRequest,
    statements: readonly StatementSummary[],
    decision: Decision,
    cached: boolean,
    parsed: GatedBody | undefined,
  ): void {
    const add: [string, GatedBody][] = [];
    if (parsed !== undefined) add.push([req.statementName ?? '', parsed]);
    if (decision.effect === 'approval' && decision.approval !== undefined && req.path === 'simple') {
      for (const s of statements) {
        if (s.kind === 'PrepareStmt' && s.preparedName !== undefined)
          add.push([
            s.preparedName,
            { sql: s.text, path: 'parse', decision, need: decision.approval, cached },
          ]);
      }
    }
    if (add.length === 0) return;
    const sessionId = req.session.sessionId;
    let names = this.gated.get(sessionId);
    if (names === undefined) {
      // Never evicted while the session lives (dropping a gate would let its Binds run unapproved); bounded by
      // refusing new gated names past MAX_PREPARED_PER_SESSION (see decide).
      names = new Map();
      this.gated.set(sessionId, names);
    }
    for (const [name, body] of add) {
      const old = name === '' ? [] : (names.get(name) ?? []);
      names.set(name, [...old.filter((b) => b.sql !== body.sql), body].slice(-MAX_BODIES_PER_NAME));
    }
  }

  private gateInput(req: StatementRequest): GateInput {
    return {
      session: req.session,
      sql: req.sql,
      path: req.path,
      paramsHash: null,
      notice: (m) => req.notice(m),
      get signal() {
        return req.signal;
      },
    };
  }

  outcome(o: StatementOutcome): void {
    // DDL ran (or failed): drop column lists again, in case a concurrent fetch raced with it.
    if (this.ddlVerdicts.has(o.verdict)) this.catalog.invalidate();
  }

  sessionClosed(sessionId: string): void {
    this.sessions.delete(sessionId);
    this.gated.delete(sessionId);
  }

  inheritSessions(previous: PolicyHook): void {
    if (!(previous instanceof Hook) || previous === this) return;
    for (const [id, prepared] of previous.sessions) {
      if (!this.sessions.has(id)) this.sessions.set(id, new Map(prepared));
    }
    // Approval gates survive a policy swap: a statement prepared under approval still needs it at Bind.
    for (const [id, names] of previous.gated) {
      if (!this.gated.has(id)) this.gated.set(id, new Map(names));
    }
    while (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next();
      if (oldest.done === true) break;
      this.sessions.delete(oldest.value);
    }
  }

  /** Answers `SHOW warden.policy_version` / `warden.policy_hash` when it is the whole string. */
  private answerShow(statements: readonly StatementSummary[]): StatementVerdict | undefined {
    const v = this.opts.version;
    const s = statements.length === 1 ? statements[0] : undefined;
    if (v === undefined || s === undefined || s.kind !== 'VariableShowStmt') return undefined;
    const name = showName(s.text);
    if (name !== 'warden.policy_version' && name !== 'warden.policy_hash') return undefined;
    const value = name === 'warden.policy_version' ? `${v.label} ${v.hash}` : v.hash;
    const rule = `warden:show-${name.slice('warden.'.length).replace('_', '-')}`;
    const decision: HookDecision = {
      effect: 'allow',
      rules: [rule],
      reasons: ['the running policy version is visible to every session'],
      protections: {},
      rewritten: true,
      cached: false,
    };
    return {
      action: 'allow',
      sql: `SELECT ${quoteLiteral(value)}::text AS "${name}"`,
      decision,
    };
  }

  async close(): Promise<void> {
    this.sessions.clear();
    await this.catalog.close();
  }

  private async decide(req: StatementRequest): Promise<StatementVerdict> {
    // With the fast path, texts that differ only in literals share an analysis and a decision key (`shaped.key`).
    const shaped: { analysis: Analysis; key: string; denied?: DialectDenial } =
      this.opts.dialect !== undefined
        ? this.opts.dialect.analyze(req.sql, { fastPath: this.opts.fastPath !== false })
        : this.opts.fastPath === false
          ? { analysis: analyzeCached(req.sql, { searchPath: this.searchPath }), key: `t${req.sql}` }
          : analyzeShaped(req.sql, { searchPath: this.searchPath });
    const analysis = shaped.analysis;
    if (analysis.error !== undefined) {
      // 42601 (syntax_error), not 42501: it is what PostgreSQL itself answers for unparsable SQL, so clients and
      // tools report a typo as a typo; the message still says Warden denied it because it could not be parsed.
      return hookDenial(
        'parse-error',
        `the statement could not be parsed, so it was not run (${analysis.error})`,
        ERRORS.SYNTAX_ERROR.sqlstate,
      );
    }
    // A construct the dialect always refuses (MySQL: executable comments, INTO OUTFILE, LOAD_FILE, sql_mode, ...).
    if (shaped.denied !== undefined) return hookDenial(shaped.denied.rule, shaped.denied.reason);
    const shown =
      this.opts.dialect !== undefined
        ? this.opts.dialect.answerShow(req.sql, this.opts.version)
        : this.answerShow(analysis.statements);
    if (shown !== undefined) return shown;
    const sessionId = req.session.sessionId;
    // Prepared statements as they will be once this string ran: PREPARE adds, DEALLOCATE / DISCARD ALL remove.
    const prepared: PreparedMap = new Map(this.sessions.get(sessionId) ?? []);
    const effective: StatementSummary[] = [];
    const bodies: string[] = [];
    for (const s of analysis.statements) {
      effective.push(s);
      if (s.kind === 'ExecuteStmt') {
        const name = s.preparedName ?? '';
        const known = prepared.get(name);
        if (known === undefined) {
          return hookDenial(
            'prepared:unknown',
            `prepared statement "${name}" was not prepared through Warden in this session`,
          );
        }
        // INVARIANT: EXECUTE is decided as what was prepared under its name, now (time and address included).
        effective.push(...known);
        bodies.push(...known.map((k) => k.text));
      } else if (s.kind === 'PrepareStmt' && s.preparedName !== undefined) {
        // Keep any earlier body too: if this PREPARE fails upstream (duplicate name), the old one still runs.
        prepared.set(s.preparedName, remember(prepared.get(s.preparedName), [s]));
      } else if (s.kind === 'DeallocateStmt') {
        if (s.preparedName === undefined) prepared.clear();
        else prepared.delete(s.preparedName);
      } else if (s.kind === 'DiscardStmt' && /\bALL\b/i.test(s.text)) {
        prepared.clear();
      }
    }
    // The extended protocol's named statements share PostgreSQL's namespace with SQL-level PREPARE. MySQL's
    // protocol statement ids (path 'mysql-prepare') do not: SQL EXECUTE cannot reach them, so they are not added;
    // their executes reach the hook through bind() instead.
    if (req.path === 'parse' && req.statementName !== undefined && req.statementName !== '') {
      const name = req.statementName;
      prepared.set(name, remember(prepared.get(name), analysis.statements));
    }

    const at = this.opts.now?.() ?? req.receivedAt;
    const approvals = this.opts.approvals;
    let jitRoles: string[] = [];
    if (approvals !== undefined) {
      // Picks up approvals and revocations made by other processes (the CLI) since the last statement.
      await approvals.sync();
      jitRoles = approvals.activeRoles(req.session.principal.name, at);
    }
    const base = {
      principal: req.session.principal,
      context: {
        target: req.session.target,
        environment: req.session.environment,
        sourceAddress: req.session.sourceAddress,
        at,
      },
      database: req.session.database,
      ...(jitRoles.length > 0 ? { extraRoles: jitRoles } : {}),
    };
    // The key holds everything the decision depends on: principal, context (time and address only when the
    // policy uses them), the text (or its literal shape, when the analysis is shared by the shape), and the bodies
    // EXECUTE resolved to.
    const key = [decisionCacheKey(this.policy, base), shaped.key, ...bodies].join('\u0000');
    let decision = this.decisions.get(key);
    const cached = decision !== undefined;
    if (decision === undefined) {
      decision = evaluate(this.policy, { ...base, statements: effective });
      this.decisions.set(key, decision);
    }

    if (decision.effect === 'deny') {
      return {
        action: 'deny',
        sqlstate: SQLSTATE_DENIED,
        message: decision.message ?? 'denied by default-deny',
        decision: plain(decision, false, cached),
      };
    }
    let approvedBy: ApprovalRequest | undefined;
    let gatedBody: GatedBody | undefined;
    if (decision.effect === 'approval' && decision.approval !== undefined) {
      if (approvals === undefined) {
        return {
          action: 'deny',
          sqlstate: ERRORS.APPROVAL_REQUIRED.sqlstate,
          message: approvalMessage(decision.approval),
          decision: plain(decision, false, cached),
        };
      }
      if (req.path === 'parse' || req.path === 'mysql-prepare') {
        // Extended protocol: a Parse (MySQL: COM_STMT_PREPARE) runs nothing, so it goes through (rewritten like
        // any allowed statement); the approval is decided at each Bind (MySQL: each COM_STMT_EXECUTE of the
        // statement id), bound to the text and the parameters' hash (see bind()). Approving the prepare instead
        // would let every later execute run, with any parameters, under one approval.
        const names = this.gated.get(sessionId);
        const name = req.statementName ?? '';
        if (names !== undefined && names.size >= MAX_PREPARED_PER_SESSION && !names.has(name)) {
          return hookDenial(
            'approval:too-many-statements',
            `this session already holds ${names.size} prepared statements that need approval`,
            ERRORS.APPROVAL_REQUIRED.sqlstate,
          );
        }
        gatedBody = { sql: req.sql, path: req.path, decision, need: decision.approval, cached };
      } else {
        const gated = await this.gate(approvals, this.gateInput(req), decision, decision.approval, cached);
        if ('action' in gated) return gated;
        approvedBy = gated;
      }
    } else if (decision.effect !== 'allow') return hookDenial('internal-error', 'unexpected decision');

    let sql: string;
    try {
      sql = await this.rewriteFor(req.sql, analysis.statements, decision);
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      if (e instanceof RefusedColumns) return hookDenial('catalog-unavailable', reason);
      return hookDenial('rewrite', `the statement cannot be masked or filtered safely: ${reason}`);
    }
    const rewritten = sql !== req.sql;
    let data = plain(decision, rewritten, cached);
    if (approvedBy !== undefined) data = ranUnder(data, approvedBy);
    if (gatedBody !== undefined) data = deferredToBind(data, req.path);
    if (jitRoles.length > 0) data = { ...data, jitRoles };
    const verdict: StatementVerdict = {
      action: 'allow',
      ...(rewritten ? { sql } : {}),
      decision: data,
    };
    this.commitPrepared(sessionId, prepared);
    if (approvals !== undefined) this.noteGates(req, analysis.statements, decision, cached, gatedBody);
    if (analysis.statements.some(isDdl)) {
      this.catalog.invalidate();
      this.ddlVerdicts.add(verdict);
    }
    return verdict;
  }

  /**
   * A statement the policy sends to approval: runs it if an approval bound to exactly this statement, principal and
   * target can be claimed; otherwise opens (or finds) its request and refuses with WA001, or holds it until the
   * request is decided. Returns the claimed request, or the verdict to answer with.
   */
  private async gate(
    approvals: ApprovalService,
    req: GateInput,
    decision: Decision,
    need: ApprovalRequirement,
    cached: boolean,
  ): Promise<ApprovalRequest | StatementVerdict> {
    const s = req.session;
    // Bound to the text and, at a Bind, to the parameters' hash (a simple query's values are in its text).
    const input = {
      principal: s.principal,
      target: s.target,
      environment: s.environment,
      database: s.database,
      sessionId: s.sessionId,
      sql: req.sql,
      path: req.path,
      paramsHash: req.paramsHash,
      ...(req.statementName !== undefined ? { statementName: req.statementName } : {}),
    };
    const claimed = await approvals.claim(input);
    if (claimed !== undefined) return claimed;
    const { request } = await approvals.requestStatement({
      ...input,
      requirement: need,
      reasons: decision.reasons,
    });
    const refuse = (sqlstate: string, message: string, r: ApprovalRequest): StatementVerdict => ({
      action: 'deny',
      sqlstate,
      message,
      decision: linked({ ...plain(decision, false, cached), message }, r),
    });
    const pendingMessage = (r: ApprovalRequest): string =>
      `approval required by ${need.rule}: request ${r.id} needs ${describeMissing(approvals, r)}; ` +
      `approve it with "warden approvals approve ${r.id}", then run the identical statement` +
      `${req.paramsHash === null ? '' : ' with the same parameters'} again ` +
      `(the request expires at ${r.expiresAt})`;
    if (need.mode === 'error')
      return refuse(ERRORS.APPROVAL_REQUIRED.sqlstate, pendingMessage(request), request);

    const waiting = (r: ApprovalRequest): void =>
      req.notice(
        `waiting for approval of request ${r.id} (${describeMissing(approvals, r)}); ` +
          `approve it with "warden approvals approve ${r.id}"`,
      );
    waiting(request);
    let final: ApprovalRequest;
    try {
      final = await approvals.waitForDecision(request.id, {
        signal: req.signal,
        intervalMs: this.opts.approvalNoticeMs ?? 5000,
        onWaiting: waiting,
      });
    } catch (e) {
      if (req.signal.aborted) {
        return refuse(ERRORS.QUERY_CANCELED.sqlstate, 'canceling statement due to user request', request);
      }
      throw e;
    }
    if (final.status === 'approved') {
      const ran = await approvals.claim(input);
      if (ran !== undefined) return ran;
      return refuse(
        ERRORS.APPROVAL_REQUIRED.sqlstate,
        `request ${final.id} was approved but can no longer be used`,
        final,
      );
    }
    if (final.status === 'denied') {
      const why = final.closedReason === undefined ? '' : `: ${final.closedReason}`;
      return refuse(
        SQLSTATE_DENIED,
        `request ${final.id} was denied by ${final.closedBy ?? 'an approver'}${why}`,
        final,
      );
    }
    return refuse(
      ERRORS.APPROVAL_REQUIRED.sqlstate,
      `request ${final.id} ended without approval (${final.status})`,
      final,
    );
  }

  /** Protections of the tables this SQL itself names (EXECUTE'd bodies were rewritten when prepared). */
  private async rewriteFor(
    sql: string,
    statements: readonly StatementSummary[],
    decision: Decision,
  ): Promise<string> {
    if (decision.protections.size === 0) return sql;
    const named = new Map<string, { schema: string; name: string }>();
    for (const s of statements) for (const r of s.relations) named.set(`${r.schema}.${r.name}`, r);
    const wanted = [...decision.protections].filter(([t]) => named.has(t));
    if (wanted.length === 0) return sql;
    const protections = new Map<string, RewriteProtection>();
    for (const [t, p] of wanted) {
      const rel = named.get(t) as { schema: string; name: string };
      let columns: readonly string[];
      try {
        columns = await this.catalog.columns(rel.schema, rel.name);
      } catch (e) {
        // INVARIANT: fail closed: without the column list the table cannot be masked, so nothing is forwarded.
        const why = isWardenError(e) ? e.message : String(e);
        throw new RefusedColumns(`the column list of ${t} is unavailable, so it cannot be masked (${why})`);
      }
      protections.set(t, {
        columns,
        masks: p.masks,
        ...(p.rowFilter === undefined ? {} : { rowFilter: p.rowFilter }),
      });
    }
    const rkey = JSON.stringify([
      sql,
      [...protections].map(([t, p]) => [t, p.columns, [...p.masks], p.rowFilter ?? null]),
    ]);
    const hit = this.rewrites.get(rkey);
    if (hit !== undefined) {
      this.rewrites.delete(rkey);
      this.rewrites.set(rkey, hit);
      return hit;
    }
    const out =
      this.opts.dialect !== undefined
        ? await this.opts.dialect.rewrite(sql, protections, this.policy)
        : await rewrite(sql, protections, { searchPath: this.searchPath });
    this.rewrites.set(rkey, out);
    if (this.rewrites.size > REWRITE_CACHE_MAX) {
      const oldest = this.rewrites.keys().next();
      if (oldest.done !== true) this.rewrites.delete(oldest.value);
    }
    return out;
  }

  private commitPrepared(sessionId: string, prepared: PreparedMap): void {
    this.sessions.delete(sessionId);
    if (prepared.size === 0) return;
    // INVARIANT: bounded. A session evicted here (or with too many names) loses its names: its EXECUTEs are
    // then denied, never allowed unchecked.
    if (prepared.size > MAX_PREPARED_PER_SESSION) {
      const first = prepared.keys().next();
      if (first.done !== true) prepared.delete(first.value);
    }
    this.sessions.set(sessionId, prepared);
    if (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next();
      if (oldest.done !== true) this.sessions.delete(oldest.value);
    }
  }
}

class RefusedColumns extends Error {}

/** A Parse (or MySQL prepare) whose approval is decided at each Bind / execute: let through, and the audit entry says why. */
function deferredToBind(d: HookDecision, path: StatementPath): HookDecision {
  return {
    ...d,
    reasons: [
      ...d.reasons,
      path === 'mysql-prepare'
        ? 'the approval is decided at each execute, bound to the parameters; the prepare runs nothing'
        : 'the approval is decided at each Bind, bound to the parameters; the Parse runs nothing',
    ],
  };
}

function describeMissing(approvals: ApprovalService, r: ApprovalRequest): string {
  const open = approvals.missing(r.id);
  const list = open.length > 0 ? open : r.approvers;
  return list.map((x) => `${x.count} more of group ${x.group}`).join(' and ');
}

/** The decision of a statement tied to an approval request: the request id is a rule, so the audit entry links it. */
function linked(d: HookDecision, r: ApprovalRequest): HookDecision {
  return { ...d, rules: [...d.rules, `approval-request:${r.id}`], approvalRequest: r.id };
}

/** An approved statement: allowed, naming the request and who approved it. */
function ranUnder(d: HookDecision, r: ApprovalRequest): HookDecision {
  const by = r.votes.filter((v) => v.decision === 'approve').map((v) => v.approver);
  return linked(
    {
      ...d,
      effect: 'allow',
      reasons: [...d.reasons, `approved under request ${r.id} by ${by.join(', ')} (${r.usesLeft} uses left)`],
    },
    r,
  );
}

/** The setting a lone `SHOW` statement names, lower-cased (from the parse tree, not the text). */
function showName(text: string): string | undefined {
  const parsed = parseSql(text);
  if (!parsed.ok || parsed.statements.length !== 1) return undefined;
  const node = unwrap(parsed.statements[0]?.node);
  if (node === undefined || node[0] !== 'VariableShowStmt') return undefined;
  const name = node[1]['name'];
  return typeof name === 'string' ? name.toLowerCase() : undefined;
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * Builds the policy hook of a target. Async because the SQL parser (WASM) is loaded once, here.
 * The returned hook is safe to share between all sessions of the target.
 */
export async function createPolicyHook(
  target: TargetConfig,
  policy: Policy,
  opts: PolicyHookOptions = {},
): Promise<PolicyHook> {
  if (opts.dialect !== undefined) await opts.dialect.init();
  else await initSqlAnalyser();
  const catalog = opts.catalog ?? opts.dialect?.catalog(target) ?? CatalogCache.forTarget(target);
  return new Hook(target, policy, catalog, opts);
}

/** Loads `target.policy.path` (a policy folder) and builds the hook. Rejects if the policy does not load. */
export async function createPolicyHookFromFolder(
  target: TargetConfig,
  opts: PolicyHookOptions = {},
): Promise<PolicyHook> {
  if (target.policy.kind !== 'folder') {
    throw new WardenError('CONFIG_INVALID', `target "${target.name}" has no policy folder`);
  }
  return createPolicyHook(target, loadPolicy(target.policy.path), opts);
}
