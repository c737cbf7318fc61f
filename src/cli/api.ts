// The `warden api` command: admin API tokens (`warden api token create`), shown once and stored hashed.

import { parseArgs } from 'node:util';
import { addTokenToFile, parseExpiry, parseRoles } from '../admin-api/token-file.js';

const USAGE = `usage:
  warden api token create --user USER --roles viewer,auditor [--expires 30d] --file tokens.yaml
      Prints a new admin API token once and appends its SHA-256 hash to the token file (created, mode 0600).
      --expires: 30d, 12h, 90m, an ISO-8601 time, or never (default).
      Roles: viewer, approver, auditor, operator (one user never holds both operator and approver).
`;

export interface ApiCliIo {
  out(text: string): void;
  err(text: string): void;
}

const stdio: ApiCliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/** `warden api token <create>`; returns the exit code (2 for usage errors). */
export function runApiToken(argv: readonly string[], io: ApiCliIo = stdio, now: Date = new Date()): number {
  const [sub, ...rest] = argv;
  if (sub !== 'create') {
    io.err(USAGE);
    return sub === undefined || sub === 'help' || sub === '--help' ? 0 : 2;
  }
  let values: { user?: string; roles?: string; expires?: string; file?: string };
  try {
    values = parseArgs({
      args: [...rest],
      options: {
        user: { type: 'string' },
        roles: { type: 'string' },
        expires: { type: 'string' },
        file: { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (e) {
    io.err(`${e instanceof Error ? e.message : String(e)}\n${USAGE}`);
    return 2;
  }
  if (values.user === undefined || values.roles === undefined || values.file === undefined) {
    io.err(`--user, --roles and --file are required\n${USAGE}`);
    return 2;
  }
  try {
    const roles = parseRoles(values.roles);
    const expires = values.expires === undefined ? null : parseExpiry(values.expires, now);
    const { token, record } = addTokenToFile(values.file, { user: values.user, roles, expires });
    io.err(
      `token ${record.id} for ${record.user} (${record.roles.join(', ')}), ` +
        `expires ${record.expires?.toISOString() ?? 'never'}; its hash was added to ${values.file}. ` +
        'The token is shown once:\n',
    );
    io.out(`${token}\n`);
    return 0;
  } catch (e) {
    io.err(`warden api token create: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

/** The `warden api` subcommands, mounted by src/cli/main.ts as `commands['api'] = group(..., apiCommands)`. */
export const apiCommands: Record<string, { about: string; run(argv: string[]): Promise<number> }> = {
  token: {
    about: 'admin API tokens: token create --user U --roles R[,R] [--expires 30d] --file tokens.yaml',
    run: (argv) => Promise.resolve(runApiToken(argv)),
  },
};
