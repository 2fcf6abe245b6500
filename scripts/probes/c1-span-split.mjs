// Where a 4-service order's time goes at concurrency 1, from the spans of every member: a cluster with every
// span exported to a receiver in this process, warmed at concurrency 8, then a closed loop at concurrency 1.
// Prints the client's p50 and, per span name and process kind, the count and p50/p90 of the span's duration:
// the coordinator's transaction span, its branch spans (prepare/commit: sent until answered) and batch request
// spans, the sidecar's batch span (frame in until answer out, the service call inside) and the service's hook
// spans. Tracing itself adds to every hop, so read the split, not the totals. Only durations are compared:
// a span's start is taken from the wall clock in ms, so starts across processes do not line up below 1 ms.
// A probe for docs/benchmarks.md, not part of the product. After `npm run build`:
//   node scripts/probes/c1-span-split.mjs [seconds=5] [warmup-seconds=15]
import { createTxmeshClient } from '@txmesh/client';
import { BENCH_CATALOG, Cluster, OPTIMISED_ENV, OtlpReceiver, closedLoop, makeWorkload, sleep } from '@txmesh/lab';

const [seconds = '5', warmupSeconds = '15'] = process.argv.slice(2);
const receiver = await OtlpReceiver.start();
// Exported within 200 ms of ending, so the last transactions' spans are in before the receiver is read.
const env = { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV, ...receiver.exporterEnv(), OTEL_BSP_SCHEDULE_DELAY: '200' };
const cluster = await Cluster.start({ shards: 1, catalog: BENCH_CATALOG, env });
const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: 8, overloadRetries: 0, ...cluster.clientOptions });
try {
  await closedLoop({ concurrency: 8, warmupMs: 0, durationMs: Number(warmupSeconds) * 1000, client, next: makeWorkload(1, 'c1-split-warm', BENCH_CATALOG) });
  await sleep(2000);
  const from = receiver.spans.length;
  const tally = await closedLoop({ concurrency: 1, warmupMs: 1000, durationMs: Number(seconds) * 1000, client, next: makeWorkload(1, 'c1-split', BENCH_CATALOG) });
  await sleep(2000);
  const latencies = [...tally.latencies].sort((a, b) => a - b);
  const at = (sorted, q) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] * 1000) / 1000;
  const durations = new Map();
  for (const span of receiver.spans.slice(from)) {
    const kind = span.serviceName.replace(/-(inventory|payment|order|shipping)$/, '').replace(/-\d+$/, '');
    const key = `${kind} / ${span.name}`;
    if (!durations.has(key)) durations.set(key, []);
    durations.get(key).push(Number(span.endNs - span.startNs) / 1e6);
  }
  const spans = Object.fromEntries(
    [...durations].map(([key, values]) => {
      values.sort((a, b) => a - b);
      return [key, { count: values.length, p50Ms: at(values, 0.5), p90Ms: at(values, 0.9) }];
    }),
  );
  console.log(JSON.stringify({ clientP50Ms: at(latencies, 0.5), committed: tally.committed, spans }, null, 1));
} finally {
  await client.close().catch(() => undefined);
  await cluster.stop();
  cluster.removeData();
  await receiver.close();
}
