/**
 * txmesh's span processor (packages/cli otlp/span-processor.ts): spans encoded as they end, sent in batches
 * under the OTEL_BSP_* limits, and a shutdown that never rejects whatever the collector does; and a role
 * process started through `serve` (as the coordinator, the sidecar and the example services are) with spans
 * still waiting and its collector unreachable or hanging, which exits 0 on SIGTERM within the exporter's
 * timeout and says on stderr how many spans were lost. Before, the SDK's shutdown rejected there and the
 * process printed a stack and exited 1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, type TestContext } from 'node:test';
import { TraceFlags } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import {
  EncodingSpanProcessor,
  OtlpHttpProtocol,
  OtlpHttpRequestExporter,
  batchLimitsFrom,
  ROLE_BATCH_DEFAULTS,
  SPEC_BATCH_DEFAULTS,
  spanBatchFor,
  type BatchLimits,
  type EncodedSpanExporter,
  type EncodedSpanRequest,
} from 'txmesh/telemetry';
import { decodeProtobufExport } from './otlp-protobuf.ts';
import { OtlpReceiver } from './otlp-receiver.ts';

/** What an exporter answers (@opentelemetry/core's ExportResult; SUCCESS is 0). */
type ExportResult = Parameters<Parameters<EncodedSpanExporter['export']>[1]>[0];
const SUCCESS: ExportResult = { code: 0 };

const LIMITS: BatchLimits = { scheduledDelayMillis: 60_000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 };

/** An exporter that keeps every request and answers when the test says so. */
class HeldExporter implements EncodedSpanExporter {
  readonly requests: { request: EncodedSpanRequest; done: (result: ExportResult) => void }[] = [];
  export(request: EncodedSpanRequest, done: (result: ExportResult) => void): void {
    this.requests.push({ request, done });
  }
  async shutdown(): Promise<void> {}
}

function tracerWith(processor: EncodingSpanProcessor, sampled = true) {
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'processor-test' }),
    spanProcessors: [processor],
    ...(sampled ? {} : { sampler: new AlwaysOffSampler() }),
  });
  return provider.getTracer('processor-test');
}

function endSpans(tracer: ReturnType<typeof tracerWith>, count: number): void {
  for (let i = 0; i < count; i++) tracer.startSpan(`span ${i}`, { attributes: { 'txmesh.n': i } }).end();
}

