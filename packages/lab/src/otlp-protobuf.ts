/**
 * Reads OTLP/HTTP protobuf trace export requests (opentelemetry-proto collector/trace/v1, trace/v1, common/v1,
 * resource/v1). The benchmark's receiver only counts the spans (countProtobufSpans walks
 * ExportTraceServiceRequest.resource_spans (1) → ResourceSpans.scope_spans (2) → ScopeSpans.spans (2));
 * the tests decode every field (decodeProtobufExport) into the shape of the JSON encoding (otlp-export.ts).
 */
import type { OtlpEvent, OtlpExport, OtlpKeyValue, OtlpLink, OtlpResourceSpans, OtlpScope, OtlpScopeSpans, OtlpSpan, OtlpValue } from './otlp-export.ts';

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

/** Thrown for bytes that are not a well-formed protobuf message. */
export class ProtobufFormatError extends Error {}

function varint(buf: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const byte = buf[i]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, i + 1];
    scale *= 128;
  }
  throw new ProtobufFormatError(`truncated varint at byte ${at}`);
}

/** Calls `onField` for each length-delimited field of the message in buf[start, end); skips the others. */
function eachLengthField(buf: Uint8Array, start: number, end: number, onField: (field: number, from: number, to: number) => void): void {
  let at = start;
  while (at < end) {
    const [tag, afterTag] = varint(buf, at);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === WIRE_VARINT) at = varint(buf, afterTag)[1];
    else if (wire === WIRE_FIXED64) at = afterTag + 8;
    else if (wire === WIRE_FIXED32) at = afterTag + 4;
    else if (wire === WIRE_LENGTH) {
      const [length, from] = varint(buf, afterTag);
      at = from + length;
      if (at > end) throw new ProtobufFormatError(`field ${field} runs past its message`);
      onField(field, from, at);
    } else throw new ProtobufFormatError(`unsupported wire type ${wire} at byte ${at}`);
  }
  if (at !== end) throw new ProtobufFormatError('a fixed-size field runs past its message');
}

export function countProtobufSpans(buf: Uint8Array): number {
  let spans = 0;
  eachLengthField(buf, 0, buf.length, (field, from, to) => {
    if (field !== 1) return;
    eachLengthField(buf, from, to, (resourceField, rFrom, rTo) => {
      if (resourceField !== 2) return;
      eachLengthField(buf, rFrom, rTo, (scopeField) => {
        if (scopeField === 2) spans += 1;
      });
    });
  });
  return spans;
}

/** One field of a message: its number, wire type, and either its varint/fixed value or its byte range. */
interface Field {
  field: number;
  wire: number;
  /** Varint and fixed values, unsigned. */
  value: bigint;
  from: number;
  to: number;
}

function bigVarint(buf: Uint8Array, at: number): [value: bigint, next: number] {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const byte = buf[i]!;
    value |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value, i + 1];
    shift += 7n;
  }
  throw new ProtobufFormatError(`truncated varint at byte ${at}`);
}

function fields(buf: Uint8Array, start: number, end: number): Field[] {
  const out: Field[] = [];
  let at = start;
  while (at < end) {
    const [tag, afterTag] = varint(buf, at);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) throw new ProtobufFormatError(`field number 0 at byte ${at}`);
    if (wire === WIRE_VARINT) {
      const [value, next] = bigVarint(buf, afterTag);
      out.push({ field, wire, value, from: afterTag, to: next });
      at = next;
    } else if (wire === WIRE_FIXED64 || wire === WIRE_FIXED32) {
      const size = wire === WIRE_FIXED64 ? 8 : 4;
      if (afterTag + size > end) throw new ProtobufFormatError(`field ${field} runs past its message`);
      const view = new DataView(buf.buffer, buf.byteOffset + afterTag, size);
      const value = size === 8 ? view.getBigUint64(0, true) : BigInt(view.getUint32(0, true));
      out.push({ field, wire, value, from: afterTag, to: afterTag + size });
      at = afterTag + size;
    } else if (wire === WIRE_LENGTH) {
      const [length, from] = varint(buf, afterTag);
      if (from + length > end) throw new ProtobufFormatError(`field ${field} runs past its message`);
      out.push({ field, wire, value: BigInt(length), from, to: from + length });
      at = from + length;
    } else throw new ProtobufFormatError(`unsupported wire type ${wire} at byte ${at}`);
  }
  return out;
}

