/**
 * A body's trace context read directly (`contextOf`, the items' carriers and the sidecar's batch span from a channel
 * frame) names the parent the W3C propagator's extract names from the same traceparent and tracestate, as the
 * NodeSDK's default propagators (trace context and baggage) read them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_CONTEXT, defaultTextMapGetter, trace, type Context } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { contextOf } from '@txmesh/client/spans';

const propagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });
const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
const spanId = '00f067aa0ba902b7';

function parentOf(context: Context): unknown {
  const parent = trace.getSpanContext(context);
  if (parent === undefined) return undefined;
  return { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.traceFlags, isRemote: parent.isRemote, traceState: parent.traceState?.serialize() };
}

test('a carried W3C trace context names the parent the W3C propagator extracts from the same fields', () => {
  const carriers = [
    { traceparent: `00-${traceId}-${spanId}-01` },
    { traceparent: `00-${traceId}-${spanId}-00` },
    { traceparent: `00-${traceId}-${spanId}-03` },
    { traceparent: `00-${traceId}-${spanId}-01`, tracestate: 'vendor=a1,other=b2' },
    { traceparent: `01-${traceId}-${spanId}-01` },
    { traceparent: `ff-${traceId}-${spanId}-01` },
    { traceparent: `00-${'0'.repeat(32)}-${spanId}-01` },
    { traceparent: `00-${traceId}-${'0'.repeat(16)}-01` },
    { traceparent: `00-${traceId.toUpperCase()}-${spanId}-01` },
  ];
  for (const carrier of carriers) {
    const extracted = propagator.extract(ROOT_CONTEXT, { ...carrier }, defaultTextMapGetter);
    assert.deepEqual(parentOf(contextOf(carrier)), parentOf(extracted), carrier.traceparent);
  }
  // No carrier, no parent: the batch span starts a trace, as with no traceparent header.
  assert.equal(parentOf(contextOf(undefined)), parentOf(propagator.extract(ROOT_CONTEXT, {}, defaultTextMapGetter)));
});
