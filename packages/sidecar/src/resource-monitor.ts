/**
 * The figures the sidecar reports to the shards so the scheduler can see a struggling service: latency of
 * the proxied requests (p50/p99 over the last `window` of them), requests in flight, and the sidecar's own
 * event-loop delay.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ResourceReport } from '@txmesh/protocol';

const DEFAULT_WINDOW = 1024;

function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

export class ResourceMonitor {
  private readonly latencies: number[] = [];
  private next = 0;
  private inFlight = 0;
  /** Percentiles of the window, computed at most once per new latency (report() rides on every batch answer). */
  private cached: { p50: number | undefined; p99: number | undefined } | undefined;
  private readonly loopDelay: IntervalHistogram;

  constructor(private readonly window: number = DEFAULT_WINDOW) {
    this.loopDelay = monitorEventLoopDelay({ resolution: 20 });
    this.loopDelay.enable();
  }

  /** Call when a proxied request starts; call the returned function exactly once when it ends. */
  requestStarted(): () => void {
    const started = performance.now();
    this.inFlight += 1;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.inFlight -= 1;
      this.recordLatency(performance.now() - started);
    };
  }

  private recordLatency(ms: number): void {
    // Ring buffer: memory stays bounded whatever the traffic.
    if (this.latencies.length < this.window) this.latencies.push(ms);
    else this.latencies[this.next] = ms;
    this.next = (this.next + 1) % this.window;
    this.cached = undefined;
  }

  report(): ResourceReport {
    if (this.cached === undefined) {
      const sorted = [...this.latencies].sort((a, b) => a - b);
      this.cached = { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
    }
    const report: ResourceReport = { at: Date.now(), inFlight: this.inFlight };
    const { p50, p99 } = this.cached;
    if (p50 !== undefined) report.latencyP50Ms = round(p50);
    if (p99 !== undefined) report.latencyP99Ms = round(p99);
    const delayNs = this.loopDelay.percentile(99);
    if (Number.isFinite(delayNs) && delayNs > 0) report.eventLoopDelayMs = round(delayNs / 1e6);
    return report;
  }

  /** Starts a new event-loop delay period, so each heartbeat reports recent delay rather than since boot. */
  resetLoopDelay(): void {
    this.loopDelay.reset();
  }

  close(): void {
    this.loopDelay.disable();
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
