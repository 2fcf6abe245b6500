/**
 * A protobuf writer over one growing buffer: a scope's spans are written into one reused from batch to batch, and
 * an export request into one made for it, so a batch of spans costs one allocation for its bytes instead of one
 * per id, string and nested message. Nested messages reserve their length prefix up front (the caller says how
 * many bytes it expects) and shift their content only when the guess was wrong.
 */

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;
export const Wire = { VARINT: WIRE_VARINT, FIXED64: WIRE_FIXED64, LENGTH: WIRE_LENGTH, FIXED32: WIRE_FIXED32 } as const;

const INITIAL_BYTES = 64 * 1024;
/** Up to this many bytes, raw() copies byte by byte. */
const SMALL_COPY = 32;
const TWO_32 = 0x1_0000_0000;
const NANOS_PER_SECOND = 1_000_000_000;

function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x20_0000) return 3;
  if (value < 0x1000_0000) return 4;
  return 5;
}

/**
 * Hex digit values by character code (0-9, a-f, A-F; anything else 0: ids come from the SDK's generator or a
 * validated traceparent). A table beat both a branch per digit and Buffer's native hex decoder per id.
 */
const HEX_VALUE = new Uint8Array(128);
for (let digit = 0; digit < 16; digit++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(digit)] = digit;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(digit)] = digit;
}

export class ProtobufBuffer {
  #buf: Buffer;
  #pos = 0;

