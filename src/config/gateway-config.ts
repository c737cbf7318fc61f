// The gateway configuration: listeners, TLS, limits, users (SCRAM verifiers only) and targets; validated strictly, secrets resolved at load.

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import YAML from 'yaml';
import { WardenError } from '../core/errors.js';
import type { PrincipalKind } from '../core/context.js';
import type { UpstreamTlsMode } from '../upstream/pg-connect.js';
import { readSecret } from '../core/secrets.js';
import { parseVerifier, type ParsedVerifier } from '../identity/scram.js';
import { parseNativeHash } from '../identity/mysql-auth.js';
import { loadAdminApiConfig, type AdminApiConfig } from '../admin-api/config.js';
import { parseWitnessConfigs } from '../audit/witness-publisher.js';

export interface UserConfig {
  readonly name: string;
  readonly kind: PrincipalKind;
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
  /** PostgreSQL-format SCRAM-SHA-256 verifier; the password itself is never stored. */
  readonly verifier: ParsedVerifier;
  /** Target name → name of one of that target's upstream logins. */
  readonly logins: Readonly<Record<string, string>>;
  /**
   * A TLS client certificate required as a second factor (besides the password); absent: none required.
   * The certificate must chain to `tls.client_ca_file` and match every constraint given here.
   */
  readonly clientCert?: ClientCertRequirement;
  /** SHA1(SHA1(password)) for mysql_native_password logins on MySQL targets; absent: caching_sha2_password only. */
  readonly mysqlNativeHash?: Buffer;
}

/** What a user's TLS client certificate must be (see `users[].client_cert`). */
export interface ClientCertRequirement {
  /** The certificate's subject common name must equal this exactly. */
  readonly subjectCn?: string;
  /** SHA-256 of the certificate (DER), upper-case hex pairs separated by colons (as Node's `fingerprint256`). */
  readonly fingerprintSha256?: string;
}

export interface LoginConfig {
  readonly user: string;
  /** Resolved from a file or an environment variable; undefined means trust auth upstream. */
  readonly password?: string;
}

/**
 * Where a target's policy comes from: `allow_all` (tests), an unsigned `folder` (development; logged loudly), or a
 * signed `bundle` verified against a pinned root (production).
 */
export type PolicyConfig =
  | { readonly kind: 'allow_all' }
  | { readonly kind: 'folder'; readonly path: string }
  | {
      readonly kind: 'bundle';
      /** The pinned root envelope (approver keys and threshold). */
      readonly root: string;
      /** The bundle envelope that runs; an activation installs the new bundle here. */
      readonly path: string;
      /** Where the activated `{ origin, version, hash }` is remembered (default `<state_dir>/bundle-<target>.state.json`). */
      readonly stateFile: string;
    };

export interface TargetConfig {
  readonly name: string;
  /** Wire protocol and dialect of the upstream; absent means postgres. MySQL targets have no search_path. */
  readonly engine?: 'postgres' | 'mysql';
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly environment: string;
  readonly tls: { readonly mode: UpstreamTlsMode; readonly caFile?: string; readonly serverName?: string };
  readonly searchPath: readonly string[];
  readonly logins: ReadonlyMap<string, LoginConfig>;
  readonly policy: PolicyConfig;
}

/** A PostgreSQL audit store shared by gateway replicas (connect as the INSERT-only gateway role). */
export interface AuditPostgresConfig {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Resolved at load from password_file or password_env; absent means trust/peer auth. */
  readonly password?: string;
  readonly schema: string;
  readonly table: string;
  readonly tls: { readonly mode: UpstreamTlsMode; readonly caFile?: string; readonly serverName?: string };
}

export interface AuditConfig {
  /** The local store folder; with `postgres`, only the default home of the log key file. */
  readonly dir: string;
  readonly origin: string;
  readonly checkpointIntervalMs: number;
  readonly keyFile?: string;
  /** Days an entry is kept before it may be redacted without a lawful-erasure request. Default 365. */
  readonly retentionDays: number;
  /** Store entries in PostgreSQL instead of `dir`. */
  readonly postgres?: AuditPostgresConfig;
  /** Witnesses each new signed checkpoint is submitted to (C2SP tlog-witness); `key` is the cosigner's verifier key. */
  readonly witnesses?: readonly { readonly url: string; readonly key: string }[];
}

/** Where approval requests live: by default `<state_dir>/approvals/<target>/approvals.jsonl`; `postgres` for replicas. */
export interface ApprovalsConfig {
  /** A PostgreSQL table shared by every replica (installPgApprovalSchema); rows carry their target's name. */
  readonly postgres?: AuditPostgresConfig;
}