/** The exporter the roles use, sending to `url` (OTEL_EXPORTER_OTLP_* read when it is built, as in a role). */
function exporterTo(url: string, timeoutMs?: number): OtlpHttpRequestExporter {
  const env = { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${url}/v1/traces`, ...(timeoutMs === undefined ? {} : { OTEL_EXPORTER_OTLP_TIMEOUT: String(timeoutMs) }) };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return new OtlpHttpRequestExporter(OtlpHttpProtocol.PROTOBUF);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function listen(t: TestContext, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return url;
}

describe('txmesh span processor', () => {
  it('sends a full batch at once and the rest on flush, every span readable by a receiver', async (t) => {
    const receiver = await OtlpReceiver.start();
    t.after(() => receiver.close());
    const processor = new EncodingSpanProcessor({ batch: spanBatchFor(OtlpHttpProtocol.PROTOBUF), exporter: exporterTo(receiver.url), limits: LIMITS });
    const tracer = tracerWith(processor);
    endSpans(tracer, 1100);
    await processor.forceFlush();
    assert.equal(receiver.requests, 3, 'two full batches of 512 and the 76 left');
    assert.equal(receiver.count, 1100);
    const names = new Set(receiver.spans.map((s) => s.name));
    assert.equal(names.size, 1100, 'every span once');
    assert.deepEqual(receiver.spans.find((s) => s.name === 'span 7')?.attributes, { 'txmesh.n': 7 });
    assert.equal(receiver.spans[0]!.serviceName, 'processor-test');
    await processor.shutdown();
  });

  it('encodes a span when it ends: what changes in the object afterwards is not sent', async () => {
    const exporter = new HeldExporter();
    const processor = new EncodingSpanProcessor({ batch: spanBatchFor(OtlpHttpProtocol.PROTOBUF), exporter, limits: LIMITS });
    const span = tracerWith(processor).startSpan('ended', { attributes: { 'txmesh.tx_id': 'tx-1' } });
    span.end();
    // An ended span ignores changes through its api; its ReadableSpan fields are what a processor holds.
    (span as unknown as { attributes: Record<string, unknown> }).attributes['txmesh.tx_id'] = 'changed later';
    const flushed = processor.forceFlush();
    assert.equal(exporter.requests.length, 1);
    const decoded = decodeProtobufExport(exporter.requests[0]!.request.bytes);
    const sent = decoded.resourceSpans![0]!.scopeSpans![0]!.spans![0]!;
    assert.deepEqual(sent.attributes, [{ key: 'txmesh.tx_id', value: { stringValue: 'tx-1' } }]);
    exporter.requests[0]!.done(SUCCESS);
    await flushed;
  });

  it("takes the specification's defaults for an application and a role's larger batches, the environment winning over both", () => {
    assert.deepEqual(batchLimitsFrom({}), { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 });
    assert.deepEqual(batchLimitsFrom({}), SPEC_BATCH_DEFAULTS);
    assert.deepEqual(batchLimitsFrom({}, ROLE_BATCH_DEFAULTS), { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 8192, maxExportBatchSize: 2048 });
    assert.equal(batchLimitsFrom({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '512' }, ROLE_BATCH_DEFAULTS).maxExportBatchSize, 512);
    // A smaller queue set alone bounds the role's default batch, as it bounds any batch.
    assert.deepEqual(batchLimitsFrom({ OTEL_BSP_MAX_QUEUE_SIZE: '1000' }, ROLE_BATCH_DEFAULTS), { ...ROLE_BATCH_DEFAULTS, maxQueueSize: 1000, maxExportBatchSize: 1000 });
    assert.equal(batchLimitsFrom({ OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 'lots' }, ROLE_BATCH_DEFAULTS).maxExportBatchSize, 2048);
  });

  it('drops spans beyond OTEL_BSP_MAX_QUEUE_SIZE while an export is in flight, and says how many at shutdown', async () => {
    const exporter = new HeldExporter();
    const lost: [number, string][] = [];
    const limits = batchLimitsFrom({ OTEL_BSP_MAX_QUEUE_SIZE: '8', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4', OTEL_BSP_SCHEDULE_DELAY: '60000' });
    assert.deepEqual(limits, { scheduledDelayMillis: 60_000, exportTimeoutMillis: 30_000, maxQueueSize: 8, maxExportBatchSize: 4 });
    const processor = new EncodingSpanProcessor({ batch: spanBatchFor(OtlpHttpProtocol.PROTOBUF), exporter, limits, onLost: (spans, reason) => lost.push([spans, reason]) });
    const tracer = tracerWith(processor);
    // 4 go out at once and wait for their answer; 8 more fill the queue; 3 are dropped.
    endSpans(tracer, 15);
    assert.equal(exporter.requests.length, 1, 'one export at a time');
    assert.equal(exporter.requests[0]!.request.count, 4);
    const stopped = processor.shutdown();
    exporter.requests[0]!.done(SUCCESS);
    await new Promise((resolve) => setImmediate(resolve));
    exporter.requests[1]!.done(SUCCESS);
    await new Promise((resolve) => setImmediate(resolve));
    exporter.requests[2]!.done(SUCCESS);
    await stopped;
    assert.deepEqual(exporter.requests.map((r) => r.request.count), [4, 4, 4]);
    assert.equal(lost.length, 1);
    assert.equal(lost[0]![0], 3);
    assert.match(lost[0]![1], /OTEL_BSP_MAX_QUEUE_SIZE/);
  });

  it('a span that cannot be encoded is counted as lost, never thrown into end(), and leaves its batch well formed', async () => {
    const exporter = new HeldExporter();
    const lost: [number, string][] = [];
    const processor = new EncodingSpanProcessor({ batch: spanBatchFor(OtlpHttpProtocol.PROTOBUF), exporter, limits: LIMITS, onLost: (spans, reason) => lost.push([spans, reason]) });
    const tracer = tracerWith(processor);
    const broken = tracer.startSpan('broken', { attributes: { 'txmesh.before': 'written first' } });
    // Its events are read after the span's ids, name, times and attributes were written.
    Object.defineProperty(broken, 'events', {
      get() {
        throw new Error('unreadable events');
      },
    });
    assert.doesNotThrow(() => broken.end());
    tracer.startSpan('fine').end();
    const flushed = processor.forceFlush();
    const decoded = decodeProtobufExport(exporter.requests[0]!.request.bytes);
    assert.deepEqual(decoded.resourceSpans![0]!.scopeSpans![0]!.spans!.map((s) => s.name), ['fine']);
    assert.equal(exporter.requests[0]!.request.count, 1);
    exporter.requests[0]!.done(SUCCESS);
    await flushed;
    await processor.shutdown();
    assert.deepEqual(lost, [[1, 'a span could not be encoded: unreadable events']]);
  });

  it('exports only sampled spans', async () => {
    const exporter = new HeldExporter();
    const processor = new EncodingSpanProcessor({ batch: spanBatchFor(OtlpHttpProtocol.PROTOBUF), exporter, limits: LIMITS });
    const span = tracerWith(processor, false).startSpan('not sampled');
    assert.equal(span.spanContext().traceFlags & TraceFlags.SAMPLED, 0);
    span.end();
    await processor.forceFlush();
    assert.equal(exporter.requests.length, 0);
  });
});

describe('txmesh span processor at shutdown, whatever the collector does', () => {
  const cases: [string, (t: TestContext) => Promise<string>][] = [
    ['refuses connections', () => closedPort()],
    ['accepts and never answers', (t) => listen(t, createServer(() => {}))],
    ['answers 500', (t) => listen(t, createServer((_req, res) => res.writeHead(500).end()))],
  ];
  for (const [what, collector] of cases) {
    it(`resolves within the exporter's timeout and reports the lost spans when the collector ${what}`, async (t) => {
      const url = await collector(t);
      const lost: [number, string][] = [];
      const processor = new EncodingSpanProcessor({ batch: spanBatchFor(OtlpHttpProtocol.PROTOBUF), exporter: exporterTo(url, 800), limits: LIMITS, onLost: (spans, reason) => lost.push([spans, reason]) });
      // Three batches wait: the first fails, the other two are given up instead of waiting as long each.
      endSpans(tracerWith(processor), 1300);
      const started = performance.now();
      await processor.shutdown();
      const tookMs = performance.now() - started;
      assert.ok(tookMs < 5000, `shutdown took ${Math.round(tookMs)} ms`);
      assert.equal(lost.length, 1, 'reported once');
      assert.equal(lost[0]![0], 1300);
      await processor.shutdown();
      assert.equal(lost.length, 1, 'a second shutdown reports nothing more');
    });
  }
});

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A role that makes ROLE_SPANS spans (600 unless set) once its telemetry started; they wait for a batch to fill. */
const ROLE = `
import { trace } from '@opentelemetry/api';
import { serve } from 'txmesh';
process.exitCode = await serve(async () => {
  const tracer = trace.getTracer('shutdown-test');
  const spans = Number(process.env.ROLE_SPANS ?? 600);
  for (let i = 0; i < spans; i++) tracer.startSpan('work ' + i).end();
  return { url: 'http://127.0.0.1:1', close: async () => {} };
}, { telemetry: { defaultServiceName: 'shutdown-test', metricsPort: 0, metricsHost: '127.0.0.1' } });
`;

