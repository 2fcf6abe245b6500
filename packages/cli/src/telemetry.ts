/**
 * OpenTelemetry for a txmesh process (coordinator shard, sidecar, an example service): the NodeSDK,
 * configured by the standard OTEL_* environment variables only, plus a Prometheus exporter serving
 * GET /metrics on --metrics-port. The libraries (@txmesh/coordinator, sidecar, participant-sdk, client)
 * only speak @opentelemetry/api; this is the one place that makes providers.
 *
 * Loaded (by serve-telemetry.ts) only in a process that starts a role with telemetry, and then, unless
 * traces are asked for, only after the role printed its ready line.
 * Tracing is off unless the environment asks for it (OTEL_TRACES_EXPORTER, or an OTLP endpoint), so a
 * process started without OTEL_* exports nothing, its spans cost the api's no-op tracer, and it does not
 * even load the NodeSDK: a MeterProvider serves /metrics.
 * OTEL_SDK_DISABLED=true turns every signal off, /metrics included.
 */
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { metrics } from '@opentelemetry/api';
import { registerBuildInfo } from './build-info.ts';
import { SynchronousContextManager } from './synchronous-context-manager.ts';
import { closeServer, listenMetrics, metricsUrlOf, type MetricsHandler } from './metrics-listener.ts';
import { sdkDisabled, tracingRequested, type TelemetryOptions } from './telemetry-options.ts';
import type { SpanProcessor } from '@opentelemetry/sdk-trace';
import { otlpHttpProtocolOf, type OtlpHttpProtocol } from './otlp/span-protocol.ts';

export interface Telemetry {
  /** http://host:port/metrics, or undefined when the SDK is disabled. */
  metricsUrl: string | undefined;
  tracing: boolean;
  /** Flushes spans still buffered and closes /metrics. */
  shutdown(): Promise<void>;
}

/** How a txmesh role's tracing differs from an application's (serve-telemetry.ts passes it). */
export interface RoleTracing {
  /**
   * The role's own context manager (synchronous-context-manager.ts): no code of a role relies on a context
   * following a promise, and an application's may, so an application keeps the NodeSDK's AsyncLocalStorage.
   */
  role?: boolean;
}

/**
 * Everything at once, registered globally before it returns: what an application that embeds the SDKs may
 * call before building its clients and participants (the txmesh roles defer the metrics SDK, serve-telemetry.ts).
 */
export async function startTelemetry(options: TelemetryOptions, how: RoleTracing = {}): Promise<Telemetry> {
  const env = options.env ?? process.env;
  if (sdkDisabled(env)) return { metricsUrl: undefined, tracing: false, shutdown: async () => {} };
  const tracing = tracingRequested(env);
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  let stopProviders: () => Promise<void>;
  if (tracing) stopProviders = await startNodeSdk(env, options, prometheus, how.role === true);
  else {
    const provider = meterProvider(env, options, prometheus);
    metrics.setGlobalMeterProvider(provider);
    stopProviders = async () => {
      await provider.shutdown();
      metrics.disable();
    };
  }
  registerBuildInfo(options.defaultServiceName);
  let server;
  try {
    server = await listenMetrics(prometheusHandler(prometheus), options);
  } catch (err) {
    await stopProviders();
    throw err;
  }
  return {
    metricsUrl: metricsUrlOf(server, options),
    tracing,
    shutdown: async () => {
      await closeServer(server);
      await stopProviders();
    },
  };
}

/** A MeterProvider reading into the Prometheus exporter, not registered anywhere: the caller decides. */
export function startMeterProvider(options: TelemetryOptions): { provider: MeterProvider; handler: MetricsHandler } {
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  return { provider: meterProvider(options.env ?? process.env, options, prometheus), handler: prometheusHandler(prometheus) };
}

/**
 * Traces requested: the NodeSDK, which reads every OTEL_* variable itself (exporter, endpoint, protocol,
 * sampler, resource attributes, batch sizes) and registers the tracer provider, propagators and the
 * context manager. Loaded only then: it is most of the start-up cost of telemetry.
 */
