// The console's entry module: sign-in with a pasted bearer token, role-aware tabs, and each view (sessions, approvals, audit, policy, access).
import { api, qs, session, ApiFailure } from './api.js';
import { fill, h, row, status, table, when } from './dom.js';
import { verifyInclusion } from './merkle.js';

/** Approvals poll interval (the queue updates in place, no reload). */
const POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
let me = null;
let stopView = () => {};

const TABS = [
  { id: 'sessions', title: 'Sessions', roles: ['viewer'], render: sessionsView },
  { id: 'approvals', title: 'Approvals', roles: ['approver', 'auditor'], render: approvalsView },
  { id: 'audit', title: 'Audit log', roles: ['auditor'], render: auditView },
  { id: 'policy', title: 'Policy', roles: ['viewer'], render: policyView },
  { id: 'access', title: 'Access matrix', roles: ['viewer'], render: accessView },
];

const CAN = {
  viewer: 'see live sessions, the running policy, its history and diffs, and the access matrix',
  approver: 'see the approvals queue and approve or deny requests',
  auditor:
    'search the audit log, open entries with their inclusion proofs, verify the log, read session timelines',
  operator: 'submit signed policy bundles (through the API or CLI)',
};

const has = (role) => me !== null && me.roles.includes(role);
const errorText = (e) =>
  e instanceof ApiFailure ? `${e.message} (${e.status} ${e.code})` : String(e.message ?? e);

function showLogin(message) {
  stopView();
  me = null;
  $('login').hidden = false;
  $('tabs').hidden = true;
  $('roles').hidden = true;
  $('logout').hidden = true;
  fill($('whoami'));
  fill($('view'));
  fill($('login-error'), message ?? '');
  $('token').focus();
}

async function start() {
  if (session.token() === null) return showLogin();
  try {
    me = await api('/api/whoami');
  } catch (e) {
    session.clear();
    return showLogin(
      e instanceof ApiFailure && e.status === 401 ? `Sign-in refused: ${e.message}` : errorText(e),
    );
  }
  $('login').hidden = true;
  $('logout').hidden = false;
  fill(
    $('whoami'),
    h('span', { id: 'who-user' }, me.user),
    ' · ',
    h('span', { id: 'who-roles' }, me.roles.join(', ')),
  );
  const allowed = me.roles.filter((r) => CAN[r] !== undefined);
  fill(
    $('roles'),
    h('strong', {}, 'Your roles allow you to: '),
    h(
      'ul',
      {},
      allowed.map((r) => h('li', { 'data-role': r }, h('b', {}, r), ': ', CAN[r])),
    ),
  );
  $('roles').hidden = false;
  const tabs = TABS.filter((t) => t.roles.some(has));
  fill(
    $('tabs'),
    tabs.map((t) => h('a', { href: `#${t.id}`, id: `tab-${t.id}`, 'data-tab': t.id }, t.title)),
  );
  $('tabs').hidden = false;
  route();
}

function route() {
  if (me === null) return;
  const [name, arg] = decodeURIComponent(location.hash.slice(1)).split('/');
  const visible = TABS.filter((t) => t.roles.some(has));
  const tab = visible.find((t) => t.id === name) ?? visible[0];
  for (const a of document.querySelectorAll('#tabs a'))
    a.classList.toggle('active', a.dataset.tab === tab?.id);
  stopView();
  stopView = () => {};
  const view = fill($('view'));
  if (tab === undefined) return fill(view, status('info', 'Your token holds no console role.'));
  const stop = tab.render(view, arg);
  if (typeof stop === 'function') stopView = stop;
}

// ---- sessions and timelines ----

