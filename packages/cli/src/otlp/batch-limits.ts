/**
 * The batch span processor's settings from the environment (OTEL_BSP_*), with the specification's defaults:
 * txmesh's span processor (span-processor.ts) takes them as the SDK's BatchSpanProcessor would.
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

const DEFAULTS: BatchLimits = { scheduledDelayMillis: 5000, exportTimeoutMillis: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 };

/** A non-negative number, else the default (said on the api's diagnostic logger, as the SDK does). */
function numberFrom(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (Number.isFinite(value) && value >= 0) return value;
  diag.warn(`${name} must be a non-negative number, got "${raw}": using ${fallback}`);
  return fallback;
}

export function batchLimitsFrom(env: NodeJS.ProcessEnv): BatchLimits {
  const maxQueueSize = Math.max(1, numberFrom(env, 'OTEL_BSP_MAX_QUEUE_SIZE', DEFAULTS.maxQueueSize));
  return {
    scheduledDelayMillis: numberFrom(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULTS.scheduledDelayMillis),
    exportTimeoutMillis: numberFrom(env, 'OTEL_BSP_EXPORT_TIMEOUT', DEFAULTS.exportTimeoutMillis),
    maxQueueSize,
    // As the SDK does: a batch never holds more than the queue.
    maxExportBatchSize: Math.max(1, Math.min(maxQueueSize, numberFrom(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', DEFAULTS.maxExportBatchSize))),
  };
}
