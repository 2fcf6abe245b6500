import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProtobufBuffer, Wire } from './protobuf-buffer.ts';

/** A bytes field as protobuf frames it: the tag's and the length's varints, then the bytes. */
function varint(value: number): number[] {
  const out: number[] = [];
  while (value > 0x7f) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return out;
}
function bytesField(field: number, bytes: Uint8Array): Buffer {
  return Buffer.from([...varint((field << 3) | Wire.LENGTH), ...varint(bytes.length), ...bytes]);
}

const written = (write: (out: ProtobufBuffer) => void, initialBytes?: number): Buffer => {
  const out = new ProtobufBuffer(initialBytes);
  write(out);
  return Buffer.from(out.take());
};

test('an id in hex is written as the bytes field Buffer would make of it, whatever string V8 holds it in', () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const spanId = '00f067aa0ba902b7';
  const halves = traceId.slice(0, 16) + String(traceId.slice(16)); // a rope, as `a + b` makes it
  const sliced = `00-${traceId}-${spanId}-01`.slice(3, 35); // a slice of a traceparent, as a carrier's read gives it
  for (const hex of [traceId, spanId, halves, sliced, 'ffffffffffffffffffffffffffffffff', '0000000000000001', 'ABCDEF0123456789']) {
    for (const field of [1, 2, 4, 15, 16, 300]) {
      assert.deepEqual(written((out) => out.hexBytes(field, hex)), bytesField(field, Buffer.from(hex, 'hex')), `${field} ${hex}`);
    }
  }
});

test('ids after other fields, in a buffer that has to grow, land where the fields before them end', () => {
  const ids = Array.from({ length: 300 }, (_, i) => (i * 2654435761).toString(16).padStart(8, '0').repeat(4).slice(0, i % 2 === 0 ? 32 : 16));
  const expected = Buffer.concat(ids.flatMap((id, i) => [Buffer.from([...varint((3 << 3) | Wire.VARINT), ...varint(i)]), bytesField(1 + (i % 3), Buffer.from(id, 'hex'))]));
  const actual = written((out) => {
    ids.forEach((id, i) => {
      out.tag(3, Wire.VARINT);
      out.varint32(i);
      out.hexBytes(1 + (i % 3), id);
    });
  }, 16);
  assert.deepEqual(actual, expected);
});

test('an odd last digit is left out, so the length says how many bytes follow', () => {
  assert.deepEqual(written((out) => out.hexBytes(1, 'abc')), Buffer.from([0x0a, 1, 0xab]));
  assert.deepEqual(written((out) => out.hexBytes(1, '')), Buffer.from([0x0a, 0]));
});
