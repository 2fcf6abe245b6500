/**
 * The trace context a batch item or a stored record carries: W3C traceparent/tracestate, written and read
 * here directly rather than through the registered propagator. The body's format is W3C whatever the
 * application propagates in its HTTP headers (B3, Jaeger, none), and it skips the propagator's per-item
 * work (a composite of trace context and baggage, by the NodeSDK's default).
 */
import { ROOT_CONTEXT, TraceFlags, createTraceState, isSpanContextValid, trace, type Context, type Span, type SpanContext } from '@opentelemetry/api';
import type { TraceCarrier } from '@txmesh/protocol';

/** The context a carried trace context names: the root context when there is none or it is not valid. */
export function contextOf(carrier: TraceCarrier | undefined): Context {
  const spanContext = carrier === undefined ? undefined : spanContextOf(carrier);
  return spanContext === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

/**
 * The span's trace context for a body; undefined for a span with no valid context (nothing traces) and for
 * one the sampler left out: its items then travel untraced, so the hops after it cost what they cost with no
 * SDK, and a sampled-out transaction stores no trace context either.
 */
export function carrierOf(span: Span): TraceCarrier | undefined {
  const spanContext = span.spanContext();
  if (!isSpanContextValid(spanContext) || (spanContext.traceFlags & TraceFlags.SAMPLED) === 0) return undefined;
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${(spanContext.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
  const tracestate = spanContext.traceState?.serialize();
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

/** The remote span context of a well-formed carrier (validTraceCarrier checked its shape), else undefined. */
function spanContextOf(carrier: TraceCarrier): SpanContext | undefined {
  const [, traceId, spanId, flags] = carrier.traceparent.split('-');
  if (traceId === undefined || spanId === undefined || flags === undefined) return undefined;
  const spanContext: SpanContext = { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
  if (carrier.tracestate !== undefined) spanContext.traceState = createTraceState(carrier.tracestate);
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}
