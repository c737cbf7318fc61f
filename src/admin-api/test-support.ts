// Test support for the admin API: in-memory providers with real behaviour (Merkle proofs, self-approval refusal), a JWT signer, an HTTP helper.

import { sign, type KeyObject } from 'node:crypto';
import { WardenError } from '../core/errors.js';
import { encodeEntry, makeEntry, type AuditEntry, type StatementEntry } from '../audit/entry.js';
import { MerkleTree, leafHash } from '../audit/merkle.js';
import type { VerifyResult } from '../audit/verify.js';
import { parseEnvelope, type Envelope } from '../bundle/dsse.js';
import type { DiffableBundle } from '../bundle/diff.js';
import type { Policy } from '../policy/model.js';
import { ApiError } from './handlers.js';
import type {
  AdminProviders,
  ApiIdentity,
  ApprovalState,
  ApprovalView,
  AuditQuery,
  BundleSummary,
  RoleRequestInput,
  RunningBundle,
  SessionView,
  TimelineEvent,
} from './providers.js';

/** Signs a compact JWT (for tests: RS256, ES256 or EdDSA). */
export function signJwt(
  claims: Record<string, unknown>,
  key: KeyObject,
  alg: 'RS256' | 'ES256' | 'EdDSA',
  header: Record<string, unknown> = {},
): string {
  const h = Buffer.from(JSON.stringify({ alg, typ: 'JWT', ...header })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const data = Buffer.from(`${h}.${p}`);
  const sig =
    alg === 'RS256'
      ? sign('sha256', data, key)
      : alg === 'ES256'
        ? sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' })
        : sign(null, data, key);
  return `${h}.${p}.${sig.toString('base64url')}`;
}

export interface CallResult {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTP request to the API on 127.0.0.1. */
export async function call(
  port: number,
  method: string,
  path: string,
  o: { token?: string; body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (o.token !== undefined) headers['authorization'] = `Bearer ${o.token}`;
  let body: string | Buffer | undefined = o.rawBody;
  if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

const T0 = Date.parse('2024-05-01T10:00:00.000Z');

/** In-memory approvals with the rules the real service enforces: no self-approval, decided requests are final. */
export class FakeApprovals {
  readonly items = new Map<string, ApprovalView>();
  private next = 1;

  add(a: Partial<ApprovalView> & { requester: string }): ApprovalView {
    const v: ApprovalView = {
      id: `apr-${this.next++}`,
      kind: 'statement',
      state: 'pending',
      createdAt: new Date(T0),
      required: 1,
      decisions: [],
      ...a,
    };
    this.items.set(v.id, v);
    return v;
  }

  list(filter: { readonly state?: ApprovalState }): Promise<readonly ApprovalView[]> {
    return Promise.resolve(
      [...this.items.values()].filter((a) => filter.state === undefined || a.state === filter.state),
    );
  }

  get(id: string): Promise<ApprovalView | undefined> {
    return Promise.resolve(this.items.get(id));
  }

  decide(
    id: string,
    input: { readonly by: ApiIdentity; readonly decision: 'approve' | 'deny'; readonly reason: string },
  ): Promise<ApprovalView> {
    const a = this.items.get(id);
    if (a === undefined) return Promise.reject(new ApiError(404, 'not_found', `no approval request ${id}`));
    if (a.requester === input.by.user)
      return Promise.reject(
        new WardenError('INSUFFICIENT_PRIVILEGE', 'a requester cannot approve their own request'),
      );
    if (a.state !== 'pending')
      return Promise.reject(new ApiError(409, 'conflict', `request ${id} is ${a.state}`));
    const decisions = [
      ...a.decisions,
      { by: input.by.user, decision: input.decision, reason: input.reason, at: new Date(T0 + 1000) },
    ];
    const approvals = decisions.filter((d) => d.decision === 'approve').length;
    const state: ApprovalState =
      input.decision === 'deny' ? 'denied' : approvals >= a.required ? 'approved' : 'pending';
    const v: ApprovalView = { ...a, decisions, state };
    this.items.set(id, v);
    return Promise.resolve(v);
  }

  requestRole(input: RoleRequestInput): Promise<ApprovalView> {
    return Promise.resolve(
      this.add({
        kind: 'role',
        requester: input.requester.user,
        role: input.role,
        reason: input.reason,
        ...(input.target !== undefined ? { target: input.target } : {}),
        expiresAt: new Date(T0 + input.durationMinutes * 60_000),
      }),
    );
  }
}

export interface FakeWorld {
  readonly providers: AdminProviders;
  readonly sessions: SessionView[];
  readonly timelines: Map<string, TimelineEvent[]>;
  readonly entries: AuditEntry[];
  readonly tree: MerkleTree;
  readonly approvals: FakeApprovals;
  readonly activated: { envelope: Envelope; by: ApiIdentity }[];
  readonly bundles: Map<number, DiffableBundle & { hash: string }>;
  ready: Record<string, boolean>;
  verifyResult: VerifyResult;
  running: RunningBundle | undefined;
  readonly searches: AuditQuery[];
}

function statement(
  user: string,
  target: string,
  effect: 'allow' | 'deny',
  minute: number,
  text: string,
): StatementEntry {
  return makeEntry<StatementEntry>({
    kind: 'statement',
    sessionId: `s-${user}`,
    principal: { name: user, kind: 'human', groups: [] },
    target,
    text,
    paramsHash: null,
    path: 'simple',
    decision: { effect, rules: [], reasons: [] },
    policyVersion: 3,
    time: new Date(T0 + minute * 60_000),
  });
}

/** A small world: two sessions, five audit entries in a real Merkle tree, two bundles, one pending approval. */
export function fakeWorld(policy: Policy): FakeWorld {
  const entries: AuditEntry[] = [
    statement('alice', 'main', 'allow', 0, 'select 1'),
    statement('bob', 'main', 'deny', 1, 'drop table t'),
    statement('alice', 'reports', 'allow', 2, 'select 2'),
    statement('alice', 'main', 'deny', 3, 'delete from t'),
    statement('carol', 'main', 'allow', 4, 'select 3'),
  ];
  const tree = new MerkleTree();
  for (const e of entries) tree.append(leafHash(encodeEntry(e)));
  const approvals = new FakeApprovals();
  approvals.add({ requester: 'alice', sql: 'delete from t where id = 1', target: 'main' });
  const w: FakeWorld = {
    sessions: [
      {
        id: 's-alice',
        user: 'alice',
        kind: 'human',
        protocol: 'postgres',
        target: 'main',
        environment: 'test',
        database: 'appdb',
        sourceAddress: '127.0.0.1',
        tls: false,
        applicationName: 'psql',
        startedAt: new Date(T0),
      },
    ],
    timelines: new Map([
      ['s-alice', [{ at: new Date(T0), type: 'statement', summary: 'select 1', index: 0 }]],
    ]),
    entries,
    tree,
    approvals,
    activated: [],
    bundles: new Map([
      [2, { version: 2, hash: 'b'.repeat(64), policy: { 'a.yaml': 'x: 1\n' }, settings: {} }],
      [3, { version: 3, hash: 'c'.repeat(64), policy: { 'a.yaml': 'x: 2\n' }, settings: {} }],
    ]),
    ready: { upstream: true, audit_store: true },
    verifyResult: {
      ok: true,
      size: 5,
      root: tree.root(),
      checkpointsChecked: 1,
      tornTail: false,
      redacted: 0,
    },
    running: {
      version: 3,
      hash: 'c'.repeat(64),
      created: '2024-05-01T09:00:00.000Z',
      expires: '2025-05-01T09:00:00.000Z',
      author: 'dana+1234abcd+AAAA',
      signatures: [
        { keyid: 'dana+1234abcd', signer: 'dana', role: 'author' },
        { keyid: 'erin+5678abcd', signer: 'erin', role: 'approver' },
      ],
      settings: { statement_timeout_ms: 30000 },
      expiresAt: '2025-05-01T09:00:00.000Z',
      expiresBy: 'bundle',
      expiryState: 'current',
    },
    searches: [],
    providers: undefined as unknown as AdminProviders,
  };
  const inRange = (e: AuditEntry, q: AuditQuery): boolean => {
    const t = Date.parse(e.time);
    return (
      (q.since === undefined || t >= q.since.getTime()) && (q.until === undefined || t <= q.until.getTime())
    );
  };
  const providers: AdminProviders = {
    sessions: {
      list: () => w.sessions,
      timeline: (id) => Promise.resolve(w.timelines.get(id)),
    },
    audit: {
      search(q) {
        w.searches.push(q);
        const out = entries
          .map((entry, index) => ({ index, entry }))
          .filter(({ entry: e }) => e.kind === 'statement')
          .filter(({ entry: e }) => {
            const s = e as StatementEntry;
            return (
              (q.user === undefined || s.principal.name === q.user) &&
              (q.target === undefined || s.target === q.target) &&
              (q.decision === undefined || s.decision.effect === q.decision) &&
              inRange(e, q)
            );
          });
        return Promise.resolve(out.slice(0, q.limit));
      },
      entry(index) {
        const entry = entries[index];
        if (entry === undefined) return Promise.resolve(undefined);
        return Promise.resolve({
          entry,
          proof: {
            index,
            size: tree.size,
            leafHash: tree.leafHash(index),
            proof: tree.inclusionProof(index),
            root: tree.root(),
          },
        });
      },
      verify: () => Promise.resolve(w.verifyResult),
    },
    policy: {
      running: () => w.running,
      policy: () => policy,
      bundles: () =>
        Promise.resolve(
          [...w.bundles.values()]
            .sort((a, b) => b.version - a.version)
            .map((b): BundleSummary => ({
              version: b.version,
              hash: b.hash,
              created: '2024-05-01T09:00:00.000Z',
              author: 'dana',
              active: b.version === w.running?.version,
            })),
        ),
      bundle: (v) => Promise.resolve(w.bundles.get(v)),
      activateBundle(envelope, by) {
        // Like activation: the envelope must parse as DSSE; the fake accepts payload "ok" only.
        parseEnvelope(JSON.stringify(envelope));
        if (Buffer.from(envelope.payload, 'base64').toString() !== 'ok')
          return Promise.reject(
            new WardenError('CONFIG_INVALID', 'bundle refused: not enough approver signatures'),
          );
        w.activated.push({ envelope, by });
        return Promise.resolve({ version: 4, hash: 'd'.repeat(64) });
      },
    },
    approvals,
    ready: {
      upstream: () => w.ready['upstream'] === true,
      audit_store: () => {
        if (w.ready['audit_store'] !== true) throw new Error('audit store down');
      },
    },
  };
  (w as { providers: AdminProviders }).providers = providers;
  return w;
}
