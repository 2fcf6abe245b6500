/**
 * Real processes, real SIGKILLs: a member kills itself at a named crash point, the test restarts it on
 * the same port and data, and checks that every service reaches the same outcome with nothing left
 * prepared and stock and money conserved.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { verifyCluster, waitForQuiescence, type Cluster } from '@txmesh/lab';
import { eventually, getWithCredential, goodOrder, postJson, serviceUrls, startTestCluster, summaries } from './helpers.ts';
import { CoordinatorSteps } from '@txmesh/coordinator';
import { SidecarSteps, type SidecarStep } from '@txmesh/sidecar';
import { ParticipantSteps } from '@txmesh/participant-sdk';

test('coordinator killed after logging COMMIT, before fan-out: after restart every service commits, once', async (t) => {
  const cluster = await startTestCluster(t, {
    memberEnv: { 'coordinator-0': { TXMESH_CRASH_AT: CoordinatorSteps.AFTER_COMMIT_LOGGED } },
  });
  const coordinator = cluster.coordinators[0]!;
  const request = { ...goodOrder('order-crash-1'), idempotencyKey: 'crash-key-1' };

  await assert.rejects(postJson(`${coordinator.url}/v1/transactions`, request), 'the coordinator dies before answering');
  await coordinator.exited();

  // The decision is only in the dead coordinator's log: every branch is prepared, none committed.
  for (const [name, summary] of await summaries(cluster)) {
    assert.equal(summary.preparedBranches, 1, `${name} holds the prepared branch`);
    assert.equal(summary.committedTxIds.length, 0, `${name} has not committed yet`);
  }

  await coordinator.start(); // no crash point this time: recovery resumes the fan-out from the log
  const allCommitted = await eventually(async () => {
    const all = [...(await summaries(cluster)).values()];
    return all.every((s) => s.committedTxIds.length === 1 && s.preparedBranches === 0);
  }, 20_000);
  assert.ok(allCommitted, 'every service committed after the coordinator restarted');

  const committedIds = [...(await summaries(cluster)).values()].map((s) => s.committedTxIds[0]);
  assert.equal(new Set(committedIds).size, 1, 'all services committed the same transaction');

  // The coordinator itself resumed the fan-out from its log (sidecars asking /decision would also
  // deliver the commit, so check the coordinator's own bookkeeping): every branch acknowledged.
  const stats = (await (await fetch(`${coordinator.url}/v1/stats`)).json()) as { recovered: number };
  assert.equal(stats.recovered, 1, 'one unfinished COMMIT record was resumed at start');
  const finished = await eventually(async () => {
    const status = (await (await getWithCredential(`${coordinator.url}/v1/transactions/${committedIds[0]}`)).json()) as { state: string };
    return status.state === 'COMMITTED';
  }, 10_000);
  assert.ok(finished, 'the coordinator saw every branch acknowledge its commit');

  // The client retries with the same idempotencyKey: it hears the first outcome, nothing runs twice.
  const retry = await postJson(`${coordinator.url}/v1/transactions`, request);
  assert.equal(retry.status, 200);
  assert.equal(retry.body.outcome, 'committed');
  assert.equal(retry.body.txId, committedIds[0]);

  const report = await verifyCluster(serviceUrls(cluster), new Map([[retry.body.txId as string, 'committed' as const]]));
  assert.deepEqual(report.problems, []);
  assert.ok(report.invariantsOk);
});

/**
 * Kills the payment sidecar at `step` during one order, which aborts (no vote from the dead sidecar); after the
 * sidecar's restart every branch and record is resolved, the order is rolled back everywhere, and a new order on
 * the same keys commits. `whileDead` checks the cluster between the crash and the restart.
 */
async function sidecarCrashAborts(t: TestContext, step: SidecarStep, orderId: string, whileDead: (cluster: Cluster) => Promise<void>): Promise<void> {
  const cluster = await startTestCluster(t, { memberEnv: { 'sidecar-payment': { TXMESH_CRASH_AT: step } } });
  const sidecar = cluster.sidecars.get('payment')!;
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder(orderId, 1500));
  assert.equal(result.status, 200);
  assert.equal(result.body.outcome, 'aborted', 'no vote from the dead sidecar means abort');
  await sidecar.exited();
  await whileDead(cluster);

  await sidecar.start();
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 20_000), 'the prepared branch is resolved');
  const report = await verifyCluster(serviceUrls(cluster), new Map([[result.body.txId as string, 'aborted' as const]]));
  assert.deepEqual(report.problems, []);
  assert.ok(report.invariantsOk);
  const noRecord = await eventually(async () => ((await (await fetch(`${sidecar.url}/txmesh/v1/health`)).json()) as { prepared: number }).prepared === 0, 20_000);
  assert.ok(noRecord, 'the restarted sidecar resolved its record (asked the shard: abort) and holds none');

  // The account's hold is gone: a new order on it commits.
  const again = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder(`${orderId}-b`));
  assert.equal(again.body.outcome, 'committed');
}

test('sidecar killed after recording a prepared branch: the transaction aborts everywhere and the hold is released', async (t) => {
  await sidecarCrashAborts(t, SidecarSteps.AFTER_PREPARED_RECORDED, 'order-crash-2', async (cluster) => {
    const paymentBefore = (await summaries(cluster)).get('payment')!;
    assert.equal(paymentBefore.preparedBranches, 1, 'payment prepared before its sidecar died');
  });
});

test('sidecar killed after recording ahead of the service\'s answer: the transaction aborts everywhere and nothing stays prepared', async (t) => {
  // The records are forced while the service runs its prepare: the sidecar dies holding a record of a branch
  // the service may or may not have prepared, and no vote left.
  await sidecarCrashAborts(t, SidecarSteps.AFTER_RECORDED_AHEAD, 'order-crash-ahead', async (cluster) => {
    for (const [name, summary] of await summaries(cluster)) assert.equal(summary.committedTxIds.length, 0, name);
  });
});

test('service killed after applying commit, before acknowledging: the retried commit is applied once', async (t) => {
  const cluster = await startTestCluster(t, {
    memberEnv: { 'service-inventory': { TXMESH_CRASH_AT: ParticipantSteps.AFTER_COMMIT } },
  });
  const inventory = cluster.services.get('inventory')!;
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-crash-3'));
  assert.equal(result.body.outcome, 'committed', `the decision was made before the service died: ${JSON.stringify(result.body)}`);
  await inventory.exited();

  await inventory.start();
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 20_000), 'commit delivery finishes');
  const all = await summaries(cluster);
  for (const [name, summary] of all) assert.deepEqual(summary.committedTxIds, [result.body.txId], name);
  const report = await verifyCluster(serviceUrls(cluster), new Map([[result.body.txId as string, 'committed' as const]]));
  assert.deepEqual(report.problems, [], 'stock was decremented exactly once');
  assert.ok(report.invariantsOk);
});

test('service killed after a durable prepare: after restart it aborts cleanly and the key is free again', async (t) => {
  const cluster = await startTestCluster(t, {
    memberEnv: { 'service-inventory': { TXMESH_CRASH_AT: ParticipantSteps.AFTER_PREPARE } },
  });
  const inventory = cluster.services.get('inventory')!;
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-crash-4', 1500));
  assert.equal(result.body.outcome, 'aborted');
  await inventory.exited();

  await inventory.start();
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 20_000));
  const report = await verifyCluster(serviceUrls(cluster), new Map([[result.body.txId as string, 'aborted' as const]]));
  assert.deepEqual(report.problems, []);
  const again = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-crash-4b'));
  assert.equal(again.body.outcome, 'committed', 'the sku lock was released by the rollback');
});
