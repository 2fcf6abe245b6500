// What a span costs from start to its bytes on the wire, with the SDK's OTLP/HTTP exporter against txmesh's own
// (packages/cli/src/otlp): each round starts one process per exporter, in alternating order, and each makes the
// spans of a coordinator-shaped transaction (a transaction span, eight branch spans with four attributes, one
// batch span linking eight of them) at a fixed rate under the NodeSDK's batch span processor, exporting over
// OTLP/HTTP protobuf to a receiver in this process. CPU per transaction comes from the child's own
// process.cpuUsage over its window, so a busy machine slows the run but weighs less on the figure than on a
// throughput. Prints one JSON line.
//   node scripts/probes/span-export-cost.mjs [rounds=4] [txPerSec=400] [windowSec=5]
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

const EXPORTERS = ['sdk', 'txmesh'];

if (process.argv[2] === '--child') await child(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
else await parent(Number(process.argv[2] ?? 4), Number(process.argv[3] ?? 400), Number(process.argv[4] ?? 5));

async function parent(rounds, txPerSec, windowSec) {
  const { OtlpReceiver } = await import('@txmesh/lab');
  const receiver = await OtlpReceiver.start({ keepSpans: false });
  const perRound = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? EXPORTERS : [...EXPORTERS].reverse();
      const figures = {};
      for (const exporter of order) figures[exporter] = await runChild(exporter, txPerSec, windowSec, receiver.benchmarkEnv());
      perRound.push({ order, ...figures, txmeshOverSdk: Math.round((figures.txmesh.cpuUsPerTx / figures.sdk.cpuUsPerTx) * 1000) / 1000 });
    }
  } finally {
    await receiver.close();
  }
  const ratios = perRound.map((r) => r.txmeshOverSdk).sort((a, b) => a - b);
  const median = ratios.length % 2 ? ratios[(ratios.length - 1) / 2] : (ratios[ratios.length / 2 - 1] + ratios[ratios.length / 2]) / 2;
  console.log(JSON.stringify({ txPerSec, windowSec, loadAverage: loadavg().map((l) => Math.round(l * 10) / 10), spansReceived: receiver.count, cpuPerTxTxmeshOverSdk: { median, perRound: perRound.map((r) => r.txmeshOverSdk) }, perRound }));
}

function runChild(exporter, txPerSec, windowSec, env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', exporter, String(txPerSec), String(windowSec)], { env: { ...process.env, ...env, OTEL_LOGS_EXPORTER: 'none', OTEL_METRICS_EXPORTER: 'none' }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (chunk) => (out += chunk));
    proc.on('error', reject);
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${exporter} child exited ${code}`))));
  });
}

async function child(exporter, txPerSec, windowSec) {
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const { ROOT_CONTEXT, SpanKind, trace } = await import('@opentelemetry/api');
  const { OtlpHttpSpanExporter } = await import('txmesh/telemetry');
  const sdk = new NodeSDK({ serviceName: 'txmesh-coordinator-0', ...(exporter === 'txmesh' ? { traceExporter: new OtlpHttpSpanExporter('http/protobuf') } : {}) });
  sdk.start();
  const tracer = trace.getTracer('@txmesh/coordinator');
  const services = ['inventory', 'payment', 'order', 'shipping'];
  let n = 0;
  const transaction = () => {
    const txId = `s0-01JD${String(n++).padStart(20, '0')}`;
    const root = tracer.startSpan('txmesh coordinate', { kind: SpanKind.SERVER }, ROOT_CONTEXT);
    root.setAttribute('txmesh.shard', 0);
    root.setAttribute('txmesh.tx_id', txId);
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    const branches = [];
    for (const action of ['prepare', 'commit']) {
      for (const service of services) {
        const branch = tracer.startSpan(`txmesh branch ${action}`, { kind: SpanKind.INTERNAL }, parent);
        branch.setAttribute('txmesh.tx_id', txId);
        branch.setAttribute('txmesh.service', service);
        branch.setAttribute('txmesh.attempt', 1);
        branch.setAttribute('txmesh.vote', 'yes');
        branches.push(branch);
      }
    }
    const batch = tracer.startSpan('txmesh batch', { kind: SpanKind.CLIENT, links: branches.map((b) => ({ context: b.spanContext() })), attributes: { 'txmesh.service': 'payment', 'txmesh.batch.items': 8 } }, ROOT_CONTEXT);
    batch.end();
    for (const branch of branches) branch.end();
    root.setAttribute('txmesh.outcome', 'committed');
    root.end();
  };
  const tickMs = 10;
  const perTick = (txPerSec * tickMs) / 1000;
  let owed = 0;
  const timer = setInterval(() => {
    owed += perTick;
    for (; owed >= 1; owed -= 1) transaction();
  }, tickMs);
  await new Promise((resolve) => setTimeout(resolve, 3000)); // warm-up: JIT and the first export batches
  const startTx = n;
  const startCpu = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, windowSec * 1000));
  const cpu = process.cpuUsage(startCpu);
  const done = n - startTx;
  clearInterval(timer);
  await sdk.shutdown().catch(() => undefined);
  console.log(JSON.stringify({ transactions: done, cpuUsPerTx: Math.round((cpu.user + cpu.system) / done) }));
}
