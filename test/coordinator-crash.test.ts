/**
 * The coordinator SIGKILLed at each step of two-phase commit, then restarted on the same port and data.
 * After recovery: every decided transaction is finished everywhere, anything undecided is aborted
 * (presumed abort), nothing stays prepared, locks are free, and a retried idempotencyKey gets the first
 * outcome (or runs as new when nobody heard one). The step "after the COMMIT record, before fan-out"
 * is in crash-recovery.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sleep, verifyCluster, waitForQuiescence, type Cluster } from '@txmesh/lab';
import { eventually, getWithCredential, goodOrder, postJson, serviceUrls, startTestCluster, summaries } from './helpers.ts';
import { CoordinatorSteps } from '@txmesh/coordinator';
import { ParticipantSteps } from '@txmesh/participant-sdk';

/** Prepared txIds the services hold right now (any service). */
async function preparedTxIds(cluster: Cluster): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const [service, member] of cluster.services) {
    const res = await fetch(`${member.url}/txmesh/participant/v1/prepared`, { headers: cluster.participantHeaders(service) });
    const body = (await res.json()) as { prepared: { txId: string }[] };
    for (const p of body.prepared) ids.add(p.txId);
  }
  return ids;
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await getWithCredential(url);
  return { status: res.status, body: await res.json() };
}

/** Sends the request, expecting the coordinator to die before (or right after) it answers. */
async function postDying(url: string, body: unknown): Promise<{ status: number; body: any } | undefined> {
  return postJson(url, body).catch(() => undefined);
}

/**
 * Nobody heard an outcome and the log holds nothing under the key: a retry runs as new (once) and commits,
 * so the sku and account locks are free; a second retry gets the first outcome; the cluster ends clean.
 */
async function assertRetryRunsOnceAndCommits(cluster: Cluster, request: object, notTxId?: string): Promise<void> {
  const url = `${cluster.coordinators[0]!.url}/v1/transactions`;
  const retry = await postJson(url, request);
  assert.equal(retry.status, 200);
  assert.equal(retry.body.outcome, 'committed', JSON.stringify(retry.body));
  if (notTxId !== undefined) assert.notEqual(retry.body.txId, notTxId);
  const again = await postJson(url, request);
  assert.equal(again.body.txId, retry.body.txId, 'a second retry gets the first outcome');
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 20_000));
  const report = await verifyCluster(serviceUrls(cluster), new Map([[retry.body.txId as string, 'committed' as const]]));
  assert.deepEqual(report.problems, []);
  assert.ok(report.invariantsOk);
}

test('coordinator killed before any prepare is sent: nothing happened anywhere, the key runs as new', async (t) => {
  const cluster = await startTestCluster(t, {
    memberEnv: { 'coordinator-0': { TXMESH_CRASH_AT: CoordinatorSteps.BEFORE_PREPARES_SENT } },
  });
  const coordinator = cluster.coordinators[0]!;
  const request = { ...goodOrder('order-cc-1'), idempotencyKey: 'cc-key-1' };
  assert.equal(await postDying(`${coordinator.url}/v1/transactions`, request), undefined, 'no answer from a dead coordinator');
  await coordinator.exited();

  for (const [name, summary] of await summaries(cluster)) {
    assert.equal(summary.preparedBranches, 0, `${name} never saw a prepare`);
    assert.equal(summary.committedTxIds.length, 0, name);
  }
  await coordinator.start();
  const stats = (await getJson(`${coordinator.url}/v1/stats`)).body as { recovered: number; inFlight: number };
  assert.equal(stats.recovered, 0, 'nothing was decided, so nothing to resume');

  // Nobody heard an outcome and the log holds nothing under the key: the retry runs (once) and commits.
  await assertRetryRunsOnceAndCommits(cluster, request);
});

