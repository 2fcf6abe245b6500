import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Span, type Tracer } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type ReadableSpan,
  type Sampler,
  type SpanLimits,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { installRoleTracer, RoleTracerProvider } from './role-tracer.ts';
import { JsonSpanBatch } from './span-json.ts';
import { ProtobufSpanBatch } from './span-protobuf.ts';

/** Every span ended, as a span processor sees it. */
class Ended implements SpanProcessor {
  readonly spans: ReadableSpan[] = [];
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.spans.push(span);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function providers(options: { sampler?: Sampler; spanLimits?: SpanLimits } = {}): { sdk: Tracer; role: Tracer; ended: Ended } {
  const ended = new Ended();
  const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': 'role-tracer-test' }), spanProcessors: [ended], ...options });
  return { sdk: provider.getTracer('@txmesh/test', '1'), role: new RoleTracerProvider(provider).getTracer('@txmesh/test', '1'), ended };
}

const PARENT = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED, isRemote: true });

/** One error for both tracers: its stack names where it was made. */
const REFUSED = new Error('refused');

/** What a transaction's spans do in the roles: attributes, a link, an event, an error, an exception. */
function exercise(tracer: Tracer): void {
  const span = tracer.startSpan('txmesh branch prepare', { kind: SpanKind.SERVER, attributes: { 'txmesh.shard': 3 }, links: [{ context: { traceId: '1'.repeat(32), spanId: '2'.repeat(16), traceFlags: 1 } }] }, PARENT);
  span.setAttribute('txmesh.tx_id', '3-abc');
  span.setAttributes({ 'txmesh.service': 'inventory', 'txmesh.empty': undefined as unknown as string });
  span.addLink({ context: { traceId: '3'.repeat(32), spanId: '4'.repeat(16), traceFlags: 1 }, attributes: { 'txmesh.tx_id': '3-def' } });
  span.addEvent('txmesh.lock_wait', { 'txmesh.lock.key': 'sku-1', 'txmesh.lock.wait_ms': 4 });
  span.recordException(REFUSED);
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'LOCK_TIMEOUT' });
  span.updateName('txmesh branch commit');
  span.end();
  tracer.startSpan('root', {}, ROOT_CONTEXT).end();
}

/** A span as both encodings see it, without what differs by nature (ids of new spans, times). */
function shape(span: ReadableSpan): unknown {
  return {
    name: span.name,
    kind: span.kind,
    traceId: span.parentSpanContext ? span.spanContext().traceId : 'new',
    flags: span.spanContext().traceFlags,
    parent: span.parentSpanContext?.spanId,
    attributes: span.attributes,
    links: span.links.map((l) => ({ spanId: l.context.spanId, attributes: l.attributes, dropped: l.droppedAttributesCount })),
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes, dropped: e.droppedAttributesCount })),
    status: span.status,
    dropped: [span.droppedAttributesCount, span.droppedEventsCount, span.droppedLinksCount],
    resource: span.resource.attributes,
    scope: span.instrumentationScope,
    ended: span.ended,
  };
}

