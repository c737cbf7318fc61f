// Safe DOM building for the console: every piece of data becomes a text node (textContent), never parsed HTML.

/**
 * Makes an element. `attrs`: `class`, `on<event>` handlers, other attributes (set as strings). Children: nodes or
 * values shown as text. INVARIANT: no data ever reaches innerHTML; attacker-controlled SQL stays inert text.
 */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
  return parent;
}

/** A table from column titles and rows of cells (nodes or text). */
export function table(columns, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        columns.map((c) => h('th', {}, c)),
      ),
    ),
    h('tbody', {}, rows),
  );
}

/** A row of cells. */
export function row(cells, attrs = {}) {
  return h(
    'tr',
    attrs,
    cells.map((c) => h('td', {}, c)),
  );
}

/** A local date-time for display. */
export function when(iso) {
  if (typeof iso !== 'string') return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A status line: kind is 'ok', 'bad' or 'info'. */
export function status(kind, ...text) {
  return h('p', { class: `status ${kind}`, role: kind === 'bad' ? 'alert' : 'status' }, ...text);
}
