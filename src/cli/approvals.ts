// The `warden approvals` commands: list, show, approve, deny, revoke, review requests, and request a just-in-time role.
//
// Two paths. With `--api URL` (or WARDEN_API_URL) and a token (`--token` or WARDEN_API_TOKEN), list, show,
// approve, deny and request go through the admin API, which authenticates the caller: an approver acts as
// themselves. Without it, this is the offline/admin path: it acts on the approvals folder directly (the same
// approvals.jsonl the gateway uses) and takes the acting identity from `--as <user>`, with groups from the policy
// folder. Whoever can write that folder can act as anyone, so it is protected by file permissions (0700) on the
// gateway host. The gateway audits what either path writes.

import { parseArgs } from 'node:util';
import { loadPolicy } from '../policy/index.js';
import { createApprovalService } from '../approvals/service.js';
import type { ApprovalService } from '../approvals/service.js';
import type { ApprovalRequest, RequestStatus } from '../approvals/model.js';

export interface ApprovalsIo {
  out(text: string): void;
  err(text: string): void;
}

const stdio: ApprovalsIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

const COMMON = {
  dir: { type: 'string' },
  policy: { type: 'string' },
  as: { type: 'string' },
  reason: { type: 'string' },
  json: { type: 'boolean' },
  'webhook-url': { type: 'string' },
  api: { type: 'string' },
  token: { type: 'string' },
  target: { type: 'string' },
} as const;

/** Parses durations like 90s, 15m, 2h, 1d (also a plain number of seconds). */
export function parseDuration(text: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd]?)$/.exec(text.trim());
  if (m === null) throw new UsageError(`bad duration "${text}" (use e.g. 30m, 2h)`);
  const unit = m[2] === 'm' ? 60 : m[2] === 'h' ? 3600 : m[2] === 'd' ? 86400 : 1;
  return Number(m[1]) * unit;
}

class UsageError extends Error {}

type Values = {
  dir?: string;
  policy?: string;
  as?: string;
  reason?: string;
  json?: boolean;
  'webhook-url'?: string;
  role?: string;
  for?: string;
  status?: string;
  'break-glass'?: boolean;
  api?: string;
  token?: string;
  target?: string;
};

async function withService<T>(v: Values, fn: (svc: ApprovalService) => Promise<T> | T): Promise<T> {
  const dir = v.dir ?? process.env['WARDEN_APPROVALS_DIR'];
  if (dir === undefined)
    throw new UsageError('--dir <approvals folder> is required (or WARDEN_APPROVALS_DIR)');
  if (v.policy === undefined) throw new UsageError('--policy <policy folder> is required');
  const svc = await createApprovalService({
    dir,
    policy: loadPolicy(v.policy),
    sweepIntervalMs: 0,
    ...(v['webhook-url'] !== undefined ? { webhookUrl: v['webhook-url'] } : {}),
  });
  try {
    return await fn(svc);
  } finally {
    await svc.close();
  }
}

function actor(v: Values): string {
  if (v.as === undefined || v.as === '') throw new UsageError('--as <user> is required: who is acting');
  return v.as;
}

function describe(r: ApprovalRequest, svc: ApprovalService): string {
  const what =
    r.kind === 'statement'
      ? `${r.statement?.target ?? ''}: ${r.statement?.sql ?? ''}`
      : `role ${r.role?.role ?? ''} for ${r.role?.durationSeconds ?? 0}s${r.role?.breakGlass === true ? ' (BREAK-GLASS)' : ''}`;
  const lines = [
    `${r.id}  ${r.status}  ${r.kind}  requested by ${r.requester} at ${r.createdAt}`,
    `  ${what}`,
    `  rule ${r.rule}; reason: ${r.reason}`,
    `  approvers: ${r.approvers.map((a) => `${a.count} of ${a.group}`).join(', ')}`,
  ];
  if (r.status === 'pending') {
    const missing = svc.missing(r.id).map((m) => `${m.count} of ${m.group}`);
    lines.push(`  still needed: ${missing.join(', ')}; expires ${r.expiresAt}`);
  }
  for (const v of r.votes)
    lines.push(`  ${v.decision} by ${v.approver} at ${v.at}${v.reason !== undefined ? `: ${v.reason}` : ''}`);
  if (r.validUntil !== undefined) lines.push(`  valid until ${r.validUntil}`);
  if (r.kind === 'statement') lines.push(`  uses left ${r.usesLeft} of ${r.usesAllowed}`);
  if (r.role?.breakGlass === true)
    lines.push(
      r.review === undefined ? '  NOT YET REVIEWED' : `  reviewed by ${r.review.by} at ${r.review.at}`,
    );
  return lines.join('\n');
}

