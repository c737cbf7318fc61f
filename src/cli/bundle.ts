// CLI commands for signed configuration: `warden keygen`, `warden bundle <propose|sign|verify|diff|status|root-create|activate>`, `warden verify-install`.
// @see docs/bundles.md

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { WardenError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { loadBundleTargets } from '../config/gateway-config.js';
import {
  BUNDLE_PAYLOAD_TYPE,
  ROOT_PAYLOAD_TYPE,
  bundleStatus,
  createRoot,
  diffBundles,
  generateKeyPair,
  isBundleError,
  parseEnvelope,
  parsePrivateKey,
  parsePublicKey,
  proposeBundle,
  readBundle,
  readPolicyFolder,
  readRoot,
  serializeEnvelope,
  signEnvelope,
  verifyBundleForActivation,
  verifyInstall,
  verifyRoot,
  installBundleFile,
  readActivationState,
  readRootFile,
  verifyForTarget,
} from '../bundle/index.js';
import type { Envelope, RootDocument } from '../bundle/index.js';

export interface CliCommand {
  readonly about: string;
  run(argv: string[]): Promise<number>;
}

const DAY_MS = 86_400_000;

/** Runs a synchronous command body as the async `run` the command table expects; throws become rejections. */
const sync =
  (body: (argv: string[]) => number) =>
  (argv: string[]): Promise<number> =>
    new Promise((resolve) => resolve(body(argv)));

function usageError(message: string): never {
  throw new WardenError('CONFIG_INVALID', message);
}

function need(v: string | undefined, flag: string): string {
  if (v === undefined || v === '') usageError(`--${flag} is required`);
  return v;
}

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1) usageError(`expected exactly one ${what}`);
  return positionals[0]!;
}

const readEnvelope = (path: string): Envelope => parseEnvelope(readFileSync(path));

/** The pinned root: a root envelope that must carry k signatures by its own approvers. */
const readTrustedRoot = (path: string): RootDocument => verifyRoot(readEnvelope(path));

/** A private signing key: refused when group- or world-accessible (readSecret); never printed. */
const readKey = (path: string) => parsePrivateKey(readSecret({ file: path }, `signing key ${path}`));

/** Writes a new file, refusing to replace an existing one. */
function writeNew(path: string, text: string, mode = 0o644): void {
  writeFileSync(path, text, { flag: 'wx', mode });
}

/** Replaces a file atomically (write beside, then rename). */
function replaceFile(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { flag: 'wx', mode: 0o644 });
  renameSync(tmp, path);
}

function readSettings(path: string): Record<string, unknown> {
  const v: unknown = YAML.parse(readFileSync(path, 'utf8'));
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    usageError(`${path} does not hold a settings object`);
  return v as Record<string, unknown>;
}

/** Reports a refusal in words and returns exit status 1; other errors propagate. */
function refusal(e: unknown): number {
  if (!isBundleError(e)) throw e;
  console.error(`refused (${e.reason}): ${e.message}`);
  return 1;
}

const propose: CliCommand = {
  about:
    'build a bundle from a policy folder and sign it as author: --policy DIR --key AUTHOR.key --out FILE [--previous BUNDLE | --origin O] [--version N] [--settings FILE] [--expires-in DAYS]',
  run: sync((argv) => {
    const { values } = parseArgs({
      args: argv,
      options: {
        policy: { type: 'string' },
        key: { type: 'string' },
        out: { type: 'string' },
        origin: { type: 'string' },
        previous: { type: 'string' },
        version: { type: 'string' },
        settings: { type: 'string' },
        'expires-in': { type: 'string' },
      },
    });
    const out = need(values.out, 'out');
    if (existsSync(out)) usageError(`${out} exists; refusing to overwrite it`);
    const prev = values.previous === undefined ? undefined : readBundle(readEnvelope(values.previous));
    const origin =
      values.origin ?? prev?.payload.origin ?? usageError('--origin (or --previous) is required');
    if (prev !== undefined && prev.payload.origin !== origin)
      usageError(`--origin ${origin} differs from the previous bundle's ${prev.payload.origin}`);
    const version = values.version !== undefined ? Number(values.version) : (prev?.payload.version ?? 0) + 1;
    if (!Number.isSafeInteger(version) || version < 1) usageError('--version must be a positive integer');
    const days = Number(values['expires-in'] ?? '90');
    if (!Number.isFinite(days) || days <= 0 || days > 3650) usageError('--expires-in must be 1 to 3650 days');
    const created = new Date();
    let env: Envelope;
    try {
      env = proposeBundle({
        origin,
        version,
        previous: prev?.hash ?? null,
        author: readKey(need(values.key, 'key')),
        policy: readPolicyFolder(need(values.policy, 'policy')),
        ...(values.settings !== undefined ? { settings: readSettings(values.settings) } : {}),
        created,
        expires: new Date(created.getTime() + Math.round(days * DAY_MS)),
      });
    } catch (e) {
      return refusal(e);
    }
    writeNew(out, serializeEnvelope(env));
    const { hash } = readBundle(env);
    console.log(`proposed bundle ${origin} version ${version} (${hash}) in ${out}`);
    return 0;
  }),
};

