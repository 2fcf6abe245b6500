// What one hook span costs a service process (a probe for docs/benchmarks.md, issue 15; not part of the product):
// this process starts a role's telemetry (the NodeSDK with txmesh's span processor, every span exported over
// OTLP/HTTP protobuf to a sink in this process) and runs `withItemSpans` the way the participant SDK does around
// its hooks, over batches of ITEMS items that each carry a trace context, BATCHES times after a warm-up; it prints
// the process's CPU and wall time per span.
//   node scripts/probes/hook-span-cost.mjs [BATCHES=10000] [ITEMS=14]
// PROBE_CHECKOUT=<a built checkout> runs that checkout's telemetry and span helpers (before/after pairs, one process
// each, alternated by the caller). PROBE_HEAP=1 also samples every allocation (the sampling heap profiler, objects
// collected since included) and prints the bytes allocated per span, in total and by the function that allocated.
// The queue limit is raised (OTEL_BSP_MAX_QUEUE_SIZE=65536) so that a burst of spans is encoded, not dropped.
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const batches = Number(process.argv[2] ?? 10_000);
const items = Number(process.argv[3] ?? 14);
const checkout = process.env.PROBE_CHECKOUT || join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const sink = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
});
await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
const env = {
  OTEL_TRACES_EXPORTER: 'otlp',
  OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.address().port}`,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  OTEL_TRACES_SAMPLER: 'always_on',
  OTEL_BSP_MAX_QUEUE_SIZE: '65536',
};
Object.assign(process.env, env);
const { startTelemetry } = await import(join(checkout, 'packages', 'cli', 'dist', 'telemetry.js'));
const { withItemSpans } = await import(join(checkout, 'packages', 'client', 'dist', 'spans.js'));
const telemetry = await startTelemetry({ defaultServiceName: 'hook-span-probe', metricsPort: 0, metricsHost: '127.0.0.1', env: process.env }, { role: true });

const hex = (digits) => {
  let out = '';
  while (out.length < digits) out += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, digits);
};
// As the items arrive at a service: parsed from JSON, each with its branch span's traceparent.
const shapes = Array.from({ length: 64 }, () =>
  JSON.parse(JSON.stringify(Array.from({ length: items }, (_, i) => ({ txId: `0-probe-${hex(16)}`, action: i % 2 ? 'commit' : 'prepare', service: 'inventory', trace: { traceparent: `00-${hex(32)}-${hex(16)}-01` } })))),
);
const options = { scope: '@txmesh/participant-sdk', name: 'txmesh hook', service: 'inventory', handOn: false };
const handle = async (batch) => batch.map((item) => ({ txId: item.txId, status: 'OK' }));
async function run(count) {
  for (let b = 0; b < count; b++) {
    await withItemSpans(options, shapes[b % shapes.length], handle);
    // Let the exporter's requests run, as a service's event loop would between batches.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

await run(Math.min(3000, batches));
const session = new Session();
session.connect();
if (process.env.PROBE_HEAP === '1') {
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}
const cpuBefore = process.cpuUsage();
const startedAt = performance.now();
await run(batches);
const cpu = process.cpuUsage(cpuBefore);
const wallMs = performance.now() - startedAt;
const spans = batches * items;
const result = { checkout, spans, cpuUsPerSpan: Math.round(((cpu.user + cpu.system) / spans) * 1000) / 1000, wallUsPerSpan: Math.round(((wallMs * 1000) / spans) * 1000) / 1000 };
if (process.env.PROBE_HEAP === '1') {
  const { profile } = await session.post('HeapProfiler.stopSampling');
  const byFunction = new Map();
  let total = 0;
  const walk = (node) => {
    const frame = node.callFrame;
    const where = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*node_modules\//, '').replace(/^.*packages\//, '')}:${frame.lineNumber + 1}`;
    total += node.selfSize;
    byFunction.set(where, (byFunction.get(where) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  result.bytesPerSpan = Math.round(total / spans);
  result.bytesPerSpanBy = Object.fromEntries([...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([where, bytes]) => [where, Math.round(bytes / spans)]));
}
session.disconnect();
await telemetry.shutdown();
sink.close();
console.log(JSON.stringify(result));
