/**
 * OTLP's ExportTraceServiceRequest in protobuf (opentelemetry-proto, collector/trace/v1 and trace/v1). Each span
 * is written as it is added, into a reused buffer per resource and scope (the span processor adds it at its
 * end, so the span object dies young); sealing copies those bytes out and the request is written around them.
 * What it saves over the SDK's serializer, which a profile of a traced coordinator showed as about 40 % of
 * OpenTelemetry's own CPU there (docs/benchmarks.md): no size estimating pass, no Uint8Array per trace, span
 * and parent id, and the resource and scope written once per process rather than once per batch. Fields at
 * their default (0, empty) are left out, as proto3 allows.
 */
import type { Attributes, AttributeValue, HrTime, Link, SpanContext } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import { ProtobufBuffer, Wire } from './protobuf-buffer.ts';
import { SpanGroups, WholeBatchSerializer, spanFlags, type SealedSpans, type SpanBatch } from './span-grouping.ts';

/** Field numbers of opentelemetry-proto's messages that a trace export uses. */
const Request = { RESOURCE_SPANS: 1 } as const;
const ResourceSpans = { RESOURCE: 1, SCOPE_SPANS: 2, SCHEMA_URL: 3 } as const;
const ResourceMessage = { ATTRIBUTES: 1 } as const;
const ScopeSpans = { SCOPE: 1, SPANS: 2, SCHEMA_URL: 3 } as const;
const ScopeMessage = { NAME: 1, VERSION: 2, ATTRIBUTES: 3 } as const;
const SpanField = {
  TRACE_ID: 1,
  SPAN_ID: 2,
  TRACE_STATE: 3,
  PARENT_SPAN_ID: 4,
  NAME: 5,
  KIND: 6,
  START_TIME: 7,
  END_TIME: 8,
  ATTRIBUTES: 9,
  DROPPED_ATTRIBUTES: 10,
  EVENTS: 11,
  DROPPED_EVENTS: 12,
  LINKS: 13,
  DROPPED_LINKS: 14,
  STATUS: 15,
  FLAGS: 16,
} as const;
const EventField = { TIME: 1, NAME: 2, ATTRIBUTES: 3, DROPPED_ATTRIBUTES: 4 } as const;
const LinkField = { TRACE_ID: 1, SPAN_ID: 2, TRACE_STATE: 3, ATTRIBUTES: 4, DROPPED_ATTRIBUTES: 5, FLAGS: 6 } as const;
const StatusField = { MESSAGE: 2, CODE: 3 } as const;
const KeyValueField = { KEY: 1, VALUE: 2 } as const;
const AnyValueField = { STRING: 1, BOOL: 2, INT: 3, DOUBLE: 4, ARRAY: 5, KVLIST: 6, BYTES: 7 } as const;
/** ArrayValue.values and KeyValueList.values. */
const LIST_VALUES = 1;
const PartialSuccessField = { REJECTED_SPANS: 1, ERROR_MESSAGE: 2 } as const;

const INT64_LIMIT = 2 ** 63;

/** Length bytes reserved for nested messages of each kind: their usual size, so content rarely moves. */
const RESERVE_SMALL = 1; // key-value pairs, status, values
const RESERVE_SPAN = 2; // spans, events, links: under 16 KiB
const RESERVE_LARGE = 3; // resource spans and scope spans: under 2 MiB

/** First size of the buffer of one scope's spans, which grows as needed: a batch of 2048 coordinator spans takes about 400 KB. */
const SCOPE_BUFFER_BYTES = 16 * 1024;

/** The parsed ExportTraceServiceResponse: what the SDK's response handler logs when spans were rejected. */
export interface TraceExportResponse {
  partialSuccess?: { rejectedSpans?: number; errorMessage?: string };
}

