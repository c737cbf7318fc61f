// Tests for the upstream auth client: SCRAM against the RFC 7677 vector and Warden's own server, md5 responses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { isWardenError, type ErrorCode } from '../core/errors.js';
import { ScramServerSession, createVerifier, parseVerifier } from '../identity/scram.js';
import { MAX_UPSTREAM_ITERATIONS, ScramClient, md5Password } from './auth.js';

interface RfcVector {
  username: string;
  password: string;
  clientNonce: string;
  serverNonce: string;
  clientFirst: string;
  serverFirst: string;
  clientFinal: string;
  serverFinal: string;
}
const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../test/fixtures/scram/${name}`, import.meta.url), 'utf8'));
const RFC = fixture('rfc7677.json') as RfcVector;
const PG = fixture('postgres-verifiers.json') as {
  cases: { note: string; password: string; verifier: string }[];
};
const KEY = Buffer.alloc(32, 3);

const throwsCode = (fn: () => unknown, code: ErrorCode): void => {
  assert.throws(fn, (e: unknown) => isWardenError(e, code));
};

function rfcClient(): ScramClient {
  return new ScramClient(RFC.password, { nonce: RFC.clientNonce, username: RFC.username });
}

void test('RFC 7677 exchange is reproduced byte for byte by the client', () => {
  const c = rfcClient();
  assert.equal(c.clientFirst(), RFC.clientFirst);
  assert.equal(c.serverFirst(RFC.serverFirst), RFC.clientFinal);
  c.verifyServerFinal(RFC.serverFinal);
});

void test('a wrong server signature is refused: the upstream must prove it knows the verifier', () => {
  const c = rfcClient();
  c.clientFirst();
  c.serverFirst(RFC.serverFirst);
  const sig = Buffer.from(RFC.serverFinal.slice(2), 'base64');
  sig[31] = (sig[31] ?? 0) ^ 0x80;
  throwsCode(() => c.verifyServerFinal(`v=${sig.toString('base64')}`), 'CONNECTION_FAILURE');

  const e = rfcClient();
  e.clientFirst();
  e.serverFirst(RFC.serverFirst);
  throwsCode(() => e.verifyServerFinal('e=invalid-proof'), 'CONNECTION_FAILURE');
});

void test('default client-first has an empty user name and a fresh 24-character nonce', () => {
  const a = new ScramClient('pw').clientFirst();
  const b = new ScramClient('pw').clientFirst();
  assert.match(a, /^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  assert.notEqual(a, b);
});

void test('client and Warden server agree on PostgreSQL verifiers; wrong passwords fail on both sides', () => {
  for (const c of PG.cases) {
    for (const [password, expected] of [
      [c.password, true],
      ['wrong', false],
    ] as const) {
      const server = new ScramServerSession(parseVerifier(c.verifier), { fakeSaltKey: KEY, username: 'u' });
      const client = new ScramClient(password);
      const result = server.clientFinal(client.serverFirst(server.clientFirst(client.clientFirst())));
      assert.equal(result.ok, expected, c.note);
      if (result.ok) client.verifyServerFinal(result.serverFinal);
    }
  }
});

void test('a server holding a different verifier for the same salt cannot forge the server-final', () => {
  const real = parseVerifier(createVerifier('right', { iterations: 8 }));
  const other = parseVerifier(createVerifier('other', { salt: real.salt, iterations: 8 }));
  // The impostor accepts any proof but signs with its own ServerKey.
  const impostor = { ...real, serverKey: other.serverKey };
  const server = new ScramServerSession(impostor, { fakeSaltKey: KEY, username: 'u' });
  const client = new ScramClient('right');
  const result = server.clientFinal(client.serverFirst(server.clientFirst(client.clientFirst())));
  assert.ok(result.ok);
  throwsCode(() => client.verifyServerFinal(result.serverFinal), 'CONNECTION_FAILURE');
});

void test('hostile or malformed server-first messages are refused before any key derivation', () => {
  const nonce = 'CLIENTNONCE';
  const salt = Buffer.alloc(16, 1).toString('base64');
  const cases: [string, ErrorCode][] = [
    [`r=${nonce}S,s=${salt},i=${MAX_UPSTREAM_ITERATIONS + 1}`, 'CONNECTION_FAILURE'],
    [`r=${nonce}S,s=${salt},i=99999999999`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=${salt},i=0`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=${salt},i=04096`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=${salt},i=-1`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce},s=${salt},i=4096`, 'PROTOCOL_VIOLATION'],
    [`r=OTHER${nonce},s=${salt},i=4096`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=,i=4096`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=AAA,i=4096`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,i=4096,s=${salt}`, 'PROTOCOL_VIOLATION'],
    [`m=x,r=${nonce}S,s=${salt},i=4096`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=${salt},i=4096,`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S,s=${salt}`, 'PROTOCOL_VIOLATION'],
    [`r=${nonce}S\u0000,s=${salt},i=4096`, 'PROTOCOL_VIOLATION'],
    ['x'.repeat(5000), 'PROTOCOL_VIOLATION'],
  ];
  for (const [msg, code] of cases) {
    const c = new ScramClient('pw', { nonce });
    c.clientFirst();
    throwsCode(() => c.serverFirst(msg), code);
    throwsCode(() => c.verifyServerFinal('v=AAAA'), 'PROTOCOL_VIOLATION');
  }
  // Low iteration counts (PostgreSQL 16+ scram_iterations) and trailing extensions are accepted.
  const c = new ScramClient('pw', { nonce });
  c.clientFirst();
  assert.match(c.serverFirst(`r=${nonce}S,s=${salt},i=1,x=ext`), /^c=biws,r=CLIENTNONCES,p=/);
});

