/**
 * The figures the sidecar reports to the shards so the scheduler can see a struggling service.
 *
 * The sidecar and its service are separate processes, so the report has two sources:
 * - the sidecar's own view: latency of every request to the service (proxied traffic and batch calls)
 *   from a log-bucketed histogram, and the requests in flight;
 * - the service's view of itself (CPU against its cgroup quota, resident memory and the container limit,
 *   event-loop delay), which the participant SDK attaches to its batch answers and which the sidecar
 *   fetches itself when the service has been idle (see Registration).
 */
import type { ResourceReport, ServiceUsage } from '@txmesh/protocol';
import { LatencyHistogram } from './latency-histogram.ts';
import type { ServiceObserver } from './service-client.ts';

const USAGE_FIELDS = ['cpuPercent', 'cpuLimitCores', 'rssBytes', 'memoryLimitBytes', 'eventLoopDelayMs'] as const;

/** Keeps only finite, non-negative numbers: the figures come from another process. */
export function sanitizeUsage(raw: Record<string, unknown>, now: number): ServiceUsage {
  const at = typeof raw.at === 'number' && Number.isFinite(raw.at) ? raw.at : now;
  const usage: ServiceUsage = { at };
  for (const field of USAGE_FIELDS) {
    const value = raw[field];
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) usage[field] = value;
  }
  return usage;
}

export class ResourceMonitor implements ServiceObserver {
  readonly #latency: LatencyHistogram;
  #inFlight = 0;
  #usage: ServiceUsage | undefined;
  /** Local clock when the last usage arrived (the service's `at` may come from another clock). */
  #usageReceivedAt = 0;

  readonly #now: () => number;
  constructor(
    periodMs: number = 10_000,
    now: () => number = Date.now,
  ) {
    this.#now = now;
    this.#latency = new LatencyHistogram(periodMs, now);
  }

  /** Call when a request to the service starts; call the returned function exactly once when it ends. */
  requestStarted(): () => void {
    const started = performance.now();
    this.#inFlight += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight -= 1;
      this.#latency.record(performance.now() - started);
    };
  }

  serviceUsage(raw: Record<string, unknown>): void {
    this.#usage = sanitizeUsage(raw, this.#now());
    this.#usageReceivedAt = this.#now();
  }

  /** How long ago the service last told its usage (Infinity if never). */
  usageAgeMs(): number {
    return this.#usage ? this.#now() - this.#usageReceivedAt : Infinity;
  }

  report(): ResourceReport {
    const report: ResourceReport = { at: this.#now(), inFlight: this.#inFlight };
    const p50 = this.#latency.percentile(50);
    if (p50 !== undefined) report.latencyP50Ms = round(p50);
    const p99 = this.#latency.percentile(99);
    if (p99 !== undefined) report.latencyP99Ms = round(p99);
    const usage = this.#usage;
    if (usage) {
      for (const field of USAGE_FIELDS) {
        const value = usage[field];
        if (value !== undefined) report[field] = value;
      }
      report.usageAt = usage.at;
    }
    return report;
  }

  close(): void {
    // Nothing to release: kept so the sidecar's shutdown reads the same whatever the monitor holds.
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
