/**
 * A lighter Tracer for txmesh's roles, over the configuration the NodeSDK built from the OTEL_* variables.
 *
 * The NodeSDK still starts as before and reads every setting (sampler, span limits, id generator, resource, the
 * span processor txmesh hands it); `installRoleTracer` then puts this provider in front of the SDK's, under the
 * api's global proxy. Each of its tracers takes that configuration from the SDK's tracer of the same scope and makes
 * spans that carry only what a span holds: no per-span counters (the SDK's two attribute objects and a closure
 * per span, even with a no-op meter), no copies of absent links or attributes, no empty event and link arrays or
 * status object until one is set, one time array at each end. The span still goes to the same span processor,
 * which encodes it as it ends (span-processor.ts), and is a ReadableSpan for it. docs/design.md (Observability)
 * and docs/benchmarks.md (issue 15) say why and what it saved.
 *
 * Only installed with txmesh's own span processor (telemetry.ts): other exporters keep the SDK's spans.
 * TXMESH_ROLE_TRACER=sdk keeps them too, for comparisons.
 */
import {
  INVALID_SPAN_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context as apiContext,
  diag,
  isSpanContextValid,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanAttributes,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type TimeInput,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { hrTimeDuration, isAttributeValue, isTracingSuppressed, sanitizeAttributes, timeInputToHrTime, type InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { RandomIdGenerator, SamplingDecision, type IdGenerator, type ReadableSpan, type Sampler, type SpanLimits, type SpanProcessor, type TimedEvent } from '@opentelemetry/sdk-trace';

/** What a role tracer needs of the SDK's tracer of the same scope. */
export interface RoleTracerConfig {
  scope: InstrumentationScope;
  resource: Resource;
  sampler: Sampler;
  limits: SpanLimits;
  ids: IdGenerator;
  processor: SpanProcessor;
  /** The processor's onEnding, if it has one (the SDK calls it just before a span ends). */
  onEnding?: (span: Span) => void;
}

/**
 * The SDK tracer's configuration, read from the fields its Tracer keeps (not part of its typed API, so checked
 * here): undefined if a field is missing or of another shape, and the SDK's own tracer is used instead.
 */
export function configOfSdkTracer(tracer: Tracer): RoleTracerConfig | undefined {
  const fields = tracer as unknown as Record<string, unknown>;
  const sampler = fields._sampler as Sampler | undefined;
  const ids = fields._idGenerator as IdGenerator | undefined;
  const processor = fields._spanProcessor as SpanProcessor | undefined;
  const limits = fields._spanLimits as SpanLimits | undefined;
  const resource = fields._resource as Resource | undefined;
  const scope = fields.instrumentationScope as InstrumentationScope | undefined;
  if (typeof sampler?.shouldSample !== 'function') return undefined;
  if (typeof ids?.generateSpanId !== 'function' || typeof ids.generateTraceId !== 'function') return undefined;
  if (typeof processor?.onEnd !== 'function' || typeof processor.onStart !== 'function') return undefined;
  if (typeof limits !== 'object' || limits === null || typeof resource?.attributes !== 'object' || typeof scope?.name !== 'string') return undefined;
  // The SDK wraps the processors it was given in a MultiSpanProcessor: with one inside, spans go to it directly.
  const inner = (processor as { _spanProcessors?: unknown })._spanProcessors;
  const only = Array.isArray(inner) && inner.length === 1 ? (inner[0] as SpanProcessor) : undefined;
  const direct = typeof only?.onEnd === 'function' && typeof only.onStart === 'function' ? only : processor;
  const onEnding = (direct as { onEnding?: unknown }).onEnding;
  return { scope, resource, sampler, limits, ids, processor: direct, ...(typeof onEnding === 'function' ? { onEnding: onEnding.bind(direct) as (span: Span) => void } : {}) };
}

/** The provider in front of the SDK's: one role tracer per SDK tracer, made on first use. */
export class RoleTracerProvider implements TracerProvider {
  readonly #sdk: TracerProvider;
  readonly #tracers = new Map<Tracer, Tracer>();

  constructor(sdk: TracerProvider) {
    this.#sdk = sdk;
  }

  getTracer(name: string, version?: string, options?: { schemaUrl?: string }): Tracer {
    // The SDK keeps one tracer per name, version and schema; so does this, keyed by it.
    const sdkTracer = this.#sdk.getTracer(name, version, options);
    let tracer = this.#tracers.get(sdkTracer);
    if (tracer === undefined) {
      const config = configOfSdkTracer(sdkTracer);
      this.#tracers.set(sdkTracer, (tracer = config === undefined ? sdkTracer : new RoleTracer(config)));
    }
    return tracer;
  }
}

/** The api's global proxy provider, whose delegate the NodeSDK set. */
interface DelegatingProvider extends TracerProvider {
  getDelegate(): TracerProvider;
  setDelegate(delegate: TracerProvider): void;
}

/**
 * Puts a RoleTracerProvider in front of the provider the NodeSDK registered. Returns false, changing nothing,
 * when the registered provider is not the api's proxy around an SDK provider.
 */
export function installRoleTracer(): boolean {
  const registered = trace.getTracerProvider() as Partial<DelegatingProvider>;
  if (typeof registered.getDelegate !== 'function' || typeof registered.setDelegate !== 'function') return false;
  const sdk = registered.getDelegate();
  if (sdk instanceof RoleTracerProvider) return true;
  if (configOfSdkTracer(sdk.getTracer('@txmesh/role-tracer-check')) === undefined) return false;
  registered.setDelegate(new RoleTracerProvider(sdk));
  return true;
}

/**
 * Marks a span context whose ids are known valid (packages/client/src/trace-carrier.ts reads the same symbol): the
 * api's isSpanContextValid runs two regular expressions, and every child span, carrier and branch asked it.
 */
const VALID_IDS = Symbol.for('txmesh.spanContext.validIds');
type MarkedSpanContext = SpanContext & { [VALID_IDS]?: true };

const HEX_CODES = Uint16Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0));