function sessionsView(view, openId) {
  const list = h('div', { id: 'sessions' });
  const detail = h('div', { id: 'timeline' });
  const load = async () => {
    try {
      const { sessions } = await api('/api/sessions');
      fill(
        list,
        sessions.length === 0
          ? status('info', 'No live sessions.')
          : table(
              ['User', 'Kind', 'Target', 'Database', 'From', 'TLS', 'Application', 'Started', ''],
              sessions.map((s) =>
                row(
                  [
                    s.user,
                    s.kind,
                    `${s.target} (${s.environment})`,
                    s.database,
                    s.sourceAddress,
                    s.tls ? 'yes' : 'no',
                    s.applicationName,
                    when(s.startedAt),
                    has('auditor')
                      ? h('button', { type: 'button', onclick: () => timeline(s.id) }, 'Timeline')
                      : '',
                  ],
                  { 'data-session-id': s.id },
                ),
              ),
            ),
      );
    } catch (e) {
      fill(list, status('bad', errorText(e)));
    }
  };
  const timeline = async (id) => {
    fill(detail, status('info', 'Loading timeline…'));
    try {
      const t = await api(`/api/sessions/${encodeURIComponent(id)}/timeline`);
      fill(
        detail,
        h('h2', {}, 'Timeline of session ', h('code', {}, t.session)),
        table(
          ['Time', 'Event', 'What', 'Log index'],
          t.events.map((ev) =>
            row([
              when(ev.at),
              ev.type,
              h('code', { class: 'sql' }, ev.summary),
              ev.index === undefined ? '' : h('a', { href: `#audit/${ev.index}` }, `#${ev.index}`),
            ]),
          ),
        ),
      );
    } catch (e) {
      fill(detail, status('bad', errorText(e)));
    }
  };
  fill(
    view,
    h('h1', {}, 'Live sessions'),
    h('button', { type: 'button', onclick: load }, 'Refresh'),
    list,
    detail,
  );
  void load();
  if (openId && has('auditor')) void timeline(openId);
}

// ---- approvals queue ----

function approvalsView(view) {
  const note = h('div', { id: 'approvals-note' });
  const body = h('tbody', {});
  const empty = status('info', 'No pending requests.');
  const canDecide = has('approver');
  const rows = new Map();

  const decide = async (a, decision, reasonInput, tr) => {
    const reason = reasonInput.value.trim();
    if (reason === '') {
      fill(note, status('bad', 'A reason is required (it is recorded in the audit log).'));
      reasonInput.focus();
      return;
    }
    for (const b of tr.querySelectorAll('button')) b.disabled = true;
    try {
      const after = await api(`/api/approvals/${encodeURIComponent(a.id)}/${decision}`, {
        method: 'POST',
        body: { reason },
      });
      fill(
        note,
        status('ok', `${decision === 'approve' ? 'Approved' : 'Denied'} ${a.id}: now ${after.state}.`),
      );
      if (after.state !== 'pending') {
        tr.remove();
        rows.delete(a.id);
      }
    } catch (e) {
      fill(note, status('bad', `${a.id}: ${errorText(e)}`));
    } finally {
      for (const b of tr.querySelectorAll('button')) b.disabled = false;
    }
  };

  const makeRow = (a) => {
    const reason = h('input', {
      type: 'text',
      class: 'reason',
      placeholder: 'reason',
      'aria-label': `reason for ${a.id}`,
    });
    const tr = h('tr', { 'data-approval-id': a.id });
    const what = a.kind === 'statement' ? h('code', { class: 'sql' }, a.sql ?? '') : `role ${a.role ?? ''}`;
    const cells = [
      h('code', {}, a.id),
      a.requester,
      a.target ?? '',
      what,
      a.rule ?? a.reason ?? '',
      `${a.decisions.filter((d) => d.decision === 'approve').length}/${a.required}`,
      when(a.createdAt),
      when(a.expiresAt),
    ];
    if (canDecide)
      cells.push(
        h(
          'span',
          { class: 'actions' },
          reason,
          h(
            'button',
            { type: 'button', class: 'approve', onclick: () => decide(a, 'approve', reason, tr) },
            'Approve',
          ),
          h(
            'button',
            { type: 'button', class: 'deny', onclick: () => decide(a, 'deny', reason, tr) },
            'Deny',
          ),
        ),
      );
    for (const c of cells) tr.append(h('td', {}, c));
    return tr;
  };

  // INVARIANT: rows are added and removed in place; a row being edited (its reason) is never re-rendered.
  const poll = async () => {
    try {
      const { approvals } = await api('/api/approvals?state=pending');
      const ids = new Set(approvals.map((a) => a.id));
      for (const [id, tr] of rows) if (!ids.has(id)) (tr.remove(), rows.delete(id));
      for (const a of approvals) {
        if (rows.has(a.id)) continue;
        const tr = makeRow(a);
        rows.set(a.id, tr);
        body.append(tr);
      }
      empty.hidden = rows.size > 0;
      $('approvals-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      fill(note, status('bad', errorText(e)));
    }
  };
  const columns = ['Request', 'Requester', 'Target', 'What', 'Rule', 'Approvals', 'Created', 'Expires'];
  if (canDecide) columns.push('Decision');
  fill(
    view,
    h('h1', {}, 'Pending approvals ', h('small', { id: 'approvals-updated' })),
    canDecide ? '' : status('info', 'Read only: deciding needs the approver role.'),
    note,
    h(
      'table',
      { id: 'approvals' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          columns.map((c) => h('th', {}, c)),
        ),
      ),
      body,
    ),
    empty,
  );
  void poll();
  const timer = setInterval(() => void poll(), POLL_MS);
  return () => clearInterval(timer);
}

