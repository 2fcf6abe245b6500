/**
 * A short chaos run (about 15 s of faults): real processes SIGKILLed and restarted, links cut and healed
 * with random fault modes, orders placed all along; afterwards nothing may be split, lost or stuck.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos } from '@txmesh/lab';
import { SMALL_CATALOG } from './helpers.ts';

test('chaos: kills and partitions during orders leave every service agreeing, nothing lost, nothing in doubt', async () => {
  const lines: string[] = [];
  const progress = { write: (chunk: string) => lines.push(chunk) !== 0 } as unknown as NodeJS.WritableStream;
  const summary = await runChaos({
    durationSec: 12,
    seed: 7,
    shards: 2,
    concurrency: 8,
    faultEveryMs: 500,
    minKills: 3,
    catalog: { ...SMALL_CATALOG, stockPerSku: 100_000, balancePerAccount: 10_000_000 },
    progress,
  });
  const context = `${JSON.stringify(summary)}\n${lines.join('').slice(-3000)}`;
  assert.ok(summary.kills >= 3, `at least 3 kills: ${context}`);
  assert.ok(summary.partitions >= 3, `at least 3 link faults: ${context}`);
  assert.ok(summary.transactions > 0, 'orders were placed');
  assert.equal(summary.atomicityViolations, 0, context);
  assert.equal(summary.lostCommits, 0, context);
  assert.equal(summary.abortedButCommitted, 0, context);
  assert.equal(summary.inDoubtAfterHeal, 0, context);
  assert.equal(summary.unknownOutcomes, 0, context);
  assert.equal(summary.refused, 0, context);
  assert.equal(summary.committedUnheard, 0, context);
  assert.deepEqual(summary.problems, []);
  assert.ok(summary.invariantsOk, context);
});
