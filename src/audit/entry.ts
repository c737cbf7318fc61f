// Audit entries: typed, versioned records and their canonical JSON encoding (the exact bytes that are hashed into the log).
// Canonical form: RFC 8785 (JCS) restricted to what entries use: sorted keys, no whitespace, UTF-8, integers only.
// @see https://www.rfc-editor.org/rfc/rfc8785
import { NotCanonicalError, canonicalJsonText } from '../core/canonical-json.js';
import { randomUUID } from 'node:crypto';

export const ENTRY_VERSION = 1;
/** Entries larger than this are refused (the SQL text is the only large field). */
export const MAX_ENTRY_BYTES = 8 * 1024 * 1024;

/** An entry that is not canonical or does not match its kind's shape. */
export class EntryError extends Error {
  readonly code = 'AUDIT_ENTRY_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'EntryError';
  }
}

export type JsonValue =
  null | boolean | number | string | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** Who acted, as recorded (never a secret). */
export interface PrincipalRecord {
  readonly name: string;
  readonly kind: 'human' | 'service';
  readonly groups: readonly string[];
}

interface Base<K extends string> {
  readonly v: 1;
  readonly kind: K;
  /** Unique id of this entry (a UUID unless the caller has its own). */
  readonly id: string;
  /** RFC 3339 UTC with milliseconds, e.g. 2024-01-02T03:04:05.678Z. */
  readonly time: string;
}

export interface SessionOpenEntry extends Base<'session.open'> {
  readonly sessionId: string;
  readonly principal: PrincipalRecord;
  readonly protocol: 'postgres' | 'mysql';
  readonly target: string;
  readonly environment: string;
  readonly sourceAddress: string;
  readonly tls: boolean;
  readonly applicationName: string;
}

export interface SessionCloseEntry extends Base<'session.close'> {
  readonly sessionId: string;
  readonly reason: string;
}

export interface AuthSuccessEntry extends Base<'auth.success'> {
  readonly sessionId: string;
  readonly principal: PrincipalRecord;
  readonly method: string;
  readonly target: string;
  readonly sourceAddress: string;
}

export interface AuthFailureEntry extends Base<'auth.failure'> {
  /** The user name the client claimed (it did not authenticate). */
  readonly user: string;
  readonly target: string;
  readonly sourceAddress: string;
  readonly reason: string;
}

export interface DecisionRecord {
  readonly effect: 'allow' | 'deny' | 'approval';
  /** Ids of the policy rules that fired. */
  readonly rules: readonly string[];
  readonly reasons: readonly string[];
}

export interface StatementEntry extends Base<'statement'> {
  readonly sessionId: string;
  readonly principal: PrincipalRecord;
  readonly target: string;
  /** The SQL text as the client sent it. */
  readonly text: string;
  /** Hex SHA-256 of the bound parameters, or null when there are none. */
  readonly paramsHash: string | null;
  readonly path: 'simple' | 'parse' | 'mysql-query' | 'mysql-prepare';
  readonly decision: DecisionRecord;
  /** The policy bundle version (an integer), or an identifier such as a content hash when there is no bundle. */
  readonly policyVersion: number | string;
}

/** Parameters bound to a prepared statement (extended protocol), recorded before the Bind is forwarded. */
export interface StatementBindEntry extends Base<'statement.bind'> {
  /** The `id` of the statement entry of the Parse this Bind refers to, when this log recorded it. */
  readonly statementId: string | null;
  readonly sessionId: string;
  /** The prepared statement's name ('' is the unnamed one). */
  readonly statementName: string;
  /** Hex SHA-256 over the parameter formats and values (NULL distinct from empty). */
  readonly paramsHash: string;
  /**
   * Optional: the approval request this Bind ran under (the statement needed approval, decided at Bind and bound
   * to these parameters). Absent otherwise, so entries without it keep their exact bytes.
   */
  readonly approvalRequestId?: string;
}

export interface StatementOutcomeEntry extends Base<'statement.outcome'> {
  /** The `id` of the statement entry this outcome belongs to. */
  readonly statementId: string;
  readonly sessionId: string;
  readonly rows: number;
  /** SQLSTATE if the statement failed, else null. */
  readonly sqlstate: string | null;
  readonly durationMs: number;
  /** Command tags, e.g. "SELECT 3". */
  readonly tags: readonly string[];
}

