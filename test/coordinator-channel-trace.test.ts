/**
 * What the HTTP batch request carried still travels over the coordinator's batch channel, across real processes
 * exporting OTLP to a receiver the test runs: a transaction whose every batch went over the channels (the sidecars'
 * counters say so) has the coordinator's batch span linked to each branch span, the sidecar's batch span as that
 * span's child (its context rides in the frame's body, not a header), and each hook span under its own branch span
 * (each item's own trace context).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTxmeshClient } from '@txmesh/client';
import { OtlpReceiver, type ReceivedSpan } from '@txmesh/lab';
import { Paths, SpanNames, TraceAttributes } from '@txmesh/protocol';
import { startTelemetry } from 'txmesh/telemetry';
import { eventually, goodOrder, startTestCluster } from './helpers.ts';

interface SidecarCounts {
  batchesReceived: number;
  batchesOverChannel: number;
  coordinatorChannels: number;
}

test('a transaction over the batch channels is one trace: batch spans link to branch spans, sidecar batch spans are their children, hooks under their branches', async (t) => {
  const receiver = await OtlpReceiver.start();
  t.after(() => receiver.close());
  Object.assign(process.env, receiver.exporterEnv());
  const telemetry = await startTelemetry({ defaultServiceName: 'shop-app', metricsPort: 0, metricsHost: '127.0.0.1' });
  t.after(() => telemetry.shutdown());
  const cluster = await startTestCluster(t, { env: receiver.exporterEnv() });
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, ...cluster.clientOptions });
  t.after(() => client.close());
  const counts = async (): Promise<Map<string, SidecarCounts>> =>
    new Map(await Promise.all([...cluster.sidecars].map(async ([service, member]) => [service, (await (await fetch(`${member.url}${Paths.SIDECAR_STATS}`)).json()) as SidecarCounts] as const)));

  // The first batches to each sidecar go over HTTP while its channel opens.
  assert.equal((await client.transaction(goodOrder('channel-warm', 20_000))).outcome, 'committed');
  assert.ok(await eventually(async () => [...(await counts()).values()].every((c) => c.coordinatorChannels >= 1), 10_000), 'every sidecar holds a channel');
  const before = await counts();

  const result = await client.transaction(goodOrder('channel-traced', 20_000));
  assert.equal(result.outcome, 'committed');
  const txId = result.txId;
  // Every batch of this transaction, prepares and commits, came over a channel.
  assert.ok(
    await eventually(async () => {
      const after = await counts();
      return [...after].every(([service, c]) => c.batchesReceived > before.get(service)!.batchesReceived);
    }, 10_000),
    'each sidecar got the commit too',
  );
  for (const [service, c] of await counts()) {
    const was = before.get(service)!;
    assert.equal(c.batchesOverChannel - was.batchesOverChannel, c.batchesReceived - was.batchesReceived, `every batch to ${service} came over its channel`);
  }

  const spansOf = (): ReceivedSpan[] => receiver.spans.filter((s) => s.attributes[TraceAttributes.TX_ID] === txId);
  assert.ok(await eventually(async () => spansOf().filter((s) => s.name.startsWith(SpanNames.BRANCH)).length >= 8, 20_000), 'eight branch spans arrived');
  const branches = spansOf().filter((s) => s.name.startsWith(SpanNames.BRANCH));
  for (const branch of branches) {
    const service = String(branch.attributes[TraceAttributes.SERVICE]);
    const batch = receiver.spans.find((s) => s.name === SpanNames.BATCH && s.links.some((l) => l.spanId === branch.spanId && l.traceId === branch.traceId));
    assert.ok(batch, `a batch span links to the ${branch.name} span of ${service}`);
    let received: ReceivedSpan | undefined;
    await eventually(async () => (received = receiver.spans.find((s) => s.name === SpanNames.SIDECAR_BATCH && s.parentSpanId === batch.spanId)) !== undefined, 20_000);
    assert.ok(received, `the ${service} sidecar's span of the batch is the batch span's child, over the channel`);
    assert.equal(received.traceId, batch.traceId);
    assert.equal(received.serviceName, `txmesh-sidecar-${service}`);
    let hook: ReceivedSpan | undefined;
    await eventually(async () => (hook = receiver.spans.find((s) => s.name.startsWith(SpanNames.HOOK) && s.parentSpanId === branch.spanId)) !== undefined, 20_000);
    assert.ok(hook, `the hook span of the ${branch.name} span of ${service} is its child: the item kept its own trace context`);
    assert.equal(hook.serviceName, `example-${service}`);
  }
});
