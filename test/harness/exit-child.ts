// Child process for harness.test.ts: starts an instance, prints where it lives, then dies without stopping it.
import { startPostgres } from './pg.js';

const inst = await startPostgres({ auth: 'trust' });
process.stdout.write(`${JSON.stringify({ rootDir: inst.rootDir, pid: inst.pid })}\n`);
if (process.argv[2] === 'sigterm') {
  setInterval(() => {}, 1_000);
  process.kill(process.pid, 'SIGTERM');
} else {
  throw new Error('deliberate uncaught exception: the exit handler must still stop the instance');
}
