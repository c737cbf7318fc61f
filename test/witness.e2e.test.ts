// End to end: a gateway submits its signed checkpoints to two `warden witness` processes over real HTTP; cosignatures are verified, kept and required by `warden audit verify --witnesses N`; a witness that is down does not stop statements, is reported, and catches up once it is back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startTestGateway, type TestGateway } from './helpers/warden.js';
import type { GatewayLogLine } from '../src/main.js';
import { loadOrCreateLogKey } from '../src/audit/log.js';
import { generateWitnessKey, cosignatureVerifier } from '../src/audit/witness.js';
import { openNote, parseVerifierKey } from '../src/audit/note.js';
import { openCheckpoint } from '../src/audit/checkpoint.js';
import { COSIGNATURES_DIR } from '../src/audit/witness-publisher.js';
import { createVerifier } from '../src/identity/scram.js';
import YAML from 'yaml';

const ORIGIN = 'witness.e2e/log';
const ALICE = 'alice-witness-pw';
const CLI = join(process.cwd(), 'src/cli/main.ts');

async function until<T>(
  what: string,
  f: () => T | undefined | Promise<T | undefined>,
  ms = 20_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface WitnessProc {
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
}

/** Starts `warden witness serve` as its own process; resolves with its URL once it listens. */
async function startWitness(dir: string, name: string, logVkeyFile: string, port = 0): Promise<WitnessProc> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      CLI,
      'witness',
      'serve',
      '--key',
      join(dir, `${name}.skey`),
      '--log-key',
      logVkeyFile,
      '--state',
      join(dir, `${name}.state`),
      '--listen',
      `127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      text += `${l}\n`;
      const m = /^listening (\S+) /.exec(l);
      if (m !== null) resolve(m[1]!);
    });
    void exited.then((c) => reject(new Error(`witness ${name} exited early (${c}): ${text}`)));
  });
  return { child, url, exited };
}

async function stopWitness(w: WitnessProc | undefined): Promise<void> {
  if (w === undefined || w.child.exitCode !== null) return;
  w.child.kill('SIGTERM');
  await w.exited;
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Runs `warden audit ...` as a process. */
function cli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', CLI, 'audit', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => resolve({ code, out, err }));
  });
}

describe('witness submission from the gateway (end to end)', () => {
  let dir: string;
  let auditDir: string;
  let gw: TestGateway | undefined;
  const procs: WitnessProc[] = [];
  let w3: WitnessProc | undefined;
  let w3Port: number;
  const lines: GatewayLogLine[] = [];
  const keys: Record<string, { skey: string; vkey: string }> = {};
  let logVkeyFile: string;
  let auditSection: {
    dir: string;
    origin: string;
    key_file: string;
    checkpoint_interval_ms: number;
    witnesses: { url: string; key: string }[];
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-witness-e2e-'));
    auditDir = join(dir, 'audit');
    // The log key exists before the gateway starts, so the witnesses can be told to trust it.
    const signer = await loadOrCreateLogKey(join(dir, 'log.key'), ORIGIN);
    logVkeyFile = join(dir, 'log.vkey');
    writeFileSync(logVkeyFile, `${signer.verifierKey}\n`);
    for (const n of ['w1', 'w2', 'w3']) {
      keys[n] = generateWitnessKey(`witness.e2e/${n}`);
      writeFileSync(join(dir, `${n}.skey`), `${keys[n].skey}\n`, { mode: 0o600 });
      writeFileSync(join(dir, `${n}.vkey`), `${keys[n].vkey}\n`);
    }
    procs.push(await startWitness(dir, 'w1', logVkeyFile), await startWitness(dir, 'w2', logVkeyFile));
    w3Port = await freePort(); // w3 is configured but down at first
    auditSection = {
      dir: auditDir,
      origin: ORIGIN,
      key_file: join(dir, 'log.key'),
      checkpoint_interval_ms: 100,
      witnesses: [
        { url: procs[0]!.url, key: keys.w1!.vkey },
        { url: procs[1]!.url, key: keys.w2!.vkey },
        { url: `http://127.0.0.1:${w3Port}`, key: keys.w3!.vkey },
      ],
    };
    gw = await startTestGateway({
      targets: [{ port: 5432, database: 'postgres', user: 'postgres' }],
      users: [{ name: 'alice', password: ALICE }],
      audit: auditSection,
      gatewayOptions: { log: (l) => lines.push(l) },
    });
  });

  after(async () => {
    await gw?.stop();
    for (const p of procs) await stopWitness(p);
    await stopWitness(w3);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('cosigns each new checkpoint at both live witnesses; the dead one is reported but blocks nothing', async () => {
    const g = gw!;
    const c = await g.connect('alice', ALICE);
    try {
      for (let i = 0; i < 20; i++) {
        const r = await c.query('SELECT $1::int + 1 AS n', [i]);
        assert.equal(r.rows[0].n, i + 1);
      }
    } finally {
      await c.end();
    }
    const size = g.gateway.audit!.size;
    assert.ok(size >= 20, `the log holds the statements (${size})`);
    const status = await until('both live witnesses cosigned; the dead one failed', () => {
      const s = g.gateway.witnessStatus();
      const live = s.filter((x) => x.name !== 'witness.e2e/w3');
      const failed = s.some((x) => x.name === 'witness.e2e/w3' && x.consecutiveFailures >= 1);
      return failed && live.length === 2 && live.every((x) => x.cosignedSize >= size) ? s : undefined;
    });
    const dead = status.find((x) => x.name === 'witness.e2e/w3')!;
    assert.equal(dead.cosignedSize, 0);
    assert.ok(dead.consecutiveFailures >= 1, 'the dead witness counts failures');
    assert.match(dead.lastError ?? '', /fetch failed|ECONNREFUSED/);
    assert.ok(dead.nextRetryAt !== undefined, 'a retry is scheduled');
    assert.ok(
      lines.some(
        (l) =>
          l.level === 'warn' && l.msg.includes('witness submission failed') && l.witness === 'witness.e2e/w3',
      ),
      'the failure is logged',
    );
    assert.ok(
      lines.some((l) => l.msg === 'checkpoint cosigned by witness' && l.witness === 'witness.e2e/w1'),
    );

    // The kept cosigned checkpoints verify under the log key and the configured witness key, and match the log.
    const files = readdirSync(join(auditDir, COSIGNATURES_DIR)).filter((f) => f.endsWith('.cosigned'));
    assert.equal(files.length, 2, files.join(', '));
    for (const n of ['w1', 'w2']) {
      const f = files.find((x) => x.startsWith(`witness.e2e_${n}+`));
      assert.ok(f, `a file for ${n}`);
      const note = readFileSync(join(auditDir, COSIGNATURES_DIR, f));
      const wv = cosignatureVerifier(keys[n]!.vkey);
      const lv = parseVerifierKey(readFileSync(logVkeyFile, 'utf8').trim());
      const opened = openNote(note, [lv, wv]);
      assert.equal(opened.signatures.length, 2, 'log signature and cosignature');
      const cp = openCheckpoint(note, { origin: ORIGIN, verifiers: [lv] }).checkpoint;
      assert.ok(cp.size >= size);
      assert.deepEqual(Buffer.from(cp.root), Buffer.from(g.gateway.audit!.root(cp.size)));
    }
  });

  it('warden audit verify --witnesses N requires N distinct cosigning witnesses', async () => {
    const base = ['verify', '--dir', auditDir, '--key', logVkeyFile, '--fast'];
    const two = await cli([
      ...base,
      '--witness-key',
      join(dir, 'w1.vkey'),
      '--witness-key',
      join(dir, 'w2.vkey'),
      '--witness-key',
      join(dir, 'w3.vkey'),
      '--witnesses',
      '2',
    ]);
    assert.equal(two.code, 0, two.out + two.err);
    assert.match(
      two.out,
      /^OK \d+ entries.*cosigned by witness\.e2e\/w1 at size \d+, witness\.e2e\/w2 at size \d+/,
    );
    const three = await cli([
      ...base,
      '--witness-key',
      join(dir, 'w1.vkey'),
      '--witness-key',
      join(dir, 'w2.vkey'),
      '--witness-key',
      join(dir, 'w3.vkey'),
      '--witnesses',
      '3',
    ]);
    assert.equal(three.code, 1, three.out + three.err);
    assert.match(
      three.out,
      /FAIL witness-cosignature: 2 of 3 required witness\(es\) cosigned; not cosigned by witness\.e2e\/w3/,
    );

    // A tampered cosignature (one byte of w1's signature flipped) is caught, not skipped.
    const f = readdirSync(join(auditDir, COSIGNATURES_DIR)).find((x) => x.startsWith('witness.e2e_w1+'))!;
    const copy = join(dir, 'tampered.cosigned');
    const text = readFileSync(join(auditDir, COSIGNATURES_DIR, f), 'utf8');
    const sigLine = text
      .trimEnd()
      .split('\n')
      .find((l) => l.startsWith('— witness.e2e/w1 '))!;
    const b = Buffer.from(sigLine.slice('— witness.e2e/w1 '.length), 'base64');
    b[b.length - 1]! ^= 0x01;
    writeFileSync(copy, text.replace(sigLine, `— witness.e2e/w1 ${b.toString('base64')}`));
    const bad = await cli([...base, '--witness-key', join(dir, 'w1.vkey'), '--cosigned', copy]);
    assert.equal(bad.code, 1, bad.out + bad.err);
    assert.match(bad.out, /FAIL witness-cosignature: .*invalid signature by witness\.e2e\/w1/);
  });

  it('a witness that comes back is caught up by the retries', async () => {
    const g = gw!;
    w3 = await startWitness(dir, 'w3', logVkeyFile, w3Port);
    const c = await g.connect('alice', ALICE);
    try {
      await c.query('SELECT 1');
    } finally {
      await c.end();
    }
    // Retries back off (1 s, 2 s, 4 s, ...): generous time.
    const s = await until(
      'the returning witness cosigned',
      () => g.gateway.witnessStatus().find((x) => x.name === 'witness.e2e/w3' && x.cosignedSize > 0),
      60_000,
    );
    assert.equal(s.consecutiveFailures, 0);
    assert.ok(s.totalFailures >= 1);
    const all = await cli([
      'verify',
      '--dir',
      auditDir,
      '--key',
      logVkeyFile,
      '--witness-key',
      join(dir, 'w1.vkey'),
      '--witness-key',
      join(dir, 'w2.vkey'),
      '--witness-key',
      join(dir, 'w3.vkey'),
    ]);
    assert.equal(all.code, 0, all.out + all.err);
    assert.match(all.out, /witness\.e2e\/w3 at size/);

    // The gateway's own configuration file supplies the folder, origin, log key and witness keys: by default
    // every configured witness must have cosigned.
    const cfgFile = join(dir, 'warden.yaml');
    writeFileSync(
      cfgFile,
      YAML.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        state_dir: join(dir, 'state'),
        audit: auditSection,
        users: [
          {
            name: 'alice',
            kind: 'human',
            groups: [],
            scram_verifier: createVerifier(ALICE),
            logins: { main: 'app' },
          },
        ],
        targets: [
          {
            name: 'main',
            host: '127.0.0.1',
            port: 5432,
            database: 'postgres',
            environment: 'test',
            logins: { app: { user: 'postgres' } },
            policy: 'allow_all',
          },
        ],
      }),
    );
    const byConfig = await cli(['verify', '--config', cfgFile, '--fast']);
    assert.equal(byConfig.code, 0, byConfig.out + byConfig.err);
    assert.match(
      byConfig.out,
      /for witness\.e2e\/log, cosigned by witness\.e2e\/w1 at size \d+, witness\.e2e\/w2 at size \d+, witness\.e2e\/w3 at size \d+/,
    );
  });
});