export interface ApprovalEntry extends Base<`approval.${string}`> {
  readonly requestId: string;
  readonly actor: string;
  readonly data: { readonly [k: string]: JsonValue };
}

export interface ConfigEntry extends Base<`config.${string}`> {
  readonly actor: string;
  readonly data: { readonly [k: string]: JsonValue };
}

/** The payload of entry `index` was removed (retention ended, or a lawful erasure); its leaf hash stays. */
export interface RedactionEntry extends Base<'audit.redaction'> {
  /** Index of the redacted entry. */
  readonly index: number;
  /** Base64 of the redacted entry's RFC 6962 leaf hash (kept, so the tree still verifies). */
  readonly leafHash: string;
  readonly reason: string;
  /** Who asked for the redaction. */
  readonly actor: string;
  /** True when the retention period had not ended (a lawful erasure request). */
  readonly lawfulErasure: boolean;
}

export type AuditEntry =
  | RedactionEntry
  | SessionOpenEntry
  | SessionCloseEntry
  | AuthSuccessEntry
  | AuthFailureEntry
  | StatementEntry
  | StatementOutcomeEntry
  | StatementBindEntry
  | ApprovalEntry
  | ConfigEntry;

/** The fields a caller supplies; `v`, `id` and `time` are filled in by `makeEntry`. */
export type EntryInput<E extends AuditEntry = AuditEntry> = E extends AuditEntry
  ? Omit<E, 'v' | 'id' | 'time'> & { readonly id?: string; readonly time?: Date }
  : never;

/** Builds an entry with version, a fresh id and the current time (ms precision, UTC). */
export function makeEntry<E extends AuditEntry>(input: EntryInput<E>): E {
  // Object.assign then plain stores: `{ ...input, v, id, time }` measured ~30 times slower in V8 (the added
  // fields leave the fast-properties path). `id` and `time` from the input are overwritten in place.
  const e = Object.assign({}, input) as Record<string, unknown>;
  e.v = ENTRY_VERSION;
  e.id = input.id ?? randomUUID();
  e.time = (input.time ?? new Date()).toISOString();
  return e as unknown as E;
}

// ---- canonical JSON ----

/** Canonical JSON bytes of any JSON value (sorted keys, no whitespace, integers only). */
export function canonicalJson(value: unknown): Uint8Array {
  try {
    return Buffer.from(canonicalJsonText(value), 'utf8');
  } catch (e) {
    if (e instanceof NotCanonicalError) throw new EntryError(e.message);
    throw e;
  }
}

// ---- shapes ----

type FieldType =
  'string' | 'int' | 'int|string' | 'bool' | 'strings' | 'principal' | 'decision' | 'object' | 'string|null';
type Shape = Readonly<Record<string, FieldType>>;

const SHAPES: Readonly<Record<string, Shape>> = {
  'session.open': {
    sessionId: 'string',
    principal: 'principal',
    protocol: 'string',
    target: 'string',
    environment: 'string',
    sourceAddress: 'string',
    tls: 'bool',
    applicationName: 'string',
  },
  'session.close': { sessionId: 'string', reason: 'string' },
  'auth.success': {
    sessionId: 'string',
    principal: 'principal',
    method: 'string',
    target: 'string',
    sourceAddress: 'string',
  },
  'auth.failure': { user: 'string', target: 'string', sourceAddress: 'string', reason: 'string' },
  statement: {
    sessionId: 'string',
    principal: 'principal',
    target: 'string',
    text: 'string',
    paramsHash: 'string|null',
    path: 'string',
    decision: 'decision',
    policyVersion: 'int|string',
  },
  'statement.bind': {
    statementId: 'string|null',
    sessionId: 'string',
    statementName: 'string',
    paramsHash: 'string',
  },
  'statement.outcome': {
    statementId: 'string',
    sessionId: 'string',
    rows: 'int',
    sqlstate: 'string|null',
    durationMs: 'int',
    tags: 'strings',
  },
  'audit.redaction': {
    index: 'int',
    leafHash: 'string',
    reason: 'string',
    actor: 'string',
    lawfulErasure: 'bool',
  },
  approval: { requestId: 'string', actor: 'string', data: 'object' },
  config: { actor: 'string', data: 'object' },
};

