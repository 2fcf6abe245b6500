/**
 * The trace context a batch item or a stored record carries: W3C traceparent/tracestate, written and read
 * here directly rather than through the registered propagator. The body's format is W3C whatever the
 * application propagates in its HTTP headers (B3, Jaeger, none), and it skips the propagator's per-item
 * work (a composite of trace context and baggage, by the NodeSDK's default).
 */
import { ROOT_CONTEXT, TraceFlags, createTraceState, isSpanContextValid, trace, type Context, type Span, type SpanContext } from '@opentelemetry/api';
import type { TraceCarrier } from '@txmesh/protocol';
import { SpanOnlyContext } from './carried-context.ts';

/**
 * The span context a carrier was made from in this process, kept on it under a symbol (JSON and Object.keys leave
 * it out), so a batch span's link to the branch span that made it reads no string: the coordinator links every
 * item it sends. Written in the carrier's literal: `Object.defineProperty` cost about 350 ns per carrier, nine
 * carriers per transaction in a coordinator (docs/benchmarks.md, issue 15, stop 31).
 */
const MADE_FROM = Symbol('txmesh.carrier.spanContext');
type MadeCarrier = TraceCarrier & { [MADE_FROM]?: SpanContext };

/**
 * Marks a span context whose ids are known valid: made by txmesh's role tracer from its id generator, or read from a
 * carrier whose ids were checked here. The api's `isSpanContextValid` runs two regular expressions per call, and a
 * transaction's spans asked it about 30 times. Symbol.for, so every copy of this module in a process agrees.
 */
export const VALID_IDS: unique symbol = Symbol.for('txmesh.spanContext.validIds') as never;
type MarkedSpanContext = SpanContext & { [VALID_IDS]?: true };

/** isSpanContextValid, without its regular expressions for a context marked VALID_IDS. */
export function hasValidIds(spanContext: SpanContext): boolean {
  return (spanContext as MarkedSpanContext)[VALID_IDS] === true || isSpanContextValid(spanContext);
}

/** `-01` and the other flag suffixes of a traceparent, made once. */
const FLAG_SUFFIXES = Array.from({ length: 256 }, (_, flags) => `-${flags.toString(16).padStart(2, '0')}`);

/** The context a carried trace context names: the root context when there is none or it is not valid. */
export function contextOf(carrier: TraceCarrier | undefined): Context {
  const spanContext = carrier === undefined ? undefined : spanContextOf(carrier);
  return spanContext === undefined ? ROOT_CONTEXT : new SpanOnlyContext(trace.wrapSpanContext(spanContext));
}

/**
 * `trace.setSpan(parent, span)`, without the api's copy of the parent's Map when the parent is the root context
 * (every transaction whose request named no trace): a coordinator made one per transaction.
 */
export function contextWithSpan(parent: Context, span: Span): Context {
  return parent === ROOT_CONTEXT ? new SpanOnlyContext(span) : trace.setSpan(parent, span);
}

/**
 * The span's trace context for a body; undefined for a span with no valid context (nothing traces) and for
 * one the sampler left out: its items then travel untraced, so the hops after it cost what they cost with no
 * SDK, and a sampled-out transaction stores no trace context either.
 */
export function carrierOf(span: Span): TraceCarrier | undefined {
  const spanContext = span.spanContext();
  if ((spanContext.traceFlags & TraceFlags.SAMPLED) === 0 || !hasValidIds(spanContext)) return undefined;
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}${FLAG_SUFFIXES[spanContext.traceFlags & 0xff]!}`;
  const tracestate = spanContext.traceState?.serialize();
  const carrier: MadeCarrier = tracestate ? { traceparent, tracestate, [MADE_FROM]: spanContext } : { traceparent, [MADE_FROM]: spanContext };
  return carrier;
}

/** A traceparent is `vv-<32 hex trace id>-<16 hex span id>-<2 hex flags>`: 55 characters, dashes at fixed places. */
const TRACEPARENT_LENGTH = 55;
const DASH = 45;
const LOWER_F = 102;
const INVALID_TRACE_ID = '00000000000000000000000000000000';
const INVALID_SPAN_ID = '0000000000000000';

/** Hex digit values by character code, -1 for anything else (W3C allows lower case only). */
const HEX_DIGIT = new Int8Array(128).fill(-1);
for (let digit = 0; digit < 16; digit++) HEX_DIGIT['0123456789abcdef'.charCodeAt(digit)] = digit;

function hexAt(text: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if ((HEX_DIGIT[text.charCodeAt(i)] ?? -1) < 0) return false;
  return true;
}

/**
 * The remote span context a carrier names, else undefined (malformed, version ff, or an all-zero id): what the W3C
 * propagator's extract reads from the same traceparent and tracestate. Read at fixed offsets, without splitting
 * the string or the api's regular expressions: every batch item's carrier is read once per hop (its span's parent,
 * or a batch span's link), several times per transaction.
 */
export function spanContextOf(carrier: TraceCarrier): SpanContext | undefined {
  const made = (carrier as MadeCarrier)[MADE_FROM];
  if (made !== undefined) return made;
  const traceparent = carrier.traceparent;
  if (traceparent.length !== TRACEPARENT_LENGTH || traceparent.charCodeAt(2) !== DASH || traceparent.charCodeAt(35) !== DASH || traceparent.charCodeAt(52) !== DASH) return undefined;
  if (!hexAt(traceparent, 0, 2) || !hexAt(traceparent, 3, 35) || !hexAt(traceparent, 36, 52) || !hexAt(traceparent, 53, 55)) return undefined;
  // Version ff is invalid (W3C Trace Context), and the api's W3C propagator refuses it too.
  if (traceparent.charCodeAt(0) === LOWER_F && traceparent.charCodeAt(1) === LOWER_F) return undefined;
  const traceId = traceparent.slice(3, 35);
  const spanId = traceparent.slice(36, 52);
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  const traceFlags = (HEX_DIGIT[traceparent.charCodeAt(53)]! << 4) | HEX_DIGIT[traceparent.charCodeAt(54)]!;
  const spanContext: MarkedSpanContext = { traceId, spanId, traceFlags, isRemote: true, [VALID_IDS]: true };
  if (carrier.tracestate !== undefined) spanContext.traceState = createTraceState(carrier.tracestate);
  return spanContext;
}
