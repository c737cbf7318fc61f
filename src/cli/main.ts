#!/usr/bin/env node
// The `warden` command: dispatches subcommands (demo, serve, passwd, ...).

import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { isWardenError } from '../core/errors.js';

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, { about: string; run: Command }> = {
  demo: {
    about: 'start the embedded demo (PGlite + sample data + Warden on 127.0.0.1:15432, admin API on :18432)',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: {
          dir: { type: 'string' },
          port: { type: 'string' },
          host: { type: 'string' },
          'api-port': { type: 'string' },
        },
      });
      const { startDemo } = await import('../demo/demo.js');
      const demo = await startDemo({
        ...(values.dir !== undefined ? { dir: values.dir } : {}),
        ...(values.port !== undefined ? { port: Number(values.port) } : {}),
        ...(values.host !== undefined ? { host: values.host } : {}),
        ...(values['api-port'] !== undefined ? { apiPort: Number(values['api-port']) } : {}),
      });
      await waitForSignal();
      await demo.stop();
      return 0;
    },
  },
  serve: {
    about: 'run the gateway: warden serve --config warden.yaml',
    run: async (argv) => {
      const { values } = parseArgs({
        args: argv,
        options: { config: { type: 'string', short: 'c' }, 'drain-ms': { type: 'string' } },
      });
      if (values.config === undefined) throw new Error('--config is required');
      const { loadGatewayConfig } = await import('../config/gateway-config.js');
      const { startGateway, reloadOnSighup } = await import('../main.js');
      const config = loadGatewayConfig(values.config);
      const gw = await startGateway(config);
      // SIGHUP re-reads the configured bundle files and activates a newer verified version without dropping sessions.
      const stopReload = reloadOnSighup(gw, config.stateDir);
      console.log(
        JSON.stringify({ level: 'info', msg: 'warden listening', host: gw.pg.host, port: gw.pg.port }),
      );
      await waitForSignal();
      stopReload();
      // SIGTERM/SIGINT: stop accepting, let sessions finish (limits.drain_timeout_ms, or --drain-ms), end the
      // rest with 57P01, flush and checkpoint the audit log, exit 0.
      console.log(JSON.stringify({ level: 'info', msg: 'warden draining sessions' }));
      await gw.close(values['drain-ms'] !== undefined ? Number(values['drain-ms']) : undefined);
      console.log(JSON.stringify({ level: 'info', msg: 'warden stopped' }));
      return 0;
    },
  },
  passwd: {
    about:
      'print a SCRAM-SHA-256 verifier for a password read from standard input (never echoed, never stored); --mysql-native also prints the mysql_native_hash line',
    run: async (argv) => {
      const native = argv.includes('--mysql-native');
      const unknown = argv.filter((a) => a !== '--mysql-native');
      if (unknown.length > 0) throw new Error(`unknown argument "${unknown[0] ?? ''}" (only --mysql-native)`);
      const { createVerifier } = await import('../identity/scram.js');
      const password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
      if (password === '') throw new Error('empty password on standard input');
      console.log(createVerifier(password));
      if (native) {
        // SHA1(SHA1(password)), for users who must log in with mysql_native_password (weaker than the verifier).
        const { formatNativeHash } = await import('../identity/mysql-auth.js');
        console.log(`mysql_native_hash: '${formatNativeHash(password)}'`);
      }
      return 0;
    },
  },
};

type SubcommandTable = Record<string, { about: string; run(argv: string[]): Promise<number> }>;

/** A command group (`warden policy <sub>`) whose table is loaded only when used. */
function group(about: string, load: () => Promise<SubcommandTable>): { about: string; run: Command } {
  return {
    about,
    run: async ([sub, ...rest]) => {
      const table = await load();
      const cmd = sub === undefined ? undefined : table[sub];
      if (!cmd) {
        console.error(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
        for (const [name, c] of Object.entries(table)) console.error(`  ${name.padEnd(12)} ${c.about}`);
        return 2;
      }
      return cmd.run(rest);
    },
  };
}

commands['policy'] = group(
  'policy tools: check, explain, test, who-can',
  async () => (await import('./policy.js')).policyCommands,
);
commands['audit'] = {
  about:
    'audit log tools: verify, prove, check-proof, consistency, tail, search, export, redact, witness-submit',
  run: async (argv) => (await import('./audit.js')).runAudit(argv),
};
commands['bundle'] = group(
  'signed policy bundles: propose, sign, verify, diff, status, root-create, activate',
  async () => (await import('./bundle.js')).bundleCommands,
);
commands['approvals'] = group(
  'approvals and just-in-time access: list, show, approve, deny, revoke, review, request',
  async () => (await import('./approvals.js')).approvalsCommands,
);
commands['request'] = {
  about: 'ask for a role for a while: request --role R --for 2h --reason "..." (same as approvals request)',
  run: async (argv) => {
    const { approvalsCommands } = await import('./approvals.js');
    return (approvalsCommands['request'] as { run(a: string[]): Promise<number> }).run(argv);
  },
};
commands['api'] = group('admin API tokens: token create', async () => (await import('./api.js')).apiCommands);
commands['witness'] = {
  about: 'run an independent checkpoint cosigner (C2SP tlog-witness): witness serve | keygen',
  run: async (argv) => (await import('./witness.js')).witnessCommand.run(argv),
};
commands['keygen'] = {
  about: 'create an Ed25519 key pair for signing bundles',
  run: async (argv) => (await import('./bundle.js')).keygenCommand.run(argv),
};
commands['verify-install'] = {
  about: 'check the installed program files against the hashes recorded at build time',
  run: async (argv) => (await import('./bundle.js')).verifyInstallCommand.run(argv),
};

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}

function usage(): void {
  console.log('usage: warden <command> [options]\n\ncommands:');
  for (const [name, c] of Object.entries(commands)) console.log(`  ${name.padEnd(10)} ${c.about}`);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    usage();
    return name === undefined ? 2 : 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    console.error(`warden: unknown command "${name}"`);
    usage();
    return 2;
  }
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(
      `warden: ${isWardenError(e) ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e)}`,
    );
    process.exit(1);
  },
);