// ---- audit explorer ----

function entryUser(e) {
  return e.principal?.name ?? e.user ?? e.actor ?? '';
}
function entrySummary(e) {
  return e.text ?? e.reason ?? e.requestId ?? e.statementId ?? e.sessionId ?? '';
}

function auditView(view, openIndex) {
  const verifyBox = h('div', { id: 'verify' });
  const results = h('div', { id: 'audit-results' });
  const detail = h('div', { id: 'audit-entry' });
  const field = (name, label, input) =>
    h('label', {}, label, ' ', input ?? h('input', { name, type: 'text' }));
  const form = h(
    'form',
    { id: 'audit-search', class: 'filters' },
    field('user', 'User'),
    field('target', 'Target'),
    field(
      'decision',
      'Decision',
      h(
        'select',
        { name: 'decision' },
        ['', 'allow', 'deny', 'approval'].map((d) => h('option', { value: d }, d || 'any')),
      ),
    ),
    field('since', 'Since', h('input', { name: 'since', type: 'datetime-local' })),
    field('until', 'Until', h('input', { name: 'until', type: 'datetime-local' })),
    field(
      'limit',
      'Limit',
      h('input', { name: 'limit', type: 'number', min: '1', max: '1000', value: '100' }),
    ),
    h('button', { type: 'submit' }, 'Search'),
  );

  const verify = async () => {
    fill(verifyBox, status('info', 'Verifying the whole log…'));
    try {
      const v = await api('/api/audit/verify');
      fill(
        verifyBox,
        v.ok
          ? status(
              'ok',
              h('span', { id: 'verify-status' }, 'Log verified'),
              `: ${v.size} entries, ${v.checkpointsChecked} checkpoints checked, root `,
              h('code', {}, v.root),
              v.tornTail ? ' (torn tail ignored)' : '',
            )
          : status(
              'bad',
              h('span', { id: 'verify-status' }, 'Verification FAILED'),
              `: ${v.firstError?.kind ?? ''} ${v.firstError?.message ?? ''}`,
            ),
        h('button', { type: 'button', onclick: verify }, 'Verify again'),
      );
    } catch (e) {
      fill(verifyBox, status('bad', errorText(e)));
    }
  };

  const open = async (index) => {
    fill(detail, status('info', `Loading entry ${index}…`));
    try {
      const r = await api(`/api/audit/entries/${encodeURIComponent(index)}`);
      const check = h('span', { id: 'proof-status' }, 'checking…');
      fill(
        detail,
        h('h2', {}, `Entry #${r.index}`),
        h('pre', { class: 'json', id: 'entry-json' }, JSON.stringify(r.entry, null, 2)),
        h('h3', {}, 'Inclusion proof (RFC 9162)'),
        h(
          'dl',
          { id: 'proof' },
          h('dt', {}, 'Leaf hash'),
          h('dd', {}, h('code', {}, r.leafHash)),
          h('dt', {}, 'Tree size'),
          h('dd', {}, String(r.proof.size)),
          h('dt', {}, 'Root'),
          h('dd', {}, h('code', {}, r.proof.root)),
          h('dt', {}, 'Audit path'),
          h(
            'dd',
            {},
            r.proof.hashes.length === 0
              ? '(none)'
              : h(
                  'ol',
                  {},
                  r.proof.hashes.map((x) => h('li', {}, h('code', {}, x))),
                ),
          ),
          h('dt', {}, 'Proof check in this browser'),
          h('dd', {}, check),
        ),
        r.checkpoint
          ? [h('h3', {}, 'Signed checkpoint'), h('pre', { class: 'checkpoint' }, r.checkpoint)]
          : '',
      );
      try {
        const ok = await verifyInclusion(r.index, r.proof.size, r.leafHash, r.proof.hashes, r.proof.root);
        check.textContent = ok
          ? 'valid: the path leads from the leaf to the root'
          : 'INVALID: the path does not lead to the root';
        check.className = ok ? 'ok' : 'bad';
      } catch (e) {
        check.textContent = `not checked: ${e.message}`;
      }
      detail.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      fill(detail, status('bad', errorText(e)));
    }
  };

  const search = async (ev) => {
    ev?.preventDefault();
    const f = new FormData(form);
    const iso = (v) => (v ? new Date(v).toISOString() : '');
    const q = qs({
      user: f.get('user'),
      target: f.get('target'),
      decision: f.get('decision'),
      since: iso(f.get('since')),
      until: iso(f.get('until')),
      limit: f.get('limit'),
    });
    fill(results, status('info', 'Searching…'));
    try {
      const { entries } = await api(`/api/audit/entries${q}`);
      fill(
        results,
        entries.length === 0
          ? status('info', 'No matching entries.')
          : table(
              ['#', 'Time', 'Kind', 'User', 'Decision', 'Summary', ''],
              entries.map(({ index, entry }) =>
                row(
                  [
                    String(index),
                    when(entry.time),
                    entry.kind,
                    entryUser(entry),
                    entry.decision?.effect ?? '',
                    h('code', { class: 'sql' }, entrySummary(entry)),
                    h('button', { type: 'button', class: 'open', onclick: () => open(index) }, 'Open'),
                  ],
                  { 'data-index': String(index) },
                ),
              ),
              { id: 'audit-table' },
            ),
      );
    } catch (e) {
      fill(results, status('bad', errorText(e)));
    }
  };
  form.addEventListener('submit', search);
  fill(view, h('h1', {}, 'Audit log'), verifyBox, form, results, detail);
  void verify();
  if (openIndex !== undefined && openIndex !== '') void open(openIndex);
}