/**
 * Optional fields per kind: absent, or present with their type. Adding one keeps the canonical bytes of every
 * entry that does not carry it (and so every existing log) unchanged; ENTRY_VERSION stays 1. A reader that
 * predates a field refuses entries that carry it (unknown field), never misreads them.
 */
const OPTIONAL = new Map<Shape, readonly (readonly [string, FieldType])[]>([
  [SHAPES['statement.bind'] as Shape, [['approvalRequestId', 'string']]],
]);

const ENUMS: Readonly<Record<string, readonly string[]>> = {
  protocol: ['postgres', 'mysql'],
  path: ['simple', 'parse', 'mysql-query', 'mysql-prepare'],
};

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');

function checkField(t: FieldType, v: unknown): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'string|null':
      return v === null || typeof v === 'string';
    case 'int':
      return Number.isSafeInteger(v) && (v as number) >= 0;
    case 'int|string':
      return typeof v === 'string' ? v.length > 0 && v.length <= 200 : checkField('int', v);
    case 'bool':
      return typeof v === 'boolean';
    case 'strings':
      return isStrings(v);
    case 'object':
      return isObj(v);
    case 'principal':
      return (
        isObj(v) &&
        Object.keys(v).length === 3 &&
        typeof v.name === 'string' &&
        (v.kind === 'human' || v.kind === 'service') &&
        isStrings(v.groups)
      );
    case 'decision':
      return (
        isObj(v) &&
        Object.keys(v).length === 3 &&
        (v.effect === 'allow' || v.effect === 'deny' || v.effect === 'approval') &&
        isStrings(v.rules) &&
        isStrings(v.reasons)
      );
  }
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The last time string found valid: entries made in the same millisecond skip the parse round trip. */
let lastGoodTime = '';

function validTime(t: unknown): boolean {
  if (typeof t !== 'string') return false;
  if (t === lastGoodTime) return true;
  if (!TIME_RE.test(t) || new Date(t).toISOString() !== t) return false;
  lastGoodTime = t;
  return true;
}

/** Each shape's fields as [name, type] pairs, computed once. */
const SHAPE_FIELDS = new Map<Shape, readonly (readonly [string, FieldType])[]>(
  Object.values(SHAPES).map((sh) => [sh, Object.entries(sh)] as const),
);

/** Fields every entry has besides those of its kind. */
const BASE_FIELDS: ReadonlySet<string> = new Set(['v', 'kind', 'id', 'time']);

function shapeOf(kind: string): Shape | undefined {
  if (/^approval\.[a-z][a-z0-9-]*$/.test(kind)) return SHAPES.approval;
  if (/^config\.[a-z][a-z0-9-]*$/.test(kind)) return SHAPES.config;
  return Object.hasOwn(SHAPES, kind) && kind !== 'approval' && kind !== 'config' ? SHAPES[kind] : undefined;
}

/** Checks an entry's version, base fields and the exact field set of its kind. Throws EntryError. */
export function validateEntry(e: unknown): asserts e is AuditEntry {
  if (!isObj(e)) throw new EntryError('entry is not an object');
  if (e.v !== ENTRY_VERSION) throw new EntryError(`unsupported entry version ${String(e.v)}`);
  if (typeof e.kind !== 'string') throw new EntryError('entry kind is missing');
  const shape = shapeOf(e.kind);
  if (shape === undefined) throw new EntryError(`unknown entry kind ${e.kind}`);
  if (typeof e.id !== 'string' || e.id.length === 0 || e.id.length > 200)
    throw new EntryError('entry id is invalid');
  if (!validTime(e.time)) throw new EntryError('entry time is not RFC 3339 UTC with milliseconds');
  const optional = OPTIONAL.get(shape);
  for (const k of Object.keys(e))
    if (!BASE_FIELDS.has(k) && !Object.hasOwn(shape, k) && optional?.some(([o]) => o === k) !== true)
      throw new EntryError(`unexpected field ${k} in ${e.kind}`);
  for (const [k, t] of SHAPE_FIELDS.get(shape) ?? Object.entries(shape)) {
    if (!checkField(t, e[k])) throw new EntryError(`field ${k} of ${e.kind} is missing or not a ${t}`);
    const en = ENUMS[k];
    if (en !== undefined && !en.includes(e[k] as string))
      throw new EntryError(`field ${k} has an unknown value`);
  }
  if (optional !== undefined)
    for (const [k, t] of optional)
      if (Object.hasOwn(e, k) && !checkField(t, e[k]))
        throw new EntryError(`optional field ${k} of ${e.kind} is not a ${t}`);
}

