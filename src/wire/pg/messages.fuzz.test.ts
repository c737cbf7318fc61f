// Property-based fuzzing of every client-facing PostgreSQL decoder (framer, startup, frontend messages, SASL/SCRAM):
// random and mutated real messages never throw anything but WardenError, never hang, and never buffer without bound.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isWardenError } from '../../core/errors.js';
import { Framer } from './framing.js';
import { BodyBuilder, frame } from './reader.js';
import {
  MSG,
  cancelRequest,
  decodeBind,
  decodeExecute,
  decodeFields,
  decodeParse,
  decodeQuery,
  decodeSaslInitial,
  decodeStartup,
  decodeTarget,
  encodeParse,
  encodeStartup,
  errorResponse,
  query,
  saslInitialResponse,
  saslResponse,
  sslRequest,
} from './messages.js';
import {
  ScramServerSession,
  deriveScramKeys,
  hmacSha256,
  parseVerifier,
  createVerifier,
  xorBuffers,
} from '../../identity/scram.js';

const RUNS = Number(process.env['WARDEN_FUZZ_RUNS'] ?? 3000);
/** Per-input time bound: a decoder that takes longer on a few KiB is a hang (generous for a loaded CI box). */
const MAX_MS_PER_INPUT = 250;

/** Calls `f`; passes if it returns or throws a WardenError, fails on any other exception or on slowness. */
function onlyWardenErrors(f: () => unknown): void {
  const t = performance.now();
  try {
    f();
  } catch (e) {
    if (!isWardenError(e)) {
      throw new Error(
        `non-WardenError thrown: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
        { cause: e },
      );
    }
  }
  const took = performance.now() - t;
  assert.ok(took < MAX_MS_PER_INPUT, `decoder took ${took.toFixed(0)} ms`);
}

// ---- real captured messages (as a client would send them) ----

function bind(): Buffer {
  const b = new BodyBuilder().cstring('p1').cstring('s1').int16(2).int16(0).int16(1).int16(3);
  b.int32(2)
    .bytes(Buffer.from('42'))
    .int32(-1)
    .int32(4)
    .bytes(Buffer.from([0, 0, 0, 7]));
  b.int16(1).int16(1);
  return frame(MSG.Bind, b.build());
}

const TYPED: readonly Buffer[] = [
  query('SELECT name, ssn FROM customers WHERE id = 1'),
  query('BEGIN; UPDATE orders SET total = 0 WHERE id = 3; COMMIT'),
  encodeParse({ name: 's1', sql: 'SELECT * FROM t WHERE a = $1 AND b = $2', paramTypes: [23, 25] }),
  encodeParse({ name: '', sql: 'INSERT INTO t VALUES ($1)', paramTypes: [] }),
  bind(),
  frame(MSG.Describe, new BodyBuilder().byte(0x53).cstring('s1').build()),
  frame(MSG.Describe, new BodyBuilder().byte(0x50).cstring('').build()),
  frame(MSG.Close, new BodyBuilder().byte(0x53).cstring('s1').build()),
  frame(MSG.Execute, new BodyBuilder().cstring('p1').int32(0).build()),
  frame(MSG.Sync),
  frame(MSG.Flush),
  saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=rOprNGfwEbeRWgbNEkqO'),
  saslResponse(
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  ),
  errorResponse({ severity: 'ERROR', code: '42501', message: 'denied' }),
];

const STARTUP: readonly Buffer[] = [
  encodeStartup(
    new Map([
      ['user', 'alice'],
      ['database', 'main'],
      ['application_name', 'psql'],
      ['client_encoding', 'UTF8'],
    ]),
  ),
  sslRequest(),
  cancelRequest(1234, -99),
];

/** Decodes a typed message's body with the decoder its type byte selects (as the session would). */
function decodeTyped(type: number, body: Buffer): unknown {
  switch (type) {
    case MSG.Query:
      return decodeQuery(body);
    case MSG.Parse:
      return decodeParse(body);
    case MSG.Bind:
      return decodeBind(body);
    case MSG.Describe:
      return decodeTarget(body, 'Describe');
    case MSG.Close:
      return decodeTarget(body, 'Close');
    case MSG.Execute:
      return decodeExecute(body);
    case MSG.Password:
      return decodeSaslInitial(body);
    default:
      return decodeFields(body);
  }
}

const ALL_DECODERS: readonly ((b: Buffer) => unknown)[] = [
  decodeQuery,
  decodeParse,
  decodeBind,
  (b) => decodeTarget(b, 'Describe'),
  decodeExecute,
  decodeSaslInitial,
  decodeFields,
  decodeStartup,
];

/** Mutations of a real message: bit flips, truncation, lies in length/count fields, huge counts, splices. */
const mutation = (seeds: readonly Buffer[]): fc.Arbitrary<Buffer> =>
  fc
    .tuple(
      fc.constantFrom(...seeds),
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
          fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
          fc.record({
            op: fc.constant('int32' as const),
            at: fc.nat(),
            v: fc.oneof(
              fc.constantFrom(-1, -2, 0, 1, 3, 4, 5, 0x7fffffff, -0x80000000, 0x10000, 1 << 30),
              fc.integer(),
            ),
          }),
          fc.record({
            op: fc.constant('int16' as const),
            at: fc.nat(),
            v: fc.constantFrom(-1, 0, 1, 0x7fff, -0x8000, 1000),
          }),
          fc.record({
            op: fc.constant('insert' as const),
            at: fc.nat(),
            bytes: fc.uint8Array({ maxLength: 16 }),
          }),
          fc.record({ op: fc.constant('nul' as const), at: fc.nat() }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
    )
    .map(([seed, ops]) => {
      let b = Buffer.from(seed);
      for (const o of ops) {
        if (b.length === 0) break;
        const at = o.at % b.length;
        switch (o.op) {
          case 'flip':
            b[at] = (b[at] as number) ^ (1 << o.bit);
            break;
          case 'truncate':
            b = b.subarray(0, at);
            break;
          case 'int32':
            if (at + 4 <= b.length) b.writeInt32BE(o.v | 0, at);
            break;
          case 'int16':
            if (at + 2 <= b.length) b.writeInt16BE(o.v, at);
            break;
          case 'insert':
            b = Buffer.concat([b.subarray(0, at), Buffer.from(o.bytes), b.subarray(at)]);
            break;
          case 'nul':
            b[at] = 0;
            break;
        }
      }
      return b;
    });

const randomBytes = fc.uint8Array({ maxLength: 512 }).map((u) => Buffer.from(u));

describe('fuzz: PostgreSQL frontend decoders', () => {
  test('every decoder on random bytes throws only WardenError', () => {
    fc.assert(
      fc.property(randomBytes, fc.constantFrom(...ALL_DECODERS), (b, d) => onlyWardenErrors(() => d(b))),
      { numRuns: RUNS },
    );
  });

  test('every decoder on mutated real message bodies throws only WardenError', () => {
    const bodies = TYPED.map((m) => m.subarray(5));
    fc.assert(
      fc.property(mutation(bodies), fc.constantFrom(...ALL_DECODERS), (b, d) => onlyWardenErrors(() => d(b))),
      { numRuns: RUNS },
    );
  });

  test('mutated startup packets: decodeStartup throws only WardenError', () => {
    fc.assert(
      fc.property(mutation(STARTUP), (b) => onlyWardenErrors(() => decodeStartup(b))),
      { numRuns: RUNS },
    );
  });

  test('a Bind that claims huge counts is refused without allocating for the claim', () => {
    for (const n of [0x7fff, 1000]) {
      const body = new BodyBuilder().cstring('').cstring('').int16(n).build();
      assert.throws(() => decodeBind(body), isWardenError);
      const body2 = new BodyBuilder().cstring('').cstring('').int16(0).int16(n).int32(0x7fffffff).build();
      assert.throws(() => decodeBind(body2), isWardenError);
    }
    const parse = new BodyBuilder().cstring('').cstring('SELECT 1').int16(0x7fff).build();
    assert.throws(() => decodeParse(parse), isWardenError);
    const sasl = new BodyBuilder().cstring('SCRAM-SHA-256').int32(0x7fffffff).build();
    assert.throws(() => decodeSaslInitial(sasl), isWardenError);
  });
});

describe('fuzz: the framer on a stream of mutated messages', () => {
  /** Feeds `chunks` to a framer as the session does; decodes what comes out. */
  function run(startupFirst: boolean, chunks: readonly Buffer[], max: number): void {
    const framer = new Framer(max, { startup: startupFirst });
    let inStartup = startupFirst;
    onlyWardenErrors(() => {
      for (const c of chunks) {
        framer.push(c);
        if (inStartup) {
          const p = framer.nextStartup();
          if (p === null) continue;
          decodeStartup(p);
          inStartup = false;
          framer.setStartup(false);
        }
        for (let f = framer.next(); f; f = framer.next()) {
          assert.ok(f.raw.length <= max + 1, 'a frame larger than the cap came out');
          decodeTyped(f.type, f.body);
        }
        // INVARIANT: what the framer holds is bounded by the cap plus one chunk.
        assert.ok(framer.pending <= max + 5 + c.length, `framer holds ${framer.pending} bytes`);
      }
    });
  }

  test('split at random points, mutated, concatenated: only WardenError, bounded buffering', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(fc.oneof(mutation(TYPED), fc.constantFrom(...TYPED), randomBytes), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        fc.constantFrom(1024, 4096, 1 << 20),
        (startupFirst, msgs, cuts, max) => {
          const stream = Buffer.concat([...(startupFirst ? [STARTUP[0] as Buffer] : []), ...msgs]);
          const chunks: Buffer[] = [];
          let pos = 0;
          for (let i = 0; pos < stream.length; i++) {
            const n = cuts[i % cuts.length] as number;
            chunks.push(stream.subarray(pos, pos + n));
            pos += n;
          }
          run(startupFirst, chunks, max);
        },
      ),
      { numRuns: RUNS },
    );
  });

  test('a length word that lies (huge, negative, under 4) is refused before its body arrives', () => {
    for (const len of [0x7fffffff, -1, 0, 3, (1 << 20) + 1]) {
      const f = new Framer(1 << 20, { startup: false });
      const hdr = Buffer.alloc(5);
      hdr[0] = MSG.Query;
      hdr.writeInt32BE(len, 1);
      f.push(hdr);
      assert.throws(() => f.next(), isWardenError, `length ${len}`);
    }
    for (const len of [0x7fffffff, -5, 0, 7, 10001]) {
      const f = new Framer(1 << 20, { startup: true });
      const hdr = Buffer.alloc(8);
      hdr.writeInt32BE(len, 0);
      f.push(hdr);
      assert.throws(() => f.nextStartup(), isWardenError, `startup length ${len}`);
    }
  });
});

describe('fuzz: SCRAM server messages', () => {
  const password = 'fuzz-pw';
  const verifier = parseVerifier(createVerifier(password, { iterations: 4096 }));
  const fakeSaltKey = Buffer.alloc(32, 7);
  const clientNonce = 'rOprNGfwEbeRWgbNEkqO';

  /** A real client-final for a session (proof computed as a client would). */
  function realFinal(s: ScramServerSession): string {
    const first = `n,,n=,r=${clientNonce}`;
    const serverFirst = s.clientFirst(first);
    const nonce = /r=([^,]+)/.exec(serverFirst)?.[1] ?? '';
    const keys = deriveScramKeys(password, verifier.salt, verifier.iterations);
    const withoutProof = `c=biws,r=${nonce}`;
    const auth = `n=,r=${clientNonce},${serverFirst},${withoutProof}`;
    const proof = xorBuffers(keys.clientKey, hmacSha256(keys.storedKey, auth));
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  test('the real exchange succeeds (the seeds are valid)', () => {
    const s = new ScramServerSession(verifier, { fakeSaltKey, username: 'alice' });
    assert.equal(s.clientFinal(realFinal(s)).ok, true);
  });

  const strings = (seed: string): fc.Arbitrary<string> =>
    fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: 'binary', maxLength: 100 }),
      mutation([Buffer.from(seed)]).map((b) => b.toString('utf8')),
      fc.nat({ max: 5000 }).map((n) => seed + 'x'.repeat(n)),
    );

  test('mutated client-first messages: only WardenError', () => {
    fc.assert(
      fc.property(strings(`n,,n=,r=${clientNonce}`), fc.boolean(), (m, known) =>
        onlyWardenErrors(() =>
          new ScramServerSession(known ? verifier : null, { fakeSaltKey, username: 'alice' }).clientFirst(m),
        ),
      ),
      { numRuns: RUNS },
    );
  });

  test('mutated client-final messages: only WardenError, and never a successful login', () => {
    const probe = new ScramServerSession(verifier, { fakeSaltKey, username: 'alice', nonce: 'SERVERNONCE' });
    const seed = realFinal(probe);
    fc.assert(
      fc.property(strings(seed), (m) => {
        const s = new ScramServerSession(verifier, { fakeSaltKey, username: 'alice', nonce: 'SERVERNONCE' });
        s.clientFirst(`n,,n=,r=${clientNonce}`);
        onlyWardenErrors(() => {
          const r = s.clientFinal(m);
          if (m !== seed) assert.equal(r.ok, false, `a mutated proof logged in: ${m}`);
        });
      }),
      { numRuns: RUNS },
    );
  });
});
