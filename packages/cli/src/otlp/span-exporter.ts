/**
 * The OTLP/HTTP span exporter of txmesh's own processes: the SDK's HTTP delegate (OTEL_EXPORTER_OTLP_* endpoint,
 * headers, timeout, compression, certificates; the spec's retries with backoff and Retry-After; partial-success
 * logging; the bound on requests in flight) around our serializers, which write an export request without the
 * SDK's intermediate arrays and objects (span-protobuf.ts, span-json.ts). The NodeSDK wraps it in its batch span
 * processor configured by OTEL_BSP_*, as it would its own exporter.
 */
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { JsonSpanSerializer } from './span-json.ts';
import { ProtobufSpanSerializer } from './span-protobuf.ts';
import { OtlpHttpProtocol } from './span-protocol.ts';

/** The component type the SDK's own OTLP/HTTP span exporters report in their self-observability metrics. */
const COMPONENT_TYPE = 'otlp_http_span_exporter';
const spanCounter = { name: 'span' as const, countItems: (spans: ReadableSpan[]) => spans.length };

export class OtlpHttpSpanExporter extends OTLPExporterBase<ReadableSpan[]> {
  constructor(protocol: OtlpHttpProtocol) {
    const json = protocol === OtlpHttpProtocol.JSON;
    const options = convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' });
    const serializer = json ? new JsonSpanSerializer() : new ProtobufSpanSerializer();
    super(createOtlpHttpExportDelegate(options, serializer, COMPONENT_TYPE, spanCounter, undefined));
  }
}