function writeAnyValue(out: ProtobufBuffer, value: unknown): void {
  if (typeof value === 'string') out.string(AnyValueField.STRING, value);
  else if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= -INT64_LIMIT && value < INT64_LIMIT) {
      out.tag(AnyValueField.INT, Wire.VARINT);
      out.varint64(value);
    } else {
      out.tag(AnyValueField.DOUBLE, Wire.FIXED64);
      out.double(value);
    }
  } else if (typeof value === 'boolean') {
    out.tag(AnyValueField.BOOL, Wire.VARINT);
    out.varint32(value ? 1 : 0);
  } else if (value instanceof Uint8Array) out.bytes(AnyValueField.BYTES, value);
  else if (Array.isArray(value)) {
    const list = out.begin(AnyValueField.ARRAY, RESERVE_SPAN);
    for (const item of value as unknown[]) {
      const at = out.begin(LIST_VALUES, RESERVE_SMALL);
      writeAnyValue(out, item);
      out.end(at, RESERVE_SMALL);
    }
    out.end(list, RESERVE_SPAN);
  } else if (typeof value === 'object' && value !== null) {
    const list = out.begin(AnyValueField.KVLIST, RESERVE_SPAN);
    writeAttributes(out, LIST_VALUES, value as Record<string, unknown>);
    out.end(list, RESERVE_SPAN);
  }
  // null and undefined: an empty AnyValue, as the SDK writes them.
}

/**
 * Attribute keys as written (tag, length, bytes), made once per key: a process uses a few dozen keys, and each span
 * wrote three or four of them character by character. Bounded, whatever keys an application makes up.
 */
const encodedKeys = new Map<string, Uint8Array>();
const MAX_ENCODED_KEYS = 256;
const keyScratch = new ProtobufBuffer(256);

function writeKey(out: ProtobufBuffer, key: string): void {
  let bytes = encodedKeys.get(key);
  if (bytes === undefined) {
    if (encodedKeys.size >= MAX_ENCODED_KEYS) {
      out.string(KeyValueField.KEY, key);
      return;
    }
    keyScratch.reset();
    keyScratch.string(KeyValueField.KEY, key);
    encodedKeys.set(key, (bytes = keyScratch.take()));
  }
  out.raw(bytes);
}

function writeAttributes(out: ProtobufBuffer, field: number, attributes: Attributes | Record<string, unknown>): void {
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) continue;
    const pair = out.begin(field, RESERVE_SMALL);
    writeKey(out, key);
    const value = out.begin(KeyValueField.VALUE, RESERVE_SMALL);
    writeAnyValue(out, (attributes as Record<string, AttributeValue | undefined>)[key]);
    out.end(value, RESERVE_SMALL);
    out.end(pair, RESERVE_SMALL);
  }
}

function writeTime(out: ProtobufBuffer, field: number, time: HrTime): void {
  out.tag(field, Wire.FIXED64);
  out.hrTime(time[0], time[1]);
}