export interface GatewayConfig {
  readonly listen: { readonly host: string; readonly port: number };
  /** The MySQL front end; present when configured or when any target is a MySQL target (default 127.0.0.1:13306). */
  readonly mysqlListen?: { readonly host: string; readonly port: number };
  readonly tls?: {
    readonly certFile: string;
    readonly keyFile: string;
    readonly required: boolean;
    /** CA (PEM) whose client certificates are accepted; set: clients are asked for a certificate. */
    readonly clientCaFile?: string;
  };
  readonly limits: {
    readonly maxMessageBytes: number;
    readonly startupTimeoutMs: number;
    readonly maxConnections: number;
    /** On shutdown (SIGTERM), how long open sessions may finish their statement and transaction. */
    readonly drainTimeoutMs: number;
    /** Most connections from one address (IPv6: one /64) that may be starting up (not yet authenticated) at once. */
    readonly maxStartupsPerAddress: number;
  };
  readonly stateDir: string;
  /** The audit log; absent only where a caller wires its own (tests). */
  readonly audit?: AuditConfig;
  /** The approvals store; absent: the local folder under `stateDir`. */
  readonly approvals?: ApprovalsConfig;
  readonly users: ReadonlyMap<string, UserConfig>;
  readonly targets: ReadonlyMap<string, TargetConfig>;
  /** The admin HTTP API (sessions, audit, policy, approvals, metrics); absent: not started. */
  readonly adminApi?: AdminApiConfig;
}

/** TLS towards an upstream server (a target, or the PostgreSQL audit store). */
const upstreamTlsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['mode'],
  properties: {
    mode: { enum: ['disable', 'require', 'verify-ca', 'verify-full'] },
    ca_file: { type: 'string' },
    server_name: { type: 'string' },
  },
} as const;

const identifier = { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' } as const;

/** The PostgreSQL connection of Warden's own stores (audit.postgres, approvals.postgres): one shape for both. */
const storePostgresSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['host', 'port', 'database', 'user'],
  properties: {
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    database: { type: 'string', minLength: 1 },
    user: { type: 'string', minLength: 1 },
    password_file: { type: 'string' },
    password_env: { type: 'string' },
    schema: { type: 'string', pattern: '^[a-z_][a-z0-9_]{0,50}$' },
    table: { type: 'string', pattern: '^[a-z_][a-z0-9_]{0,50}$' },
    tls: upstreamTlsSchema,
  },
} as const;