const sign: CliCommand = {
  about:
    'add an approver signature to a bundle or root file, in place: sign FILE --key APPROVER.key [--root ROOT]',
  run: sync((argv) => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { key: { type: 'string' }, root: { type: 'string' } },
    });
    const file = one(positionals, 'bundle or root file');
    const env = readEnvelope(file);
    const key = readKey(need(values.key, 'key'));
    if (env.payloadType === BUNDLE_PAYLOAD_TYPE) {
      const { payload } = readBundle(env);
      if (parsePublicKey(payload.author).publicKeyHex === key.publicKeyHex)
        usageError('you are the author of this bundle; an author signature never counts as an approval');
    } else if (env.payloadType === ROOT_PAYLOAD_TYPE) {
      readRoot(env);
    } else usageError(`unknown payload type ${env.payloadType}`);
    if (values.root !== undefined) {
      const root = readTrustedRoot(values.root);
      if (!root.approvers.some((k) => k.publicKeyHex === key.publicKeyHex))
        usageError(`${key.keyId} is not an approver of the root`);
    }
    replaceFile(file, serializeEnvelope(signEnvelope(env, key)));
    console.log(`signed ${file} as ${key.keyId}`);
    return 0;
  }),
};

const verify: CliCommand = {
  about:
    'check a bundle against the root (and the running bundle), or a new root against the current one: verify FILE [--root ROOT] [--running BUNDLE]',
  run: sync((argv) => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { root: { type: 'string' }, running: { type: 'string' } },
    });
    const file = one(positionals, 'bundle or root file');
    try {
      const env = readEnvelope(file);
      if (env.payloadType === ROOT_PAYLOAD_TYPE) {
        const trusted = values.root === undefined ? undefined : readTrustedRoot(values.root);
        const root = verifyRoot(env, trusted);
        console.log(
          `verified root ${root.origin} version ${root.version} (${root.hash}): ${root.threshold} of ${root.approvers.length} approvers${trusted ? `, rotation from version ${trusted.version}` : ''}`,
        );
        return 0;
      }
      const root = readTrustedRoot(need(values.root, 'root'));
      const running = values.running === undefined ? undefined : readBundle(readEnvelope(values.running));
      const v = verifyBundleForActivation(
        env,
        root,
        running === undefined ? {} : { current: { version: running.payload.version, hash: running.hash } },
      );
      console.log(
        `verified bundle ${v.payload.origin} version ${v.payload.version} (${v.hash}), author ${v.author.keyId}, approved by ${v.approvers.map((k) => k.keyId).join(', ')}; expires ${v.payload.expires}`,
      );
      return 0;
    } catch (e) {
      return refusal(e);
    }
  }),
};

const diff: CliCommand = {
  about: 'show what a bundle changes against the running one (unified diff): diff BUNDLE [--running BUNDLE]',
  run: sync((argv) => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { running: { type: 'string' } },
    });
    const next = readBundle(readEnvelope(one(positionals, 'bundle file'))).payload;
    const running =
      values.running === undefined ? undefined : readBundle(readEnvelope(values.running)).payload;
    console.log(
      `# version ${running?.version ?? '(none)'} -> ${next.version}; author ${parsePublicKey(next.author).keyId}; expires ${next.expires}`,
    );
    const text = diffBundles(running, next);
    console.log(text === '' ? '# no change' : text.replace(/\n$/, ''));
    return 0;
  }),
};

