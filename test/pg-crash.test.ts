/**
 * Real SIGKILLs of the payment service running on PostgreSQL in native two-phase-commit mode, next to the
 * SQLite services: killed after PREPARE TRANSACTION before its vote left, after its vote (the commit
 * arrived, nothing applied), and during COMMIT PREPARED. After its restart: nothing of ours is left in
 * pg_prepared_xacts, every service agrees on the outcome, stock and money are conserved.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { verifyCluster, waitForQuiescence } from '@txmesh/lab';
import { ParticipantSteps } from '@txmesh/participant-sdk';
import { goodOrder, postJson, serviceUrls, startTestCluster, summaries } from './helpers.ts';
import { ensureTestTool } from './tools.ts';

/** `timeoutMs` is the order's: generous where it must commit, so a loaded machine does not turn it into an abort. */
async function crashPayment(t: TestContext, step: string, orderId: string, timeoutMs: number) {
  const cluster = await startTestCluster(t, {
    postgres: { binDir: ensureTestTool('postgresql') },
    memberEnv: { 'service-payment': { TXMESH_CRASH_AT: step } },
  });
  const payment = cluster.services.get('payment')!;
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder(orderId, timeoutMs));
  assert.equal(result.status, 200, JSON.stringify(result.body));
  await payment.exited();
  return { cluster, payment, result };
}

async function recoveredAndConsistent(cluster: Awaited<ReturnType<typeof crashPayment>>['cluster'], txId: string, outcome: 'committed' | 'aborted') {
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 30_000), 'every branch finished after the restart');
  assert.deepEqual(await cluster.pgPreparedGids(), [], 'nothing of ours left in pg_prepared_xacts');
  const report = await verifyCluster(serviceUrls(cluster), new Map([[txId, outcome]]));
  assert.deepEqual(report.problems, [], 'all or none, stock and money conserved');
  assert.ok(report.invariantsOk);
  const committedAt = [...(await summaries(cluster)).values()].map((s) => s.committedTxIds.includes(txId));
  assert.deepEqual(committedAt, committedAt.map(() => outcome === 'committed'), `${outcome} at every service`);
}

test('payment on PostgreSQL killed after PREPARE TRANSACTION, before its vote left: the order aborts, ROLLBACK PREPARED after restart', async (t) => {
  const { cluster, payment, result } = await crashPayment(t, ParticipantSteps.AFTER_PREPARE, 'pg-crash-1', 1500);
  assert.equal(result.body.outcome, 'aborted', 'no vote from the dead service means abort');
  assert.equal((await cluster.pgPreparedGids()).length, 1, 'PostgreSQL holds the prepared charge while the service is down');
  await payment.start();
  await recoveredAndConsistent(cluster, result.body.txId as string, 'aborted');
  const again = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('pg-crash-1b', 10_000));
  assert.equal(again.body.outcome, 'committed', 'the account row is free again');
});

test('payment on PostgreSQL killed after its vote, as the commit arrives: COMMIT PREPARED after restart, once', async (t) => {
  const { cluster, payment, result } = await crashPayment(t, ParticipantSteps.BEFORE_DECISION, 'pg-crash-2', 10_000);
  assert.equal(result.body.outcome, 'committed', 'every vote was yes before the service died');
  assert.equal((await cluster.pgPreparedGids()).length, 1, 'the charge waits prepared in PostgreSQL');
  await payment.start();
  await recoveredAndConsistent(cluster, result.body.txId as string, 'committed');
});

test('payment on PostgreSQL killed during COMMIT PREPARED: after restart the commit stands, applied once', async (t) => {
  const { cluster, payment, result } = await crashPayment(t, ParticipantSteps.DURING_COMMIT_PREPARED, 'pg-crash-3', 10_000);
  assert.equal(result.body.outcome, 'committed');
  await payment.start();
  await recoveredAndConsistent(cluster, result.body.txId as string, 'committed');
});
