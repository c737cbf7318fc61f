// The `warden witness` command: run a tlog-witness cosigner over HTTP with durable state, or make a cosigner key.
import { parseArgs } from 'node:util';
import { open, readFile } from 'node:fs/promises';
import { Witness, generateWitnessKey } from '../audit/witness.js';
import { FileWitnessState, startWitnessServer } from '../audit/witness-http.js';
import { parseVerifierKey } from '../audit/note.js';
import type { NoteVerifier } from '../audit/note.js';
import type { CliIo } from './audit.js';
import { readSecret } from '../core/secrets.js';

const USAGE = `usage:
  warden witness serve --key SKEY_FILE --log-key VKEY_FILE [--log-key ...] --state FILE [--listen HOST:PORT]
      Cosigns checkpoints of the trusted logs (origin = the log key's name) at POST /add-checkpoint.
      Listens on 127.0.0.1:7380 by default.
  warden witness keygen --name NAME --out SKEY_FILE
      Writes a new cosigner key (mode 0600) and prints its verifier key.
`;

class UsageError extends Error {}

async function readKeyLines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(s);
  if (m === null || Number(m[2]) > 65535) throw new UsageError(`--listen must be HOST:PORT, not ${s}`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(m[2]) };
}

/**
 * `warden witness <serve|keygen>`. `serve` runs until SIGINT/SIGTERM (or `io.signal` aborts) and prints one line
 * `listening URL VKEY` once ready. The cosigner key file must be private (chmod 600); its text is never logged.
 */
export async function runWitness(argv: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'keygen') {
      const { values } = parseArgs({
        args: rest,
        options: { name: { type: 'string' }, out: { type: 'string' } },
      });
      if (values.name === undefined || values.out === undefined)
        throw new UsageError('--name and --out are required');
      const { skey, vkey } = generateWitnessKey(values.name);
      const fh = await open(values.out, 'wx', 0o600);
      try {
        await fh.writeFile(`${skey}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      io.out(`${vkey}\n`);
      return 0;
    }
    if (sub !== 'serve') {
      io.err(USAGE);
      return sub === undefined || sub === 'help' ? 0 : 2;
    }
    const { values } = parseArgs({
      args: rest,
      options: {
        key: { type: 'string' },
        'log-key': { type: 'string', multiple: true },
        state: { type: 'string' },
        listen: { type: 'string' },
      },
    });
    if (values.key === undefined || values.state === undefined || (values['log-key'] ?? []).length === 0) {
      throw new UsageError('--key, --state and at least one --log-key are required');
    }
    const logs = new Map<string, NoteVerifier[]>();
    for (const f of values['log-key'] ?? []) {
      for (const line of await readKeyLines(f)) {
        const v = parseVerifierKey(line);
        logs.set(v.name, [...(logs.get(v.name) ?? []), v]);
      }
    }
    const witness = new Witness({
      // The cosigner key: refused when group- or world-accessible (readSecret checks the opened file).
      skey: readSecret({ file: values.key }, 'witness key (--key)').trim(),
      logs,
      state: await FileWitnessState.open(values.state),
    });
    const { host, port } = parseListen(values.listen ?? '127.0.0.1:7380');
    const running = await startWitnessServer(witness, {
      host,
      port,
      onError: (e) =>
        io.err(
          `${JSON.stringify({ level: 'error', msg: 'witness request failed', error: (e as Error).message })}\n`,
        ),
    });
    io.out(`listening ${running.url} ${witness.verifierKey}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => resolve();
      if (io.signal !== undefined) {
        if (io.signal.aborted) return resolve();
        io.signal.addEventListener('abort', stop, { once: true });
      } else {
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      }
    });
    await running.close();
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      io.err(`warden witness: ${(e as Error).message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

/** For `src/cli/main.ts`: mount as the `witness` command. */
export const witnessCommand = {
  about: 'run a tlog-witness cosigner (serve) or make its key (keygen)',
  run: (argv: string[]): Promise<number> =>
    runWitness(argv, {
      out: (t) => process.stdout.write(t),
      err: (t) => process.stderr.write(t),
      get errIsTTY() {
        return process.stderr.isTTY;
      },
    }),
};
