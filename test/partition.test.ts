/**
 * Network partitions on real processes: a fault proxy sits on every link (coordinator → sidecar,
 * sidecar → service, sidecar → coordinator). Each test cuts a link in one way, checks what the client
 * hears, heals, and checks that every service agrees, nothing commit-heard is lost and nothing stays
 * prepared.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { Paths } from '@txmesh/protocol';
import { Cluster, verifyCluster, waitForQuiescence } from '@txmesh/lab';
import { eventually, goodOrder, postJson, serviceUrls, SMALL_CATALOG, summaries, useCredentialsOf } from './helpers.ts';

const QUIET_MS = 30_000;

// One cluster for the whole file (starting ten processes is most of a test's time on a loaded machine).
// Every test ends healed and quiescent, so the next one starts from a clean network and no held locks.
let shared: Cluster | undefined;
before(async () => {
  shared = await Cluster.start({ catalog: SMALL_CATALOG, faultProxies: true, env: { TXMESH_LOG_LEVEL: 'warn' } });
  useCredentialsOf(shared);
});
after(async () => {
  await shared?.stop();
  shared?.removeData();
});
afterEach(() => shared?.healAll());

function startedCluster(): Cluster {
  if (!shared) throw new Error('the shared cluster did not start');
  return shared;
}

/** Nothing prepared at any service or sidecar, no shard with work in flight, and every check green. */
async function assertHealed(cluster: Cluster, heard: Map<string, 'committed' | 'aborted'>): Promise<void> {
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, QUIET_MS), 'the cluster quiesces after heal');
  const sidecarsEmpty = await eventually(async () => {
    for (const sidecar of cluster.sidecars.values()) {
      const health = (await (await fetch(`${sidecar.url}${Paths.SIDECAR_HEALTH}`)).json()) as { prepared: number };
      if (health.prepared !== 0) return false;
    }
    return true;
  }, QUIET_MS);
  assert.ok(sidecarsEmpty, 'no sidecar keeps a prepared record');
  const report = await verifyCluster(serviceUrls(cluster), heard);
  assert.deepEqual(report.problems, []);
  assert.ok(report.invariantsOk);
}

/**
 * Progress after heal: once the cut transaction has finished (its locks are released by the rollback),
 * a fresh order on the same sku and account commits.
 */
async function assertProgress(cluster: Cluster, orderId: string): Promise<string> {
  assert.ok(await waitForQuiescence(serviceUrls(cluster), cluster.coordinatorUrls, QUIET_MS), 'the cut transaction finishes after heal');
  const again = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder(orderId));
  assert.equal(again.body.outcome, 'committed', `a new order commits after heal: ${JSON.stringify(again.body)}`);
  return again.body.txId as string;
}

test('coordinator → sidecar, answers lost: the prepare is applied, the vote never arrives, the transaction aborts everywhere', async () => {
  const cluster = startedCluster();
  const link = cluster.link('coordinator-0', 'sidecar-payment');
  link.drop('toClient');
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p1', 1500));
  assert.equal(result.body.outcome, 'aborted', 'a vote that never arrives means abort');
  assert.equal(result.body.reason, 'TIMEOUT');
  // The rollback reaches payment (requests pass) but its ack is lost: the coordinator keeps retrying.
  const stats = (await (await fetch(`${cluster.coordinators[0]!.url}/v1/stats`)).json()) as { inFlight: number };
  assert.ok(stats.inFlight > 0, 'the rollback is not acknowledged while the answers are lost');
  link.heal();
  const heard = new Map<string, 'committed' | 'aborted'>([[result.body.txId as string, 'aborted']]);
  heard.set(await assertProgress(cluster, 'order-p1b'), 'committed');
  await assertHealed(cluster, heard);
});

test('coordinator → sidecar, commit applied but its ack lost: the client hears committed and the retried commit applies once', async () => {
  const cluster = startedCluster();
  const link = cluster.link('coordinator-0', 'sidecar-inventory');
  // Lose every answer from the moment the commit batch goes out: the commit itself is delivered.
  const untap = link.tap((direction, chunk) => {
    if (direction === 'toTarget' && chunk.includes('"commit"')) {
      untap();
      link.drop('toClient');
    }
  });
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p2'));
  assert.equal(result.body.outcome, 'committed');
  assert.ok(await eventually(async () => link.mode === 'drop', 10_000, 10), 'the commit batch went out while answers are lost');
  const applied = await eventually(async () => (await summaries(cluster)).get('inventory')!.committedTxIds.includes(result.body.txId), 10_000);
  assert.ok(applied, 'inventory applied the commit whose ack is lost');
  const stats = (await (await fetch(`${cluster.coordinators[0]!.url}/v1/stats`)).json()) as { inFlight: number };
  assert.equal(stats.inFlight, 1, 'the coordinator still waits for the ack');
  link.heal();
  await assertHealed(cluster, new Map([[result.body.txId as string, 'committed' as const]]));
});

