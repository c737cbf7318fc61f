// Unit and property tests of the MySQL packet framing and codecs: round trips, multi-packet payloads, caps, and hostile bytes.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CAP, MAX_PACKET_PAYLOAD, TYPE } from './constants.js';
import { MysqlWireError, PacketFramer, encodePacket, packet } from './framing.js';
import {
  PayloadReader,
  decodeAuthSwitchRequest,
  decodeBinaryRow,
  decodeChangeUser,
  decodeClientHello,
  decodeColumnDefinition,
  decodeEof,
  decodeErr,
  decodeFieldList,
  decodeHandshakeV10,
  decodeOk,
  decodePrepareOk,
  decodeStmtExecute,
  decodeTextRow,
  encodeAuthMoreData,
  encodeAuthSwitchRequest,
  encodeBinaryRow,
  encodeColumnDefinition,
  encodeEof,
  encodeErr,
  encodeHandshakeResponse41,
  encodeHandshakeV10,
  encodeLenenc,
  encodeOk,
  encodePrepareOk,
  encodeSslRequest,
  encodeStmtExecute,
  encodeTextRow,
  isEofPacket,
  terminatorStatus,
  withStatementId,
  statementIdOf,
} from './codec.js';
import { mysqlErrorFor } from './errors.js';

const CLIENT_CAPS =
  CAP.PROTOCOL_41 |
  CAP.SECURE_CONNECTION |
  CAP.PLUGIN_AUTH |
  CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CAP.CONNECT_WITH_DB |
  CAP.CONNECT_ATTRS |
  CAP.DEPRECATE_EOF;

