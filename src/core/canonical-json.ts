// Canonical JSON (sorted keys by UTF-16 code units, no whitespace, safe integers only): one encoding for audit entries and bundles.

/** Why a value has no canonical encoding, and where (`$.a.b[2]`). */
export class NotCanonicalError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path} ${problem}`);
    this.name = 'NotCanonicalError';
  }
}

/** Thrown by the fast path; the slow path then runs again to name the offending field. */
const FAST_FAIL = new Error('not canonical');

/** The hot path: no field paths are built. */
function fast(v: unknown): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(v)) throw FAST_FAIL;
      return Object.is(v, -0) ? '0' : String(v);
    case 'string':
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + fast(v[i]);
        return out + ']';
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw FAST_FAIL;
      const keys = Object.keys(v).sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        out += (i === 0 ? '' : ',') + JSON.stringify(k) + ':' + fast((v as Record<string, unknown>)[k]);
      }
      return out + '}';
    }
    default:
      throw FAST_FAIL;
  }
}

/** The same encoding, building paths, to report where a value is not encodable. */
function slow(v: unknown, path: string): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      // INVARIANT: only safe integers; floats, NaN and infinities have no single canonical form.
      if (!Number.isSafeInteger(v)) throw new NotCanonicalError(path, 'is not a safe integer');
      return Object.is(v, -0) ? '0' : String(v);
    case 'string':
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) return `[${v.map((x, i) => slow(x, `${path}[${i}]`)).join(',')}]`;
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null)
        throw new NotCanonicalError(path, 'is not a plain object');
      const o = v as Record<string, unknown>;
      return `{${Object.keys(o)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${slow(o[k], `${path}.${k}`)}`)
        .join(',')}}`;
    }
    default:
      throw new NotCanonicalError(path, `has unsupported type ${typeof v}`);
  }
}

/** Canonical JSON text of a JSON value; throws NotCanonicalError naming the first field that cannot be encoded. */
export function canonicalJsonText(value: unknown): string {
  try {
    return fast(value);
  } catch (e) {
    if (e !== FAST_FAIL) throw e;
    return slow(value, '$');
  }
}