// ---- the encoding fast path ----
//
// Validation and canonical encoding in one pass, driven by each kind's shape: the sorted key order and each
// field's encoder are worked out once per shape. INVARIANT: for every entry it accepts, the text equals
// canonicalJsonText(entry) of an entry validateEntry accepts; anything unusual (an invalid field, a foreign
// prototype, a sparse array) returns undefined and encodeEntry takes the general path, which throws the same
// error as before. entry-encode.test.ts compares both paths on generated entries.

type FieldEncoder = (v: unknown) => string | undefined;

const plainProto = (v: object): boolean => {
  const p = Object.getPrototypeOf(v) as unknown;
  return p === Object.prototype || p === null;
};

const encString: FieldEncoder = (v) => (typeof v === 'string' ? JSON.stringify(v) : undefined);
const encInt: FieldEncoder = (v) =>
  Number.isSafeInteger(v) && (v as number) >= 0 ? ((v as number) === 0 ? '0' : String(v)) : undefined;

function encStrings(v: unknown): string | undefined {
  if (!Array.isArray(v)) return undefined;
  let out = '[';
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== 'string') return undefined;
    out += (i === 0 ? '' : ',') + JSON.stringify(x);
  }
  return out + ']';
}

/** An object with exactly the three own keys a, b, c (already in sorted order), encoded by their encoders. */
function encTriple(
  v: unknown,
  a: string,
  ea: FieldEncoder,
  b: string,
  eb: FieldEncoder,
  c: string,
  ec: FieldEncoder,
): string | undefined {
  if (!isObj(v) || !plainProto(v) || Object.keys(v).length !== 3) return undefined;
  if (!Object.hasOwn(v, a) || !Object.hasOwn(v, b) || !Object.hasOwn(v, c)) return undefined;
  const x = ea(v[a]);
  const y = eb(v[b]);
  const z = ec(v[c]);
  if (x === undefined || y === undefined || z === undefined) return undefined;
  return `{"${a}":${x},"${b}":${y},"${c}":${z}}`;
}

const oneOf =
  (allowed: readonly string[]): FieldEncoder =>
  (v) =>
    typeof v === 'string' && allowed.includes(v) ? JSON.stringify(v) : undefined;

const FIELD_ENCODERS: Readonly<Record<FieldType, FieldEncoder>> = {
  string: encString,
  'string|null': (v) => (v === null ? 'null' : encString(v)),
  int: encInt,
  'int|string': (v) =>
    typeof v === 'string' ? (v.length > 0 && v.length <= 200 ? JSON.stringify(v) : undefined) : encInt(v),
  bool: (v) => (v === true ? 'true' : v === false ? 'false' : undefined),
  strings: encStrings,
  object: (v) => {
    if (!isObj(v)) return undefined;
    try {
      return canonicalJsonText(v);
    } catch {
      return undefined;
    }
  },
  principal: (v) =>
    encTriple(v, 'groups', encStrings, 'kind', oneOf(['human', 'service']), 'name', encString),
  decision: (v) =>
    encTriple(v, 'effect', oneOf(['allow', 'deny', 'approval']), 'reasons', encStrings, 'rules', encStrings),
};

interface Plan {
  /** Every key of the kind, sorted as canonical JSON sorts them. */
  readonly keys: readonly string[];
  readonly keySet: ReadonlySet<string>;
  /** `"key":` prefixes, the first without a comma. */
  readonly prefixes: readonly string[];
  /** Encoder per key; base fields (v, kind, id, time) are handled apart and have none. */
  readonly encoders: readonly (FieldEncoder | undefined)[];
}

/** Per shape, one plan per set of optional fields present (bit i: the shape's optional field i). */
const PLANS = new Map<Shape, Plan[]>();