/** A random 32-bit word as 8 lower-case hex digits, and two of them as 16. */
function hexWords(a: number, b: number): string {
  const h = HEX_CODES;
  return String.fromCharCode(
    h[a >>> 28]!, h[(a >>> 24) & 15]!, h[(a >>> 20) & 15]!, h[(a >>> 16) & 15]!, h[(a >>> 12) & 15]!, h[(a >>> 8) & 15]!, h[(a >>> 4) & 15]!, h[a & 15]!,
    h[b >>> 28]!, h[(b >>> 24) & 15]!, h[(b >>> 20) & 15]!, h[(b >>> 16) & 15]!, h[(b >>> 12) & 15]!, h[(b >>> 8) & 15]!, h[(b >>> 4) & 15]!, h[b & 15]!,
  );
}

/**
 * Four random 32-bit words as 32 lower-case hex digits, in one flat string: two halves joined with `+` made a rope
 * that the protobuf encoder's first read of the trace id then had to flatten (a copy per trace, in the runtime).
 */
function hexWords4(a: number, b: number, c: number, d: number): string {
  const h = HEX_CODES;
  return String.fromCharCode(
    h[a >>> 28]!, h[(a >>> 24) & 15]!, h[(a >>> 20) & 15]!, h[(a >>> 16) & 15]!, h[(a >>> 12) & 15]!, h[(a >>> 8) & 15]!, h[(a >>> 4) & 15]!, h[a & 15]!,
    h[b >>> 28]!, h[(b >>> 24) & 15]!, h[(b >>> 20) & 15]!, h[(b >>> 16) & 15]!, h[(b >>> 12) & 15]!, h[(b >>> 8) & 15]!, h[(b >>> 4) & 15]!, h[b & 15]!,
    h[c >>> 28]!, h[(c >>> 24) & 15]!, h[(c >>> 20) & 15]!, h[(c >>> 16) & 15]!, h[(c >>> 12) & 15]!, h[(c >>> 8) & 15]!, h[(c >>> 4) & 15]!, h[c & 15]!,
    h[d >>> 28]!, h[(d >>> 24) & 15]!, h[(d >>> 20) & 15]!, h[(d >>> 16) & 15]!, h[(d >>> 12) & 15]!, h[(d >>> 8) & 15]!, h[(d >>> 4) & 15]!, h[d & 15]!,
  );
}

/**
 * Random 32-bit words, taken from a pool the system's generator fills 256 at a time: no floating-point number per
 * word (Math.random's, boxed when it escaped, were 32 bytes per id), and better randomness than Math.random's.
 */
const WORDS = new Uint32Array(256);
let nextWord = WORDS.length;
function randomWord(): number {
  if (nextWord === WORDS.length) {
    crypto.getRandomValues(WORDS);
    nextWord = 0;
  }
  return WORDS[nextWord++]!;
}

