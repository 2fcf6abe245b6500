/**
 * One OpenTelemetry trace per transaction, across real processes: this test is the application (it
 * registers its own provider through the `txmesh` telemetry bootstrap and starts transactions with
 * @txmesh/client), the coordinator, the sidecars and the example services export their spans over
 * OTLP/HTTP to a receiver the test runs, and the test checks the span tree.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { createTxmeshClient, type TxmeshClient } from '@txmesh/client';
import { CoordinatorSteps } from '@txmesh/coordinator';
import { OtlpReceiver, type ReceivedSpan } from '@txmesh/lab';
import { SpanNames, TraceAttributes } from '@txmesh/protocol';
import { startTelemetry, type Telemetry } from 'txmesh/telemetry';
import { eventually, goodOrder, refusedOrder, startTestCluster, summaries } from './helpers.ts';

const SERVICES = ['inventory', 'payment', 'order', 'shipping'];
let receiver: OtlpReceiver;
let telemetry: Telemetry;

before(async () => {
  receiver = await OtlpReceiver.start();
  // The application's own provider: the NodeSDK reads these like any OTEL_* configured app.
  // (No OTEL_SERVICE_NAME: the cluster members inherit this environment and name themselves.)
  Object.assign(process.env, receiver.exporterEnv());
  telemetry = await startTelemetry({ defaultServiceName: 'shop-app', metricsPort: 0, metricsHost: '127.0.0.1' });
  assert.ok(telemetry.tracing, 'the test process traces');
});
after(async () => {
  await telemetry.shutdown();
  await receiver.close();
});

function traceOf(traceId: string): ReceivedSpan[] {
  return receiver.spans.filter((s) => s.traceId === traceId);
}

function only(spans: ReceivedSpan[], what: string): ReceivedSpan {
  assert.equal(spans.length, 1, `exactly one ${what}, got ${spans.length}: ${spans.map((s) => `${s.serviceName}/${s.name}`).join(', ')}`);
  return spans[0]!;
}

/**
 * The span tree of one transaction, found from the client span by its txmesh.tx_id, once every process
 * has exported its part: `phases` branch phases, each a coordinator branch span and a hook span.
 */
async function transactionTrace(txId: string, phases: number): Promise<{ client: ReceivedSpan; spans: ReceivedSpan[] }> {
  let spans: ReceivedSpan[] = [];
  const count = (prefix: string): number => spans.filter((s) => s.name.startsWith(prefix)).length;
  const complete = await eventually(async () => {
    const client = receiver.spans.find((s) => s.name === SpanNames.CLIENT_TRANSACTION && s.attributes[TraceAttributes.TX_ID] === txId);
    if (!client) return false;
    spans = traceOf(client.traceId);
    return count(SpanNames.HOOK) >= phases && count(SpanNames.BRANCH) >= phases && count(SpanNames.COORDINATOR_TRANSACTION) === 1;
  }, 20_000);
  const client = receiver.spans.find((s) => s.name === SpanNames.CLIENT_TRANSACTION && s.attributes[TraceAttributes.TX_ID] === txId);
  assert.ok(complete && client, `the trace of ${txId} arrived (spans: ${spans.map((s) => `${s.serviceName}/${s.name}`).join(', ')})`);
  return { client, spans };
}

function childrenOf(parent: ReceivedSpan, spans: ReceivedSpan[], name: string): ReceivedSpan[] {
  return spans.filter((s) => s.parentSpanId === parent.spanId && s.name === name);
}

/** prepare (and commit/rollback) of one service: coordinator branch span -> hook span in the service. */
function assertBranchChain(spans: ReceivedSpan[], coordinatorSpan: ReceivedSpan, service: string, action: string): ReceivedSpan {
  const branch = only(
    childrenOf(coordinatorSpan, spans, `${SpanNames.BRANCH} ${action}`).filter((s) => s.attributes[TraceAttributes.SERVICE] === service),
    `${action} branch span of ${service}`,
  );
  assert.equal(branch.serviceName, 'txmesh-coordinator-0');
  const hook = only(childrenOf(branch, spans, `${SpanNames.HOOK} ${action}`), `${action} hook span of ${service}`);
  assert.equal(hook.serviceName, `example-${service}`, 'the hook span comes from the service process, in its own provider');
  assert.equal(hook.attributes[TraceAttributes.TX_ID], branch.attributes[TraceAttributes.TX_ID]);
  return branch;
}

/**
 * Every branch span of these is linked from a batch span that counts its items, and the sidecar of the
 * branch's service received that batch in a span of its own, the batch span's child.
 */
