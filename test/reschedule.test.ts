/**
 * What survives a pod being rescheduled on Kubernetes, where the sidecar's data is an emptyDir by default:
 * the sidecar is SIGKILLed holding a prepared record, its data dir is deleted (the new pod's emptyDir is
 * empty) and a new sidecar starts on it. The service's own database still lists the prepared branch; the new
 * sidecar finds it there and finishes it with the shard's decision, while the coordinator cannot reach the
 * sidecar at all (its link is blackholed), so no other path can have done it.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CoordinatorSteps } from '@txmesh/coordinator';
import { verifyCluster, waitForQuiescence } from '@txmesh/lab';
import { eventually, goodOrder, postJson, serviceUrls, startTestCluster, summaries } from './helpers.ts';

test('sidecar rescheduled onto an empty data dir: the branch is resolved from the service database', async (t) => {
  const cluster = await startTestCluster(t, {
    faultProxies: true,
    memberEnv: { 'coordinator-0': { TXMESH_CRASH_AT: CoordinatorSteps.AFTER_COMMIT_LOGGED } },
  });
  const coordinator = cluster.coordinators[0]!;
  const sidecar = cluster.sidecars.get('payment')!;

  // The coordinator forces COMMIT and dies before telling anyone: every service holds a prepared branch.
  // A generous deadline: on a loaded machine a 2 s one can abort before the crash point is reached.
  await assert.rejects(postJson(`${coordinator.url}/v1/transactions`, goodOrder('order-reschedule-1', 15_000)), 'the coordinator dies before answering');
  await coordinator.exited();
  for (const [name, summary] of await summaries(cluster)) assert.equal(summary.preparedBranches, 1, `${name} prepared`);

  // The payment pod goes away: its sidecar is killed and its emptyDir, with the prepared record in it, is gone.
  await sidecar.kill('SIGKILL');
  const sidecarFiles = readdirSync(cluster.dataDir).filter((f) => f.startsWith('sidecar-payment.db'));
  assert.ok(sidecarFiles.includes('sidecar-payment.db'), 'the sidecar had its own store');
  for (const file of sidecarFiles) rmSync(join(cluster.dataDir, file));

  // Nothing from the coordinator reaches the payment sidecar from now on; the other three get their commit.
  const inbound = cluster.link('coordinator-0', 'sidecar-payment');
  inbound.blackhole();
  await coordinator.start();
  assert.ok(
    await eventually(async () => [...(await summaries(cluster))].every(([name, s]) => name === 'payment' || (s.committedTxIds.length === 1 && s.preparedBranches === 0)), 20_000),
    'the restarted coordinator commits the branches it can reach',
  );
  const payment = (await summaries(cluster)).get('payment')!;
  assert.deepEqual([payment.preparedBranches, payment.committedTxIds.length], [1, 0], 'payment is still in doubt');

  // The new sidecar starts on an empty data dir: only the service's database knows the branch.
  await sidecar.start();
  assert.ok(
    await eventually(async () => {
      const s = (await summaries(cluster)).get('payment')!;
      return s.committedTxIds.length === 1 && s.preparedBranches === 0;
    }, 20_000),
    'the new sidecar resolved the branch from the service prepared list and the shard decision',
  );
  const all = await summaries(cluster);
  const txIds = new Set([...all.values()].map((s) => s.committedTxIds[0]));
  assert.equal(txIds.size, 1, 'all four services committed the same transaction');

  // When the link heals the coordinator's own retry is acknowledged as a duplicate: nothing is applied twice.
  inbound.heal();
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, 20_000), 'every branch acknowledged');
  const report = await verifyCluster(serviceUrls(cluster), new Map([[[...txIds][0]!, 'committed' as const]]));
  assert.deepEqual(report.problems, []);
  assert.ok(report.invariantsOk, 'stock and money conserved: the commit was applied once');
});
