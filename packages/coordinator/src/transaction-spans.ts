/**
 * The coordinator's spans, through @opentelemetry/api: one per transaction (a child of the caller's
 * traceparent), one per branch and phase under it, and one for each recovery after a restart, linked to
 * the trace stored with the decision record. With no SDK registered every call returns the api's
 * non-recording span and nothing else is allocated: attributes are set only on recording spans.
 */
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, SpanStatusCode, context, isSpanContextValid, propagation, trace, type Context, type Span } from '@opentelemetry/api';
import { carrierOf, contextOf, contextWithSpan, hasValidIds, linksTo, spanNameOf, tracerOf } from '@txmesh/client';
import { SpanNames, TraceAttributes, type TraceCarrier, type TransactionResult } from '@txmesh/protocol';

const SCOPE = '@txmesh/coordinator';

/** A transaction's span (absent for one resumed after a restart) and the context its branch spans start from. */
export interface TransactionTrace {
  span?: Span;
  context: Context;
  /** The transaction's span has no valid context (the api's no-op tracer): its branches get NO_SPAN. Asked once. */
  untraced?: true;
}

/** The context named by an incoming request's headers (traceparent/tracestate). */
export function requestContext(headers: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(ROOT_CONTEXT, headers);
}

export function startTransactionSpan(parent: Context, shard: number): TransactionTrace {
  const span = tracerOf(SCOPE).startSpan(SpanNames.COORDINATOR_TRANSACTION, { kind: SpanKind.SERVER }, parent);
  if (span.isRecording()) span.setAttribute(TraceAttributes.SHARD, shard);
  // An invalid span (no SDK, no caller's trace) parents nothing: its branches get NO_SPAN, and no context is made for it.
  return hasValidIds(span.spanContext()) ? { span, context: contextWithSpan(parent, span) } : { span, context: parent, untraced: true };
}

/**
 * Every branch span of a transaction whose own span is invalid: only the api's no-op tracer makes one (an SDK
 * gives every span ids), and that tracer would make an invalid non-recording span per branch and phase, eight
 * objects and eight names per order for nothing.
 */
const NO_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** A transaction resumed from its decision record after a restart: its spans join the stored trace. */
export function resumedTransactionTrace(stored: TraceCarrier | undefined): TransactionTrace {
  return { context: contextOf(stored) };
}

export function noteTxId(t: TransactionTrace, txId: string): void {
  if (t.span?.isRecording()) t.span.setAttribute(TraceAttributes.TX_ID, txId);
}

export function endTransactionSpan(t: TransactionTrace, result: TransactionResult | undefined, err?: unknown): void {
  const span = t.span;
  if (!span) return;
  if (span.isRecording()) {
    if (result) {
      span.setAttribute(TraceAttributes.OUTCOME, result.outcome);
      if (result.reason !== undefined) span.setAttribute(TraceAttributes.ABORT_REASON, result.reason);
    }
    if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

/**
 * trace_id and span_id for a log line about the transaction. Named by the line itself, not by a logger mixin
 * reading the active context: the lines are written after awaits, and no context is kept active across a
 * transaction's awaits (with AsyncLocalStorage that would cost every promise of the decision).
 */
export function transactionLogFields(t: TransactionTrace): { trace_id?: string; span_id?: string } {
  const spanContext = t.span ? t.span.spanContext() : trace.getSpanContext(t.context);
  return spanContext !== undefined && isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
}

/** The transaction span's trace context, kept in the decision record. */
export function transactionCarrier(t: TransactionTrace): TraceCarrier | undefined {
  return t.span ? carrierOf(t.span) : undefined;
}

const BRANCH_SPAN_OPTIONS = { kind: SpanKind.INTERNAL } as const;

/** One branch's phase (every attempt of its prepare, or of its commit/rollback delivery). */
export function startBranchSpan(t: TransactionTrace, txId: string, service: string, action: string): Span {
  if (t.untraced === true) return NO_SPAN;
  const span = tracerOf(SCOPE).startSpan(spanNameOf(SpanNames.BRANCH, action), BRANCH_SPAN_OPTIONS, t.context);
  if (span.isRecording()) {
    span.setAttribute(TraceAttributes.TX_ID, txId);
    // The action is in the span's name: no attribute repeats it.
    span.setAttribute(TraceAttributes.SERVICE, service);
  }
  return span;
}

/** Ends a branch span with how the phase ended: a vote, an acknowledgement, or a failure. */
export function endBranchSpan(span: Span, attempts: number, answer: { vote?: string; reason?: string; failed?: string }): void {
  if (span.isRecording()) {
    span.setAttribute(TraceAttributes.ATTEMPT, attempts);
    if (answer.vote !== undefined) span.setAttribute(TraceAttributes.VOTE, answer.vote);
    if (answer.reason !== undefined) span.setAttribute(TraceAttributes.ABORT_REASON, answer.reason);
    if (answer.failed !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: answer.failed });
  }
  span.end();
}

/**
 * The recovery after a restart: one span, linked to the trace of every decision it resumes, active
 * while `resume` runs (so its log lines carry it). The resumed deliveries themselves run in their
 * transactions' own traces.
 */
export function inRecoverySpan<T>(shard: number, resumed: readonly { txId: string; trace?: TraceCarrier }[], resume: () => T): T {
  if (!resumed.some((r) => r.trace !== undefined)) return resume();
  const span = tracerOf(SCOPE).startSpan(SpanNames.RECOVERY, { kind: SpanKind.INTERNAL, links: linksTo(resumed, true), attributes: { [TraceAttributes.SHARD]: shard, 'txmesh.recovered': resumed.length } }, ROOT_CONTEXT);
  try {
    return context.with(trace.setSpan(ROOT_CONTEXT, span), resume);
  } finally {
    span.end();
  }
}
