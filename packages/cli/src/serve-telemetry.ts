/**
 * Telemetry of a txmesh role (serve.ts): /metrics is bound before the role starts, so its port is known
 * (TXMESH_METRICS) and a taken one fails the start, but the metrics SDK itself loads only once the role has
 * printed its ready line: until then a DeferredMeterProvider holds the role's instruments and measurements,
 * and a scrape waits for the SDK. Loading it costs a role about a fifth of its start-up (docs/benchmarks.md).
 * When the environment asks for traces the whole SDK starts before the role, as spans made before it would
 * be lost (a recovery's, at start).
 */
import { metrics } from '@opentelemetry/api';
import { registerBuildInfo } from './build-info.ts';
import { DeferredMeterProvider } from './deferred-meter-provider.ts';
import { closeServer, listenMetrics, metricsUrlOf, type MetricsHandler } from './metrics-listener.ts';
import { tracingRequested, type TelemetryOptions } from './telemetry-options.ts';

export interface RoleTelemetry {
  /** http://host:port/metrics */
  metricsUrl: string;
  /** Called once the role printed its ready line: loads the metrics SDK if it is not loaded yet. */
  afterReady(): void;
  /** Flushes spans still buffered and closes /metrics. */
  shutdown(): Promise<void>;
}

export async function startRoleTelemetry(options: TelemetryOptions): Promise<RoleTelemetry> {
  if (tracingRequested(options.env ?? process.env)) {
    const started = await (await import('./telemetry.ts')).startTelemetry(options, { role: true });
    return { metricsUrl: started.metricsUrl!, afterReady: () => {}, shutdown: () => started.shutdown() };
  }
  const deferred = new DeferredMeterProvider();
  metrics.setGlobalMeterProvider(deferred);
  registerBuildInfo(options.defaultServiceName);
  let answer!: (handler: MetricsHandler) => void;
  const handler = new Promise<MetricsHandler>((resolve) => (answer = resolve));
  let server;
  try {
    server = await listenMetrics((request, response) => void handler.then((h) => h(request, response)), options);
  } catch (err) {
    metrics.disable();
    throw err;
  }
  let loading: Promise<(() => Promise<void>) | undefined> | undefined;
  const load = (): Promise<(() => Promise<void>) | undefined> =>
    import('./telemetry.ts').then(
      ({ startMeterProvider }) => {
        const sdk = startMeterProvider(options);
        const dropped = deferred.attach(sdk.provider);
        if (dropped > 0) process.stderr.write(`txmesh: ${dropped} measurements made before the metrics SDK loaded were dropped\n`);
        answer(sdk.handler);
        return () => sdk.provider.shutdown();
      },
      (err: unknown) => {
        // The role serves on without metrics: said once, and every scrape is told why.
        const reason = err instanceof Error ? err.message : String(err);
        process.stderr.write(`txmesh: /metrics is unavailable, the metrics SDK failed to start: ${reason}\n`);
        answer(unavailable(reason));
        return undefined;
      },
    );
  return {
    metricsUrl: metricsUrlOf(server, options),
    afterReady: () => {
      loading ??= load();
    },
    shutdown: async () => {
      answer(unavailable('the process is stopping'));
      await closeServer(server);
      const stop = await loading;
      await stop?.();
      metrics.disable();
    },
  };
}

const unavailable = (reason: string): MetricsHandler => (_request, response) => {
  response.writeHead(503, { 'content-type': 'text/plain' }).end(`/metrics is unavailable: ${reason}\n`);
};
