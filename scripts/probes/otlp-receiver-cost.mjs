// What one OTLP/HTTP export request costs the receiving end: the telemetry bench's receiver (OtlpReceiver, counting
// spans only) in this process, fed by a child process that posts protobuf export requests of N spans of 190 bytes
// each (the size of a coordinator's branch span) at a fixed rate on one kept-alive connection. CPU per request is
// this process's own (process.cpuUsage, every thread) over the run. Prints one JSON line per batch size asked for.
// A probe for docs/benchmarks.md, not part of the product. After `npm run build`:
//   node scripts/probes/otlp-receiver-cost.mjs [spans-per-request,...=512,2048] [requests=300] [per-second=40]
import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';

const [sizesArg = '512,2048', requestsArg = '300', rateArg = '40'] = process.argv.slice(2);

const varint = (n) => {
  const out = [];
  for (; n > 127; n = Math.floor(n / 128)) out.push((n & 127) | 128);
  out.push(n);
  return Buffer.from(out);
};
/** A length-delimited protobuf field. */
const field = (number, bytes) => Buffer.concat([varint(number * 8 + 2), varint(bytes.length), bytes]);

/** ExportTraceServiceRequest { resource_spans { resource, scope_spans { scope, spans × n } } }. */
function exportRequest(spans) {
  const span = field(2, Buffer.alloc(190, 7));
  const scopeSpans = field(2, Buffer.concat([field(1, field(1, Buffer.from('probe'))), ...Array(spans).fill(span)]));
  return field(1, Buffer.concat([field(1, Buffer.alloc(60, 1)), scopeSpans]));
}

if (process.argv[2] === '--child') await post(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), process.argv[6]);
else await measure();

async function post(spans, requests, perSecond, url) {
  const body = exportRequest(spans);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const target = new URL('/v1/traces', url);
  const one = () =>
    new Promise((resolve, reject) => {
      const req = request(target, { method: 'POST', agent, headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(body);
    });
  for (let sent = 0; sent < requests; sent++) {
    const due = performance.now() + 1000 / perSecond;
    await one();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
  }
  process.send('done');
}

async function measure() {
  const { OtlpReceiver } = await import('@txmesh/lab');
  for (const spans of sizesArg.split(',').map(Number)) {
    const receiver = await OtlpReceiver.start({ keepSpans: false });
    const child = fork(fileURLToPath(import.meta.url), ['--child', String(spans), requestsArg, rateArg, receiver.url], { execArgv: [] });
    const started = process.cpuUsage();
    await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the sender exited with ${code}`)));
    });
    const used = process.cpuUsage(started);
    child.kill();
    await receiver.close();
    const cpuMs = (used.user + used.system) / 1000;
    console.log(JSON.stringify({ spansPerRequest: spans, requests: receiver.requests, spans: receiver.count, cpuMsPerRequest: round(cpuMs / receiver.requests), cpuUsPerSpan: round((cpuMs * 1000) / receiver.count) }));
  }
}

function round(x) {
  return Math.round(x * 1000) / 1000;
}
