/**
 * What both OTLP encodings (span-protobuf.ts, span-json.ts) share: spans encoded one at a time as they end and
 * kept grouped as the export request nests them (resource, then instrumentation scope, in the order they first
 * appear), the sealed batch the span processor exports, and the span flags field.
 */
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { TraceExportResponse } from './span-protobuf.ts';

/** The W3C trace flags in the low byte; bit 8 says whether the parent's remoteness is known, bit 9 that it is remote. */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

export function spanFlags(traceFlags: number, parentIsRemote: boolean | undefined): number {
  return (traceFlags & 0xff) | HAS_IS_REMOTE | (parentIsRemote ? IS_REMOTE : 0);
}

/** Spans encoded and taken out of a batch: what one export request carries. */
export interface SealedSpans {
  readonly count: number;
  /** The resources of its spans: the request is written once their asynchronous attributes settled. */
  readonly resources: readonly Resource[];
  /** The ExportTraceServiceRequest's bytes. */
  request(): Uint8Array;
}

/** Spans encoded as they are added, so a span object need not outlive its end (span-processor.ts). */
export interface SpanBatch {
  readonly count: number;
  /** Encodes the span into the batch; when that throws, the batch is left as it was. */
  add(span: ReadableSpan): void;
  /** Takes every span added since the last seal; the batch starts empty again. */
  seal(): SealedSpans;
}

/**
 * Encoded spans by resource, then by scope object, in the order they first appear. A process has one resource
 * and a few tracers, and the SDK hands the same scope object with every span of a tracer.
 */
export class SpanGroups<G> {
  #groups = new Map<Resource, Map<InstrumentationScope, G>>();
  readonly #newGroup: () => G;

  constructor(newGroup: () => G) {
    this.#newGroup = newGroup;
  }

  of(span: ReadableSpan): G {
    let byScope = this.#groups.get(span.resource);
    if (byScope === undefined) this.#groups.set(span.resource, (byScope = new Map()));
    let group = byScope.get(span.instrumentationScope);
    if (group === undefined) byScope.set(span.instrumentationScope, (group = this.#newGroup()));
    return group;
  }

  take(): Map<Resource, Map<InstrumentationScope, G>> {
    const groups = this.#groups;
    this.#groups = new Map();
    return groups;
  }
}

/**
 * The serializer of the exporter an application hands to a span processor of its own: a whole batch at once,
 * encoded by `batch` (protobuf or JSON) and its answers read by `readResponse`.
 */
export class WholeBatchSerializer {
  readonly #batch: SpanBatch;
  readonly #readResponse: (data: Uint8Array) => TraceExportResponse;

  constructor(batch: SpanBatch, readResponse: (data: Uint8Array) => TraceExportResponse) {
    this.#batch = batch;
    this.#readResponse = readResponse;
  }

  serializeRequest(spans: ReadableSpan[]): Uint8Array {
    for (const span of spans) this.#batch.add(span);
    return this.#batch.seal().request();
  }

  deserializeResponse(data: Uint8Array): TraceExportResponse {
    return this.#readResponse(data);
  }
}