test('coordinator killed between votes: the undecided transaction is aborted everywhere and its locks freed', async (t) => {
  const cluster = await startTestCluster(t, {
    memberEnv: { 'coordinator-0': { TXMESH_CRASH_AT: CoordinatorSteps.BETWEEN_VOTES } },
  });
  const coordinator = cluster.coordinators[0]!;
  const request = { ...goodOrder('order-cc-2'), idempotencyKey: 'cc-key-2' };
  assert.equal(await postDying(`${coordinator.url}/v1/transactions`, request), undefined);
  await coordinator.exited();

  // At least the branch whose vote was counted is prepared; nothing is committed.
  const orphaned = [...(await preparedTxIds(cluster))];
  assert.equal(orphaned.length, 1, 'one transaction holds prepared branches');
  const txId = orphaned[0]!;
  for (const [name, summary] of await summaries(cluster)) assert.equal(summary.committedTxIds.length, 0, name);

  await coordinator.start();
  // No record at the coordinator means abort: the sidecars' in-doubt rounds roll the branches back.
  const decision = await getJson(`${coordinator.url}/v1/transactions/${txId}/decision`);
  assert.equal(decision.body.decision, 'abort');
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 30_000), 'nothing stays prepared');
  for (const [name, summary] of await summaries(cluster)) {
    assert.equal(summary.preparedBranches, 0, name);
    assert.equal(summary.committedTxIds.length, 0, `${name} committed nothing of the undecided transaction`);
  }
  const status = await getJson(`${coordinator.url}/v1/transactions/${txId}`);
  assert.equal(status.body.error.code, 'TXM_TX_NOT_FOUND', 'presumed abort: the log never held it');

  await assertRetryRunsOnceAndCommits(cluster, request, txId);
});

test('coordinator killed in the middle of the commit fan-out: after restart it finishes the fan-out, once', async (t) => {
  // Shipping answers every batch 3 s late, so its commit is still on its way when the first
  // acknowledgement (from another service) kills the coordinator: the fan-out is really half done.
  const cluster = await startTestCluster(t, {
    // Resource-aware admission would (rightly) refuse orders while shipping is this slow; not what is tested here.
    env: { TXMESH_SCHEDULER: 'off' },
    memberEnv: {
      'coordinator-0': { TXMESH_CRASH_AT: CoordinatorSteps.MID_FANOUT },
      'service-shipping': { TXMESH_SLOW_MS: '3000' },
    },
  });
  const coordinator = cluster.coordinators[0]!;
  const request = { ...goodOrder('order-cc-3', 10_000), idempotencyKey: 'cc-key-3' };
  // The client may or may not hear "committed" before the process dies; both are fine.
  const heard = await postDying(`${coordinator.url}/v1/transactions`, request);
  await coordinator.exited();
  if (heard) assert.equal(heard.body.outcome, 'committed');

  const before = [...(await summaries(cluster)).values()];
  const committedSomewhere = before.filter((s) => s.committedTxIds.length === 1);
  assert.ok(committedSomewhere.length >= 1, 'the first branch acknowledged its commit before the crash');
  assert.ok(committedSomewhere.length < before.length, 'the slow service had not committed when the coordinator died');
  t.diagnostic(`services committed before the restart: ${committedSomewhere.length} of ${before.length}`);
  const txId = committedSomewhere[0]!.committedTxIds[0]!;

  await coordinator.start();
  const stats = (await getJson(`${coordinator.url}/v1/stats`)).body as { recovered: number };
  assert.equal(stats.recovered, 1, 'the unfinished COMMIT record was resumed from the log');
  const finished = await eventually(async () => (await getJson(`${coordinator.url}/v1/transactions/${txId}`)).body.state === 'COMMITTED', 20_000);
  assert.ok(finished, 'the coordinator saw every branch acknowledge');
  for (const [name, summary] of await summaries(cluster)) {
    assert.deepEqual(summary.committedTxIds, [txId], `${name} committed the transaction exactly once`);
    assert.equal(summary.preparedBranches, 0, name);
  }

  const retry = await postJson(`${coordinator.url}/v1/transactions`, request);
  assert.equal(retry.body.outcome, 'committed');
  assert.equal(retry.body.txId, txId, 'the retry gets the first outcome, nothing runs twice');
  const report = await verifyCluster(serviceUrls(cluster), new Map([[txId, 'committed' as const]]));
  assert.deepEqual(report.problems, []);
  assert.ok(report.invariantsOk);
  // Locks were released by the commit: another order on the same sku and account commits.
  const next = await postJson(`${coordinator.url}/v1/transactions`, goodOrder('order-cc-3b', 10_000));
  assert.equal(next.body.outcome, 'committed');
});

