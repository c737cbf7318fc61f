// Test helper process for the crash test: appends entries to an audit log forever and prints each acknowledged index.
import { AuditLog } from './log.js';
import { makeEntry } from './entry.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: crash-child.fixture.ts <dir>');
const log = await AuditLog.openDir(dir, { origin: 'crash.test/log', checkpointIntervalMs: 5 });
process.stdout.write(`ready ${log.size}\n`);
for (let round = 0; ; round++) {
  await Promise.all(
    Array.from({ length: 64 }, async (_, i) => {
      const { index } = await log.append(
        makeEntry({ kind: 'session.close', sessionId: `r${round}-${i}`, reason: 'crash test' }),
      );
      process.stdout.write(`${index}\n`);
    }),
  );
}