/** Starts the role, waits for its ready line, SIGTERMs it: its exit code, stderr and how long it took to stop. */
async function stopRole(collectorUrl: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string; stopMs: number }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', ROLE], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
      OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
      OTEL_TRACES_SAMPLER: 'always_on',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in 30 s\n${stdout}\n${stderr}`)), 30_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (stdout.includes('TXMESH_READY ')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before it was ready\n${stderr}`)));
  });
  const started = performance.now();
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await exited;
  clearTimeout(killer);
  return { code, stderr, stopMs: performance.now() - started };
}

describe('a txmesh process shuts down cleanly whatever the collector does', () => {
  const collectors: [string, (t: TestContext) => Promise<string>][] = [
    ['unreachable', () => closedPort()],
    ['hanging', (t) => listen(t, createServer(() => {}))],
  ];
  for (const [what, collector] of collectors) {
    it(`collector ${what}: exit 0 on SIGTERM, lost spans said in one line, no stack`, async (t) => {
      const { code, stderr, stopMs } = await stopRole(await collector(t));
      assert.equal(code, 0, stderr);
      assert.ok(stopMs < 8000, `stopped in ${Math.round(stopMs)} ms`);
      assert.match(stderr, /txmesh: 600 spans could not be exported: /);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    });
  }
});

describe('a txmesh role sends 2048 spans per export request unless OTEL_BSP_* says otherwise', () => {
  // The schedule delay is long, so only a full batch goes out before the SIGTERM; the rest goes at shutdown.
  const cases: [string, NodeJS.ProcessEnv, number][] = [
    ['by default: a request of 2048 at once, 52 at shutdown', {}, 2],
    ['OTEL_BSP_MAX_EXPORT_BATCH_SIZE=512: four requests of 512, 52 at shutdown', { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '512' }, 5],
  ];
  for (const [what, env, requests] of cases) {
    it(what, async (t) => {
      const receiver = await OtlpReceiver.start({ keepSpans: false });
      t.after(() => receiver.close());
      const { code, stderr } = await stopRole(receiver.url, { ROLE_SPANS: '2100', OTEL_BSP_SCHEDULE_DELAY: '60000', ...env });
      assert.equal(code, 0, stderr);
      assert.equal(receiver.count, 2100);
      assert.equal(receiver.requests, requests);
    });
  }
});