// ---- policy ----

function policyView(view) {
  const running = h('div', { id: 'policy-running' });
  const history = h('div', { id: 'policy-history' });
  const diff = h('div', { id: 'policy-diff' });
  const load = async () => {
    try {
      const p = await api('/api/policy');
      const r = p.running;
      fill(
        running,
        r === null
          ? status('info', 'No signed bundle: the gateway runs a policy folder (or allows all).')
          : [
              h(
                'dl',
                { id: 'policy-running-fields' },
                [
                  ['Version', String(r.version)],
                  ['Hash', h('code', {}, r.hash)],
                  ['Author', r.author],
                  ['Created', r.created],
                  ['Expires', r.expires],
                ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
              ),
              h('h3', {}, 'Signatures'),
              table(
                ['Key id', 'Signer', 'Role'],
                r.signatures.map((s) => row([h('code', {}, s.keyid), s.signer ?? '(unknown key)', s.role])),
              ),
            ],
      );
      const { bundles } = await api('/api/policy/bundles');
      if (bundles.length === 0) return fill(history, status('info', 'No bundle history.'));
      const pick = (name, i) =>
        h(
          'select',
          { name },
          bundles.map((b, j) =>
            h('option', { value: String(b.version), selected: j === i }, `v${b.version}`),
          ),
        );
      const from = pick('from', Math.min(1, bundles.length - 1));
      const to = pick('to', 0);
      fill(
        history,
        table(
          ['Version', 'Hash', 'Created', 'Author', 'Active'],
          bundles.map((b) =>
            row([
              `v${b.version}`,
              h('code', {}, b.hash.slice(0, 16) + '…'),
              b.created,
              b.author,
              b.active ? 'running' : '',
            ]),
          ),
        ),
        h(
          'form',
          { class: 'filters', onsubmit: (ev) => (ev.preventDefault(), void showDiff(from.value, to.value)) },
          'Diff ',
          from,
          ' → ',
          to,
          ' ',
          h('button', { type: 'submit' }, 'Show diff'),
        ),
      );
    } catch (e) {
      fill(running, status('bad', errorText(e)));
    }
  };
  const showDiff = async (from, to) => {
    try {
      const d = await api(`/api/policy/diff${qs({ from, to })}`);
      const lines = d.diff.split('\n').map((l) =>
        h(
          'span',
          {
            class: l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : l.startsWith('@@') ? 'hunk' : '',
          },
          l + '\n',
        ),
      );
      fill(
        diff,
        h('h3', {}, `v${d.from} → v${d.to}`),
        h('pre', { class: 'diff' }, d.diff === '' ? '(no difference)' : lines),
      );
    } catch (e) {
      fill(diff, status('bad', errorText(e)));
    }
  };
  fill(view, h('h1', {}, 'Running policy'), running, h('h2', {}, 'History'), history, diff);
  void load();
}

// ---- access matrix ----

function accessView(view) {
  const out = h('div', { id: 'access-rows' });
  const input = h('input', {
    name: 'table',
    type: 'text',
    placeholder: 'schema.table',
    value: 'public.orders',
    required: true,
  });
  const load = async (ev) => {
    ev?.preventDefault();
    try {
      const m = await api(`/api/policy/access-matrix${qs({ table: input.value.trim() })}`);
      fill(
        out,
        h('p', {}, `${m.table} under policy version ${m.version ?? '(folder)'}: ${m.rows.length} grants`),
        table(
          [
            'Principal',
            'Role',
            'Grant',
            'Target',
            'Operations',
            'Columns',
            'Conditions',
            'Masks',
            'Row filter',
          ],
          m.rows.map((r) =>
            row([
              r.principal,
              r.role,
              r.grant,
              r.target,
              r.operations.join(', '),
              Array.isArray(r.columns) ? r.columns.join(', ') : r.columns,
              r.conditions.join('; '),
              Object.entries(r.masks)
                .map(([c, k]) => `${c}: ${k}`)
                .join(', '),
              r.rowFilter ?? '',
            ]),
          ),
        ),
      );
    } catch (e) {
      fill(out, status('bad', errorText(e)));
    }
  };
  fill(
    view,
    h('h1', {}, 'Access matrix'),
    h(
      'form',
      { class: 'filters', onsubmit: load },
      h('label', {}, 'Table ', input),
      ' ',
      h('button', { type: 'submit' }, 'Show'),
    ),
    out,
  );
  void load();
}

// ---- boot ----

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  $('token').value = '';
  if (t === '') return;
  session.set(t);
  void start();
});
$('logout').addEventListener('click', () => {
  session.clear();
  location.hash = '';
  showLogin('Signed out.');
});
window.addEventListener('hashchange', route);
void start();
