// The transport under both upstream connectors (PostgreSQL, MySQL): TCP connect with a timeout, then TLS per the target's verify mode.

import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { WardenError } from '../core/errors.js';
import type { UpstreamEndpoint } from './pg-connect.js';

/** Opens a TCP connection (Nagle off); UPSTREAM_UNAVAILABLE when it fails or takes longer than the endpoint's timeout. */
export function connectTcp(ep: UpstreamEndpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: ep.host, port: ep.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(
        new WardenError('UPSTREAM_UNAVAILABLE', `upstream ${ep.host}:${ep.port} did not answer in time`),
      );
    }, ep.connectTimeoutMs ?? 10_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new WardenError('UPSTREAM_UNAVAILABLE', `cannot reach upstream ${ep.host}:${ep.port}`, {
          cause: err,
        }),
      );
    });
  });
}

/**
 * Runs the TLS handshake on a socket whose protocol has agreed to TLS: TLS 1.2 minimum; `verify-ca` checks the
 * chain against `caFile` (or the system CAs), `verify-full` also the name (`serverName`, else the host);
 * `require` encrypts without verifying.
 */
export async function upgradeToTls(socket: net.Socket, ep: UpstreamEndpoint): Promise<tls.TLSSocket> {
  const verify = ep.tls === 'verify-ca' || ep.tls === 'verify-full';
  const opts: tls.ConnectionOptions = {
    socket,
    rejectUnauthorized: verify,
    minVersion: 'TLSv1.2',
    servername: ep.serverName ?? (net.isIP(ep.host) ? undefined : ep.host) ?? '',
  };
  if (ep.caFile) opts.ca = readFileSync(ep.caFile);
  if (ep.tls === 'verify-ca') opts.checkServerIdentity = () => undefined;
  if (ep.tls === 'verify-full') {
    opts.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(ep.serverName ?? ep.host, cert);
  }
  return await new Promise<tls.TLSSocket>((resolve, reject) => {
    const t = tls.connect(opts, () => resolve(t));
    t.once('error', (e) =>
      reject(
        new WardenError(
          'UPSTREAM_UNAVAILABLE',
          `TLS to upstream ${ep.host}:${ep.port} failed: ${e.message}`,
          { cause: e },
        ),
      ),
    );
  });
}