const status: CliCommand = {
  about: 'show the signatures a bundle holds and those still missing: status BUNDLE --root ROOT',
  run: sync((argv) => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { root: { type: 'string' } },
    });
    const env = readEnvelope(one(positionals, 'bundle file'));
    const s = bundleStatus(env, readTrustedRoot(need(values.root, 'root')));
    const lines = [
      `bundle ${s.payload.origin} version ${s.payload.version} (${s.hash})`,
      `author ${parsePublicKey(s.payload.author).keyId}: ${s.authorSigned ? 'signed' : 'NOT signed'}`,
      ...s.approvers.map(
        (a) => `  ${a.signed ? '[x]' : '[ ]'} ${a.key.keyId}${a.isAuthor ? ' (author: does not count)' : ''}`,
      ),
      `settings ${Object.keys(s.payload.settings).length === 0 ? '(none: gateway defaults)' : JSON.stringify(s.payload.settings)}`,
      `expires ${s.payload.expires}`,
      `approvals ${s.counted} of ${s.threshold} required${s.counted >= s.threshold && s.authorSigned ? ' - enough' : ` - ${Math.max(0, s.threshold - s.counted)} missing`}`,
      ...(s.invalid.length > 0 ? [`invalid signatures: ${s.invalid.join(', ')}`] : []),
    ];
    console.log(lines.join('\n'));
    return 0;
  }),
};

const rootCreate: CliCommand = {
  about:
    'write an unsigned root document: root-create --origin O --threshold K --approver A.pub... [--author D.pub...] [--version N] [--expires RFC3339] --out FILE',
  run: sync((argv) => {
    const { values } = parseArgs({
      args: argv,
      options: {
        origin: { type: 'string' },
        threshold: { type: 'string' },
        approver: { type: 'string', multiple: true },
        author: { type: 'string', multiple: true },
        version: { type: 'string' },
        expires: { type: 'string' },
        out: { type: 'string' },
      },
    });
    const out = need(values.out, 'out');
    const env = createRoot({
      ...(values.expires !== undefined ? { expires: values.expires } : {}),
      origin: need(values.origin, 'origin'),
      version: Number(values.version ?? '1'),
      threshold: Number(need(values.threshold, 'threshold')),
      approvers: (values.approver ?? []).map((p) => readFileSync(p, 'utf8')),
      authors: (values.author ?? []).map((p) => readFileSync(p, 'utf8')),
    });
    writeNew(out, serializeEnvelope(env));
    console.log(`wrote unsigned root to ${out}; each approver now runs: warden bundle sign ${out} --key KEY`);
    return 0;
  }),
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Reads the pid `warden serve` wrote; undefined when there is no pid file. */
function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isSafeInteger(pid) || pid <= 1) usageError(`${file} does not hold a process id`);
  return pid;
}

/**
 * `warden bundle activate --config warden.yaml --bundle FILE`: verifies FILE as the running gateway will (pinned
 * root, remembered state), installs it at the target's configured bundle path (write-then-rename), then sends
 * SIGHUP to the gateway (`<state_dir>/warden.pid`, or --pid) and waits until the gateway's state file names the new
 * bundle. A refused bundle is never installed.
 */
const activate: CliCommand = {
  about:
    'verify a bundle, install it at the configured path and tell the running gateway (SIGHUP): activate --config warden.yaml --bundle FILE [--target NAME] [--pid PID] [--wait-ms MS]',
  run: async (argv) => {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        bundle: { type: 'string' },
        target: { type: 'string' },
        pid: { type: 'string' },
        'wait-ms': { type: 'string' },
      },
    });
    const cfg = loadBundleTargets(need(values.config, 'config'));
    const file = need(values.bundle, 'bundle');
    let name = values.target;
    if (name === undefined) {
      if (cfg.targets.size !== 1)
        usageError(
          cfg.targets.size === 0
            ? 'no target runs from a bundle'
            : 'several targets run from bundles: --target',
        );
      name = [...cfg.targets.keys()][0]!;
    }
    const t = cfg.targets.get(name) ?? usageError(`target "${name}" does not run from a bundle`);
    let version: number;
    let hash: string;
    try {
      const env = readEnvelope(file);
      const state = readActivationState(t.stateFile);
      const current = state.current;
      const v = verifyForTarget(env, readRootFile(t.root), current);
      ({ version } = v.payload);
      ({ hash } = v);
      if (current !== undefined && current.version === version && current.hash === hash) {
        console.log(`bundle version ${version} (${hash}) is already active on target ${name}`);
        return 0;
      }
      if (resolve(file) !== resolve(t.path)) installBundleFile(t.path, env);
    } catch (e) {
      return refusal(e);
    }
    console.log(`verified bundle version ${version} (${hash}); installed at ${t.path}`);
    const pid = values.pid !== undefined ? Number(values.pid) : readPid(resolve(cfg.stateDir, 'warden.pid'));
    if (pid === undefined) {
      console.log('no running gateway found (no warden.pid): the next start runs this bundle');
      return 0;
    }
    if (!Number.isSafeInteger(pid) || pid <= 1) usageError('--pid must be a process id');
    process.kill(pid, 'SIGHUP');
    const deadline = Date.now() + Number(values['wait-ms'] ?? '10000');
    for (;;) {
      const cur = readActivationState(t.stateFile).current;
      if (cur?.version === version && cur.hash === hash) {
        console.log(`gateway (pid ${pid}) activated bundle version ${version} on target ${name}`);
        return 0;
      }
      if (Date.now() >= deadline) break;
      await sleep(100);
    }
    console.error(
      `the gateway (pid ${pid}) has not confirmed version ${version}: see its log and the audit log (config.bundle-refused)`,
    );
    return 1;
  },
};

