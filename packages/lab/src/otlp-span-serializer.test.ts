/**
 * txmesh's OTLP span serializers (packages/cli otlp/) against the SDK's own and against the proto's field
 * numbers: the same real SDK spans are encoded by both, decoded field by field (otlp-protobuf.ts checks each
 * field number's wire type), and must read the same; the receiver the span-tree tests use must read them too.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type HrTime } from '@opentelemetry/api';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { JsonSpanSerializer, OtlpHttpProtocol, OtlpHttpSpanExporter, ProtobufSpanBatch, ProtobufSpanSerializer } from 'txmesh/telemetry';
import { decodeProtobufExport } from './otlp-protobuf.ts';
import { OtlpReceiver } from './otlp-receiver.ts';
import type { OtlpSpan, OtlpValue } from './otlp-export.ts';

const START: HrTime = [1_764_288_000, 123_456_789];
const END: HrTime = [1_764_288_001, 5];
/** 2100-01-01, beyond 2^32 ns × 2^16: the upper half of the fixed64 must carry right. */
const FAR: HrTime = [4_102_444_800, 999_999_999];

function nanosOf([seconds, nanos]: HrTime): string {
  return (BigInt(seconds) * 1_000_000_000n + BigInt(nanos)).toString();
}

/** A small trace made by the real SDK: every attribute type, events, links, status, a remote parent, two scopes. */
function sampleSpans(longValue = ''): ReadableSpan[] {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'txmesh-coordinator-0', 'service.instance.id': 'Zürich-1', 'process.pid': 4242 }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const tracer = provider.getTracer('txmesh-coordinator', '0.1.0');
  const other = provider.getTracer('txmesh-sidecar', undefined, { schemaUrl: 'https://opentelemetry.io/schemas/1.24.0' });

  const remote = trace.setSpanContext(context.active(), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  });
  const root = tracer.startSpan('txmesh.transaction', { kind: SpanKind.SERVER, startTime: START }, remote);
  root.setAttributes({
    'txmesh.tx_id': 's0-01JD0000000000000000000000',
    'txmesh.shard': 0,
    'txmesh.note': 'prêt à valider ✓',
    'txmesh.negative': -5,
    'txmesh.big': 2 ** 40,
    'txmesh.ratio': 0.25,
    'txmesh.retry': true,
    'txmesh.services': ['inventory', 'payment'],
    'txmesh.sizes': [1, 2, 3],
    'txmesh.flags': [true, false],
    ...(longValue ? { 'txmesh.long': longValue } : {}),
  });
  root.addEvent('lock wait', { 'txmesh.key': 'sku-1', 'txmesh.waited_ms': 12 }, [1_764_288_000, 500_000_000]);
  root.addEvent('refused', undefined, FAR);
  const branch = tracer.startSpan('txmesh.branch prepare', { kind: SpanKind.CLIENT, startTime: START }, trace.setSpan(context.active(), root));
  branch.setStatus({ code: SpanStatusCode.ERROR, message: 'payment voted no: insufficient funds' });
  branch.end(END);
  const batch = other.startSpan('txmesh.batch', {
    kind: SpanKind.PRODUCER,
    startTime: START,
    links: [
      { context: branch.spanContext(), attributes: { 'txmesh.tx_id': 's0-01JD0000000000000000000000' } },
      { context: { traceId: 'ffffffffffffffffffffffffffffffff', spanId: '0000000000000001', traceFlags: TraceFlags.NONE, isRemote: true } },
    ],
  });
  batch.setAttribute('txmesh.batch.items', 2);
  batch.setStatus({ code: SpanStatusCode.OK });
  batch.end(FAR);
  root.end(END);
  return exporter.getFinishedSpans();
}