/**
 * Ids like the SDK's RandomIdGenerator's (random, never all zero) written without its shared Buffer and native hex
 * encoder: 50 against 120 ns per id. Used only in place of that generator; any other keeps its own ids.
 */
export const ROLE_IDS: IdGenerator = {
  generateSpanId(): string {
    let a = randomWord();
    const b = randomWord();
    if (a === 0 && b === 0) a = 1;
    return hexWords(a, b);
  },
  generateTraceId(): string {
    let a = randomWord();
    const b = randomWord();
    const c = randomWord();
    const d = randomWord();
    if (a === 0 && b === 0 && c === 0 && d === 0) a = 1;
    return hexWords4(a, b, c, d);
  },
};

/** Whether a generator is the SDK's own random one (the NodeSDK's default, which every role uses). */
function isSdkRandomIds(ids: IdGenerator): boolean {
  return ids instanceof RandomIdGenerator;
}

const NO_LINKS: Link[] = [];
const NO_EVENTS: TimedEvent[] = [];
const UNSET: SpanStatus = Object.freeze({ code: SpanStatusCode.UNSET });
const NO_ATTRIBUTES: Attributes = Object.freeze({});
/** The end time of a span not ended yet, as the SDK reports it. */
const NOT_ENDED: HrTime = Object.freeze([0, 0]) as unknown as HrTime;

export class RoleTracer implements Tracer {
  readonly #config: RoleTracerConfig;
  /** The ids come from the SDK's random generator or ours: valid by construction, marked so. */
  readonly #validIds: boolean;

  constructor(config: RoleTracerConfig) {
    const ownIds = isSdkRandomIds(config.ids);
    this.#config = ownIds ? { ...config, ids: ROLE_IDS } : config;
    this.#validIds = ownIds || config.ids === ROLE_IDS;
  }

  startSpan(name: string, options: SpanOptions = {}, parentContext: Context = apiContext.active()): Span {
    const ctx = options.root === true ? trace.deleteSpan(parentContext) : parentContext;
    if (isTracingSuppressed(ctx)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const config = this.#config;
    const parent = trace.getSpanContext(ctx);
    const validParent = parent !== undefined && ((parent as MarkedSpanContext)[VALID_IDS] === true || isSpanContextValid(parent)) ? parent : undefined;
    const spanId = config.ids.generateSpanId();
    const traceId = validParent === undefined ? config.ids.generateTraceId() : validParent.traceId;
    const kind = options.kind ?? SpanKind.INTERNAL;
    const links = options.links ?? NO_LINKS;
    const attributes = options.attributes === undefined ? NO_ATTRIBUTES : sanitizeAttributes(options.attributes);
    const sampled = config.sampler.shouldSample(ctx, traceId, name, kind, attributes, links);
    const traceFlags = sampled.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE;
    const traceState = sampled.traceState ?? validParent?.traceState;
    const spanContext: MarkedSpanContext = this.#validIds ? { traceId, spanId, traceFlags, traceState, [VALID_IDS]: true } : { traceId, spanId, traceFlags, traceState };
    if (sampled.decision === SamplingDecision.NOT_RECORD) return trace.wrapSpanContext(spanContext);
    const span = new RoleSpan(config, spanContext, name, kind, validParent, options.startTime);
    if (attributes !== NO_ATTRIBUTES) span.setAttributes(attributes);
    if (sampled.attributes !== undefined) span.setAttributes(sanitizeAttributes(sampled.attributes));
    for (const link of links) span.addLink(link);
    config.processor.onStart(span, ctx);
    return span;
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, parentContext: Context, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: unknown[]): ReturnType<F> {
    const fn = rest[rest.length - 1] as F;
    const options = (rest.length >= 2 ? rest[0] : undefined) as SpanOptions | undefined;
    const parentContext = (rest.length >= 3 ? rest[1] : undefined) as Context | undefined;
    const parent = parentContext ?? apiContext.active();
    const span = this.startSpan(name, options, parent);
    return apiContext.with(trace.setSpan(parent, span), fn as (span: Span) => ReturnType<F>, undefined, span);
  }
}

const MS_PER_S = 1e3;
const NS_PER_MS = 1e6;

/** Milliseconds since the epoch as [seconds, nanoseconds]: one array. */
function hrOf(ms: number): HrTime {
  const s = Math.floor(ms / MS_PER_S);
  const ns = Math.round((ms - s * MS_PER_S) * NS_PER_MS);
  return ns >= 1e9 ? [s + 1, ns - 1e9] : [s, ns];
}

class RoleSpan implements Span, ReadableSpan {
  readonly #config: RoleTracerConfig;
  readonly #spanContext: SpanContext;
  name: string;
  readonly kind: SpanKind;
  readonly parentSpanContext: SpanContext | undefined;
  readonly attributes: SpanAttributes = {};
  links: Link[] = NO_LINKS;
  events: TimedEvent[] = NO_EVENTS;
  status: SpanStatus = UNSET;
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  #attributeCount = 0;
  #ended = false;
  /**
   * The wall clock at the start and the monotonic clock with it, as the SDK's spans keep them: the start is
   * Date.now(), later times add the monotonic time since. NaN when the caller gave the start time.
   */
  readonly #startWallMs: number;
  readonly #startMonotonicMs: number;
  /**
   * The end on the span's clock, ms since the epoch; NaN until the span ended, or when the caller gave a time. With
   * `startEpochMs` it is what txmesh's encoder writes (span-protobuf.ts), without the HrTime arrays, which are made
   * only when asked for.
   */
  endEpochMs = NaN;
  #startTime: HrTime | undefined;
  #endTime: HrTime | undefined;