async function startNodeSdk(env: NodeJS.ProcessEnv, options: TelemetryOptions, prometheus: PrometheusExporter, role: boolean): Promise<() => Promise<void>> {
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  // Unset, the SDK would also export logs over OTLP; txmesh logs go to stderr.
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const protocol = role ? ownExporterProtocol(env) : undefined;
  const spanProcessor = protocol === undefined ? undefined : await roleSpanProcessor(env, protocol);
  const roleTracer = spanProcessor !== undefined && roleTracerWanted(env);
  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: options.defaultServiceName }),
    metricReaders: [prometheus],
    ...(role ? { contextManager: new SynchronousContextManager() } : {}),
    // Otherwise the NodeSDK builds the exporters OTEL_TRACES_EXPORTER names, each in its batch span processor.
    ...(spanProcessor ? { spanProcessors: [spanProcessor] } : {}),
  });
  sdk.start();
  // The role's spans over the SDK's configuration, lighter than the SDK's own (otlp/role-tracer.ts); only in front
  // of txmesh's own span processor, whose encoder reads what those spans keep.
  if (roleTracer) {
    const { installRoleTracer } = await import('./otlp/role-tracer.ts');
    if (!installRoleTracer()) process.stderr.write('txmesh: the OpenTelemetry SDK\'s tracer provider was not the expected one; its own spans are used\n');
  }
  // A process stops cleanly whatever the collector does: what failed is said, never thrown.
  return () =>
    sdk.shutdown().catch((err: unknown) => {
      process.stderr.write(`txmesh: OpenTelemetry did not shut down cleanly: ${err instanceof Error ? err.message : String(err)}\n`);
    });
}

/** TXMESH_ROLE_TRACER=sdk keeps the SDK's own spans in a role (comparisons); anything else but unset is refused. */
function roleTracerWanted(env: NodeJS.ProcessEnv): boolean {
  const raw = env.TXMESH_ROLE_TRACER?.trim() ?? '';
  if (raw === '' || raw === 'txmesh') return true;
  if (raw === 'sdk') return false;
  throw new Error(`TXMESH_ROLE_TRACER must be "txmesh" (the default) or "sdk", got "${raw}"`);
}

/**
 * A role's spans are encoded as each ends and sent with txmesh's own OTLP/HTTP exporter (otlp/span-processor.ts),
 * under the OTEL_BSP_* limits a batch span processor would use, with a role's larger batches where none is set.
 */
async function roleSpanProcessor(env: NodeJS.ProcessEnv, protocol: OtlpHttpProtocol): Promise<SpanProcessor> {
  const [{ EncodingSpanProcessor }, { OtlpHttpRequestExporter, spanBatchFor }, { batchLimitsFrom, ROLE_BATCH_DEFAULTS }] = await Promise.all([
    import('./otlp/span-processor.ts'),
    import('./otlp/span-exporter.ts'),
    import('./otlp/batch-limits.ts'),
  ]);
  return new EncodingSpanProcessor({
    batch: spanBatchFor(protocol),
    exporter: new OtlpHttpRequestExporter(protocol),
    limits: batchLimitsFrom(env, ROLE_BATCH_DEFAULTS),
    onLost: (spans, reason) => process.stderr.write(`txmesh: ${spans} spans could not be exported: ${reason}\n`),
  });
}

/**
 * A role exports over OTLP/HTTP with txmesh's own exporter (otlp/span-exporter.ts) when OTLP is the one traces
 * exporter asked for (or none is named) and the protocol is http/protobuf or http/json; any other choice
 * (grpc, zipkin, console, several exporters) is left to the NodeSDK.
 */
function ownExporterProtocol(env: NodeJS.ProcessEnv): OtlpHttpProtocol | undefined {
  const named = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((name) => name.trim()).filter((name) => name !== '');
  if (named.length > 1 || (named.length === 1 && named[0] !== 'otlp')) return undefined;
  return otlpHttpProtocolOf(env);
}

/** No traces: a MeterProvider for /metrics only. The api's tracer stays the no-op one. */
function meterProvider(env: NodeJS.ProcessEnv, options: TelemetryOptions, prometheus: PrometheusExporter): MeterProvider {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || options.defaultServiceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  return new MeterProvider({ resource, readers: [prometheus] });
}

const prometheusHandler = (prometheus: PrometheusExporter): MetricsHandler => (request, response) => prometheus.getMetricsRequestHandler(request, response);

// txmesh's OTLP/HTTP span exporters, span processor and two encodings, for applications and the lab's tests.
export { OtlpHttpSpanExporter, OtlpHttpRequestExporter, spanBatchFor, type EncodedSpanRequest } from './otlp/span-exporter.ts';
export { EncodingSpanProcessor, type EncodedSpanExporter, type SpanProcessorOptions } from './otlp/span-processor.ts';
export { batchLimitsFrom, ROLE_BATCH_DEFAULTS, SPEC_BATCH_DEFAULTS, type BatchLimits } from './otlp/batch-limits.ts';
export { ProtobufSpanSerializer, ProtobufSpanBatch, type TraceExportResponse } from './otlp/span-protobuf.ts';
export { JsonSpanSerializer, JsonSpanBatch } from './otlp/span-json.ts';
export type { SpanBatch, SealedSpans } from './otlp/span-grouping.ts';
export { OtlpHttpProtocol, otlpHttpProtocolOf } from './otlp/span-protocol.ts';