/** JSON Schema of the configuration file (snake_case keys, as written in YAML). */
export const gatewayConfigSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['targets', 'users'],
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: { host: { type: 'string' }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
    },
    mysql_listen: {
      type: 'object',
      additionalProperties: false,
      properties: { host: { type: 'string' }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['cert_file', 'key_file'],
      properties: {
        cert_file: { type: 'string' },
        key_file: { type: 'string' },
        required: { type: 'boolean' },
        // CA of the client certificates users with `client_cert` must present (second factor).
        client_ca_file: { type: 'string', minLength: 1 },
      },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        max_message_bytes: { type: 'integer', minimum: 1024, maximum: 1073741824 },
        startup_timeout_ms: { type: 'integer', minimum: 100, maximum: 600000 },
        max_connections: { type: 'integer', minimum: 1, maximum: 100000 },
        drain_timeout_ms: { type: 'integer', minimum: 0, maximum: 3600000 },
        max_startups_per_address: { type: 'integer', minimum: 1, maximum: 100000 },
      },
    },
    state_dir: { type: 'string' },
    // Validated field by field by loadAdminApiConfig (src/admin-api/config.ts), which names the bad field.
    admin_api: { type: 'object' },
    audit: {
      type: 'object',
      additionalProperties: false,
      required: ['dir', 'origin'],
      properties: {
        dir: { type: 'string' },
        origin: { type: 'string', pattern: '^[\\x21-\\x7e]+$' },
        checkpoint_interval_ms: { type: 'integer', minimum: 0, maximum: 86400000 },
        key_file: { type: 'string' },
        retention_days: { type: 'integer', minimum: 0, maximum: 36500 },
        witnesses: {
          type: 'array',
          maxItems: 32,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['url', 'key'],
            properties: {
              url: { type: 'string', pattern: '^https?://' },
              key: { type: 'string', minLength: 1 },
            },
          },
        },
        postgres: storePostgresSchema,
      },
    },
    // Approval requests in PostgreSQL (several replicas share them): the same connection block as audit.postgres,
    // schema default `warden_approvals`, table default `records` (one table; each row names its target).
    approvals: {
      type: 'object',
      additionalProperties: false,
      properties: {
        postgres: storePostgresSchema,
      },
    },
    users: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'kind', 'scram_verifier'],
        properties: {
          name: identifier,
          kind: { enum: ['human', 'service'] },
          groups: { type: 'array', items: identifier },
          attributes: { type: 'object', additionalProperties: { type: 'string' } },
          scram_verifier: { type: 'string' },
          mysql_native_hash: { type: 'string', pattern: '^\\*?[0-9A-Fa-f]{40}$' },
          logins: { type: 'object', additionalProperties: identifier },
          // A TLS client certificate as a second factor: the password is still required, and so is a certificate
          // that chains to tls.client_ca_file and matches subject_cn and/or fingerprint_sha256 (both if given).
          client_cert: {
            type: 'object',
            additionalProperties: false,
            required: ['required'],
            properties: {
              required: { type: 'boolean' },
              subject_cn: { type: 'string', minLength: 1 },
              fingerprint_sha256: {
                type: 'string',
                pattern: '^(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31})$',
              },
            },
          },
        },
      },
    },
    targets: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'host', 'port', 'database', 'logins', 'policy'],
        properties: {
          name: identifier,
          engine: { enum: ['postgres', 'mysql'] },
          host: { type: 'string', minLength: 1 },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          database: { type: 'string', minLength: 1 },
          environment: identifier,
          tls: upstreamTlsSchema,
          search_path: { type: 'array', items: identifier, minItems: 1 },
          logins: {
            type: 'object',
            minProperties: 1,
            additionalProperties: {
              type: 'object',
              additionalProperties: false,
              required: ['user'],
              properties: {
                user: { type: 'string', minLength: 1 },
                password_file: { type: 'string' },
                password_env: { type: 'string' },
              },
            },
          },
          policy: {
            oneOf: [
              { const: 'allow_all' },
              {
                type: 'object',
                additionalProperties: false,
                required: ['folder'],
                properties: { folder: { type: 'string' } },
              },
              {
                type: 'object',
                additionalProperties: false,
                required: ['bundle'],
                properties: {
                  bundle: {
                    type: 'object',
                    additionalProperties: false,
                    required: ['root', 'path'],
                    properties: {
                      root: { type: 'string', minLength: 1 },
                      path: { type: 'string', minLength: 1 },
                      state_file: { type: 'string', minLength: 1 },
                    },
                  },
                },
              },
            ],
          },
        },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(gatewayConfigSchema);

function describe(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`).join('; ');
}

/* eslint-disable @typescript-eslint/no-explicit-any -- raw YAML is validated by the schema above before use */
/** A validated raw target's policy, paths resolved against `baseDir`. */
function policyConfigOf(t: any, baseDir: string, stateDir: string): PolicyConfig {
  const path = (p: string): string => resolve(baseDir, p);
  if (t.policy === 'allow_all') return { kind: 'allow_all' };
  if (t.policy.folder !== undefined) return { kind: 'folder', path: path(t.policy.folder) };
  const b = t.policy.bundle;
  return {
    kind: 'bundle',
    root: path(b.root),
    path: path(b.path),
    stateFile:
      b.state_file !== undefined ? path(b.state_file) : resolve(stateDir, `bundle-${t.name}.state.json`),
  };
}

/** The bundle files of every target that runs from a bundle, and the state folder. */
export interface BundleTargetsConfig {
  readonly stateDir: string;
  readonly targets: ReadonlyMap<string, Extract<PolicyConfig, { kind: 'bundle' }>>;
}

/**
 * Reads only what bundle tools need from a configuration file (`warden bundle activate`): the schema is checked,
 * but secrets are not resolved, so an operator without access to upstream passwords can use it.
 */
export function loadBundleTargets(file: string): BundleTargetsConfig {
  let raw: unknown;
  try {
    raw = YAML.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `cannot read configuration ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!validate(raw))
    throw new WardenError('CONFIG_INVALID', `invalid configuration: ${describe(validate.errors)}`);
  const r = raw as any;
  const baseDir = dirname(resolve(file));
  const stateDir = resolve(baseDir, r.state_dir ?? '.warden');
  const targets = new Map<string, Extract<PolicyConfig, { kind: 'bundle' }>>();
  for (const t of r.targets) {
    const p = policyConfigOf(t, baseDir, stateDir);
    if (p.kind === 'bundle') targets.set(t.name, p);
  }
  return { stateDir, targets };
}