test('coordinator ↔ sidecar cut after the decision: the sidecar asks the shard itself and commits before the link heals', async () => {
  const cluster = startedCluster();
  const inbound = cluster.link('coordinator-0', 'sidecar-shipping');
  // The commit batch for shipping never arrives, and shipping's sidecar cannot reach the shard either.
  const untap = inbound.tap((direction, chunk) => {
    if (direction === 'toTarget' && chunk.includes('"commit"')) {
      untap();
      inbound.blackhole();
      cluster.link('sidecar-shipping', 'coordinator-0').blackhole();
    }
  });
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p3'));
  assert.equal(result.body.outcome, 'committed');
  const txId = result.body.txId as string;
  assert.ok(await eventually(async () => inbound.mode === 'blackhole', 10_000, 10), 'the commit batch went out into the blackhole');
  const held = (await summaries(cluster)).get('shipping')!;
  assert.equal(held.preparedBranches, 1, 'shipping is prepared and cut off from its decision');
  assert.ok(!held.committedTxIds.includes(txId));

  // Half of the partition heals: the sidecar can ask the shard, the shard still cannot reach the sidecar.
  cluster.link('sidecar-shipping', 'coordinator-0').heal();
  const resolved = await eventually(async () => (await summaries(cluster)).get('shipping')!.committedTxIds.includes(txId), 20_000);
  assert.ok(resolved, 'the in-doubt resolver fetched the COMMIT decision and applied it');
  inbound.heal();
  await assertHealed(cluster, new Map([[txId, 'committed' as const]]));
});

test('coordinator → sidecar delayed beyond the prepare timeout: the late prepare and vote change nothing', async () => {
  const cluster = startedCluster();
  const link = cluster.link('coordinator-0', 'sidecar-inventory');
  link.delay(1500); // each way: a round trip stays under the 5 s delivery timeout, far over the 800 ms prepare timeout
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p4', 800));
  assert.equal(result.body.outcome, 'aborted');
  assert.equal(result.body.reason, 'TIMEOUT');
  // Everything delayed (the prepare, the rollback, their answers) arrives while the link stays slow.
  const settled = await eventually(async () => {
    const stats = (await (await fetch(`${cluster.coordinators[0]!.url}/v1/stats`)).json()) as { inFlight: number };
    return stats.inFlight === 0;
  }, 30_000, 200);
  assert.ok(settled, 'the rollback got through the slow link');
  link.heal();
  const heard = new Map<string, 'committed' | 'aborted'>([[result.body.txId as string, 'aborted']]);
  heard.set(await assertProgress(cluster, 'order-p4b'), 'committed');
  await assertHealed(cluster, heard);
});

test('sidecar → service, answers lost: the service prepares, the sidecar never hears it, the transaction aborts everywhere', async () => {
  const cluster = startedCluster();
  const link = cluster.link('sidecar-payment', 'service-payment');
  link.drop('toClient');
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p5', 1500));
  assert.equal(result.body.outcome, 'aborted');
  const payment = (await summaries(cluster)).get('payment')!;
  assert.ok(!payment.committedTxIds.includes(result.body.txId), 'payment did not commit the aborted transaction');
  link.heal();
  const heard = new Map<string, 'committed' | 'aborted'>([[result.body.txId as string, 'aborted']]);
  heard.set(await assertProgress(cluster, 'order-p5b'), 'committed');
  await assertHealed(cluster, heard);
});

test('sidecar → service blackholed during commit: the commit is retried until the service is reachable again', async () => {
  const cluster = startedCluster();
  const link = cluster.link('sidecar-order', 'service-order');
  const untap = link.tap((direction, chunk) => {
    if (direction === 'toTarget' && chunk.includes('"commit"')) {
      untap();
      link.blackhole();
    }
  });
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p6'));
  assert.equal(result.body.outcome, 'committed');
  // The client hears "committed" once the decision is durable; the fan-out follows.
  assert.ok(await eventually(async () => link.mode === 'blackhole', 10_000, 10), 'the commit batch went out into the blackhole');
  const order = (await summaries(cluster)).get('order')!;
  assert.ok(!order.committedTxIds.includes(result.body.txId), 'the commit has not reached the order service');
  link.heal();
  await assertHealed(cluster, new Map([[result.body.txId as string, 'committed' as const]]));
});

test('sidecar reset while it is down and its links are flapping: SIGKILL, restart, everything resolves', async () => {
  const cluster = startedCluster();
  const sidecar = cluster.sidecars.get('inventory')!;
  const link = cluster.link('coordinator-0', 'sidecar-inventory');
  const untap = link.tap((direction, chunk) => {
    // Kill the sidecar the moment its commit arrives: the commit is not forwarded to the service.
    if (direction === 'toTarget' && chunk.includes('"commit"')) {
      untap();
      link.blackhole();
      void sidecar.kill('SIGKILL');
    }
  });
  const result = await postJson(`${cluster.coordinators[0]!.url}/v1/transactions`, goodOrder('order-p7'));
  assert.equal(result.body.outcome, 'committed');
  await sidecar.exited();
  cluster.link('sidecar-inventory', 'coordinator-0').reset();
  // The sidecar is ready only once the shard accepts its registration, so it comes up not ready ...
  const log = join(cluster.dataDir, 'sidecar-inventory.log');
  const refusals = (): number => readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('has not accepted the registration')).length;
  const refusedBefore = refusals();
  const restarted = sidecar.start();
  const refused = await eventually(async () => refusals() > refusedBefore, 20_000, 20);
  assert.ok(refused, 'the restarted sidecar tried the shard through the reset link');
  // ... and only the sidecar → coordinator link heals: the restarted sidecar must find the decision itself.
  cluster.link('sidecar-inventory', 'coordinator-0').heal();
  await restarted;
  const resolved = await eventually(async () => (await summaries(cluster)).get('inventory')!.committedTxIds.includes(result.body.txId), 20_000);
  assert.ok(resolved, 'the restarted sidecar resolved its prepared record from the shard');
  link.heal();
  await assertHealed(cluster, new Map([[result.body.txId as string, 'committed' as const]]));
});
