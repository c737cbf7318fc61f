// Tests for reading secrets from files and the environment, and for constant-time comparison.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isWardenError } from './errors.js';
import { constantTimeEqual, readSecret } from './secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-secrets-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'hunter2-Sup3r';

function secretFile(name: string, content: string, mode: number): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

function assertConfigError(fn: () => unknown, mustMention: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isWardenError(e, 'CONFIG_INVALID'));
    assert.ok(!e.message.includes(SECRET), 'the message must not leak the secret');
    for (const m of mustMention)
      assert.ok(e.message.includes(m), `message should mention ${m}: ${e.message}`);
    return true;
  });
}

void test('reads a private file, removing exactly one trailing newline', () => {
  assert.equal(readSecret({ file: secretFile('a', `${SECRET}\n`, 0o600) }, 'x'), SECRET);
  assert.equal(readSecret({ file: secretFile('b', `${SECRET}\n\n`, 0o400) }, 'x'), `${SECRET}\n`);
  assert.equal(readSecret({ file: secretFile('c', `${SECRET}\r\n`, 0o600) }, 'x'), SECRET);
  assert.equal(readSecret({ file: secretFile('d', ` ${SECRET} `, 0o600) }, 'x'), ` ${SECRET} `);
});

void test('refuses files readable or writable by group or others, naming the file and chmod 600', () => {
  for (const mode of [0o640, 0o604, 0o620, 0o602, 0o644, 0o660, 0o666, 0o610]) {
    const p = secretFile(`m${mode.toString(8)}`, SECRET, mode);
    assertConfigError(
      () => readSecret({ file: p }, 'upstream password'),
      [p, 'chmod 600', 'upstream password'],
    );
  }
});

void test('follows symbolic links but checks the target', () => {
  const target = secretFile('target', SECRET, 0o600);
  const link = join(dir, 'link');
  symlinkSync(target, link);
  assert.equal(readSecret({ file: link }, 'x'), SECRET);
  chmodSync(target, 0o644);
  assertConfigError(() => readSecret({ file: link }, 'x'), ['chmod 600']);
});

void test('missing files, directories and empty secrets are refused', () => {
  assertConfigError(() => readSecret({ file: join(dir, 'nope') }, 'x'), ['nope']);
  const sub = join(dir, 'sub');
  mkdirSync(sub, { mode: 0o700 });
  assertConfigError(() => readSecret({ file: sub }, 'x'), ['regular file']);
  assertConfigError(() => readSecret({ file: secretFile('empty', '\n', 0o600) }, 'x'), ['empty']);
});

void test('reads an environment variable; refuses unset, empty and badly named ones', () => {
  const env = { WARDEN_PW: SECRET, EMPTY: '' };
  assert.equal(readSecret({ env: 'WARDEN_PW' }, 'x', env), SECRET);
  assertConfigError(() => readSecret({ env: 'MISSING' }, 'x', env), ['MISSING']);
  assertConfigError(() => readSecret({ env: 'EMPTY' }, 'x', env), ['EMPTY']);
  assertConfigError(() => readSecret({ env: 'BAD NAME' }, 'x', env), ['BAD NAME']);
});

void test('exactly one of file or env', () => {
  assertConfigError(() => readSecret({}, 'the thing'), ['the thing', 'exactly one']);
  assertConfigError(
    () => readSecret({ file: join(dir, 'a'), env: 'WARDEN_PW' }, 'x', { WARDEN_PW: SECRET }),
    ['exactly one'],
  );
});

void test('constantTimeEqual', () => {
  assert.equal(constantTimeEqual('abc', 'abc'), true);
  assert.equal(constantTimeEqual('abc', Buffer.from('abc')), true);
  assert.equal(constantTimeEqual('abc', 'abd'), false);
  assert.equal(constantTimeEqual('abc', 'abcd'), false);
  assert.equal(constantTimeEqual('', ''), true);
  assert.equal(constantTimeEqual('', Buffer.alloc(0)), true);
  assert.equal(constantTimeEqual('\u00e9', Buffer.from([0xc3, 0xa9])), true);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
      const ba = Buffer.from(a);
      const bb = Buffer.from(b);
      assert.equal(constantTimeEqual(ba, bb), ba.equals(bb));
      assert.equal(constantTimeEqual(ba, Buffer.from(ba)), true);
    }),
  );
});

void test('constantTimeEqual takes as long whether the first or the last byte differs', () => {
  // A naive comparison returns at the first difference (a ~million-fold gap here); hashing both sides does not.
  const a = Buffer.alloc(1 << 20, 7);
  const early = Buffer.from(a);
  early[0] = 8;
  const late = Buffer.from(a);
  late[late.length - 1] = 8;
  const time = (b: Buffer): number => {
    const samples: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t = process.hrtime.bigint();
      constantTimeEqual(a, b);
      samples.push(Number(process.hrtime.bigint() - t));
    }
    return samples.sort((x, y) => x - y)[7] as number;
  };
  time(early); // warm up
  const e = time(early);
  const l = time(late);
  // Generous: a shared, loaded machine. The naive early-exit compare would be orders of magnitude apart.
  assert.ok(Math.max(e, l) / Math.min(e, l) < 4, `median ${e} ns vs ${l} ns`);
});