/** A time in ms since the epoch (a double, as the role tracer's clock gives it) as fixed64 nanoseconds, no array. */
function writeTimeMs(out: ProtobufBuffer, field: number, ms: number): void {
  let seconds = Math.floor(ms / 1e3);
  let nanos = Math.round((ms - seconds * 1e3) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  out.tag(field, Wire.FIXED64);
  out.hrTime(seconds, nanos);
}

/** What the role tracer's spans (role-tracer.ts) keep of their times, read instead of the HrTime arrays. */
interface EpochMsTimes {
  startEpochMs?: number;
  endEpochMs?: number;
}

function writeCount(out: ProtobufBuffer, field: number, count: number | undefined): void {
  if (!count) return;
  out.tag(field, Wire.VARINT);
  out.varint32(count);
}

function writeEvent(out: ProtobufBuffer, event: TimedEvent): void {
  const at = out.begin(SpanField.EVENTS, RESERVE_SPAN);
  writeTime(out, EventField.TIME, event.time);
  out.string(EventField.NAME, event.name);
  if (event.attributes) writeAttributes(out, EventField.ATTRIBUTES, event.attributes);
  writeCount(out, EventField.DROPPED_ATTRIBUTES, event.droppedAttributesCount);
  out.end(at, RESERVE_SPAN);
}

function writeLink(out: ProtobufBuffer, link: Link): void {
  const at = out.begin(SpanField.LINKS, RESERVE_SPAN);
  const context = link.context;
  out.hexBytes(LinkField.TRACE_ID, context.traceId);
  out.hexBytes(LinkField.SPAN_ID, context.spanId);
  const traceState = context.traceState?.serialize();
  if (traceState) out.string(LinkField.TRACE_STATE, traceState);
  if (link.attributes) writeAttributes(out, LinkField.ATTRIBUTES, link.attributes);
  writeCount(out, LinkField.DROPPED_ATTRIBUTES, link.droppedAttributesCount);
  out.tag(LinkField.FLAGS, Wire.FIXED32);
  out.fixed32(spanFlags(context.traceFlags, context.isRemote));
  out.end(at, RESERVE_SPAN);
}

function writeSpan(out: ProtobufBuffer, span: ReadableSpan): void {
  const at = out.begin(ScopeSpans.SPANS, RESERVE_SPAN);
  const context: SpanContext = span.spanContext();
  const parent = span.parentSpanContext;
  out.hexBytes(SpanField.TRACE_ID, context.traceId);
  out.hexBytes(SpanField.SPAN_ID, context.spanId);
  const traceState = context.traceState?.serialize();
  if (traceState) out.string(SpanField.TRACE_STATE, traceState);
  if (parent?.spanId) out.hexBytes(SpanField.PARENT_SPAN_ID, parent.spanId);
  out.string(SpanField.NAME, span.name);
  // The api's SpanKind starts at INTERNAL = 0; the proto keeps 0 for "unspecified".
  out.tag(SpanField.KIND, Wire.VARINT);
  out.varint32(span.kind + 1);
  const { startEpochMs, endEpochMs } = span as EpochMsTimes;
  if (typeof startEpochMs === 'number' && typeof endEpochMs === 'number' && !Number.isNaN(startEpochMs) && !Number.isNaN(endEpochMs)) {
    writeTimeMs(out, SpanField.START_TIME, startEpochMs);
    writeTimeMs(out, SpanField.END_TIME, endEpochMs);
  } else {
    writeTime(out, SpanField.START_TIME, span.startTime);
    writeTime(out, SpanField.END_TIME, span.endTime);
  }
  writeAttributes(out, SpanField.ATTRIBUTES, span.attributes);
  writeCount(out, SpanField.DROPPED_ATTRIBUTES, span.droppedAttributesCount);
  for (const event of span.events) writeEvent(out, event);
  writeCount(out, SpanField.DROPPED_EVENTS, span.droppedEventsCount);
  for (const link of span.links) writeLink(out, link);
  writeCount(out, SpanField.DROPPED_LINKS, span.droppedLinksCount);
  const status = span.status;
  if (status.code !== 0 || status.message) {
    const statusAt = out.begin(SpanField.STATUS, RESERVE_SMALL);
    if (status.message) out.string(StatusField.MESSAGE, status.message);
    if (status.code !== 0) {
      out.tag(StatusField.CODE, Wire.VARINT);
      out.varint32(status.code);
    }
    out.end(statusAt, RESERVE_SMALL);
  }
  out.tag(SpanField.FLAGS, Wire.FIXED32);
  out.fixed32(spanFlags(context.traceFlags, parent?.isRemote));
  out.end(at, RESERVE_SPAN);
}

/** The Resource message (field 1 of ResourceSpans), tag included. */
function writeResource(out: ProtobufBuffer, resource: Resource): void {
  const at = out.begin(ResourceSpans.RESOURCE, RESERVE_SPAN);
  writeAttributes(out, ResourceMessage.ATTRIBUTES, resource.attributes);
  out.end(at, RESERVE_SPAN);
}

/** The InstrumentationScope message (field 1 of ScopeSpans), tag included. */
function writeScope(out: ProtobufBuffer, scope: InstrumentationScope & { attributes?: Attributes }): void {
  const at = out.begin(ScopeSpans.SCOPE, RESERVE_SMALL);
  out.string(ScopeMessage.NAME, scope.name);
  if (scope.version) out.string(ScopeMessage.VERSION, scope.version);
  if (scope.attributes) writeAttributes(out, ScopeMessage.ATTRIBUTES, scope.attributes);
  out.end(at, RESERVE_SMALL);
}

/**
 * Encoded resources and scopes, kept per object: a process has one resource and a handful of tracers, and
 * the SDK hands the same objects with every span. A resource whose asynchronous attributes are still pending
 * is written each time (the batch processor waits for them before it exports).
 */
class EncodedOnce<T extends object> {
  readonly #bytes = new WeakMap<T, Uint8Array>();
  readonly #scratch = new ProtobufBuffer(1024);
  readonly #write: (out: ProtobufBuffer, value: T) => void;

  constructor(write: (out: ProtobufBuffer, value: T) => void) {
    this.#write = write;
  }

  /** The value's encoding: made once for a cacheable value, each time for another. */
  bytesOf(value: T, cacheable: boolean): Uint8Array {
    let bytes = this.#bytes.get(value);
    if (bytes === undefined) {
      this.#scratch.reset();
      this.#write(this.#scratch, value);
      bytes = this.#scratch.take();
      if (cacheable) this.#bytes.set(value, bytes);
    }
    return bytes;
  }
}

/** Room for a string field of this many characters: tag, length and up to 3 bytes per UTF-16 unit. */
const stringFieldRoom = (text: string | undefined): number => (text ? 6 + 3 * text.length : 0);
/** Room for a nested message's tag and reserved length. */
const NESTED_ROOM = 1 + RESERVE_LARGE;

/**
 * Spans encoded as they are added (span-grouping.ts); each scope's spans go into a buffer reused from batch to batch.
 * A sealed batch keeps those buffers until its request is written, straight into a buffer made for that request and
 * handed to the transport without another copy (the transport may hold it past the next request: retries, a timed
 * out export). Copying each scope's spans out at the seal and the request out of a shared buffer made two more
 * allocations and copies of every batch, about as much CPU in a traced service as its ids (docs/benchmarks.md).
 */
export class ProtobufSpanBatch implements SpanBatch {
  readonly #spare: ProtobufBuffer[] = [];
  readonly #groups = new SpanGroups<ProtobufBuffer>(() => this.#spare.pop() ?? new ProtobufBuffer(SCOPE_BUFFER_BYTES));
  readonly #resources = new EncodedOnce<Resource>(writeResource);
  readonly #scopes = new EncodedOnce<InstrumentationScope>(writeScope);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Writes the span, or nothing if it cannot be written (the batch stays well formed). */
  add(span: ReadableSpan): void {
    const out = this.#groups.of(span);
    const mark = out.length;
    try {
      writeSpan(out, span);
    } catch (err) {
      out.truncate(mark);
      throw err;
    }
    this.#count += 1;
  }

  seal(): SealedSpans {
    const groups = this.#groups.take();
    const count = this.#count;
    this.#count = 0;
    let request: Uint8Array | undefined;
    return { count, resources: [...groups.keys()], request: () => (request ??= this.#write(groups)) };
  }

  /** The request around the sealed spans; their buffers then go back to the spares. */
  #write(groups: Map<Resource, Map<InstrumentationScope, ProtobufBuffer>>): Uint8Array {
    const encoded: [Resource, Uint8Array, [InstrumentationScope, Uint8Array, ProtobufBuffer][]][] = [];
    let room = 0;
    for (const [resource, scopes] of groups) {
      const resourceBytes = this.#resources.bytesOf(resource, resource.asyncAttributesPending !== true);
      room += NESTED_ROOM + resourceBytes.length + stringFieldRoom(resource.schemaUrl);
      const list: [InstrumentationScope, Uint8Array, ProtobufBuffer][] = [];
      for (const [scope, spans] of scopes) {
        const scopeBytes = this.#scopes.bytesOf(scope, true);
        room += NESTED_ROOM + scopeBytes.length + spans.length + stringFieldRoom(scope.schemaUrl);
        list.push([scope, scopeBytes, spans]);
      }
      encoded.push([resource, resourceBytes, list]);
    }
    const out = new ProtobufBuffer(Math.max(room, 1));
    for (const [resource, resourceBytes, scopes] of encoded) {
      const resourceAt = out.begin(Request.RESOURCE_SPANS, RESERVE_LARGE);
      out.raw(resourceBytes);
      for (const [scope, scopeBytes, spans] of scopes) {
        const scopeAt = out.begin(ResourceSpans.SCOPE_SPANS, RESERVE_LARGE);
        out.raw(scopeBytes);
        out.append(spans);
        spans.reset();
        this.#spare.push(spans);
        if (scope.schemaUrl) out.string(ScopeSpans.SCHEMA_URL, scope.schemaUrl);
        out.end(scopeAt, RESERVE_LARGE);
      }
      if (resource.schemaUrl) out.string(ResourceSpans.SCHEMA_URL, resource.schemaUrl);
      out.end(resourceAt, RESERVE_LARGE);
    }
    return out.written();
  }
}

/** The serializer of the exporter an application hands to a span processor of its own, in protobuf. */
export class ProtobufSpanSerializer extends WholeBatchSerializer {
  constructor() {
    super(new ProtobufSpanBatch(), readTraceExportResponse);
  }
}

/** ExportTraceServiceResponse: partial_success (1) { rejected_spans (1), error_message (2) }; an empty body is success. */
export function readTraceExportResponse(data: Uint8Array): TraceExportResponse {
  const response: TraceExportResponse = {};
  eachField(data, 0, data.length, (field, wire, from, to) => {
    if (field !== 1 || wire !== Wire.LENGTH) return;
    const partial: NonNullable<TraceExportResponse['partialSuccess']> = {};
    eachField(data, from, to, (inner, innerWire, innerFrom, innerTo, innerValue) => {
      if (inner === PartialSuccessField.REJECTED_SPANS && innerWire === Wire.VARINT) partial.rejectedSpans = innerValue;
      else if (inner === PartialSuccessField.ERROR_MESSAGE && innerWire === Wire.LENGTH) partial.errorMessage = Buffer.from(data.buffer, data.byteOffset + innerFrom, innerTo - innerFrom).toString('utf8');
    });
    response.partialSuccess = partial;
  });
  return response;
}

/** Walks the fields of one message; throws on bytes that are not protobuf (the SDK logs it and counts the export a success). */
function eachField(data: Uint8Array, start: number, end: number, onField: (field: number, wire: number, from: number, to: number, value: number) => void): void {
  let at = start;
  const readVarint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (at >= end) throw new Error('truncated varint in the export response');
      const byte = data[at++]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new Error('varint longer than 10 bytes in the export response');
  };
  while (at < end) {
    const tag = readVarint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === Wire.VARINT) onField(field, wire, at, at, readVarint());
    else if (wire === Wire.LENGTH) {
      const length = readVarint();
      if (at + length > end) throw new Error('a field runs past the export response');
      onField(field, wire, at, at + length, length);
      at += length;
    } else if (wire === Wire.FIXED64) at += 8;
    else if (wire === Wire.FIXED32) at += 4;
    else throw new Error(`unsupported wire type ${wire} in the export response`);
  }
  if (at !== end) throw new Error('a fixed-size field runs past the export response');
}
