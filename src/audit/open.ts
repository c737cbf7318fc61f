// Opens the gateway's audit log from its configuration: the local file store in `dir`, or the shared PostgreSQL store.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { AuditConfig, AuditPostgresConfig } from '../config/gateway-config.js';
import { AuditLog, LOG_KEY_FILE, loadOrCreateLogKey } from './log.js';
import type { AuditLogOptions } from './log.js';
import { PgAuditStore } from './store-pg.js';
import { GuardedPgClient } from '../upstream/pg-client.js';

/** node-postgres connection settings for an `audit.postgres` block (the password is never logged). */
export function pgConnectionFor(p: AuditPostgresConfig): pg.PoolConfig {
  let ssl: ConnectionOptions | false = false;
  if (p.tls.mode !== 'disable') {
    const ca = p.tls.caFile !== undefined ? readFileSync(p.tls.caFile) : undefined;
    ssl =
      p.tls.mode === 'require'
        ? { rejectUnauthorized: false }
        : {
            rejectUnauthorized: true,
            ...(ca !== undefined ? { ca } : {}),
            ...(p.tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
            ...(p.tls.serverName !== undefined ? { servername: p.tls.serverName } : {}),
          };
  }
  return {
    // Never a cleartext password over an unencrypted connection (pools; plain clients use GuardedPgClient).
    Client: GuardedPgClient,
    host: p.host,
    port: p.port,
    database: p.database,
    user: p.user,
    ...(p.password !== undefined ? { password: p.password } : {}),
    ssl,
    application_name: 'warden-audit',
  };
}

/**
 * Opens the configured audit log. With `postgres`, entries and checkpoints live in its tables (installed once
 * with installPgAuditSchema) and the log key is `key_file` or `dir/log.key`: every replica must hold the same key.
 */
export async function openAuditLogFromConfig(
  audit: AuditConfig,
  extra: Omit<AuditLogOptions, 'origin' | 'signer' | 'checkpointIntervalMs'> = {},
): Promise<AuditLog> {
  if (audit.postgres === undefined) {
    return AuditLog.openDir(audit.dir, {
      ...extra,
      origin: audit.origin,
      checkpointIntervalMs: audit.checkpointIntervalMs,
      ...(audit.keyFile !== undefined ? { keyFile: audit.keyFile } : {}),
    });
  }
  if (audit.keyFile === undefined) await mkdir(audit.dir, { recursive: true, mode: 0o700 });
  const signer = await loadOrCreateLogKey(audit.keyFile ?? join(audit.dir, LOG_KEY_FILE), audit.origin);
  const store = await PgAuditStore.open({
    connection: pgConnectionFor(audit.postgres),
    schema: audit.postgres.schema,
    table: audit.postgres.table,
  });
  try {
    return await AuditLog.open(store, {
      ...extra,
      origin: audit.origin,
      signer,
      checkpointIntervalMs: audit.checkpointIntervalMs,
    });
  } catch (e) {
    await store.close();
    throw e;
  }
}