describe('txmesh OTLP protobuf serializer', () => {
  it('reads exactly like the SDK serializer: resource, scopes, ids, kinds, times, attributes, events, links, status, flags', () => {
    const spans = sampleSpans();
    const ours = decodeProtobufExport(new ProtobufSpanSerializer().serializeRequest(spans));
    const theirs = decodeProtobufExport(ProtobufTraceSerializer.serializeRequest(spans)!);
    assert.deepEqual(ours, theirs);

    const [resourceSpans] = ours.resourceSpans!;
    assert.deepEqual(resourceSpans!.resource!.attributes!.find((a) => a.key === 'service.instance.id')?.value, { stringValue: 'Zürich-1' });
    assert.deepEqual(resourceSpans!.resource!.attributes!.find((a) => a.key === 'process.pid')?.value, { intValue: '4242' });
    const scopes = resourceSpans!.scopeSpans!;
    assert.deepEqual(scopes.map((s) => s.scope), [{ name: 'txmesh-coordinator', version: '0.1.0' }, { name: 'txmesh-sidecar' }]);
    assert.equal(scopes[1]!.schemaUrl, 'https://opentelemetry.io/schemas/1.24.0');

    const byName = new Map<string, OtlpSpan>(scopes.flatMap((s) => s.spans!).map((s) => [s.name, s]));
    const root = byName.get('txmesh.transaction')!;
    assert.equal(root.traceId, '0af7651916cd43dd8448eb211c80319c');
    assert.equal(root.parentSpanId, 'b7ad6b7169203331');
    assert.equal(root.kind, 2, 'SERVER is 2 in the proto (the api counts from INTERNAL = 0)');
    assert.equal(root.flags, 0x301, 'sampled, parent remoteness known, parent remote');
    assert.equal(root.startTimeUnixNano, nanosOf(START));
    assert.equal(root.endTimeUnixNano, nanosOf(END));
    const value = (key: string): OtlpValue | undefined => root.attributes!.find((a) => a.key === key)?.value;
    assert.deepEqual(value('txmesh.note'), { stringValue: 'prêt à valider ✓' });
    assert.deepEqual(value('txmesh.shard'), { intValue: '0' });
    assert.deepEqual(value('txmesh.negative'), { intValue: '-5' });
    assert.deepEqual(value('txmesh.big'), { intValue: String(2 ** 40) });
    assert.deepEqual(value('txmesh.ratio'), { doubleValue: 0.25 });
    assert.deepEqual(value('txmesh.retry'), { boolValue: true });
    assert.deepEqual(value('txmesh.services'), { arrayValue: { values: [{ stringValue: 'inventory' }, { stringValue: 'payment' }] } });
    assert.deepEqual(value('txmesh.sizes'), { arrayValue: { values: [{ intValue: '1' }, { intValue: '2' }, { intValue: '3' }] } });
    assert.deepEqual(value('txmesh.flags'), { arrayValue: { values: [{ boolValue: true }, { boolValue: false }] } });
    assert.deepEqual(
      root.events!.map((e) => [e.name, e.timeUnixNano, e.attributes!.length]),
      [
        ['lock wait', nanosOf([1_764_288_000, 500_000_000]), 2],
        ['refused', nanosOf(FAR), 0],
      ],
    );

    const branch = byName.get('txmesh.branch prepare')!;
    assert.equal(branch.parentSpanId, root.spanId);
    assert.equal(branch.traceId, root.traceId);
    assert.equal(branch.flags, 0x101, 'a local parent');
    assert.deepEqual(branch.status, { code: 2, message: 'payment voted no: insufficient funds' });

    const batch = byName.get('txmesh.batch')!;
    assert.equal(batch.parentSpanId, undefined, 'a root span has no parent id');
    assert.deepEqual(batch.status, { code: 1 });
    assert.equal(batch.endTimeUnixNano, nanosOf(FAR));
    assert.deepEqual(
      batch.links!.map((l) => [l.traceId, l.spanId, l.flags, l.attributes!.map((a) => a.key)]),
      [
        [branch.traceId, branch.spanId, 0x101, ['txmesh.tx_id']],
        ['ffffffffffffffffffffffffffffffff', '0000000000000001', 0x300, []],
      ],
    );
  });

  it('keeps reading alike when messages outgrow their reserved length bytes, across a growing buffer and reuse', () => {
    const serializer = new ProtobufSpanSerializer();
    // A 20 kB attribute makes its key-value pair, the span and the scope need more length bytes than reserved.
    const large = Array.from({ length: 40 }, () => sampleSpans('x'.repeat(20_000))).flat();
    const small = sampleSpans();
    for (const spans of [large, small, large]) {
      assert.deepEqual(decodeProtobufExport(serializer.serializeRequest(spans)), decodeProtobufExport(ProtobufTraceSerializer.serializeRequest(spans)!));
    }
  });

  it('returns a copy: bytes handed to the transport survive the next request', () => {
    const serializer = new ProtobufSpanSerializer();
    const first = serializer.serializeRequest(sampleSpans());
    const before = Buffer.from(first).toString('hex');
    serializer.serializeRequest(sampleSpans('y'.repeat(300)));
    assert.equal(Buffer.from(first).toString('hex'), before);
  });

  it('a sealed batch keeps its own spans until its request is written, whatever is added and sealed after it', () => {
    const spans = sampleSpans();
    const half = 3;
    const alone = (list: ReadableSpan[]): string => {
      const one = new ProtobufSpanBatch();
      for (const span of list) one.add(span);
      return Buffer.from(one.seal().request()).toString('hex');
    };
    const batch = new ProtobufSpanBatch();
    // Rounds, so that later batches are written into the scope buffers earlier requests gave back.
    for (let round = 0; round < 3; round++) {
      for (const span of spans.slice(0, half)) batch.add(span);
      const first = batch.seal();
      for (const span of spans.slice(half)) batch.add(span);
      const second = batch.seal();
      const secondBytes = second.request();
      const secondHex = Buffer.from(secondBytes).toString('hex');
      for (const span of [...spans, ...spans]) batch.add(span);
      const third = batch.seal();
      assert.equal(Buffer.from(third.request()).toString('hex'), alone([...spans, ...spans]));
      assert.equal(Buffer.from(first.request()).toString('hex'), alone(spans.slice(0, half)), 'written after two later batches');
      assert.equal(Buffer.from(secondBytes).toString('hex'), secondHex, 'the bytes handed out stay as they were');
      assert.equal(second.request(), secondBytes, 'written once');
      assert.equal(first.count + second.count + third.count, 3 * spans.length);
    }
    assert.deepEqual(decodeProtobufExport(Buffer.from(alone(spans), 'hex')), decodeProtobufExport(ProtobufTraceSerializer.serializeRequest(spans)!));
  });

  it('reads an ExportTraceServiceResponse: empty is success, partial_success carries rejected spans and the message', () => {
    const serializer = new ProtobufSpanSerializer();
    assert.deepEqual(serializer.deserializeResponse(new Uint8Array()), {});
    const message = Buffer.from('queue full', 'utf8');
    // partial_success (1, LEN) { rejected_spans (1, varint) = 300, error_message (2, LEN) }
    const inner = Buffer.concat([Buffer.from([0x08, 0xac, 0x02, 0x12, message.length]), message]);
    const response = Buffer.concat([Buffer.from([0x0a, inner.length]), inner]);
    assert.deepEqual(serializer.deserializeResponse(response), { partialSuccess: { rejectedSpans: 300, errorMessage: 'queue full' } });
    assert.throws(() => serializer.deserializeResponse(Buffer.from([0x0a, 0x05, 0x08])), /runs past/);
  });
});