/** Subcommands of `warden bundle`. */
export const bundleCommands: Record<string, CliCommand> = {
  propose,
  sign,
  verify,
  diff,
  status,
  'root-create': rootCreate,
  activate,
};

/** `warden keygen --name NAME --out FILE`: FILE (private, 0600) and FILE.pub; refuses to overwrite either. */
export const keygenCommand: CliCommand = {
  about:
    'create an Ed25519 key pair for signing bundles: keygen --name NAME --out FILE (writes FILE and FILE.pub)',
  run: sync((argv) => {
    const { values } = parseArgs({
      args: argv,
      options: { name: { type: 'string' }, out: { type: 'string' } },
    });
    const out = need(values.out, 'out');
    const pub = `${out}.pub`;
    for (const p of [out, pub]) if (existsSync(p)) usageError(`${p} exists; refusing to overwrite it`);
    const { privateKey, publicKey } = generateKeyPair(need(values.name, 'name'));
    // INVARIANT: the private key file is created 0600 and never replaces an existing file ('wx').
    writeNew(out, privateKey + '\n', 0o600);
    writeNew(pub, publicKey + '\n');
    console.log(`private key: ${out} (keep it offline)\npublic key:  ${pub}\n${publicKey}`);
    return 0;
  }),
};

/** `warden verify-install [--dist DIR]`: checks the installed files against dist/MANIFEST.json. */
export const verifyInstallCommand: CliCommand = {
  about: "check the installed program's files against the hashes recorded at build time",
  run: sync((argv) => {
    const { values } = parseArgs({ args: argv, options: { dist: { type: 'string' } } });
    // This file runs as dist/cli/bundle.js: the install root is one level up.
    const dist = values.dist ?? resolve(dirname(fileURLToPath(import.meta.url)), '..');
    const r = verifyInstall(dist);
    for (const p of r.missing) console.log(`missing:  ${p}`);
    for (const p of r.modified) console.log(`modified: ${p}`);
    for (const p of r.extra) console.log(`extra:    ${p}`);
    console.log(
      `${r.ok ? 'ok' : 'FAILED'}: ${r.checked} files recorded in ${dist}/MANIFEST.json (sha256 ${r.manifestHash})`,
    );
    return r.ok ? 0 : 1;
  }),
};

/** `warden bundle <sub>`: dispatches to `bundleCommands`. */
export const bundleCommand: CliCommand = {
  about: 'signed configuration bundles: propose, sign, verify, diff, status, root-create, activate',
  run: (argv) => {
    const [sub, ...rest] = argv;
    const cmd = sub === undefined ? undefined : bundleCommands[sub];
    if (cmd === undefined) {
      console.error('usage: warden bundle <command>\n');
      for (const [name, c] of Object.entries(bundleCommands))
        console.error(`  ${name.padEnd(12)} ${c.about}`);
      return Promise.resolve(2);
    }
    return cmd.run(rest);
  },
};

/** Everything this file adds to `warden`, ready to spread into the top-level command table. */
export const topLevelCommands: Record<string, CliCommand> = {
  keygen: keygenCommand,
  bundle: bundleCommand,
  'verify-install': verifyInstallCommand,
};