async function assertBatchLinks(branches: ReceivedSpan[]): Promise<void> {
  for (const branch of branches) {
    const service = String(branch.attributes[TraceAttributes.SERVICE]);
    const batch = receiver.spans.find((s) => s.name === SpanNames.BATCH && s.links.some((l) => l.spanId === branch.spanId && l.traceId === branch.traceId));
    assert.ok(batch, `a batch span links to the ${branch.name} span of ${service}`);
    assert.ok(Number(batch.attributes[TraceAttributes.BATCH_ITEMS]) >= 1);
    assert.equal(batch.links.length, batch.attributes[TraceAttributes.BATCH_ITEMS], 'one link per item');
    let received: ReceivedSpan | undefined;
    await eventually(async () => (received = receiver.spans.find((s) => s.name === SpanNames.SIDECAR_BATCH && s.parentSpanId === batch.spanId)) !== undefined, 20_000);
    assert.ok(received, `the ${service} sidecar's span of the batch carrying the ${branch.name} span is the batch span's child`);
    assert.equal(received.traceId, batch.traceId);
    assert.equal(received.serviceName, `txmesh-sidecar-${service}`);
    assert.equal(received.attributes[TraceAttributes.BATCH_ITEMS], batch.attributes[TraceAttributes.BATCH_ITEMS]);
  }
}

test('a 4-service commit is one trace: client -> coordinator -> branch per phase -> hooks; batches link to branches, and each sidecar spans the batch it got', async (t) => {
  const cluster = await startTestCluster(t, { env: receiver.exporterEnv() });
  const client: TxmeshClient = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, ...cluster.clientOptions });
  t.after(() => client.close());

  const result = await client.transaction(goodOrder('traced-commit', 20_000));
  assert.equal(result.outcome, 'committed', JSON.stringify(result));
  const { client: clientSpan, spans } = await transactionTrace(result.txId, 8);
  assert.equal(clientSpan.serviceName, 'shop-app');
  assert.equal(clientSpan.parentSpanId, undefined, 'the client span is the root');
  assert.equal(clientSpan.attributes[TraceAttributes.OUTCOME], 'committed');

  const coordinatorSpan = only(childrenOf(clientSpan, spans, SpanNames.COORDINATOR_TRANSACTION), 'coordinator transaction span');
  assert.equal(coordinatorSpan.attributes[TraceAttributes.TX_ID], result.txId);
  assert.equal(coordinatorSpan.attributes[TraceAttributes.SHARD], 0);
  assert.equal(coordinatorSpan.attributes[TraceAttributes.OUTCOME], 'committed');

  const branches: ReceivedSpan[] = [];
  for (const service of SERVICES) {
    const prepare = assertBranchChain(spans, coordinatorSpan, service, 'prepare');
    assert.equal(prepare.attributes[TraceAttributes.VOTE], 'yes');
    branches.push(prepare, assertBranchChain(spans, coordinatorSpan, service, 'commit'));
  }
  await assertBatchLinks(branches);
});

test('a business refusal: the trace shows the no vote, the abort reason and the rollbacks; the log line names txId, trace_id and span_id', async (t) => {
  // The members export OTLP/JSON here, the other tests protobuf: both of txmesh's serializers reach the receiver.
  const cluster = await startTestCluster(t, { env: receiver.exporterEnv('http/json'), memberEnv: { 'coordinator-0': { TXMESH_LOG_LEVEL: 'debug' } } });
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, ...cluster.clientOptions });
  t.after(() => client.close());

  const result = await client.transaction(refusedOrder('traced-refusal', 20_000));
  assert.equal(result.outcome, 'aborted');
  assert.equal(result.reason, 'UNDELIVERABLE');
  // Four prepare hooks, and a rollback hook at each service that did not refuse.
  const { client: clientSpan, spans } = await transactionTrace(result.txId, 7);
  assert.equal(clientSpan.attributes[TraceAttributes.ABORT_REASON], 'UNDELIVERABLE');
  const coordinatorSpan = only(childrenOf(clientSpan, spans, SpanNames.COORDINATOR_TRANSACTION), 'coordinator transaction span');
  assert.equal(coordinatorSpan.attributes[TraceAttributes.OUTCOME], 'aborted');
  assert.equal(coordinatorSpan.attributes[TraceAttributes.ABORT_REASON], 'UNDELIVERABLE');

  const shipping = assertBranchChain(spans, coordinatorSpan, 'shipping', 'prepare');
  assert.equal(shipping.attributes[TraceAttributes.VOTE], 'no');
  assert.equal(shipping.attributes[TraceAttributes.ABORT_REASON], 'UNDELIVERABLE');
  const refusedHook = spans.find((s) => s.name === `${SpanNames.HOOK} prepare` && s.serviceName === 'example-shipping');
  assert.equal(refusedHook?.attributes[TraceAttributes.ITEM_STATUS], 'no');
  for (const service of ['inventory', 'payment', 'order']) {
    assert.equal(assertBranchChain(spans, coordinatorSpan, service, 'prepare').attributes[TraceAttributes.VOTE], 'yes');
    assertBranchChain(spans, coordinatorSpan, service, 'rollback');
  }
  assert.equal(childrenOf(coordinatorSpan, spans, `${SpanNames.BRANCH} rollback`).length, 3, 'the refusing branch needs no rollback');

  // The coordinator's JSON log line for the decision carries the ids that find it from the trace and back.
  const lines = (await readFile(cluster.coordinators[0]!.logFile, 'utf8')).split('\n').filter((line) => line.startsWith('{'));
  const decided = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((entry) => entry.msg === 'transaction decided' && entry.txId === result.txId);
  assert.ok(decided, `the coordinator logged the decision of ${result.txId}`);
  assert.equal(decided.reason, 'UNDELIVERABLE');
  assert.equal(decided.trace_id, coordinatorSpan.traceId);
  assert.equal(decided.span_id, coordinatorSpan.spanId);
});