describe('txmesh OTLP JSON serializer', () => {
  it('parses to what the SDK JSON serializer sends', () => {
    const spans = sampleSpans();
    const ours: unknown = JSON.parse(Buffer.from(new JsonSpanSerializer().serializeRequest(spans)).toString('utf8'));
    const theirs: unknown = JSON.parse(Buffer.from(JsonTraceSerializer.serializeRequest(spans)!).toString('utf8'));
    assert.deepEqual(ours, theirs);
  });
});

describe('the receiver reads both encodings alike', () => {
  it('flattens a protobuf and a JSON export of the same spans to the same spans', async (t) => {
    const receiver = await OtlpReceiver.start();
    t.after(() => receiver.close());
    const spans = sampleSpans();
    const post = async (type: string, body: Uint8Array): Promise<number> => (await fetch(`${receiver.url}/v1/traces`, { method: 'POST', headers: { 'content-type': type }, body })).status;
    assert.equal(await post('application/x-protobuf', new ProtobufSpanSerializer().serializeRequest(spans)), 200);
    assert.equal(await post('application/json', new JsonSpanSerializer().serializeRequest(spans)), 200);
    assert.equal(receiver.spans.length, 6);
    assert.deepEqual(receiver.spans.slice(0, 3), receiver.spans.slice(3));
    const batch = receiver.spans.find((s) => s.name === 'txmesh.batch')!;
    assert.equal(batch.serviceName, 'txmesh-coordinator-0');
    assert.equal(batch.links.length, 2);
    assert.equal(batch.attributes['txmesh.batch.items'], 2);
  });
});

describe('txmesh OTLP/HTTP span exporter', () => {
  it('takes endpoint, headers and compression from OTEL_*, and retries a 503 as the spec says', async (t) => {
    const seen: { url: string | undefined; headers: IncomingHttpHeaders; body: Buffer }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
        if (seen.length === 1) res.writeHead(503, { 'retry-after': '0' }).end();
        else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const env = {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(server.address() as AddressInfo).port}/custom/traces`,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-tenant=shop,authorization=Bearer%20t0k',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
    };
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    let exporter: OtlpHttpSpanExporter;
    try {
      exporter = new OtlpHttpSpanExporter(OtlpHttpProtocol.PROTOBUF);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    t.after(() => exporter.shutdown());
    const spans = sampleSpans();
    const result = await new Promise<{ code: number }>((resolve) => exporter.export(spans, resolve));
    assert.equal(result.code, 0, 'exported after one retry');
    assert.equal(seen.length, 2, 'the 503 was retried once');
    const last = seen[1]!;
    assert.equal(last.url, '/custom/traces', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as given');
    assert.equal(last.headers['x-tenant'], 'shop');
    assert.equal(last.headers.authorization, 'Bearer t0k');
    assert.equal(last.headers['content-type'], 'application/x-protobuf');
    assert.equal(last.headers['content-encoding'], 'gzip');
    const decoded = decodeProtobufExport(gunzipSync(last.body));
    assert.equal(decoded.resourceSpans![0]!.scopeSpans!.flatMap((s) => s.spans!).length, 3);
    assert.deepEqual(seen[0]!.body, last.body, 'the retry sends the same request');
  });
});
