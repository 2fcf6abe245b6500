/**
 * OTLP's ExportTraceServiceRequest in its JSON encoding (OTEL_EXPORTER_OTLP_PROTOCOL=http/json): each span
 * becomes its string as it is added, and the request one string around them: no intermediate object per span,
 * attribute and id as the SDK's JSON serializer makes before JSON.stringify. Ids are hex as the OTLP/JSON mapping says, times decimal strings of nanoseconds,
 * enums numbers; the resource and each scope are encoded once per object.
 */
import type { Attributes, HrTime, Link } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import { SpanGroups, WholeBatchSerializer, spanFlags, type SealedSpans, type SpanBatch } from './span-grouping.ts';
import type { TraceExportResponse } from './span-protobuf.ts';

const quote = JSON.stringify as (value: string) => string;

function anyValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `{"stringValue":${quote(value)}}`;
    case 'boolean':
      return `{"boolValue":${value}}`;
    case 'number':
      if (Number.isInteger(value)) return `{"intValue":${value}}`;
      // proto3's JSON mapping spells the values JSON has no number for as strings.
      return `{"doubleValue":${Number.isFinite(value) ? value : quote(String(value))}}`;
    default:
      break;
  }
  if (value instanceof Uint8Array) return `{"bytesValue":"${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}"}`;
  if (Array.isArray(value)) return `{"arrayValue":{"values":[${(value as unknown[]).map(anyValue).join(',')}]}}`;
  if (typeof value === 'object' && value !== null) return `{"kvlistValue":{"values":${attributes(value as Record<string, unknown>)}}}`;
  return '{}';
}

function attributes(values: Attributes | Record<string, unknown>): string {
  let out = '[';
  for (const key in values) {
    if (!Object.hasOwn(values, key)) continue;
    if (out.length > 1) out += ',';
    out += `{"key":${quote(key)},"value":${anyValue((values as Record<string, unknown>)[key])}}`;
  }
  return `${out}]`;
}

/** Nanoseconds since the epoch as a decimal string, without BigInt: seconds, then the nanoseconds padded to nine digits. */
function nanos(time: HrTime): string {
  const [seconds, fraction] = time;
  if (seconds === 0) return `"${fraction}"`;
  return `"${seconds}${String(fraction).padStart(9, '0')}"`;
}

function event(e: TimedEvent): string {
  return `{"timeUnixNano":${nanos(e.time)},"name":${quote(e.name)},"attributes":${attributes(e.attributes ?? {})},"droppedAttributesCount":${e.droppedAttributesCount ?? 0}}`;
}

function link(l: Link): string {
  const context = l.context;
  const traceState = context.traceState?.serialize();
  return (
    `{"traceId":"${context.traceId}","spanId":"${context.spanId}"${traceState ? `,"traceState":${quote(traceState)}` : ''}` +
    `,"attributes":${attributes(l.attributes ?? {})},"droppedAttributesCount":${l.droppedAttributesCount ?? 0},"flags":${spanFlags(context.traceFlags, context.isRemote)}}`
  );
}

function span(s: ReadableSpan): string {
  const context = s.spanContext();
  const parent = s.parentSpanContext;
  const traceState = context.traceState?.serialize();
  const status = s.status.message ? `{"code":${s.status.code},"message":${quote(s.status.message)}}` : `{"code":${s.status.code}}`;
  return (
    `{"traceId":"${context.traceId}","spanId":"${context.spanId}"` +
    (traceState ? `,"traceState":${quote(traceState)}` : '') +
    (parent?.spanId ? `,"parentSpanId":"${parent.spanId}"` : '') +
    `,"name":${quote(s.name)},"kind":${s.kind + 1},"startTimeUnixNano":${nanos(s.startTime)},"endTimeUnixNano":${nanos(s.endTime)}` +
    `,"attributes":${attributes(s.attributes)},"droppedAttributesCount":${s.droppedAttributesCount}` +
    `,"events":[${s.events.map(event).join(',')}],"droppedEventsCount":${s.droppedEventsCount}` +
    `,"status":${status},"links":[${s.links.map(link).join(',')}],"droppedLinksCount":${s.droppedLinksCount}` +
    `,"flags":${spanFlags(context.traceFlags, parent?.isRemote)}}`
  );
}

function resourceJson(resource: Resource): string {
  return `{"attributes":${attributes(resource.attributes)},"droppedAttributesCount":0}`;
}

function scopeJson(scope: InstrumentationScope & { attributes?: Attributes }): string {
  const version = scope.version ? `,"version":${quote(scope.version)}` : '';
  const scopeAttributes = scope.attributes ? `,"attributes":${attributes(scope.attributes)}` : '';
  return `{"name":${quote(scope.name)}${version}${scopeAttributes}}`;
}

/** Spans encoded as they are added (span-grouping.ts): one string per span, joined when the request is written. */
export class JsonSpanBatch implements SpanBatch {
  readonly #groups = new SpanGroups<string[]>(() => []);
  readonly #resources = new WeakMap<Resource, string>();
  readonly #scopes = new WeakMap<InstrumentationScope, string>();
  #count = 0;

  get count(): number {
    return this.#count;
  }

  add(s: ReadableSpan): void {
    this.#groups.of(s).push(span(s));
    this.#count += 1;
  }

  seal(): SealedSpans {
    const groups = this.#groups.take();
    const count = this.#count;
    this.#count = 0;
    return { count, resources: [...groups.keys()], request: () => this.#write(groups) };
  }

  #write(groups: Map<Resource, Map<InstrumentationScope, string[]>>): Uint8Array {
    const resourceSpans: string[] = [];
    for (const [resource, scopes] of groups) {
      const scopeSpans: string[] = [];
      for (const [scope, list] of scopes) {
        const schema = scope.schemaUrl ? `,"schemaUrl":${quote(scope.schemaUrl)}` : '';
        scopeSpans.push(`{"scope":${this.#scope(scope)},"spans":[${list.join(',')}]${schema}}`);
      }
      const schema = resource.schemaUrl ? `,"schemaUrl":${quote(resource.schemaUrl)}` : '';
      resourceSpans.push(`{"resource":${this.#resource(resource)},"scopeSpans":[${scopeSpans.join(',')}]${schema}}`);
    }
    return Buffer.from(`{"resourceSpans":[${resourceSpans.join(',')}]}`, 'utf8');
  }

  #resource(resource: Resource): string {
    let encoded = this.#resources.get(resource);
    if (encoded === undefined) {
      encoded = resourceJson(resource);
      if (resource.asyncAttributesPending !== true) this.#resources.set(resource, encoded);
    }
    return encoded;
  }

  #scope(scope: InstrumentationScope): string {
    let encoded = this.#scopes.get(scope);
    if (encoded === undefined) this.#scopes.set(scope, (encoded = scopeJson(scope)));
    return encoded;
  }
}

/** An empty body is a success; a body that is not JSON throws (the SDK logs it and counts the export a success). */
export function readJsonTraceExportResponse(data: Uint8Array): TraceExportResponse {
  if (data.length === 0) return {};
  return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as TraceExportResponse;
}

/** The serializer of the exporter an application hands to a span processor of its own, in JSON. */
export class JsonSpanSerializer extends WholeBatchSerializer {
  constructor() {
    super(new JsonSpanBatch(), readJsonTraceExportResponse);
  }
}