test('a commit delivered after a crash and restart stays in the transaction trace, linked from the recovery span', async (t) => {
  // The coordinator dies right after forcing COMMIT (nothing delivered); the payment sidecar is SIGKILLed
  // too. After both restart, the commit reaches payment by recovery: the coordinator's resumed fan-out or
  // the sidecar's own in-doubt round, whichever comes first. Either way it must land in the same trace.
  const cluster = await startTestCluster(t, {
    env: receiver.exporterEnv(),
    memberEnv: { 'coordinator-0': { TXMESH_CRASH_AT: CoordinatorSteps.AFTER_COMMIT_LOGGED } },
  });
  const coordinator = cluster.coordinators[0]!;
  const sidecar = cluster.sidecars.get('payment')!;
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, ...cluster.clientOptions });
  t.after(() => client.close());

  await assert.rejects(client.transaction(goodOrder('traced-crash', 20_000)), 'the coordinator dies before answering');
  await coordinator.exited();
  await sidecar.kill('SIGKILL');
  // Together: a sidecar is ready only once every shard accepted its registration.
  await Promise.all([sidecar.start(), coordinator.start()]);

  // The transaction every service committed, once both restarts let the commit through.
  let txId: string | undefined;
  const committed = await eventually(async () => {
    const ids = [...(await summaries(cluster)).values()].map((summary) => summary.committedTxIds[0]);
    txId = ids[0];
    return ids.length === SERVICES.length && ids.every((id) => id !== undefined && id === txId);
  }, 40_000);
  assert.ok(committed && txId, 'every service committed the transaction after the restarts');

  // Its trace is the one the client started: the client span ended with the error, the prepares and
  // the commits delivered after the restarts all belong to it.
  const clientSpan = receiver.spans.find((s) => s.name === SpanNames.CLIENT_TRANSACTION && s.statusCode === 2);
  assert.ok(clientSpan, 'the failed client call was traced');
  const hooks = (action: string): ReceivedSpan[] => receiver.spans.filter((s) => s.name === `${SpanNames.HOOK} ${action}` && s.attributes[TraceAttributes.TX_ID] === txId);
  // Both recovery paths may deliver the commit to payment (the resumed fan-out and the sidecar's in-doubt
  // round): a duplicate commit is acknowledged again, so count services, not spans.
  const arrived = await eventually(async () => new Set(hooks('commit').map((s) => s.serviceName)).size === SERVICES.length, 20_000);
  const seen = receiver.spans.filter((s) => s.attributes[TraceAttributes.TX_ID] === txId).map((s) => `${s.serviceName}/${s.name}`);
  assert.ok(arrived, `every commit hook span arrived; spans of ${txId}: ${seen.join(', ')}`);
  for (const hook of [...hooks('prepare'), ...hooks('commit')]) {
    assert.equal(hook.traceId, clientSpan.traceId, `${hook.serviceName} ${hook.name} is in the transaction trace`);
  }
  // The restarted process that delivered it (the coordinator resuming its log, or a sidecar's in-doubt
  // round) recorded a recovery span of its own trace, linked to the transaction's.
  let recovery: ReceivedSpan | undefined;
  await eventually(async () => (recovery = receiver.spans.find((s) => s.name === SpanNames.RECOVERY && s.links.some((l) => l.traceId === clientSpan.traceId))) !== undefined, 20_000);
  assert.ok(recovery, `a recovery span links to the transaction trace; recovery spans: ${JSON.stringify(receiver.spans.filter((s) => s.name === SpanNames.RECOVERY).map((s) => ({ service: s.serviceName, links: s.links })))}`);
  assert.notEqual(recovery.traceId, clientSpan.traceId, 'the recovery is its own trace, linked, not a child');
});
