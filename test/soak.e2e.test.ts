// End to end: the short soak (200 sessions × 20 s of pgbench and node-postgres through warden serve with policy and audit).
// The long one is `npm run bench -- soak` (1,000 sessions × 10 min).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from '../bench/soak.js';

describe('soak (short)', () => {
  it('200 sessions for 20 s: no unexpected error, nothing unaudited, the log verifies, memory flat, clean drain', async () => {
    const r = await runSoak({
      quick: true,
      sessions: 200,
      durationSec: 20,
      log: (l) => process.stderr.write(`# ${l}\n`),
    });
    process.stderr.write(
      `# soak: node ok ${r.node.ok}, pgbench tx ${r.pgbench.transactions}, audit ${r.audit.entries} entries, ` +
        `${r.memory.perIdleSessionKiB.toFixed(0)} KiB per idle session, slope ${r.memory.slopeMiBPerMin.toFixed(2)} MiB/min, ` +
        `RSS ${r.memory.startMiB.toFixed(1)} → ${r.memory.endMiB.toFixed(1)} MiB\n`,
    );
    assert.deepEqual(r.errorSamples, []);
    assert.equal(r.unexpectedErrors, 0);
    assert.equal(r.policyViolations, 0);
    assert.ok(r.node.ok > 200, `only ${r.node.ok} node-postgres statements`);
    assert.ok(r.node.expectedDenials > 0, 'the denied statements were exercised');
    assert.ok(r.pgbench.transactions > 100, `only ${r.pgbench.transactions} pgbench transactions`);
    assert.equal(r.audit.missing, 0, 'every acknowledged statement has its audit entry');
    // Lower bound: every statement a client saw succeed was recorded (pgbench prepared executions as binds).
    assert.ok(r.audit.statementEntries >= r.node.simpleOk, `${r.audit.statementEntries} statement entries`);
    assert.ok(r.audit.verifyOk, r.audit.verifyOutput);
    assert.ok(r.cleanExit, 'warden serve drained and exited 0 on SIGTERM');
    // Generous: 20 s is too short for a trend (the heap is still growing into its working size); the bench's
    // 10-minute run reports the slope. This catches gross leaks only.
    assert.ok(r.memory.slopeMiBPerMin < 120, `RSS slope ${r.memory.slopeMiBPerMin.toFixed(2)} MiB/min`);
    assert.ok(
      r.memory.peakMiB - r.memory.withIdleSessionsMiB < 150,
      `RSS peak ${r.memory.peakMiB.toFixed(1)} MiB`,
    );
    assert.ok(
      r.memory.perIdleSessionKiB < 512,
      `${r.memory.perIdleSessionKiB.toFixed(0)} KiB per idle session`,
    );
  });
});