  constructor(config: RoleTracerConfig, spanContext: SpanContext, name: string, kind: SpanKind, parent: SpanContext | undefined, startTime: TimeInput | undefined) {
    this.#config = config;
    this.#spanContext = spanContext;
    this.name = name;
    this.kind = kind;
    this.parentSpanContext = parent;
    if (startTime === undefined) {
      this.#startWallMs = Date.now();
      this.#startMonotonicMs = performance.now();
    } else {
      this.#startWallMs = NaN;
      this.#startMonotonicMs = NaN;
      this.#startTime = timeInputToHrTime(startTime);
    }
  }

  /** The start, ms since the epoch, when the span's clock took it; NaN when the caller gave it. */
  get startEpochMs(): number {
    return this.#startWallMs;
  }

  get startTime(): HrTime {
    return (this.#startTime ??= hrOf(this.#startWallMs));
  }

  get endTime(): HrTime {
    if (!this.#ended) return NOT_ENDED;
    return (this.#endTime ??= hrOf(this.endEpochMs));
  }

  /** Now, ms since the epoch, on the span's clock. */
  #nowMs(): number {
    return Number.isNaN(this.#startWallMs) ? Date.now() : this.#startWallMs + (performance.now() - this.#startMonotonicMs);
  }

  /** Now, on the span's clock. */
  #now(): HrTime {
    return hrOf(this.#nowMs());
  }

  get resource(): Resource {
    return this.#config.resource;
  }

  get instrumentationScope(): InstrumentationScope {
    return this.#config.scope;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get duration(): HrTime {
    return this.#ended ? hrTimeDuration(this.startTime, this.endTime) : [-1, -1];
  }

  spanContext(): SpanContext {
    return this.#spanContext;
  }

  isRecording(): boolean {
    return !this.#ended;
  }

  setAttribute(key: string, value?: AttributeValue): this {
    if (value === undefined || value === null || this.#ended) return this;
    if (key.length === 0) {
      diag.warn(`Invalid attribute key: ${key}`);
      return this;
    }
    if (!isAttributeValue(value)) {
      diag.warn(`Invalid attribute value set for key: ${key}`);
      return this;
    }
    const isNew = !Object.prototype.hasOwnProperty.call(this.attributes, key);
    if (isNew) {
      const limit = this.#config.limits.attributeCountLimit;
      if (limit !== undefined && this.#attributeCount >= limit) {
        this.droppedAttributesCount += 1;
        return this;
      }
      this.#attributeCount += 1;
    }
    this.attributes[key] = this.#truncated(value);
    return this;
  }

  setAttributes(attributes: SpanAttributes): this {
    for (const key of Object.keys(attributes)) this.setAttribute(key, attributes[key]);
    return this;
  }

  addEvent(name: string, attributesOrTime?: SpanAttributes | TimeInput, time?: TimeInput): this {
    if (this.#ended) return this;
    const limit = this.#config.limits.eventCountLimit;
    if (limit === 0) {
      this.droppedEventsCount += 1;
      return this;
    }
    let attributes: SpanAttributes | undefined;
    if (isTime(attributesOrTime)) time ??= attributesOrTime;
    else attributes = attributesOrTime;
    const kept = this.#limited(attributes, this.#config.limits.attributePerEventCountLimit);
    const event: TimedEvent = { name, attributes: kept.attributes, time: time === undefined ? this.#now() : timeInputToHrTime(time), droppedAttributesCount: kept.dropped };
    if (this.events === NO_EVENTS) this.events = [];
    else if (limit !== undefined && this.events.length >= limit) {
      this.events.shift();
      this.droppedEventsCount += 1;
    }
    this.events.push(event);
    return this;
  }

  addLink(link: Link): this {
    if (this.#ended) return this;
    const limit = this.#config.limits.linkCountLimit;
    if (limit === 0) {
      this.droppedLinksCount += 1;
      return this;
    }
    if (this.links === NO_LINKS) this.links = [];
    else if (limit !== undefined && this.links.length >= limit) {
      this.links.shift();
      this.droppedLinksCount += 1;
    }
    if (link.attributes === undefined) {
      // A link without attributes (every batch item's) is kept as it came: nothing to copy or check.
      this.links.push(link.droppedAttributesCount === undefined ? link : { context: link.context });
      return this;
    }
    const kept = this.#limited(link.attributes, this.#config.limits.attributePerLinkCountLimit);
    const stored: Link = { context: link.context };
    if (Object.keys(kept.attributes).length > 0) stored.attributes = kept.attributes;
    if (kept.dropped > 0) stored.droppedAttributesCount = kept.dropped;
    this.links.push(stored);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    // UNSET changes nothing, and OK is final (the SDK's rules).
    if (this.#ended || status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK) return this;
    this.status = status.code === SpanStatusCode.ERROR && typeof status.message === 'string' ? { code: status.code, message: status.message } : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.#ended) this.name = name;
    return this;
  }

  end(endTime?: TimeInput): void {
    if (this.#ended) {
      diag.error(`${this.name} ${this.#spanContext.traceId}-${this.#spanContext.spanId} - You can only call end() on a span once.`);
      return;
    }
    if (endTime === undefined && !Number.isNaN(this.#startWallMs)) {
      // Never before the start (the SDK's rule), on the same clock: no arrays.
      this.endEpochMs = Math.max(this.#startWallMs, this.#nowMs());
    } else {
      const start = this.startTime;
      const end = endTime === undefined ? this.#now() : timeInputToHrTime(endTime);
      this.#endTime = end[0] < start[0] || (end[0] === start[0] && end[1] < start[1]) ? [start[0], start[1]] : end;
    }
    const config = this.#config;
    config.onEnding?.(this);
    this.#ended = true;
    config.processor.onEnd(this);
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: SpanAttributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else if (exception) {
      const type = exception.code !== undefined ? String(exception.code) : exception.name;
      if (type) attributes['exception.type'] = type;
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    if (attributes['exception.type'] !== undefined || attributes['exception.message'] !== undefined) this.addEvent('exception', attributes, time);
    else diag.warn(`Failed to record an exception ${String(exception)}`);
  }

  /** Attributes of an event or a link: sanitized, at most `limit`, values truncated. */
  #limited(attributes: SpanAttributes | undefined, limit: number | undefined): { attributes: SpanAttributes; dropped: number } {
    const kept: SpanAttributes = {};
    let count = 0;
    let dropped = 0;
    if (attributes === undefined) return { attributes: kept, dropped };
    const sanitized = sanitizeAttributes(attributes);
    for (const key of Object.keys(sanitized)) {
      if (limit !== undefined && count >= limit) {
        dropped += 1;
        continue;
      }
      kept[key] = this.#truncated(sanitized[key]!);
      count += 1;
    }
    return { attributes: kept, dropped };
  }

  /** A string, or each string of an array, cut to OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT. */
  #truncated(value: AttributeValue): AttributeValue {
    const limit = this.#config.limits.attributeValueLengthLimit;
    // 0 or less, like no limit, truncates nothing (the SDK's reading of OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT).
    if (limit === undefined || !(limit > 0) || limit === Infinity) return value;
    if (typeof value === 'string') return value.length > limit ? value.slice(0, limit) : value;
    if (Array.isArray(value)) return value.map((v: unknown) => (typeof v === 'string' && v.length > limit ? v.slice(0, limit) : v)) as AttributeValue;
    return value;
  }
}

/** Whether an addEvent argument is a time rather than attributes. */
function isTime(value: unknown): value is TimeInput {
  return typeof value === 'number' || value instanceof Date || (Array.isArray(value) && value.length === 2 && typeof value[0] === 'number' && typeof value[1] === 'number');
}