void test('steps out of order are protocol violations', () => {
  throwsCode(() => new ScramClient('pw').serverFirst(RFC.serverFirst), 'PROTOCOL_VIOLATION');
  throwsCode(() => new ScramClient('pw').verifyServerFinal(RFC.serverFinal), 'PROTOCOL_VIOLATION');
  const c = rfcClient();
  c.clientFirst();
  throwsCode(() => c.clientFirst(), 'PROTOCOL_VIOLATION');
  const d = rfcClient();
  d.clientFirst();
  d.serverFirst(RFC.serverFirst);
  d.verifyServerFinal(RFC.serverFinal);
  throwsCode(() => d.verifyServerFinal(RFC.serverFinal), 'PROTOCOL_VIOLATION');
  throwsCode(() => new ScramClient('pw', { nonce: 'a,b' }), 'INTERNAL');
});

void test('property: server garbage never throws anything but WardenError', () => {
  const piece = fc.oneof(
    fc.constantFrom('r=N', 'r=NX', 's=AAAA', 'i=1', 'i=2', 'v=', 'e=', 'm=', ',', '='),
    fc.string({ unit: 'binary', maxLength: 10 }),
    fc.base64String({ maxLength: 44 }),
  );
  const msg = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.array(piece, { maxLength: 8 }).map((a) => a.join('')),
  );
  fc.assert(
    fc.property(msg, msg, (first, final) => {
      const c = new ScramClient('pw', { nonce: 'N' });
      c.clientFirst();
      try {
        c.serverFirst(first);
        c.verifyServerFinal(final);
        assert.fail('garbage authenticated');
      } catch (e) {
        if (!isWardenError(e)) throw e;
      }
    }),
    { numRuns: 1000 },
  );
});

void test('md5Password matches the PostgreSQL formula and a known value', () => {
  const md5 = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');
  const salt = Buffer.from([0x01, 0x02, 0x03, 0x04]);
  const expected = 'md5' + md5(Buffer.concat([Buffer.from(md5('secretalice')), salt]));
  assert.equal(md5Password('alice', 'secret', salt), expected);
  // Computed by PostgreSQL 15: SELECT 'md5' || md5(convert_to(md5('secretalice'), 'UTF8') || '\x01020304'::bytea)
  assert.equal(md5Password('alice', 'secret', salt), 'md598a0412b9c31436fc53776e863350083');
  assert.match(md5Password('alice', 'secret', salt), /^md5[0-9a-f]{32}$/);
  assert.notEqual(md5Password('alice', 'secret', Buffer.from([1, 2, 3, 5])), expected);
  throwsCode(() => md5Password('alice', 'secret', Buffer.alloc(3)), 'PROTOCOL_VIOLATION');
});
