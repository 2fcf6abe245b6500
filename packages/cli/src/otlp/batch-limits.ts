/**
 * The batch span processor's settings from the environment (OTEL_BSP_*): txmesh's span processor
 * (span-processor.ts) takes them as the SDK's BatchSpanProcessor would. An application's defaults are the
 * specification's; a txmesh role's export four times as many spans per request (ROLE_BATCH_DEFAULTS).
 */
import { diag } from '@opentelemetry/api';

export interface BatchLimits {
  /** OTEL_BSP_SCHEDULE_DELAY: how long the first span of a batch waits for others before the batch is sent. */
  scheduledDelayMillis: number;
  /** OTEL_BSP_EXPORT_TIMEOUT: how long one export may take before its spans count as lost. */
  exportTimeoutMillis: number;
  /** OTEL_BSP_MAX_QUEUE_SIZE: spans waiting for export beyond this are dropped. */
  maxQueueSize: number;
  /** OTEL_BSP_MAX_EXPORT_BATCH_SIZE: spans per export request; a full batch is sent at once. */
  maxExportBatchSize: number;
}

/** The specification's defaults, what an application's batch span processor uses. */
export const SPEC_BATCH_DEFAULTS: Readonly<BatchLimits> = { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 };

/**
 * A txmesh role's defaults: 2048 spans per export request and room for four such batches. A coordinator makes about
 * ten spans per transaction, so at 512 per request it sent dozens of requests a second, and each request costs about
 * 0.4 ms of the role's CPU and about 1 ms of a collector's on the same host whatever its size (docs/benchmarks.md,
 * issue 15). A request of 2048 coordinator spans is about 400 KB, far below what collectors accept (otelcol: 20 MiB).
 * Any OTEL_BSP_* variable that is set still wins.
 */
export const ROLE_BATCH_DEFAULTS: Readonly<BatchLimits> = { ...SPEC_BATCH_DEFAULTS, maxQueueSize: 8192, maxExportBatchSize: 2048 };

/** A non-negative number, else the default (said on the api's diagnostic logger, as the SDK does). */
function numberFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (Number.isFinite(value) && value >= 0) return value;
  diag.warn(`${name} must be a non-negative number, got "${raw}": using ${fallback}`);
  return fallback;
}

/** The limits the environment sets, and `defaults` for the variables it leaves unset (or sets to nonsense). */
export function batchLimitsFrom(env: NodeJS.ProcessEnv, defaults: Readonly<BatchLimits> = SPEC_BATCH_DEFAULTS): BatchLimits {
  const maxQueueSize = Math.max(1, numberFrom(env, 'OTEL_BSP_MAX_QUEUE_SIZE', defaults.maxQueueSize));
  return {
    scheduledDelayMillis: numberFrom(env, 'OTEL_BSP_SCHEDULE_DELAY', defaults.scheduledDelayMillis),
    exportTimeoutMillis: numberFrom(env, 'OTEL_BSP_EXPORT_TIMEOUT', defaults.exportTimeoutMillis),
    maxQueueSize,
    // As the SDK does: a batch never holds more than the queue.
    maxExportBatchSize: Math.max(1, Math.min(maxQueueSize, numberFrom(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', defaults.maxExportBatchSize))),
  };
}
