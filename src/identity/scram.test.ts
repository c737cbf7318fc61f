// Tests for SCRAM-SHA-256 verifiers and the server-side exchange: RFC 7677 vector, PostgreSQL verifiers, unknown users, garbage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { isWardenError } from '../core/errors.js';
import {
  ScramServerSession,
  createVerifier,
  decodeBase64Strict,
  deriveScramKeys,
  fakeSalt,
  hmacSha256,
  parseVerifier,
  xorBuffers,
  type ParsedVerifier,
} from './scram.js';

interface RfcVector {
  username: string;
  password: string;
  clientNonce: string;
  serverNonce: string;
  salt: string;
  iterations: number;
  clientFirst: string;
  serverFirst: string;
  clientFinal: string;
  serverFinal: string;
}
interface PgCases {
  cases: { note: string; password: string; verifier: string }[];
}

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../../test/fixtures/scram/${name}`, import.meta.url), 'utf8'));
const RFC = fixture('rfc7677.json') as RfcVector;
const PG = fixture('postgres-verifiers.json') as PgCases;
const KEY = Buffer.alloc(32, 7);

function b64(s: string): Buffer {
  const b = decodeBase64Strict(s);
  assert.ok(b);
  return b;
}

/** A minimal, independent test client: computes the client-final-message for a server-first-message. */
function clientFinalFor(
  password: string,
  clientFirstBare: string,
  serverFirst: string,
  cbind = 'biws',
  extensions = '',
): string {
  const attrs = Object.fromEntries(serverFirst.split(',').map((p) => [p[0], p.slice(2)]));
  const keys = deriveScramKeys(password, b64(attrs.s ?? ''), Number(attrs.i));
  const withoutProof = `c=${cbind},r=${attrs.r}${extensions}`;
  const auth = `${clientFirstBare},${serverFirst},${withoutProof}`;
  return `${withoutProof},p=${xorBuffers(keys.clientKey, hmacSha256(keys.storedKey, auth)).toString('base64')}`;
}

function exchange(verifier: ParsedVerifier | null, password: string, username = 'alice'): boolean {
  const s = new ScramServerSession(verifier, { fakeSaltKey: KEY, username });
  const serverFirst = s.clientFirst('n,,n=,r=clientnonce123');
  return s.clientFinal(clientFinalFor(password, 'n=,r=clientnonce123', serverFirst)).ok;
}

function assertViolation(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => isWardenError(e, 'PROTOCOL_VIOLATION'));
}

void test('RFC 7677 exchange is reproduced byte for byte', () => {
  const verifier = parseVerifier(
    createVerifier(RFC.password, { salt: b64(RFC.salt), iterations: RFC.iterations }),
  );
  const s = new ScramServerSession(verifier, {
    fakeSaltKey: KEY,
    username: RFC.username,
    nonce: RFC.serverNonce,
  });
  assert.equal(s.clientFirst(RFC.clientFirst), RFC.serverFirst);
  assert.deepEqual(s.clientFinal(RFC.clientFinal), { ok: true, serverFinal: RFC.serverFinal });
});

void test('RFC 7677 client-final with a flipped proof bit is refused', () => {
  const verifier = parseVerifier(createVerifier(RFC.password, { salt: b64(RFC.salt) }));
  const s = new ScramServerSession(verifier, { fakeSaltKey: KEY, username: 'user', nonce: RFC.serverNonce });
  s.clientFirst(RFC.clientFirst);
  const proof = b64(RFC.clientFinal.split(',p=')[1] ?? '');
  proof[0] = (proof[0] ?? 0) ^ 1;
  const forged = `${RFC.clientFinal.split(',p=')[0]},p=${proof.toString('base64')}`;
  assert.deepEqual(s.clientFinal(forged), { ok: false });
});

void test('verifiers made by PostgreSQL are reproduced exactly from their salt (SASLprep included)', () => {
  for (const c of PG.cases) {
    const parsed = parseVerifier(c.verifier);
    assert.equal(
      createVerifier(c.password, { salt: parsed.salt, iterations: parsed.iterations }),
      c.verifier,
      c.note,
    );
  }
});

void test('a client with the right password authenticates against PostgreSQL verifiers, a wrong one does not', () => {
  for (const c of PG.cases) {
    const v = parseVerifier(c.verifier);
    assert.equal(exchange(v, c.password), true, c.note);
    assert.equal(exchange(v, 'wrong'), false, c.note);
  }
});

void test('createVerifier defaults: 4096 iterations, 16-byte random salt, PostgreSQL format', () => {
  const a = createVerifier('pw');
  const b = createVerifier('pw');
  assert.match(a, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
  assert.notEqual(a, b);
  assert.equal(parseVerifier(a).salt.length, 16);
  assert.equal(parseVerifier(createVerifier('pw', { iterations: 10 })).iterations, 10);
  assert.throws(
    () => createVerifier('pw', { iterations: 0 }),
    (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
  );
  assert.throws(
    () => createVerifier('pw', { salt: Buffer.alloc(0) }),
    (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
  );
});

void test('parseVerifier refuses anything but the exact format, without echoing the verifier', () => {
  const good = PG.cases[0]?.verifier ?? '';
  const [, iter, salt, keys] = /^SCRAM-SHA-256\$(\d+):([^$]+)\$(.+)$/.exec(good) ?? [];
  const [stored, server] = (keys ?? '').split(':');
  const bad = [
    '',
    'md5abcdef',
    good.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
    ` ${good}`,
    `${good}\n`,
    `${good}:x`,
    good.replace(`$${iter}:`, '$0:'),
    good.replace(`$${iter}:`, '$04096:'),
    good.replace(`$${iter}:`, '$-1:'),
    good.replace(`$${iter}:`, '$99999999999:'),
    good.replace(`$${iter}:`, '$4294967296:'),
    good.replace(`:${salt}$`, ':$'),
    good.replace(`:${salt}$`, ':not base64!$'),
    good.replace(`:${salt}$`, `:${(salt ?? '').replace(/=+$/, '')}$`),
    good.replace(`$${stored}:`, `$${Buffer.alloc(31).toString('base64')}:`),
    good.replace(`:${server}`, `:${Buffer.alloc(33).toString('base64')}`),
    good.replace(`:${server}`, ''),
  ];
  for (const s of bad) {
    assert.throws(
      () => parseVerifier(s),
      (e: unknown) =>
        isWardenError(e, 'CONFIG_INVALID') &&
        !e.message.includes(stored ?? '?') &&
        !e.message.includes(salt ?? '?'),
      JSON.stringify(s),
    );
  }
  assert.throws(
    () => parseVerifier(42 as unknown as string),
    (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
  );
  const p = parseVerifier(good);
  assert.equal(p.iterations, 4096);
  assert.equal(p.storedKey.length, 32);
});

void test('unknown user: full exchange, stable fake salt per user, real-looking server-first, always fails', () => {
  const real = new ScramServerSession(parseVerifier(createVerifier('pw')), {
    fakeSaltKey: KEY,
    username: 'bob',
  });
  const first = (user: string, key = KEY): string =>
    new ScramServerSession(null, { fakeSaltKey: key, username: user }).clientFirst('n,,n=,r=abc');
  const shape = /^r=abc[A-Za-z0-9+/]{24},s=[A-Za-z0-9+/]{22}==,i=4096$/;
  assert.match(real.clientFirst('n,,n=,r=abc'), shape);
  const ghost1 = first('ghost');
  const ghost2 = first('ghost');
  assert.match(ghost1, shape);
  const salt = (m: string): string => m.split(',')[1] ?? '';
  assert.equal(salt(ghost1), salt(ghost2));
  assert.equal(salt(ghost1), `s=${fakeSalt(KEY, 'ghost').toString('base64')}`);
  assert.notEqual(salt(ghost1), salt(first('ghost2')));
  assert.notEqual(salt(ghost1), salt(first('ghost', Buffer.alloc(32, 8))));
  assert.notEqual(ghost1.split(',')[0], ghost2.split(',')[0], 'server nonces are fresh');
  assert.match(
    new ScramServerSession(null, { fakeSaltKey: KEY, username: 'x', iterations: 8192 }).clientFirst(
      'n,,n=,r=a',
    ),
    /,i=8192$/,
  );
  for (const pw of ['', 'pw', 'ghost', 'password']) assert.equal(exchange(null, pw, 'ghost'), false);
});

void test('short fake salt keys are refused', () => {
  assert.throws(
    () => new ScramServerSession(null, { fakeSaltKey: Buffer.alloc(15), username: 'x' }),
    (e: unknown) => isWardenError(e, 'CONFIG_INVALID'),
  );
});

void test('y,, gs2 header is accepted and must be echoed as c=eSws', () => {
  const v = parseVerifier(createVerifier('pw', { iterations: 16 }));
  const s = new ScramServerSession(v, { fakeSaltKey: KEY, username: 'u' });
  const sf = s.clientFirst('y,,n=,r=nonce');
  assert.equal(s.clientFinal(clientFinalFor('pw', 'n=,r=nonce', sf, 'eSws')).ok, true);

  const s2 = new ScramServerSession(v, { fakeSaltKey: KEY, username: 'u' });
  const sf2 = s2.clientFirst('y,,n=,r=nonce');
  assertViolation(() => s2.clientFinal(clientFinalFor('pw', 'n=,r=nonce', sf2, 'biws')));
});

void test('the SCRAM user name is ignored, extensions after the nonce are ignored', () => {
  const v = parseVerifier(createVerifier('pw', { iterations: 16 }));
  const s = new ScramServerSession(v, { fakeSaltKey: KEY, username: 'u' });
  const sf = s.clientFirst('n,,n=someone=2Celse,r=nonce,x=ext');
  assert.equal(s.clientFinal(clientFinalFor('pw', 'n=someone=2Celse,r=nonce,x=ext', sf)).ok, true);
});

void test('malformed client-first messages are protocol violations', () => {
  const v = parseVerifier(createVerifier('pw', { iterations: 16 }));
  const bad = [
    '',
    'n,,',
    'n,',
    'x,,n=,r=abc',
    'p=tls-server-end-point,,n=,r=abc',
    'n,a=admin,n=,r=abc',
    'n,,m=ext,n=,r=abc',
    'n,,r=abc',
    'n,,n=,r=',
    'n,,n=,r=ab,c',
    'n,,n=,r=a b',
    'n,,n=a=b,r=abc',
    'n,,n=,r=abc,x=',
    'n,,n=,r=abc,r=def',
    'n,,n=,r=abc\u0000',
    'n,,n=,r=\u00e9',
    `n,,n=${'a'.repeat(5000)},r=abc`,
    'N,,n=,r=abc',
  ];
  for (const m of bad) {
    const s = new ScramServerSession(v, { fakeSaltKey: KEY, username: 'u' });
    assertViolation(() => s.clientFirst(m));
    assertViolation(() => s.clientFinal('c=biws,r=abc,p=AAAA'));
  }
});

void test('malformed client-final messages are protocol violations and end the session', () => {
  const v = parseVerifier(createVerifier('pw', { iterations: 16 }));
  const make = (): { s: ScramServerSession; good: string } => {
    const s = new ScramServerSession(v, { fakeSaltKey: KEY, username: 'u', nonce: 'SRV' });
    const good = clientFinalFor('pw', 'n=,r=cli', s.clientFirst('n,,n=,r=cli'));
    return { s, good };
  };
  const { good } = make();
  const proof = good.split(',p=')[1] ?? '';
  const bad = [
    '',
    good.replace('c=biws', 'c=eSws'),
    good.replace('c=biws', 'c=cCx4LCw='),
    good.replace('r=cliSRV', 'r=cli'),
    good.replace('r=cliSRV', 'r=cliSRVx'),
    good.replace(`,p=${proof}`, ''),
    good.replace(`,p=${proof}`, ',p='),
    good.replace(`,p=${proof}`, `,p=${Buffer.alloc(31).toString('base64')}`),
    good.replace(`,p=${proof}`, `,p=${proof.replace('=', '')}`),
    `${good},x=1`,
    `${good},p=${proof}`,
    good.replace('r=cliSRV', 'r=cliSRV,c=biws'),
    `r=cliSRV,c=biws,p=${proof}`,
    good.replace('c=biws,', ''),
  ];
  for (const m of bad) {
    const { s } = make();
    assertViolation(() => s.clientFinal(m));
    assertViolation(() => s.clientFinal(good));
  }
  const ok = make();
  assert.equal(ok.s.clientFinal(good).ok, true);
  assertViolation(() => ok.s.clientFinal(good));
  assertViolation(() => ok.s.clientFirst('n,,n=,r=cli'));
  // Extensions before the proof are part of the signed AuthMessage.
  const serverFirst = `r=cliSRV,s=${v.salt.toString('base64')},i=16`;
  const withExt = clientFinalFor('pw', 'n=,r=cli', serverFirst, 'biws', ',x=ext');
  assert.match(withExt, /^c=biws,r=cliSRV,x=ext,p=/);
  assert.equal(make().s.clientFinal(withExt).ok, true);
  assert.equal(make().s.clientFinal(withExt.replace(',x=ext', ',x=exu')).ok, false);
});

void test('property: random garbage never throws anything but WardenError', () => {
  const v = parseVerifier(createVerifier('pw', { iterations: 2 }));
  const piece = fc.oneof(
    fc.constantFrom(
      'n,,',
      'y,,',
      'p=x,,',
      'n=',
      'r=',
      'c=biws',
      'c=eSws',
      'p=',
      'm=',
      ',',
      '=',
      '=2C',
      '=3D',
      'SRV',
    ),
    fc.string({ unit: 'binary', maxLength: 12 }),
    fc.base64String({ maxLength: 48 }),
  );
  const message = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.array(piece, { maxLength: 10 }).map((a) => a.join('')),
  );
  fc.assert(
    fc.property(message, message, fc.boolean(), (first, final, known) => {
      const s = new ScramServerSession(known ? v : null, { fakeSaltKey: KEY, username: 'u', nonce: 'SRV' });
      try {
        s.clientFirst(first);
        const r = s.clientFinal(final);
        assert.equal(r.ok, false);
      } catch (e) {
        if (!isWardenError(e, 'PROTOCOL_VIOLATION')) throw e;
      }
      try {
        parseVerifier(first);
      } catch (e) {
        if (!isWardenError(e, 'CONFIG_INVALID')) throw e;
      }
    }),
    { numRuns: 2000 },
  );
});

void test('property: any password round-trips through createVerifier and the exchange', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 16 }), (pw) => {
      const v = parseVerifier(createVerifier(pw, { iterations: 2 }));
      const s = new ScramServerSession(v, { fakeSaltKey: KEY, username: 'u' });
      const sf = s.clientFirst('n,,n=,r=N');
      assert.equal(s.clientFinal(clientFinalFor(pw, 'n=,r=N', sf)).ok, true);
    }),
    { numRuns: 200 },
  );
});