  constructor(initialBytes = INITIAL_BYTES) {
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  get length(): number {
    return this.#pos;
  }

  /** Starts a new message at the buffer's beginning; what was written before is overwritten. */
  reset(): void {
    this.#pos = 0;
  }

  /** Forgets what was written after `length` (a message that could not be finished). */
  truncate(length: number): void {
    if (length < this.#pos) this.#pos = length;
  }

  /** A copy of what was written since reset(): the transport may still hold it when the next request is written. */
  take(): Uint8Array {
    return new Uint8Array(this.#buf.subarray(0, this.#pos));
  }

  /**
   * What was written, without a copy, for a buffer made for one message and then dropped: the view shares the
   * buffer's memory, so nothing may be written to this buffer afterwards.
   */
  written(): Uint8Array {
    return this.#buf.subarray(0, this.#pos);
  }

  tag(field: number, wire: number): void {
    this.varint32((field << 3) | wire);
  }

  /** An unsigned value below 2^32. */
  varint32(value: number): void {
    this.#ensure(5);
    const buf = this.#buf;
    let v = value >>> 0;
    while (v > 0x7f) {
      buf[this.#pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.#pos++] = v;
  }

  /** An int64 from a JS integer, negative ones in two's complement (ten bytes, as protobuf's int64 wants). */
  varint64(value: number): void {
    if (value >= 0 && value < TWO_32) {
      this.varint32(value);
      return;
    }
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = Math.floor(value / TWO_32) >>> 0;
    } else {
      const magnitude = -value;
      low = ~(magnitude >>> 0) >>> 0;
      high = ~(Math.floor(magnitude / TWO_32) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    this.#ensure(10);
    const buf = this.#buf;
    while (high !== 0 || low > 0x7f) {
      buf[this.#pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.#pos++] = low;
  }

  fixed32(value: number): void {
    this.#ensure(4);
    this.#buf.writeUInt32LE(value >>> 0, this.#pos);
    this.#pos += 4;
  }

  fixed64(low: number, high: number): void {
    this.#ensure(8);
    this.#buf.writeUInt32LE(low >>> 0, this.#pos);
    this.#buf.writeUInt32LE(high >>> 0, this.#pos + 4);
    this.#pos += 8;
  }

  /**
   * An OpenTelemetry HrTime ([seconds, nanoseconds]) as fixed64 nanoseconds since the epoch. seconds × 10^9
   * passes 2^53 for any present-day time, so it is split at 2^16 seconds to stay exact in doubles.
   */
  hrTime(seconds: number, nanos: number): void {
    const upperSeconds = Math.floor(seconds / 0x1_0000);
    const lower = (seconds - upperSeconds * 0x1_0000) * NANOS_PER_SECOND + nanos; // < 2^53
    const upper = upperSeconds * NANOS_PER_SECOND; // counts units of 2^16 ns, < 2^53
    const upperLow16 = upper % 0x1_0000;
    const lowSum = (lower % TWO_32) + upperLow16 * 0x1_0000;
    const low = lowSum % TWO_32;
    const high = Math.floor(lower / TWO_32) + Math.floor(upper / 0x1_0000) + Math.floor(lowSum / TWO_32);
    this.fixed64(low, high);
  }

  double(value: number): void {
    this.#ensure(8);
    this.#buf.writeDoubleLE(value, this.#pos);
    this.#pos += 8;
  }

  /** A string field: ASCII copied in one pass, anything else through Buffer's UTF-8 encoder. */
  string(field: number, value: string): void {
    const length = value.length;
    this.tag(field, WIRE_LENGTH);
    this.#ensure(length + 5);
    const start = this.#pos;
    this.varint32(length);
    const buf = this.#buf;
    let at = this.#pos;
    for (let i = 0; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code > 0x7f) {
        this.#pos = start;
        this.#utf8(value);
        return;
      }
      buf[at++] = code;
    }
    this.#pos = at;
  }

  /**
   * A bytes field from an id in hex (trace id, span id): written straight from the string, no array per id. An id's
   * tag and length fit in a byte each, so both go in with the digits under one room check (ids are three per span,
   * two per link: the coordinator's most called tracing function). An odd last digit is left out, as the length says.
   */
  hexBytes(field: number, hex: string): void {
    const bytes = hex.length >>> 1;
    const tag = (field << 3) | WIRE_LENGTH;
    if (tag > 0x7f || bytes > 0x7f) {
      this.tag(field, WIRE_LENGTH);
      this.varint32(bytes);
      this.#ensure(bytes);
    } else {
      this.#ensure(bytes + 2);
      this.#buf[this.#pos] = tag;
      this.#buf[this.#pos + 1] = bytes;
      this.#pos += 2;
    }
    const buf = this.#buf;
    const at = this.#pos;
    for (let i = 0; i < bytes; i++) {
      const digit = i << 1;
      buf[at + i] = ((HEX_VALUE[hex.charCodeAt(digit)] ?? 0) << 4) | (HEX_VALUE[hex.charCodeAt(digit + 1)] ?? 0);
    }
    this.#pos = at + bytes;
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WIRE_LENGTH);
    this.varint32(value.length);
    this.#ensure(value.length);
    this.#buf.set(value, this.#pos);
    this.#pos += value.length;
  }

  /**
   * Opens a nested message: writes its tag and reserves `reserve` bytes (1 to 5) for its length, the size the
   * caller expects (a key-value pair fits in 1, a span in 2). Returns where the message starts, for end().
   */
  begin(field: number, reserve: number): number {
    this.tag(field, WIRE_LENGTH);
    this.#ensure(reserve);
    const start = this.#pos;
    this.#pos += reserve;
    return start;
  }

  /** Closes the message begin() opened: writes its length, moving the content when it needs another size. */
  end(start: number, reserve: number): void {
    const length = this.#pos - start - reserve;
    const size = varintSize(length);
    if (size !== reserve) {
      this.#ensure(size - reserve);
      this.#buf.copyWithin(start + size, start + reserve, this.#pos);
      this.#pos += size - reserve;
    }
    const buf = this.#buf;
    let at = start;
    let v = length;
    while (v > 0x7f) {
      buf[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[at] = v;
  }

  /** Copies what another buffer holds (a scope's spans into their request), straight from its memory. */
  append(other: ProtobufBuffer): void {
    const length = other.#pos;
    this.#ensure(length);
    other.#buf.copy(this.#buf, this.#pos, 0, length);
    this.#pos += length;
  }

  /** Copies bytes written earlier by another buffer (a cached resource or scope). */
  raw(value: Uint8Array): void {
    const length = value.length;
    this.#ensure(length);
    if (length > SMALL_COPY) this.#buf.set(value, this.#pos);
    else {
      // An attribute key: a loop beats TypedArray#set's call for a few bytes.
      const buf = this.#buf;
      const at = this.#pos;
      for (let i = 0; i < length; i++) buf[at + i] = value[i]!;
    }
    this.#pos += length;
  }

  #utf8(value: string): void {
    const length = Buffer.byteLength(value, 'utf8');
    this.varint32(length);
    this.#ensure(length);
    this.#pos += this.#buf.write(value, this.#pos, length, 'utf8');
  }

  #ensure(more: number): void {
    const needed = this.#pos + more;
    if (needed <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < needed) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }
}
