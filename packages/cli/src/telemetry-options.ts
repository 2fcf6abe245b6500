/**
 * What a long-running role tells its telemetry: the flags and defaults, apart from telemetry.ts so that
 * reading them (every command, the lab's harness) never loads an OpenTelemetry SDK.
 */
import type { FlagReader } from './args.ts';

export const DEFAULT_METRICS_PORT = 9464;
/** Printed on stdout once /metrics listens (before the ready line), so a harness finds an ephemeral port. */
export const METRICS_PREFIX = 'TXMESH_METRICS ';

export interface TelemetryOptions {
  /** The resource's service.name when OTEL_SERVICE_NAME is not set, e.g. "txmesh-coordinator-0". */
  defaultServiceName: string;
  /** Port of GET /metrics; 0 picks a free one. */
  metricsPort: number;
  /** Given with --metrics-port: must be free. The default port, when taken, falls back to a free one. */
  metricsPortGiven?: boolean;
  metricsHost: string;
  env?: NodeJS.ProcessEnv;
}

/** --metrics-port and --metrics-host of every long-running role. */
export function telemetryFlags(f: FlagReader, defaultServiceName: string): TelemetryOptions {
  return {
    defaultServiceName,
    metricsPortGiven: f.optionalString('metrics-port') !== undefined,
    metricsPort: f.int('metrics-port', DEFAULT_METRICS_PORT, 0, 65535),
    metricsHost: f.string('metrics-host', '127.0.0.1'),
  };
}

/** OTEL_SDK_DISABLED=true: no provider at all, /metrics included; the SDK modules are not even loaded. */
export function sdkDisabled(env: NodeJS.ProcessEnv): boolean {
  return env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
}

/** Whether the OTEL_* environment asks for traces to be exported. */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporter !== undefined && exporter !== '') return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}
