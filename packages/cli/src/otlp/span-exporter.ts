/**
 * The OTLP/HTTP span exporters of txmesh: the SDK's HTTP delegate (OTEL_EXPORTER_OTLP_* endpoint, headers,
 * timeout, compression, certificates; the spec's retries with backoff and Retry-After; partial-success logging;
 * the bound on requests in flight) around our encodings (span-protobuf.ts, span-json.ts), which write an export
 * request without the SDK's intermediate arrays and objects.
 * - OtlpHttpRequestExporter sends requests the roles' span processor (span-processor.ts) already wrote, span by
 *   span as each ended.
 * - OtlpHttpSpanExporter takes ReadableSpan[] like the SDK's exporters, for an application's own batch span
 *   processor.
 */
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { JsonSpanBatch, JsonSpanSerializer, readJsonTraceExportResponse } from './span-json.ts';
import { ProtobufSpanBatch, ProtobufSpanSerializer, readTraceExportResponse, type TraceExportResponse } from './span-protobuf.ts';
import type { SpanBatch } from './span-grouping.ts';
import { OtlpHttpProtocol } from './span-protocol.ts';

/** The component type the SDK's own OTLP/HTTP span exporters report in their self-observability metrics. */
const COMPONENT_TYPE = 'otlp_http_span_exporter';

/** An export request already written: its bytes and how many spans they carry. */
export interface EncodedSpanRequest {
  bytes: Uint8Array;
  count: number;
}

interface Serializer<T> {
  serializeRequest(items: T): Uint8Array;
  deserializeResponse(data: Uint8Array): TraceExportResponse;
}

function httpDelegate<T>(protocol: OtlpHttpProtocol, serializer: Serializer<T>, countItems: (items: T) => number) {
  const json = protocol === OtlpHttpProtocol.JSON;
  const options = convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' });
  return createOtlpHttpExportDelegate(options, serializer, COMPONENT_TYPE, { name: 'span', countItems }, undefined);
}

export class OtlpHttpSpanExporter extends OTLPExporterBase<ReadableSpan[]> {
  constructor(protocol: OtlpHttpProtocol) {
    const serializer = protocol === OtlpHttpProtocol.JSON ? new JsonSpanSerializer() : new ProtobufSpanSerializer();
    super(httpDelegate(protocol, serializer, (spans) => spans.length));
  }
}

export class OtlpHttpRequestExporter extends OTLPExporterBase<EncodedSpanRequest> {
  constructor(protocol: OtlpHttpProtocol) {
    const deserializeResponse = protocol === OtlpHttpProtocol.JSON ? readJsonTraceExportResponse : readTraceExportResponse;
    super(httpDelegate<EncodedSpanRequest>(protocol, { serializeRequest: (request) => request.bytes, deserializeResponse }, (request) => request.count));
  }
}

/** The encoding a span processor writes its spans in, as they end, for this protocol. */
export function spanBatchFor(protocol: OtlpHttpProtocol): SpanBatch {
  return protocol === OtlpHttpProtocol.JSON ? new JsonSpanBatch() : new ProtobufSpanBatch();
}
