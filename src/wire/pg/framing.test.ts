// Unit and property tests for message framing and the client-message decoders.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Framer } from './framing.js';
import { BodyBuilder, frame } from './reader.js';
import {
  MSG,
  decodeBind,
  decodeParse,
  decodeQuery,
  decodeStartup,
  encodeParse,
  encodeStartup,
  errorResponse,
  decodeFields,
  cancelRequest,
  sslRequest,
} from './messages.js';
import { isWardenError } from '../../core/errors.js';

function drain(f: Framer): { type: number; body: Buffer }[] {
  const out: { type: number; body: Buffer }[] = [];
  for (let m = f.next(); m; m = f.next()) out.push({ type: m.type, body: Buffer.from(m.body) });
  return out;
}

describe('Framer', () => {
  it('yields the same messages however the stream is split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0x41, max: 0x7a }), fc.uint8Array({ maxLength: 300 })), {
          maxLength: 20,
        }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 50 }),
        (msgs, cuts) => {
          const stream = Buffer.concat(msgs.map(([t, b]) => frame(t, Buffer.from(b))));
          const f = new Framer(1 << 20, { startup: false });
          const got: { type: number; body: Buffer }[] = [];
          let pos = 0;
          let i = 0;
          while (pos < stream.length) {
            const n = cuts[i++ % cuts.length] as number;
            f.push(stream.subarray(pos, pos + n));
            pos += n;
            got.push(...drain(f));
          }
          assert.deepEqual(
            got,
            msgs.map(([t, b]) => ({ type: t, body: Buffer.from(b) })),
          );
        },
      ),
    );
  });

  it('refuses a declared length over the cap before the body arrives', () => {
    const f = new Framer(1024, { startup: false });
    const hdr = Buffer.alloc(5);
    hdr[0] = MSG.Query;
    hdr.writeInt32BE(1025 + 4, 1);
    f.push(hdr);
    assert.throws(
      () => f.next(),
      (e) => isWardenError(e, 'PROTOCOL_VIOLATION') && /over the limit of 1024/.test(e.message),
    );
  });

  it('refuses lengths below 4 and absurd startup packets', () => {
    const f = new Framer(1024, { startup: false });
    f.push(Buffer.from([MSG.Query, 0, 0, 0, 3]));
    assert.throws(
      () => f.next(),
      (e) => isWardenError(e, 'PROTOCOL_VIOLATION'),
    );
    const s = new Framer(1024, { startup: true });
    s.push(Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]));
    assert.throws(() => s.nextStartup(), /startup packet too long/);
  });

  it('only ever throws WardenError on random input, in both modes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (bytes, startup) => {
        const f = new Framer(4096, { startup });
        f.push(Buffer.from(bytes));
        try {
          if (startup) {
            for (let p = f.nextStartup(); p; p = f.nextStartup()) decodeStartup(p);
          } else {
            for (let m = f.next(); m; m = f.next()) {
              if (m.type === MSG.Parse) decodeParse(m.body);
              else if (m.type === MSG.Bind) decodeBind(m.body);
              else if (m.type === MSG.Query) decodeQuery(m.body);
            }
          }
        } catch (e) {
          assert.ok(isWardenError(e), `unexpected ${String(e)}`);
        }
      }),
    );
  });
});

describe('codecs', () => {
  it('round-trips startup packets and recognises SSL and cancel requests', () => {
    const params = new Map([
      ['user', 'alice'],
      ['database', 'main'],
    ]);
    const pkt = decodeStartup(encodeStartup(params));
    assert.deepEqual(pkt, { kind: 'startup', protocol: 196608, params });
    assert.deepEqual(decodeStartup(sslRequest()), { kind: 'ssl' });
    assert.deepEqual(decodeStartup(cancelRequest(7, -9)), { kind: 'cancel', pid: 7, secret: -9 });
  });

  it('refuses duplicate startup parameters and protocol 2', () => {
    const dup = frame(
      null,
      new BodyBuilder()
        .int32(196608)
        .cstring('user')
        .cstring('a')
        .cstring('user')
        .cstring('b')
        .byte(0)
        .build(),
    );
    assert.throws(() => decodeStartup(dup), /duplicate startup parameter/);
    const v2 = frame(
      null,
      new BodyBuilder()
        .int32(2 << 16)
        .byte(0)
        .build(),
    );
    assert.throws(
      () => decodeStartup(v2),
      (e) => isWardenError(e, 'FEATURE_NOT_SUPPORTED'),
    );
  });

  it('round-trips Parse and keeps NULL distinct from empty in Bind', () => {
    const p = { name: 's1', sql: 'SELECT $1', paramTypes: [25, 23] };
    const raw = encodeParse(p);
    assert.deepEqual(decodeParse(raw.subarray(5)), p);
    const body = new BodyBuilder()
      .cstring('')
      .cstring('s1')
      .int16(0)
      .int16(2)
      .int32(-1)
      .int32(0)
      .int16(0)
      .build();
    const b = decodeBind(body);
    assert.deepEqual(b.params, [null, Buffer.alloc(0)]);
  });

  it('refuses trailing bytes and truncation', () => {
    assert.throws(() => decodeQuery(Buffer.from('SELECT 1\0x')), /trailing bytes/);
    assert.throws(() => decodeParse(Buffer.from('s\0SELECT 1\0\0\x05')), /truncated Parse/);
  });

  it('encodes errors whose fields cannot be split by embedded NULs', () => {
    const e = errorResponse({ severity: 'ERROR', code: '42501', message: 'a\0b', detail: 'd' });
    const fields = decodeFields(e.subarray(5));
    assert.equal(fields.get('M'), 'a b');
    assert.equal(fields.get('C'), '42501');
    assert.equal(fields.get('D'), 'd');
  });
});