/** Builds a GatewayConfig from a raw object (as parsed from YAML). Relative paths resolve against `baseDir`. */
export function buildGatewayConfig(raw: unknown, baseDir: string): GatewayConfig {
  if (!validate(raw))
    throw new WardenError('CONFIG_INVALID', `invalid configuration: ${describe(validate.errors)}`);
  const r = raw as any;
  const path = (p: string): string => resolve(baseDir, p);
  const stateDir = path(r.state_dir ?? '.warden');
  const policyOf = (t: any): PolicyConfig => policyConfigOf(t, baseDir, stateDir);
  const targets = new Map<string, TargetConfig>();
  for (const t of r.targets) {
    if (targets.has(t.name)) throw new WardenError('CONFIG_INVALID', `duplicate target "${t.name}"`);
    const logins = new Map<string, LoginConfig>();
    for (const [name, l] of Object.entries<any>(t.logins)) {
      if (l.password_file !== undefined && l.password_env !== undefined) {
        throw new WardenError(
          'CONFIG_INVALID',
          `target "${t.name}" login "${name}": give password_file or password_env, not both`,
        );
      }
      const spec: { file?: string; env?: string } = {};
      if (l.password_file !== undefined) spec.file = path(l.password_file);
      if (l.password_env !== undefined) spec.env = l.password_env;
      const login: LoginConfig =
        spec.file !== undefined || spec.env !== undefined
          ? { user: l.user, password: readSecret(spec, `password of login "${name}" on target "${t.name}"`) }
          : { user: l.user };
      logins.set(name, login);
    }
    const tls = t.tls ?? { mode: 'disable' };
    const engine: 'postgres' | 'mysql' = t.engine ?? 'postgres';
    if (engine === 'mysql' && t.search_path !== undefined) {
      throw new WardenError('CONFIG_INVALID', `target "${t.name}": MySQL targets have no search_path`);
    }
    targets.set(t.name, {
      name: t.name,
      engine,
      host: t.host,
      port: t.port,
      database: t.database,
      environment: t.environment ?? 'default',
      tls: {
        mode: tls.mode,
        ...(tls.ca_file !== undefined ? { caFile: path(tls.ca_file) } : {}),
        ...(tls.server_name !== undefined ? { serverName: tls.server_name } : {}),
      },
      searchPath: t.search_path ?? ['public'],
      logins,
      policy: policyOf(t),
    });
  }
  const users = new Map<string, UserConfig>();
  for (const u of r.users) {
    if (users.has(u.name)) throw new WardenError('CONFIG_INVALID', `duplicate user "${u.name}"`);
    for (const [target, login] of Object.entries<string>(u.logins ?? {})) {
      const t = targets.get(target);
      if (!t) throw new WardenError('CONFIG_INVALID', `user "${u.name}" maps unknown target "${target}"`);
      if (!t.logins.has(login)) {
        throw new WardenError(
          'CONFIG_INVALID',
          `user "${u.name}" maps unknown login "${login}" on target "${target}"`,
        );
      }
    }
    let verifier: ParsedVerifier;
    try {
      verifier = parseVerifier(u.scram_verifier);
    } catch (e) {
      throw new WardenError('CONFIG_INVALID', `user "${u.name}": invalid scram_verifier`, { cause: e });
    }
    const clientCert = clientCertOf(u, r.tls);
    users.set(u.name, {
      name: u.name,
      kind: u.kind,
      groups: u.groups ?? [],
      attributes: u.attributes ?? {},
      verifier,
      logins: u.logins ?? {},
      ...(clientCert !== undefined ? { clientCert } : {}),
      ...(u.mysql_native_hash !== undefined ? { mysqlNativeHash: parseNativeHash(u.mysql_native_hash) } : {}),
    });
  }
  const tls = r.tls
    ? {
        certFile: path(r.tls.cert_file),
        keyFile: path(r.tls.key_file),
        required: r.tls.required ?? false,
        ...(r.tls.client_ca_file !== undefined ? { clientCaFile: path(r.tls.client_ca_file) } : {}),
      }
    : undefined;
  return {
    listen: { host: r.listen?.host ?? '127.0.0.1', port: r.listen?.port ?? 15432 },
    ...(r.mysql_listen !== undefined || [...targets.values()].some((t) => t.engine === 'mysql')
      ? { mysqlListen: { host: r.mysql_listen?.host ?? '127.0.0.1', port: r.mysql_listen?.port ?? 13306 } }
      : {}),
    ...(tls ? { tls } : {}),
    limits: {
      maxMessageBytes: r.limits?.max_message_bytes ?? 1024 * 1024,
      startupTimeoutMs: r.limits?.startup_timeout_ms ?? 10_000,
      maxConnections: r.limits?.max_connections ?? 2000,
      drainTimeoutMs: r.limits?.drain_timeout_ms ?? 10_000,
      maxStartupsPerAddress: r.limits?.max_startups_per_address ?? 100,
    },
    stateDir,
    ...(r.audit
      ? {
          audit: {
            dir: path(r.audit.dir),
            origin: r.audit.origin,
            checkpointIntervalMs: r.audit.checkpoint_interval_ms ?? 10_000,
            ...(r.audit.key_file !== undefined ? { keyFile: path(r.audit.key_file) } : {}),
            retentionDays: r.audit.retention_days ?? 365,
            ...(r.audit.postgres !== undefined ? { postgres: auditPostgres(r.audit.postgres, path) } : {}),
            ...(r.audit.witnesses !== undefined ? { witnesses: auditWitnesses(r.audit.witnesses) } : {}),
          },
        }
      : {}),
    ...(r.approvals?.postgres !== undefined
      ? {
          approvals: {
            postgres: {
              ...auditPostgres(r.approvals.postgres, path),
              schema: r.approvals.postgres.schema ?? 'warden_approvals',
              table: r.approvals.postgres.table ?? 'records',
            },
          },
        }
      : {}),
    users,
    targets,
    ...(r.admin_api !== undefined ? { adminApi: loadAdminApiConfig(r.admin_api, baseDir) } : {}),
  };
}
/** A validated raw user's client certificate requirement; refused without a client CA to check it against. */
function clientCertOf(u: any, tls: any): ClientCertRequirement | undefined {
  const c = u.client_cert;
  if (c === undefined || c.required !== true) return undefined;
  if (tls?.client_ca_file === undefined) {
    throw new WardenError(
      'CONFIG_INVALID',
      `user "${u.name}" requires a client certificate but tls.client_ca_file is not configured`,
    );
  }
  return {
    ...(c.subject_cn !== undefined ? { subjectCn: c.subject_cn } : {}),
    ...(c.fingerprint_sha256 !== undefined
      ? { fingerprintSha256: normalizeFingerprint(c.fingerprint_sha256) }
      : {}),
  };
}