describe('role tracer', () => {
  it('makes the spans the SDK makes: name, kind, parent, attributes, links, events, status, resource and scope', () => {
    const { sdk, role, ended } = providers();
    exercise(sdk);
    exercise(role);
    assert.equal(ended.spans.length, 4);
    assert.deepEqual(ended.spans.slice(2).map(shape), ended.spans.slice(0, 2).map(shape));
    // Not the SDK's span objects.
    assert.notEqual(ended.spans[2]!.constructor, ended.spans[0]!.constructor);
  });

  it('keeps the SDK span limits (attribute count and length, events, links, per-event and per-link attributes)', () => {
    const { sdk, role, ended } = providers({
      spanLimits: { attributeCountLimit: 2, attributeValueLengthLimit: 3, eventCountLimit: 1, linkCountLimit: 1, attributePerEventCountLimit: 1, attributePerLinkCountLimit: 1 },
    });
    exercise(sdk);
    exercise(role);
    const [sdkSpan, , roleSpan] = ended.spans;
    assert.deepEqual(shape(roleSpan!), shape(sdkSpan!));
    assert.deepEqual(roleSpan!.attributes, { 'txmesh.shard': 3, 'txmesh.tx_id': '3-a' });
    assert.deepEqual([roleSpan!.droppedAttributesCount, roleSpan!.droppedEventsCount, roleSpan!.droppedLinksCount], [1, 1, 1]);
  });

  it('follows the sampler: a sampled-out span records nothing and passes on an unsampled context', () => {
    const { role, ended } = providers({ sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }) });
    const root = role.startSpan('root', {}, ROOT_CONTEXT);
    assert.equal(root.isRecording(), false);
    assert.equal(root.spanContext().traceFlags, TraceFlags.NONE);
    assert.match(root.spanContext().traceId, /^[0-9a-f]{32}$/);
    root.end();
    const child = role.startSpan('child', {}, PARENT);
    assert.equal(child.isRecording(), true);
    child.end();
    assert.deepEqual(ended.spans.map((s) => s.name), ['child']);
  });

  it('makes no span where tracing is suppressed (the exporter\'s own requests), and a root span when asked', () => {
    const { role, ended } = providers({ sampler: new AlwaysOnSampler() });
    const suppressed = role.startSpan('export', {}, suppressTracing(PARENT));
    assert.equal(suppressed.isRecording(), false);
    assert.equal(trace.isSpanContextValid(suppressed.spanContext()), false);
    const root = role.startSpan('root', { root: true }, PARENT);
    root.end();
    assert.equal(ended.spans.length, 1);
    assert.equal(ended.spans[0]!.parentSpanContext, undefined);
    assert.notEqual(ended.spans[0]!.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
  });

  it('times a span on the wall clock with the monotonic clock\'s precision, ends it once, and takes given times', () => {
    const { role, ended } = providers();
    const before = Date.now();
    const span = role.startSpan('timed', {}, PARENT);
    span.end();
    span.end();
    span.setAttribute('late', 1);
    const given = role.startSpan('given', { startTime: 1_700_000_000_000 }, PARENT);
    given.end(1_700_000_000_250);
    const [timed, fixed] = ended.spans;
    assert.equal(ended.spans.length, 2);
    const ms = (t: readonly [number, number]): number => t[0] * 1e3 + t[1] / 1e6;
    assert.ok(ms(timed!.startTime) >= before - 1 && ms(timed!.endTime) <= Date.now() + 1);
    assert.ok(ms(timed!.endTime) >= ms(timed!.startTime));
    assert.deepEqual(timed!.attributes, {});
    assert.deepEqual([fixed!.startTime, fixed!.endTime, fixed!.duration], [[1_700_000_000, 0], [1_700_000_000, 250_000_000], [0, 250_000_000]]);
  });

  it('is written in protobuf from its clock\'s times as it would be from its HrTime arrays', async () => {
    const { role, ended } = providers();
    for (let i = 0; i < 50; i++) {
      const span = role.startSpan('timed', {}, PARENT);
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      span.end();
    }
    for (const span of ended.spans) {
      const fromClock = new ProtobufSpanBatch();
      fromClock.add(span);
      // The same span, its clock's times hidden: the encoder reads startTime and endTime.
      const hidden = new Proxy(span, {
        get: (target, key) => {
          if (key === 'startEpochMs' || key === 'endEpochMs') return undefined;
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      const fromArrays = new ProtobufSpanBatch();
      fromArrays.add(hidden);
      assert.deepEqual(Buffer.from(fromClock.seal().request()), Buffer.from(fromArrays.seal().request()));
    }
  });

  it('is what txmesh\'s encoder writes, as it writes the SDK\'s spans', () => {
    const { sdk, role, ended } = providers();
    exercise(sdk);
    exercise(role);
    const encode = (spans: ReadableSpan[]): unknown => {
      const batch = new JsonSpanBatch();
      for (const span of spans) batch.add(span);
      const request = JSON.parse(Buffer.from(batch.seal().request()).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[] };
      const out = request.resourceSpans[0]!.scopeSpans[0]!.spans;
      return out.map(({ spanId, traceId, startTimeUnixNano, endTimeUnixNano, events, ...rest }) => ({
        ...rest,
        traceId: rest.parentSpanId ? traceId : 'new',
        events: (events as Record<string, unknown>[] | undefined)?.map(({ timeUnixNano, ...event }) => event),
      }));
    };
    assert.deepEqual(encode(ended.spans.slice(2)), encode(ended.spans.slice(0, 2)));
  });

  it('installs itself in front of a registered SDK provider, and not in front of anything else', () => {
    const ended = new Ended();
    const provider = new TracerProvider({ spanProcessors: [ended] });
    try {
      assert.equal(installRoleTracer(), false, 'no SDK provider registered');
      trace.setGlobalTracerProvider(provider);
      assert.equal(installRoleTracer(), true);
      assert.equal(installRoleTracer(), true, 'twice is once');
      const span: Span = trace.getTracer('@txmesh/test').startSpan('installed', {}, PARENT);
      span.end();
      assert.equal(ended.spans.length, 1);
      const sdkSpan = provider.getTracer('@txmesh/test').startSpan('sdk', {}, PARENT);
      sdkSpan.end();
      assert.notEqual(ended.spans[0]!.constructor, ended.spans[1]!.constructor);
    } finally {
      trace.disable();
    }
  });

  it('makes ids like the SDK\'s random generator in its place, marked valid, and keeps any other generator\'s', () => {
    const VALID_IDS = Symbol.for('txmesh.spanContext.validIds');
    const { role } = providers();
    const seen = new Set<string>();
    const seenTraces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const root = role.startSpan('root', {}, ROOT_CONTEXT);
      seenTraces.add(root.spanContext().traceId);
      const child = role.startSpan('child', {}, trace.setSpan(ROOT_CONTEXT, root));
      for (const context of [root.spanContext(), child.spanContext()]) {
        assert.match(context.traceId, /^[0-9a-f]{32}$/);
        assert.match(context.spanId, /^[0-9a-f]{16}$/);
        assert.equal((context as unknown as Record<symbol, unknown>)[VALID_IDS], true);
        seen.add(context.spanId);
      }
      assert.equal(child.spanContext().traceId, root.spanContext().traceId);
      child.end();
      root.end();
    }
    assert.equal(seen.size, 400, 'every span id differs');
    // Each quarter of a trace id is a word of its own (one flat string made of four).
    const quarters = [0, 1, 2, 3].map((q) => new Set([...seenTraces].map((id) => id.slice(q * 8, q * 8 + 8))));
    assert.deepEqual(quarters.map((values) => values.size), [200, 200, 200, 200]);
    const fixed = { generateTraceId: () => 'ab'.repeat(16), generateSpanId: () => 'cd'.repeat(8) };
    const provider = new TracerProvider({ idGenerator: fixed, spanProcessors: [new Ended()] });
    const span = new RoleTracerProvider(provider).getTracer('@txmesh/test').startSpan('fixed', {}, ROOT_CONTEXT);
    assert.deepEqual([span.spanContext().traceId, span.spanContext().spanId], ['ab'.repeat(16), 'cd'.repeat(8)]);
    assert.equal((span.spanContext() as unknown as Record<symbol, unknown>)[VALID_IDS], undefined);
  });
});
