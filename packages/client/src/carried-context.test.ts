import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_CONTEXT, TraceFlags, createContextKey, trace } from '@opentelemetry/api';
import { SpanOnlyContext } from './carried-context.ts';
import { spanNameOf } from './item-spans.ts';

const parent = trace.wrapSpanContext({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED, isRemote: true });

test('a span-only context names its span to the api, as trace.setSpan(ROOT_CONTEXT, span) would', () => {
  const carried = new SpanOnlyContext(parent);
  assert.equal(trace.getSpan(carried), parent);
  assert.deepEqual(trace.getSpanContext(carried), trace.getSpanContext(trace.setSpan(ROOT_CONTEXT, parent)));
  assert.equal(carried.getValue(createContextKey('something else')), undefined);
});

test('adding to a span-only context keeps its span; removing the span leaves the root context', () => {
  const key = createContextKey('txmesh test key');
  const added = new SpanOnlyContext(parent).setValue(key, 42);
  assert.equal(added.getValue(key), 42);
  assert.equal(trace.getSpan(added), parent);
  assert.equal(trace.deleteSpan(new SpanOnlyContext(parent)), ROOT_CONTEXT);
  const other = new SpanOnlyContext(parent);
  assert.equal(other.deleteValue(key), other);
});

test('a span name is made once per name and action, and the cache stays bounded whatever the actions', () => {
  const first = spanNameOf('txmesh hook', 'prepare');
  assert.equal(first, 'txmesh hook prepare');
  assert.equal(spanNameOf('txmesh hook', 'prepare'), first);
  for (let i = 0; i < 100; i++) assert.equal(spanNameOf('txmesh bounded', `action-${i}`), `txmesh bounded action-${i}`);
});