function planOf(shape: Shape, optionalMask: number): Plan {
  let plans = PLANS.get(shape);
  if (plans === undefined) {
    plans = [];
    PLANS.set(shape, plans);
  }
  let plan = plans[optionalMask];
  if (plan !== undefined) return plan;
  const types = new Map<string, FieldType>(Object.entries(shape));
  (OPTIONAL.get(shape) ?? []).forEach(([k, t], i) => {
    if ((optionalMask & (1 << i)) !== 0) types.set(k, t);
  });
  const keys = [...BASE_FIELDS, ...types.keys()].sort();
  plan = {
    keys,
    keySet: new Set(keys),
    prefixes: keys.map((k, i) => `${i === 0 ? '' : ','}${JSON.stringify(k)}:`),
    encoders: keys.map((k) => {
      if (BASE_FIELDS.has(k)) return undefined;
      const t = types.get(k) as FieldType;
      const en = ENUMS[k];
      return en === undefined ? FIELD_ENCODERS[t] : oneOf(en);
    }),
  };
  plans[optionalMask] = plan;
  return plan;
}

/** The canonical text of a valid entry, or undefined if the general path must decide (exported for tests). */
export function encodeFast(e: unknown): string | undefined {
  if (!isObj(e) || !plainProto(e) || e.v !== ENTRY_VERSION || typeof e.kind !== 'string') return undefined;
  const shape = shapeOf(e.kind);
  if (shape === undefined) return undefined;
  const id = e.id;
  if (typeof id !== 'string' || id.length === 0 || id.length > 200 || !validTime(e.time)) return undefined;
  const optional = OPTIONAL.get(shape);
  let mask = 0;
  if (optional !== undefined)
    for (let i = 0; i < optional.length; i++)
      if (Object.hasOwn(e, (optional[i] as readonly [string, FieldType])[0])) mask |= 1 << i;
  const plan = planOf(shape, mask);
  const own = Object.keys(e);
  if (own.length !== plan.keys.length) return undefined;
  for (let i = 0; i < own.length; i++) if (!plan.keySet.has(own[i] as string)) return undefined;
  let out = '{';
  for (let i = 0; i < plan.keys.length; i++) {
    const k = plan.keys[i] as string;
    const enc = plan.encoders[i];
    let text: string | undefined;
    if (enc !== undefined) text = enc(e[k]);
    else if (k === 'v') text = '1';
    else text = JSON.stringify(e[k]); // kind, id, time: strings, checked above
    if (text === undefined) return undefined;
    out += plan.prefixes[i] + text;
  }
  return out + '}';
}

/** The canonical bytes of an entry (validated first). Same entry, same bytes. */
export function encodeEntry(entry: AuditEntry): Uint8Array {
  const text = encodeFast(entry);
  let bytes: Uint8Array;
  if (text !== undefined) {
    bytes = Buffer.from(text, 'utf8');
  } else {
    validateEntry(entry);
    bytes = canonicalJson(entry);
  }
  if (bytes.length > MAX_ENTRY_BYTES) throw new EntryError('entry is too large');
  return bytes;
}

/** The general path alone (validate, then the generic canonical encoder): the reference the fast path must match. */
export function encodeEntryReference(entry: AuditEntry): Uint8Array {
  validateEntry(entry);
  return canonicalJson(entry);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes entry bytes strictly: valid UTF-8 and JSON, a valid entry, and re-encoding gives the same bytes. */
export function decodeEntry(bytes: Uint8Array): AuditEntry {
  if (bytes.length > MAX_ENTRY_BYTES) throw new EntryError('entry is too large');
  let value: unknown;
  let text: string;
  try {
    text = UTF8.decode(bytes);
    value = JSON.parse(text);
  } catch (e) {
    throw new EntryError(`entry is not UTF-8 JSON: ${(e as Error).message}`);
  }
  // The fast path validates as it encodes (an entry it encodes is one validateEntry accepts). `text` is the
  // exact decoding of valid UTF-8 and canonical text is well-formed (lone surrogates are escaped), so comparing
  // the strings is comparing the bytes.
  const fast = encodeFast(value);
  if (fast !== undefined) {
    if (fast !== text) throw new EntryError('entry bytes are not canonical');
    return value as AuditEntry;
  }
  validateEntry(value);
  const again = canonicalJson(value);
  if (!Buffer.from(again).equals(bytes)) throw new EntryError('entry bytes are not canonical');
  return value;
}