/** Checks a field's wire type against the schema: a wrong field number or type would show up here. */
function expect(f: Field, wire: number, what: string): Field {
  if (f.wire !== wire) throw new ProtobufFormatError(`${what} (field ${f.field}) has wire type ${f.wire}, expected ${wire}`);
  return f;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const text = (buf: Uint8Array, f: Field, what: string): string => utf8.decode(buf.subarray(expect(f, WIRE_LENGTH, what).from, f.to));
const hex = (buf: Uint8Array, f: Field, what: string): string => Buffer.from(buf.subarray(expect(f, WIRE_LENGTH, what).from, f.to)).toString('hex');
const uint = (f: Field, what: string): number => Number(expect(f, WIRE_VARINT, what).value);

function anyValue(buf: Uint8Array, from: number, to: number): OtlpValue {
  const value: OtlpValue = {};
  for (const f of fields(buf, from, to)) {
    if (f.field === 1) value.stringValue = text(buf, f, 'AnyValue.string_value');
    else if (f.field === 2) value.boolValue = uint(f, 'AnyValue.bool_value') !== 0;
    else if (f.field === 3) value.intValue = BigInt.asIntN(64, expect(f, WIRE_VARINT, 'AnyValue.int_value').value).toString();
    else if (f.field === 4) {
      expect(f, WIRE_FIXED64, 'AnyValue.double_value');
      value.doubleValue = new DataView(buf.buffer, buf.byteOffset + f.from, 8).getFloat64(0, true);
    } else if (f.field === 5) value.arrayValue = { values: fields(buf, expect(f, WIRE_LENGTH, 'AnyValue.array_value').from, f.to).map((v) => anyValue(buf, expect(v, WIRE_LENGTH, 'ArrayValue.values').from, v.to)) };
    else if (f.field === 6) value.kvlistValue = { values: fields(buf, expect(f, WIRE_LENGTH, 'AnyValue.kvlist_value').from, f.to).map((kv) => keyValue(buf, expect(kv, WIRE_LENGTH, 'KeyValueList.values'))) };
    else if (f.field === 7) value.bytesValue = Buffer.from(buf.subarray(expect(f, WIRE_LENGTH, 'AnyValue.bytes_value').from, f.to)).toString('base64');
  }
  return value;
}

function keyValue(buf: Uint8Array, at: Field): OtlpKeyValue {
  const kv: OtlpKeyValue = { key: '' };
  for (const f of fields(buf, at.from, at.to)) {
    if (f.field === 1) kv.key = text(buf, f, 'KeyValue.key');
    else if (f.field === 2) kv.value = anyValue(buf, expect(f, WIRE_LENGTH, 'KeyValue.value').from, f.to);
  }
  return kv;
}

function event(buf: Uint8Array, at: Field): OtlpEvent {
  const e: OtlpEvent = { timeUnixNano: '0', name: '', attributes: [], droppedAttributesCount: 0 };
  for (const f of fields(buf, at.from, at.to)) {
    if (f.field === 1) e.timeUnixNano = expect(f, WIRE_FIXED64, 'Event.time_unix_nano').value.toString();
    else if (f.field === 2) e.name = text(buf, f, 'Event.name');
    else if (f.field === 3) e.attributes!.push(keyValue(buf, expect(f, WIRE_LENGTH, 'Event.attributes')));
    else if (f.field === 4) e.droppedAttributesCount = uint(f, 'Event.dropped_attributes_count');
  }
  return e;
}

function link(buf: Uint8Array, at: Field): OtlpLink {
  const l: OtlpLink = { traceId: '', spanId: '', attributes: [], droppedAttributesCount: 0, flags: 0 };
  for (const f of fields(buf, at.from, at.to)) {
    if (f.field === 1) l.traceId = hex(buf, f, 'Link.trace_id');
    else if (f.field === 2) l.spanId = hex(buf, f, 'Link.span_id');
    else if (f.field === 3) l.traceState = text(buf, f, 'Link.trace_state') || undefined;
    else if (f.field === 4) l.attributes!.push(keyValue(buf, expect(f, WIRE_LENGTH, 'Link.attributes')));
    else if (f.field === 5) l.droppedAttributesCount = uint(f, 'Link.dropped_attributes_count');
    else if (f.field === 6) l.flags = Number(expect(f, WIRE_FIXED32, 'Link.flags').value);
  }
  if (l.traceState === undefined) delete l.traceState;
  return l;
}

function span(buf: Uint8Array, at: Field): OtlpSpan {
  const s: OtlpSpan = {
    traceId: '',
    spanId: '',
    flags: 0,
    name: '',
    kind: 0,
    startTimeUnixNano: '0',
    endTimeUnixNano: '0',
    attributes: [],
    droppedAttributesCount: 0,
    events: [],
    droppedEventsCount: 0,
    links: [],
    droppedLinksCount: 0,
    status: { code: 0 },
  };
  for (const f of fields(buf, at.from, at.to)) {
    switch (f.field) {
      case 1: s.traceId = hex(buf, f, 'Span.trace_id'); break;
      case 2: s.spanId = hex(buf, f, 'Span.span_id'); break;
      case 3: { const state = text(buf, f, 'Span.trace_state'); if (state) s.traceState = state; break; }
      case 4: { const parent = hex(buf, f, 'Span.parent_span_id'); if (parent) s.parentSpanId = parent; break; }
      case 5: s.name = text(buf, f, 'Span.name'); break;
      case 6: s.kind = uint(f, 'Span.kind'); break;
      case 7: s.startTimeUnixNano = expect(f, WIRE_FIXED64, 'Span.start_time_unix_nano').value.toString(); break;
      case 8: s.endTimeUnixNano = expect(f, WIRE_FIXED64, 'Span.end_time_unix_nano').value.toString(); break;
      case 9: s.attributes!.push(keyValue(buf, expect(f, WIRE_LENGTH, 'Span.attributes'))); break;
      case 10: s.droppedAttributesCount = uint(f, 'Span.dropped_attributes_count'); break;
      case 11: s.events!.push(event(buf, expect(f, WIRE_LENGTH, 'Span.events'))); break;
      case 12: s.droppedEventsCount = uint(f, 'Span.dropped_events_count'); break;
      case 13: s.links!.push(link(buf, expect(f, WIRE_LENGTH, 'Span.links'))); break;
      case 14: s.droppedLinksCount = uint(f, 'Span.dropped_links_count'); break;
      case 15: s.status = status(buf, expect(f, WIRE_LENGTH, 'Span.status')); break;
      case 16: s.flags = Number(expect(f, WIRE_FIXED32, 'Span.flags').value); break;
      default: break;
    }
  }
  return s;
}

function status(buf: Uint8Array, at: Field): { code: number; message?: string } {
  const out: { code: number; message?: string } = { code: 0 };
  for (const f of fields(buf, at.from, at.to)) {
    // Field 1 is reserved (the deprecated code).
    if (f.field === 2) {
      const message = text(buf, f, 'Status.message');
      if (message) out.message = message;
    } else if (f.field === 3) out.code = uint(f, 'Status.code');
  }
  return out;
}

function scope(buf: Uint8Array, at: Field): OtlpScope {
  const out: OtlpScope = { name: '' };
  for (const f of fields(buf, at.from, at.to)) {
    if (f.field === 1) out.name = text(buf, f, 'InstrumentationScope.name');
    else if (f.field === 2) out.version = text(buf, f, 'InstrumentationScope.version') || undefined;
    else if (f.field === 3) (out.attributes ??= []).push(keyValue(buf, expect(f, WIRE_LENGTH, 'InstrumentationScope.attributes')));
    else if (f.field === 4) out.droppedAttributesCount = uint(f, 'InstrumentationScope.dropped_attributes_count') || undefined;
  }
  for (const key of ['version', 'droppedAttributesCount'] as const) if (out[key] === undefined) delete out[key];
  return out;
}

function scopeSpans(buf: Uint8Array, at: Field): OtlpScopeSpans {
  const out: OtlpScopeSpans = { scope: { name: '' }, spans: [] };
  for (const f of fields(buf, at.from, at.to)) {
    if (f.field === 1) out.scope = scope(buf, expect(f, WIRE_LENGTH, 'ScopeSpans.scope'));
    else if (f.field === 2) out.spans!.push(span(buf, expect(f, WIRE_LENGTH, 'ScopeSpans.spans')));
    else if (f.field === 3) out.schemaUrl = text(buf, f, 'ScopeSpans.schema_url') || undefined;
  }
  if (out.schemaUrl === undefined) delete out.schemaUrl;
  return out;
}

function resourceSpans(buf: Uint8Array, at: Field): OtlpResourceSpans {
  const out: OtlpResourceSpans = { resource: { attributes: [], droppedAttributesCount: 0 }, scopeSpans: [] };
  for (const f of fields(buf, at.from, at.to)) {
    if (f.field === 1) {
      for (const r of fields(buf, expect(f, WIRE_LENGTH, 'ResourceSpans.resource').from, f.to)) {
        if (r.field === 1) out.resource!.attributes!.push(keyValue(buf, expect(r, WIRE_LENGTH, 'Resource.attributes')));
        else if (r.field === 2) out.resource!.droppedAttributesCount = uint(r, 'Resource.dropped_attributes_count');
      }
    } else if (f.field === 2) out.scopeSpans!.push(scopeSpans(buf, expect(f, WIRE_LENGTH, 'ResourceSpans.scope_spans')));
    else if (f.field === 3) out.schemaUrl = text(buf, f, 'ResourceSpans.schema_url') || undefined;
  }
  if (out.schemaUrl === undefined) delete out.schemaUrl;
  return out;
}

/**
 * Every field of an ExportTraceServiceRequest, by opentelemetry-proto's field numbers, each checked against its
 * wire type; fields left out take proto3's defaults (0, empty), so two encoders that differ only in writing
 * defaults decode alike. Unknown fields are skipped, as protobuf readers do.
 */
export function decodeProtobufExport(buf: Uint8Array): OtlpExport {
  const resources: OtlpResourceSpans[] = [];
  for (const f of fields(buf, 0, buf.length)) if (f.field === 1) resources.push(resourceSpans(buf, expect(f, WIRE_LENGTH, 'ExportTraceServiceRequest.resource_spans')));
  return { resourceSpans: resources };
}
