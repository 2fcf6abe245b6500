/**
 * OpenTelemetry for a txmesh process (coordinator shard, sidecar, an example service): the NodeSDK,
 * configured by the standard OTEL_* environment variables only, plus a Prometheus exporter serving
 * GET /metrics on --metrics-port. The libraries (@txmesh/coordinator, sidecar, participant-sdk, client)
 * only speak @opentelemetry/api; this is the one place that registers providers.
 *
 * Loaded (by serve.ts) only in a process that starts a role with telemetry.
 * Tracing is off unless the environment asks for it (OTEL_TRACES_EXPORTER, or an OTLP endpoint), so a
 * process started without OTEL_* exports nothing, its spans cost the api's no-op tracer, and it does not
 * even load the NodeSDK: a MeterProvider serves /metrics.
 * OTEL_SDK_DISABLED=true turns every signal off, /metrics included.
 */
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { metrics } from '@opentelemetry/api';
import { UsageError } from './args.ts';
import { sdkDisabled, tracingRequested, type TelemetryOptions } from './telemetry-options.ts';

const TXMESH_VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

export interface Telemetry {
  /** http://host:port/metrics, or undefined when the SDK is disabled. */
  metricsUrl: string | undefined;
  tracing: boolean;
  /** Flushes spans still buffered and closes /metrics. */
  shutdown(): Promise<void>;
}

export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const env = options.env ?? process.env;
  if (sdkDisabled(env)) return { metricsUrl: undefined, tracing: false, shutdown: async () => {} };
  const tracing = tracingRequested(env);
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const stopProviders = tracing ? await startNodeSdk(env, options, prometheus) : startMetricsOnly(env, options, prometheus);
  // A constant series naming the running version (Prometheus' *_build_info convention); it also keeps
  // /metrics a complete exposition in a process that has recorded nothing yet.
  metrics.getMeter('txmesh').createObservableGauge('txmesh_build_info', { description: 'The running txmesh version (always 1)' })
    .addCallback((result) => result.observe(1, { version: TXMESH_VERSION, role: options.defaultServiceName }));
  let server: Server;
  try {
    server = await listenMetrics(prometheus, options);
  } catch (err) {
    await stopProviders();
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  return {
    metricsUrl: `http://${options.metricsHost}:${port}/metrics`,
    tracing,
    shutdown: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await stopProviders();
    },
  };
}

/**
 * Traces requested: the NodeSDK, which reads every OTEL_* variable itself (exporter, endpoint, protocol,
 * sampler, resource attributes, batch sizes) and registers the tracer provider, propagators and the
 * context manager. Loaded only then: it is most of the start-up cost of telemetry.
 */
async function startNodeSdk(env: NodeJS.ProcessEnv, options: TelemetryOptions, prometheus: PrometheusExporter): Promise<() => Promise<void>> {
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  // Unset, the SDK would also export logs over OTLP; txmesh logs go to stderr.
  env.OTEL_LOGS_EXPORTER ??= 'none';
  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName: options.defaultServiceName }),
    metricReaders: [prometheus],
  });
  sdk.start();
  return () => sdk.shutdown();
}

/** No traces: a MeterProvider for /metrics only. The api's tracer stays the no-op one. */
function startMetricsOnly(env: NodeJS.ProcessEnv, options: TelemetryOptions, prometheus: PrometheusExporter): () => Promise<void> {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || options.defaultServiceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new MeterProvider({ resource, readers: [prometheus] });
  metrics.setGlobalMeterProvider(provider);
  return async () => {
    await provider.shutdown();
    metrics.disable();
  };
}

/**
 * GET /metrics on the asked port. The default port taken (several txmesh processes on one host, as in the
 * README's tour) falls back to a free one, said on stderr and in the TXMESH_METRICS line; a port given with
 * --metrics-port must be free.
 */
async function listenMetrics(prometheus: PrometheusExporter, options: TelemetryOptions): Promise<Server> {
  const { metricsHost: host, metricsPort: port } = options;
  try {
    return await listenMetricsOn(prometheus, host, port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (options.metricsPortGiven) throw new UsageError(`--metrics-port ${port} is in use on ${host}: pick another port, or 0 for any free one`);
    const server = await listenMetricsOn(prometheus, host, 0);
    process.stderr.write(`txmesh: the default metrics port ${port} is in use on ${host}; /metrics is on port ${(server.address() as AddressInfo).port} (choose one with --metrics-port)\n`);
    return server;
  }
}

function listenMetricsOn(prometheus: PrometheusExporter, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method === 'GET' && path === '/metrics') {
      prometheus.getMetricsRequestHandler(request, response);
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics\n');
  });
  // Scrapes come and go: an idle keep-alive connection must not hold the process open at shutdown.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