/** `ab:cd:…` or `abcd…` → `AB:CD:…` (the form of Node's X509 `fingerprint256`). */
export function normalizeFingerprint(f: string): string {
  const hex = f.replaceAll(':', '').toUpperCase();
  return hex.replace(/(..)(?!$)/g, '$1:');
}

/** `audit.witnesses`: each URL and cosigner key is checked now, so a typo stops the start with a clear error. */
function auditWitnesses(ws: { url: string; key: string }[]): { url: string; key: string }[] {
  return parseWitnessConfigs(ws).map((w) => ({ url: w.url, key: w.key }));
}

function auditPostgres(p: any, path: (p: string) => string): AuditPostgresConfig {
  if (p.password_file !== undefined && p.password_env !== undefined) {
    throw new WardenError('CONFIG_INVALID', 'audit.postgres: give password_file or password_env, not both');
  }
  const spec: { file?: string; env?: string } = {};
  if (p.password_file !== undefined) spec.file = path(p.password_file);
  if (p.password_env !== undefined) spec.env = p.password_env;
  const tls = p.tls ?? { mode: 'disable' };
  return {
    host: p.host,
    port: p.port,
    database: p.database,
    user: p.user,
    ...(spec.file !== undefined || spec.env !== undefined
      ? { password: readSecret(spec, 'password of the audit PostgreSQL store') }
      : {}),
    schema: p.schema ?? 'warden_audit',
    table: p.table ?? 'entries',
    tls: {
      mode: tls.mode,
      ...(tls.ca_file !== undefined ? { caFile: path(tls.ca_file) } : {}),
      ...(tls.server_name !== undefined ? { serverName: tls.server_name } : {}),
    },
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Loads and validates a YAML configuration file. */
export function loadGatewayConfig(file: string): GatewayConfig {
  let raw: unknown;
  try {
    raw = YAML.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new WardenError('CONFIG_INVALID', `cannot read configuration ${file}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return buildGatewayConfig(raw, dirname(resolve(file)));
}
