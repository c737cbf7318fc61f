// Accepts PostgreSQL client connections and hands each to its own session; one bad client never touches another.

import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { WardenError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import type { GatewayConfig } from '../config/gateway-config.js';
import { PgSession, type SessionDeps } from '../session/pg-session.js';
import { errorResponse } from '../wire/pg/messages.js';
import { listenTcp, type TcpListener } from './listener-limits.js';

/** Sent to a connection over `limits.max_connections` (PostgreSQL's own words and SQLSTATE), then closed. */
const TOO_MANY = errorResponse({
  severity: 'FATAL',
  code: '53300',
  message: 'sorry, too many clients already',
});
const TOO_MANY_STARTING = errorResponse({
  severity: 'FATAL',
  code: '53300',
  message: 'too many connections from this address are still logging in; try again later',
});

/**
 * TLS 1.2 suites offered to clients: forward secrecy (ECDHE) and AEAD only (no CBC, RSA key exchange, SHA-1 MACs).
 * TLS 1.3 suites are all AEAD and stay at Node's defaults.
 */
export const SERVER_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

const TLS13_CIPHERS = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'];

/**
 * The listener's TLS context: TLS 1.2 minimum, forward-secret AEAD suites, the server's cipher order. The private
 * key is read with readSecret (refused when group- or world-accessible). With `clientCaFile`, the CA that client
 * certificates must chain to (sessions then ask clients for a certificate; see PgSession).
 */
export function serverTlsContext(t: NonNullable<GatewayConfig['tls']>): tls.SecureContext {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new WardenError('CONFIG_INVALID', `cannot read ${what} ${JSON.stringify(file)}`, { cause: e });
    }
  };
  const key = readSecret({ file: t.keyFile }, 'TLS private key (tls.key_file)');
  try {
    return tls.createSecureContext({
      cert: read(t.certFile, 'TLS certificate (tls.cert_file)'),
      key,
      ...(t.clientCaFile !== undefined ? { ca: read(t.clientCaFile, 'client CA (tls.client_ca_file)') } : {}),
      minVersion: 'TLSv1.2',
      ciphers: [...TLS13_CIPHERS, ...SERVER_TLS12_CIPHERS].join(':'),
      honorCipherOrder: true,
      // Needed by OpenSSL to resume sessions when client certificates are requested (otherwise a client offering
      // a session gets "session id context uninitialized"); resumed sessions keep their certificate and verdict.
      sessionIdContext: 'warden-pg',
    });
  } catch (e) {
    // OpenSSL's message names the problem (bad PEM, key does not match the certificate), never the key itself.
    throw new WardenError('CONFIG_INVALID', `invalid TLS configuration: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

export interface PgListener extends TcpListener<PgSession> {
  /**
   * Stops accepting; idle sessions end at once, busy ones when their statement and transaction are over,
   * and whatever is left after `drainMs` is ended with FATAL 57P01.
   */
  close(drainMs?: number): Promise<void>;
}

/** Refusals are a FATAL 53300 before reading anything, as PostgreSQL answers. */
export async function listenPg(
  host: string,
  port: number,
  maxConnections: number,
  deps: Omit<SessionDeps, 'onClose'>,
): Promise<PgListener> {
  return listenTcp(host, port, {
    maxConnections,
    maxStartupsPerAddress: deps.config.limits.maxStartupsPerAddress,
    tooMany: TOO_MANY,
    tooManyStarting: TOO_MANY_STARTING,
    startSession: (socket, onClose) => new PgSession(socket, { ...deps, onClose }),
  });
}
