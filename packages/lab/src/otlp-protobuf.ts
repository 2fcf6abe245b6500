/**
 * Counts the spans in an OTLP/HTTP protobuf export request without decoding them: the benchmark's receiver
 * takes what the SDK sends by default (http/protobuf) and needs only how many spans arrived. It walks the
 * wire format: ExportTraceServiceRequest.resource_spans (1) → ResourceSpans.scope_spans (2) → ScopeSpans.spans (2).
 */

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