describe('mysql framing', () => {
  it('splits a stream into packets, whatever the chunking', () => {
    const a = packet(0, Buffer.from([3, 0x41]));
    const b = packet(0, Buffer.from('hello'));
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.length; cut++) {
      const f = new PacketFramer(1024);
      f.push(all.subarray(0, cut));
      const got: Buffer[] = [];
      for (let p = f.next(); p; p = f.next()) got.push(p.payload);
      f.push(all.subarray(cut));
      for (let p = f.next(); p; p = f.next()) got.push(p.payload);
      assert.deepEqual(
        got.map((x) => x.toString('latin1')),
        ['\x03A', 'hello'],
      );
    }
  });

  it('joins 16 MiB continuation packets and ends a multiple of 0xffffff with an empty packet', () => {
    const payload = Buffer.alloc(MAX_PACKET_PAYLOAD, 7);
    const e = encodePacket(5, payload);
    assert.equal(e.data.length, 4 + MAX_PACKET_PAYLOAD + 4);
    assert.equal(e.nextSeq, 7);
    const f = new PacketFramer(MAX_PACKET_PAYLOAD + 10);
    f.push(e.data);
    const p = f.next();
    assert.ok(p);
    assert.equal(p.payload.length, MAX_PACKET_PAYLOAD);
    assert.equal(p.seq, 5);
    assert.equal(p.lastSeq, 6);
    assert.equal(f.next(), null);
  });

  it('refuses a message over the cap as soon as its header is seen', () => {
    const f = new PacketFramer(1024);
    const h = Buffer.alloc(4);
    h.writeUIntLE(2000, 0, 3);
    f.push(h);
    assert.throws(
      () => f.next(),
      (e: unknown) => e instanceof MysqlWireError && e.kind === 'oversized',
    );
  });

  it('refuses out-of-order continuation packets', () => {
    const h1 = Buffer.alloc(4);
    h1.writeUIntLE(MAX_PACKET_PAYLOAD, 0, 3);
    h1[3] = 0;
    const h2 = Buffer.from([1, 0, 0, 9]);
    const f = new PacketFramer(MAX_PACKET_PAYLOAD + 100);
    f.push(Buffer.concat([h1, Buffer.alloc(MAX_PACKET_PAYLOAD), h2, Buffer.from([1])]));
    assert.throws(
      () => f.next(),
      (e: unknown) => e instanceof MysqlWireError && e.kind === 'sequence',
    );
  });

  it('property: random byte streams yield packets or MysqlWireError, never anything else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const f = new PacketFramer(256);
        try {
          for (const c of chunks) {
            f.push(Buffer.from(c));
            for (let p = f.next(); p; p = f.next()) assert.ok(p.payload.length <= 256);
          }
        } catch (e) {
          if (!(e instanceof MysqlWireError)) throw e;
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('mysql codecs', () => {
  it('length-encoded integers round-trip at every width boundary', () => {
    for (const v of [0, 1, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 2 ** 40]) {
      const r = new PayloadReader(encodeLenenc(v));
      assert.equal(r.lenenc(), v);
      assert.equal(r.remaining, 0);
    }
    assert.equal(new PayloadReader(Buffer.from([0xfb])).lenencOrNull(), null);
    assert.throws(() => new PayloadReader(Buffer.from([0xff])).lenenc(), MysqlWireError);
    assert.throws(() => new PayloadReader(Buffer.from([0xfc, 1])).lenenc(), MysqlWireError);
  });

  it('handshake v10 round-trips', () => {
    const scramble = Buffer.from('abcdefghijklmnopqrst');
    const h = {
      serverVersion: '8.0.40-Warden',
      connectionId: 1234,
      authPluginData: scramble,
      capabilities: CLIENT_CAPS | CAP.SSL,
      charset: 45,
      status: 2,
      authPluginName: 'caching_sha2_password',
    };
    const d = decodeHandshakeV10(encodeHandshakeV10(h));
    assert.deepEqual(
      { ...d, authPluginData: d.authPluginData.toString() },
      { ...h, authPluginData: 'abcdefghijklmnopqrst' },
    );
  });

  it('handshake response 41 round-trips with attributes, database and plugin', () => {
    const r = {
      capabilities: CLIENT_CAPS,
      maxPacketSize: 1 << 24,
      charset: 45,
      username: 'alice',
      authResponse: Buffer.alloc(32, 9),
      database: 'shop',
      authPluginName: 'caching_sha2_password',
      attributes: new Map([
        ['_client_name', 'libmariadb'],
        ['program_name', 'mysql'],
      ]),
    };
    const d = decodeClientHello(encodeHandshakeResponse41(r));
    assert.equal(d.kind, 'response');
    if (d.kind !== 'response') return;
    assert.equal(d.username, 'alice');
    assert.equal(d.database, 'shop');
    assert.equal(d.authPluginName, 'caching_sha2_password');
    assert.deepEqual(d.authResponse, r.authResponse);
    assert.deepEqual([...d.attributes], [...r.attributes]);
  });

  it('a 32-byte SSL request is recognised; a pre-4.1 client is refused', () => {
    const d = decodeClientHello(encodeSslRequest(CLIENT_CAPS, 45));
    assert.equal(d.kind, 'ssl');
    const old = encodeSslRequest(CLIENT_CAPS, 45);
    old.writeUInt32LE(CAP.SSL, 0);
    assert.throws(() => decodeClientHello(old), MysqlWireError);
  });

  it('OK, ERR and EOF round-trip; EOF is told from rows by length', () => {
    const ok = decodeOk(
      encodeOk({ affectedRows: 300, lastInsertId: 70000, status: 0x0a, warnings: 1, info: 'x' }),
    );
    assert.deepEqual(ok, { affectedRows: 300, lastInsertId: 70000, status: 0x0a, warnings: 1, info: 'x' });
    assert.deepEqual(decodeErr(encodeErr({ errno: 1142, sqlstate: '42000', message: 'denied by rule r1' })), {
      errno: 1142,
      sqlstate: '42000',
      message: 'denied by rule r1',
    });
    // A bad SQLSTATE never reaches the wire.
    assert.equal(decodeErr(encodeErr({ errno: 1, sqlstate: 'bad', message: '' })).sqlstate, 'HY000');
    const eof = encodeEof({ warnings: 0, status: 8 });
    assert.ok(isEofPacket(eof));
    assert.deepEqual(decodeEof(eof), { warnings: 0, status: 8 });
    assert.equal(terminatorStatus(eof), 8);
    assert.equal(terminatorStatus(encodeOk({ header: 0xfe, status: 0x22 })), 0x22);
    assert.ok(!isEofPacket(Buffer.concat([Buffer.from([0xfe]), Buffer.alloc(9)])));
  });

  it('auth switch and more-data messages', () => {
    const s = decodeAuthSwitchRequest(
      encodeAuthSwitchRequest('mysql_native_password', Buffer.from('scramble\0')),
    );
    assert.deepEqual(s, { plugin: 'mysql_native_password', data: Buffer.from('scramble') });
    assert.deepEqual(encodeAuthMoreData(Buffer.from([3])), Buffer.from([1, 3]));
  });

  it('column definitions, text rows and binary rows round-trip', () => {
    const c = decodeColumnDefinition(
      encodeColumnDefinition({
        name: 'ssn',
        schema: 'shop',
        table: 'c',
        orgTable: 'customers',
        type: TYPE.LONG,
      }),
    );
    assert.equal(c.name, 'ssn');
    assert.equal(c.orgTable, 'customers');
    assert.equal(c.type, TYPE.LONG);
    assert.deepEqual(decodeTextRow(encodeTextRow(['a', null, '']), 3), [
      Buffer.from('a'),
      null,
      Buffer.alloc(0),
    ]);
    assert.throws(() => decodeTextRow(encodeTextRow(['a', 'b']), 1), MysqlWireError);
    const int = Buffer.alloc(4);
    int.writeInt32LE(-5);
    const str = Buffer.concat([encodeLenenc(3), Buffer.from('abc')]);
    const row = encodeBinaryRow([int, null, str]);
    assert.deepEqual(decodeBinaryRow(row, [TYPE.LONG, TYPE.LONG, TYPE.VAR_STRING]), [int, null, str]);
  });

  it('COM_STMT_EXECUTE round-trips; a later execute reuses the bound types', () => {
    const id = Buffer.alloc(8);
    id.writeBigInt64LE(42n);
    const e = {
      statementId: 7,
      flags: 0,
      iterations: 1,
      newParamsBound: true,
      params: [
        { type: TYPE.LONGLONG, unsigned: false, value: id },
        { type: TYPE.VAR_STRING, unsigned: false, value: null },
        {
          type: TYPE.VAR_STRING,
          unsigned: false,
          value: Buffer.concat([encodeLenenc(2), Buffer.from('hi')]),
        },
      ],
    };
    const d = decodeStmtExecute(encodeStmtExecute(e), 3, undefined);
    assert.deepEqual(d, e);
    const again = decodeStmtExecute(encodeStmtExecute({ ...e, newParamsBound: false }), 3, d.params);
    assert.deepEqual(again.params, e.params);
    assert.throws(
      () => decodeStmtExecute(encodeStmtExecute({ ...e, newParamsBound: false }), 3, undefined),
      MysqlWireError,
    );
    assert.equal(statementIdOf(withStatementId(encodeStmtExecute(e), 99)), 99);
  });

  it('prepare OK, field list and change user bodies', () => {
    assert.deepEqual(
      decodePrepareOk(encodePrepareOk({ statementId: 5, numColumns: 2, numParams: 1, warnings: 0 })),
      {
        statementId: 5,
        numColumns: 2,
        numParams: 1,
        warnings: 0,
      },
    );
    assert.deepEqual(decodeFieldList(Buffer.from('\x04orders\0%')), { table: 'orders', wildcard: '%' });
    assert.deepEqual(decodeChangeUser(Buffer.from('\x11bob\0rest')), { user: 'bob' });
  });

  it('maps Warden SQLSTATEs to MySQL errnos', () => {
    assert.deepEqual(mysqlErrorFor('42501'), { errno: 1142, sqlstate: '42000' });
    assert.deepEqual(mysqlErrorFor('42601'), { errno: 1064, sqlstate: '42000' });
    assert.deepEqual(mysqlErrorFor('WA001'), { errno: 1644, sqlstate: 'WA001' });
    assert.deepEqual(mysqlErrorFor('58030'), { errno: 1105, sqlstate: 'HY000' });
  });

  it('property: every decoder, fed random or mutated bytes, returns or throws MysqlWireError only', () => {
    const valid = [
      encodeHandshakeResponse41({
        capabilities: CLIENT_CAPS,
        maxPacketSize: 1 << 24,
        charset: 45,
        username: 'u',
        authResponse: Buffer.alloc(20, 1),
        database: 'd',
        authPluginName: 'mysql_native_password',
        attributes: new Map([['a', 'b']]),
      }),
      encodeHandshakeV10({
        serverVersion: 'v',
        connectionId: 1,
        authPluginData: Buffer.alloc(20, 65),
        capabilities: CLIENT_CAPS,
        charset: 45,
        status: 2,
        authPluginName: 'caching_sha2_password',
      }),
      encodeOk({ affectedRows: 1 }),
      encodeErr({ errno: 1, sqlstate: '42000', message: 'm' }),
      encodeColumnDefinition({ name: 'c' }),
      encodeStmtExecute({
        statementId: 1,
        flags: 0,
        iterations: 1,
        newParamsBound: true,
        params: [{ type: TYPE.VAR_STRING, unsigned: false, value: Buffer.from([1, 65]) }],
      }),
    ];
    const decoders: ((b: Buffer) => unknown)[] = [
      decodeClientHello,
      decodeHandshakeV10,
      decodeOk,
      decodeErr,
      decodeEof,
      decodeColumnDefinition,
      (b) => decodeTextRow(b, 3),
      (b) => decodeBinaryRow(b, [TYPE.LONG, TYPE.VAR_STRING, TYPE.DATETIME]),
      (b) => decodeStmtExecute(b, 1, undefined),
      (b) =>
        decodeStmtExecute(b, 2, [
          { type: TYPE.TIME, unsigned: false },
          { type: TYPE.BLOB, unsigned: false },
        ]),
      decodePrepareOk,
      decodeAuthSwitchRequest,
      decodeFieldList,
      decodeChangeUser,
      statementIdOf,
    ];
    const run = (b: Buffer): void => {
      for (const d of decoders) {
        try {
          d(b);
        } catch (e) {
          if (!(e instanceof MysqlWireError)) throw e;
        }
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (a) => run(Buffer.from(a))),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.nat(),
        (base, flips, cut) => {
          const b = Buffer.from(base);
          for (const [i, v] of flips) b[i % b.length] = v;
          run(b);
          run(b.subarray(0, cut % (b.length + 1)));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
