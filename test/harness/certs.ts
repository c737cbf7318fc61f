// A throwaway test PKI made with the openssl CLI: a CA, a server certificate for localhost/127.0.0.1/::1, client certificates by CN.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HarnessError } from './errors.js';
import { runCommand } from './sys.js';

export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  /** Server certificate: CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1 (plus any extra names). */
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly clientCn: string;
}

export interface TestPkiOptions {
  /** CN of the client certificate. Default 'warden-test-client'. */
  readonly clientCn?: string;
  /** Extra DNS names for the server certificate. */
  readonly serverDnsNames?: readonly string[];
  /** Validity in days. Default 30. */
  readonly days?: number;
}

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

const OPENSSL_CONF = `# Written by the Warden test harness.
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @server_names
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

async function openssl(args: readonly string[]): Promise<string> {
  const r = await runCommand('openssl', args, {
    timeoutMs: 30_000,
    env: { ...process.env, OPENSSL_CONF: '/dev/null' },
  });
  if (r.code !== 0) {
    throw new HarnessError('OPENSSL_FAILED', `openssl ${args[0] ?? ''} failed (${r.code ?? r.signal})`, {
      detail: r.stderr.trim(),
    });
  }
  return r.stdout;
}

/** Escape a value for openssl's -subj syntax (/CN=value). */
function subj(cn: string): string {
  if (cn === '' || /[\0\n\r]/.test(cn))
    throw new HarnessError('INVALID_OPTION', 'a CN must be non-empty and single-line');
  return `/CN=${cn.replace(/[\\/=+,]/g, (c) => `\\${c}`)}`;
}

/** A new P-256 private key written with mode 0600 from the start (never readable by others). */
async function newKey(path: string): Promise<void> {
  const pem = await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  writeFileSync(path, pem, { mode: 0o600 });
}

function serial(): string {
  return `0x${randomBytes(15).toString('hex')}`;
}

async function issue(
  dir: string,
  name: string,
  cn: string,
  section: 'server' | 'client',
  ca: CertPair,
  days: number,
  conf: string,
): Promise<CertPair> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  await newKey(key);
  await openssl(['req', '-new', '-config', conf, '-key', key, '-subj', subj(cn), '-out', csr]);
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-set_serial',
    serial(),
    '-days',
    String(days),
    '-sha256',
    '-extfile',
    conf,
    '-extensions',
    section,
    '-out',
    cert,
  ]);
  rmSync(csr, { force: true });
  return { cert, key };
}

function confPath(dir: string): string {
  return join(dir, 'openssl.cnf');
}

/**
 * Create `dir` (if needed) with a test CA, a server certificate valid for localhost, 127.0.0.1 and
 * ::1, and a client certificate with CN `clientCn`, all signed by the CA. Keys are 0600.
 */
export async function makeTestPki(dir: string, opts: TestPkiOptions = {}): Promise<TestPki> {
  const days = opts.days ?? 30;
  const clientCn = opts.clientCn ?? 'warden-test-client';
  mkdirSync(dir, { recursive: true });
  const dns = ['localhost', ...(opts.serverDnsNames ?? [])];
  for (const d of dns) {
    if (!/^[A-Za-z0-9.*-]+$/.test(d)) throw new HarnessError('INVALID_OPTION', `bad DNS name: ${d}`);
  }
  const names = [...dns.map((d, i) => `DNS.${i + 1} = ${d}`), 'IP.1 = 127.0.0.1', 'IP.2 = ::1'];
  const conf = confPath(dir);
  writeFileSync(conf, `${OPENSSL_CONF}[server_names]\n${names.join('\n')}\n`);

  const ca: CertPair = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await newKey(ca.key);
  await openssl([
    'req',
    '-x509',
    '-new',
    '-config',
    conf,
    '-key',
    ca.key,
    '-subj',
    subj('Warden Test CA'),
    '-days',
    String(days),
    '-sha256',
    '-set_serial',
    serial(),
    '-extensions',
    'ca',
    '-out',
    ca.cert,
  ]);
  const server = await issue(dir, 'server', 'localhost', 'server', ca, days, conf);
  const client = await issue(dir, 'client', clientCn, 'client', ca, days, conf);
  return {
    dir,
    caCert: ca.cert,
    caKey: ca.key,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    clientCn,
  };
}

/** Another client certificate from an existing test PKI, written as `<name>.crt` / `<name>.key`. */
export async function makeClientCert(
  pki: TestPki,
  cn: string,
  name = `client-${cn}`,
  days = 30,
): Promise<CertPair> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new HarnessError('INVALID_OPTION', `bad file name: ${name}`);
  return issue(pki.dir, name, cn, 'client', { cert: pki.caCert, key: pki.caKey }, days, confPath(pki.dir));
}

/**
 * A client certificate from the test CA whose validity lies entirely in the past (2020), written as
 * `<name>.crt` / `<name>.key`: `openssl x509 -req` cannot back-date, so this goes through `openssl ca`.
 */
export async function makeExpiredClientCert(
  pki: TestPki,
  cn: string,
  name = `expired-${cn}`,
): Promise<CertPair> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new HarnessError('INVALID_OPTION', `bad file name: ${name}`);
  const work = join(pki.dir, `${name}.ca`);
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, 'index.txt'), '');
  writeFileSync(join(work, 'index.txt.attr'), 'unique_subject = no\n');
  writeFileSync(join(work, 'serial'), `${randomBytes(8).toString('hex')}\n`);
  const conf = join(work, 'ca.cnf');
  writeFileSync(
    conf,
    `${OPENSSL_CONF}[server_names]\nDNS.1 = unused\n[ca_sect]\ndatabase = ${join(work, 'index.txt')}\n` +
      `new_certs_dir = ${work}\nserial = ${join(work, 'serial')}\ndefault_md = sha256\npolicy = any\n` +
      `copy_extensions = none\n[any]\ncommonName = supplied\n`,
  );
  const key = join(pki.dir, `${name}.key`);
  const csr = join(work, 'req.csr');
  const cert = join(pki.dir, `${name}.crt`);
  await newKey(key);
  await openssl(['req', '-new', '-config', conf, '-key', key, '-subj', subj(cn), '-out', csr]);
  await openssl([
    'ca',
    '-batch',
    '-config',
    conf,
    '-name',
    'ca_sect',
    '-cert',
    pki.caCert,
    '-keyfile',
    pki.caKey,
    '-in',
    csr,
    '-out',
    cert,
    '-notext',
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200201000000Z',
    '-extfile',
    conf,
    '-extensions',
    'client',
  ]);
  rmSync(work, { recursive: true, force: true });
  return { cert, key };
}
