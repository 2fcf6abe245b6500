/**
 * A short chaos run with the payment service on PostgreSQL in native two-phase-commit mode: members
 * SIGKILLed and restarted, links cut and healed, orders all along; afterwards nothing split, lost or stuck,
 * and PostgreSQL holds no prepared transaction.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from '@txmesh/lab';
import { SMALL_CATALOG } from './helpers.ts';
import { ensureTestTool } from './tools.ts';

test('chaos --pg: kills and partitions with a PostgreSQL participant leave every service agreeing and pg_prepared_xacts empty', async () => {
  const lines: string[] = [];
  const progress = { write: (chunk: string) => lines.push(chunk) !== 0 } as unknown as NodeJS.WritableStream;
  const summary = await runChaos({
    durationSec: 10,
    seed: 11,
    shards: 2,
    concurrency: 8,
    faultEveryMs: 500,
    minKills: 3,
    catalog: { ...SMALL_CATALOG, stockPerSku: 100_000, balancePerAccount: 10_000_000 },
    postgres: { binDir: ensureTestTool('postgresql') },
    progress,
  });
  const context = `${JSON.stringify(summary)}\n${lines.join('').slice(-3000)}`;
  assert.ok(summary.kills >= 3, `at least 3 kills: ${context}`);
  assert.ok(summary.transactions > 0, 'orders were placed');
  assert.equal(summary.pgPreparedAfterHeal, 0, context);
  assert.equal(summary.atomicityViolations, 0, context);
  assert.equal(summary.lostCommits, 0, context);
  assert.equal(summary.abortedButCommitted, 0, context);
  assert.equal(summary.inDoubtAfterHeal, 0, context);
  assert.equal(summary.unknownOutcomes, 0, context);
  assert.equal(summary.committedUnheard, 0, context);
  assert.deepEqual(summary.problems, []);
  assert.ok(summary.invariantsOk, context);
});
