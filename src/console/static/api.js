// The console's API client: the bearer token from sessionStorage on every call, JSON in and out, errors as ApiFailure.

const KEY = 'warden.console.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the admin API; throws ApiFailure with the API's error code and message on a non-2xx answer. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Authorization: `Bearer ${session.token() ?? ''}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const e = data && data.error ? data.error : {};
    throw new ApiFailure(r.status, e.code ?? `http_${r.status}`, e.message ?? r.statusText);
  }
  return data;
}

/** A query string from the non-empty fields of an object. */
export function qs(fields) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields))
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s === '' ? '' : `?${s}`;
}