function print(io: ApprovalsIo, v: Values, svc: ApprovalService, rs: readonly ApprovalRequest[]): void {
  if (v.json === true) io.out(JSON.stringify(rs.length === 1 ? rs[0] : rs, null, 2));
  else for (const r of rs) io.out(describe(r, svc));
}

type Run = (argv: string[], io?: ApprovalsIo) => Promise<number>;

/** The admin API endpoint and bearer token, when the network path is chosen. */
function apiOf(v: Values): { url: string; token: string } | undefined {
  const url = v.api ?? process.env['WARDEN_API_URL'];
  if (url === undefined || url === '') return undefined;
  const token = v.token ?? process.env['WARDEN_API_TOKEN'];
  if (token === undefined || token === '')
    throw new UsageError('--token (or WARDEN_API_TOKEN) is required with --api');
  if (v.as !== undefined) throw new UsageError('--as is not used with --api: the token says who you are');
  return { url: url.replace(/\/+$/, ''), token };
}

/** One authenticated call to the admin API; prints the JSON answer, or the API's error and exits 1. */
async function callApi(
  api: { url: string; token: string },
  io: ApprovalsIo,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<number> {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${api.token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) {
    io.err(`warden approvals: ${method} ${path}: HTTP ${res.status}: ${text}`);
    return 1;
  }
  io.out(text === '' ? '{}' : JSON.stringify(JSON.parse(text), null, 2));
  return 0;
}

/** The network path of each subcommand that has one (list, show, approve, deny, request). */
const viaApi: Record<
  string,
  (api: { url: string; token: string }, v: Values, pos: string[], io: ApprovalsIo) => Promise<number>
> = {
  list: (api, v, _pos, io) =>
    callApi(
      api,
      io,
      'GET',
      `/api/approvals${v.status !== undefined && v.status !== 'all' ? `?state=${encodeURIComponent(v.status)}` : ''}`,
    ),
  show: (api, _v, pos, io) => callApi(api, io, 'GET', `/api/approvals/${encodeURIComponent(oneId(pos))}`),
  approve: (api, v, pos, io) =>
    callApi(
      api,
      io,
      'POST',
      `/api/approvals/${encodeURIComponent(oneId(pos))}/approve`,
      v.reason !== undefined ? { reason: v.reason } : {},
    ),
  deny: (api, v, pos, io) =>
    callApi(
      api,
      io,
      'POST',
      `/api/approvals/${encodeURIComponent(oneId(pos))}/deny`,
      v.reason !== undefined ? { reason: v.reason } : {},
    ),
  request: (api, v, _pos, io) => {
    if (v.role === undefined) throw new UsageError('--role is required');
    if (v.for === undefined) throw new UsageError('--for <duration> is required');
    if (v.reason === undefined) throw new UsageError('--reason is required');
    return callApi(api, io, 'POST', '/api/requests', {
      role: v.role,
      durationMinutes: Math.max(1, Math.ceil(parseDuration(v.for) / 60)),
      reason: v.reason,
      ...(v.target !== undefined ? { target: v.target } : {}),
    });
  },
};

function command(
  about: string,
  extra: Record<string, { type: 'string' | 'boolean' }>,
  body: (v: Values, positionals: string[], io: ApprovalsIo) => Promise<number>,
  network?: (
    api: { url: string; token: string },
    v: Values,
    pos: string[],
    io: ApprovalsIo,
  ) => Promise<number>,
): { about: string; run: Run } {
  return {
    about,
    run: async (argv, io = stdio) => {
      try {
        const { values, positionals } = parseArgs({
          args: argv,
          options: { ...COMMON, ...extra },
          allowPositionals: true,
        });
        const api = apiOf(values);
        if (api !== undefined) {
          if (network === undefined)
            throw new UsageError('this subcommand has no --api path; use the admin folder path');
          return await network(api, values, positionals, io);
        }
        return await body(values, positionals, io);
      } catch (e) {
        if (e instanceof UsageError || (e instanceof TypeError && 'code' in e)) {
          io.err(`warden approvals: ${e.message}`);
          return 2;
        }
        throw e;
      }
    },
  };
}

function oneId(positionals: string[]): string {
  const id = positionals[0];
  if (id === undefined || positionals.length !== 1) throw new UsageError('expected exactly one request id');
  return id;
}

const decide = (
  about: string,
  act: (
    svc: ApprovalService,
    id: string,
    who: string,
    reason: string | undefined,
  ) => Promise<ApprovalRequest>,
  network?: (
    api: { url: string; token: string },
    v: Values,
    pos: string[],
    io: ApprovalsIo,
  ) => Promise<number>,
) =>
  command(
    about,
    {},
    async (v, pos, io) =>
      withService(v, async (svc) => {
        const r = await act(svc, oneId(pos), actor(v), v.reason);
        print(io, v, svc, [r]);
        return 0;
      }),
    network,
  );

/** The subcommands, in the shape `src/cli/main.ts` dispatches (`warden approvals <sub>`). */
export const approvalsCommands: Record<string, { about: string; run: Run }> = {
  list: command(
    'list requests: --status pending|approved|active|... (default: pending)',
    { status: { type: 'string' } },
    async (v, _pos, io) =>
      withService(v, (svc) => {
        const status = (v.status ?? 'pending') as RequestStatus | 'all';
        const rs = svc.list(status === 'all' ? {} : { status });
        if (rs.length === 0 && v.json !== true) io.out('no requests');
        else print(io, v, svc, rs);
        return 0;
      }),
    viaApi['list'],
  ),
  show: command(
    'show one request: show <id>',
    {},
    async (v, pos, io) =>
      withService(v, (svc) => {
        const r = svc.get(oneId(pos));
        if (r === undefined) {
          io.err(`no approval request ${pos[0] ?? ''}`);
          return 1;
        }
        print(io, v, svc, [r]);
        return 0;
      }),
    viaApi['show'],
  ),
  approve: decide(
    'approve a request: approve <id> (--api URL --token T | --as <user>) [--reason ...]',
    (s, id, who, why) => s.approve(id, who, why),
    viaApi['approve'],
  ),
  deny: decide(
    'deny a request (ends it): deny <id> (--api URL --token T | --as <user>) [--reason ...]',
    (s, id, who, why) => s.deny(id, who, why),
    viaApi['deny'],
  ),
  revoke: decide('revoke an approval or active role: revoke <id> --as <user>', (s, id, who, why) =>
    s.revoke(id, who, why),
  ),
  review: decide(
    'review a break-glass activation: review <id> --as <user> [--reason ...]',
    (s, id, who, why) => s.review(id, who, why),
  ),
  request: command(
    'request a role for a while: request --role R --for 2h --reason "..." --as <user> [--break-glass]',
    { role: { type: 'string' }, for: { type: 'string' }, 'break-glass': { type: 'boolean' } },
    async (v, _pos, io) =>
      withService(v, async (svc) => {
        if (v.role === undefined) throw new UsageError('--role is required');
        if (v.for === undefined) throw new UsageError('--for <duration> is required');
        if (v.reason === undefined) throw new UsageError('--reason is required');
        const r = await svc.requestRole(actor(v), {
          role: v.role,
          durationSeconds: parseDuration(v.for),
          reason: v.reason,
          breakGlass: v['break-glass'] === true,
        });
        print(io, v, svc, [r]);
        return 0;
      }),
    viaApi['request'],
  ),
};
