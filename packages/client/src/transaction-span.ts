/**
 * The application's span around one transaction, made through @opentelemetry/api: it lands in whatever
 * TracerProvider the application registered (or the api's no-op tracer, at almost no cost). The request
 * to the coordinator runs inside it, so the W3C traceparent the client sends names this span.
 */
import { SpanKind, SpanStatusCode, context, isSpanContextValid, propagation, trace } from '@opentelemetry/api';
import { SpanNames, TraceAttributes, type TransactionResult } from '@txmesh/protocol';

// A proxy tracer: it follows the global provider even when the application registers it later.
const tracer = trace.getTracer('@txmesh/client');

export function inTransactionSpan(run: () => Promise<TransactionResult>): Promise<TransactionResult> {
  return tracer.startActiveSpan(SpanNames.CLIENT_TRANSACTION, { kind: SpanKind.CLIENT }, async (span) => {
    try {
      const result = await run();
      // Attributes only for a span that records: no allocation on the no-op path.
      if (span.isRecording()) {
        span.setAttribute(TraceAttributes.TX_ID, result.txId);
        span.setAttribute(TraceAttributes.OUTCOME, result.outcome);
        if (result.reason !== undefined) span.setAttribute(TraceAttributes.ABORT_REASON, result.reason);
      }
      return result;
    } catch (err) {
      if (span.isRecording()) {
        span.recordException(err instanceof Error ? err : String(err));
        span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      }
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Adds the active trace context (traceparent, tracestate) to outgoing headers; nothing without a propagator. */
export function withTraceHeaders(headers: Record<string, string>): Record<string, string> {
  propagation.inject(context.active(), headers);
  return headers;
}

/**
 * trace_id and span_id of the active span, for a logger's mixin (pino's `mixin` option), so log lines
 * written while a transaction runs can be found from its trace and the other way round.
 */
export function traceLogFields(): Record<string, string> {
  const spanContext = trace.getActiveSpan()?.spanContext();
  // A new object each time: pino adds fields to what the mixin returns.
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