test('a commit nobody acknowledges is visible: GET /v1/in-doubt, /v1/stats, one error log line; it clears when the service returns', async (t) => {
  const cluster = await startTestCluster(t, {
    memberEnv: { 'service-payment': { TXMESH_CRASH_AT: ParticipantSteps.AFTER_COMMIT } },
  });
  const coordinator = cluster.coordinators[0]!;
  const payment = cluster.services.get('payment')!;
  const result = await postJson(`${coordinator.url}/v1/transactions`, goodOrder('order-cc-4'));
  assert.equal(result.body.outcome, 'committed');
  await payment.exited(); // it applied the commit and died before acknowledging it

  type InDoubtList = { thresholdMs: number; branches: { txId: string; service: string; action: string; ageMs: number; attempts: number; lastError?: string; sidecarUrl?: string }[] };
  let listed: InDoubtList | undefined;
  assert.ok(
    await eventually(async () => {
      listed = (await getJson(`${coordinator.url}/v1/in-doubt?olderThanMs=0`)).body as InDoubtList;
      // The other services' commits may still be on their way on a loaded machine; payment's alone stays.
      return listed.branches.some((b) => b.attempts >= 2) && listed.branches.every((b) => b.service === 'payment');
    }, 15_000),
    'the unacknowledged branch is listed while delivery retries',
  );
  assert.deepEqual(listed!.branches.map((b) => [b.txId, b.service, b.action]), [[result.body.txId, 'payment', 'commit']]);
  assert.ok(listed!.branches[0]!.lastError, 'with the reason of the last failure');
  assert.equal(listed!.branches[0]!.sidecarUrl, cluster.sidecars.get('payment')!.url);

  // Past the default threshold (10 s) it is in doubt for everyone: the list, the stats and the log.
  assert.ok(
    await eventually(async () => ((await getJson(`${coordinator.url}/v1/stats`)).body as { inDoubt: number }).inDoubt === 1, 20_000),
    'counted in /v1/stats',
  );
  const logFile = join(cluster.dataDir, 'coordinator-0.log');
  assert.ok(await eventually(async () => readFileSync(logFile, 'utf8').includes('branch in doubt'), 5_000), 'an error line in the log');
  const inDoubtLines = () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('branch in doubt')).length;
  await sleep(2_500);
  assert.equal(inDoubtLines(), 1, 'one line when it crossed the threshold, not one per retry');

  // A restart while the branch is still in doubt: one recovery line sums it up, no second line of its own.
  const recoveryLines = () => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('recovery resumed delivery'));
  await coordinator.kill('SIGKILL');
  await coordinator.start();
  assert.ok(await eventually(async () => recoveryLines().length === 1, 5_000), 'one recovery line');
  assert.equal((JSON.parse(recoveryLines()[0]!) as { alreadyInDoubt: number }).alreadyInDoubt, 1);
  await sleep(2_500);
  assert.equal(inDoubtLines(), 1, 'the restart did not log the branch again');

  await payment.start();
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 30_000), 'delivery finishes once payment is back');
  assert.deepEqual(((await getJson(`${coordinator.url}/v1/in-doubt?olderThanMs=0`)).body as InDoubtList).branches, []);
  const report = await verifyCluster(serviceUrls(cluster), new Map([[result.body.txId as string, 'committed' as const]]));
  assert.deepEqual(report.problems, [], 'the commit was applied exactly once');
});
