/**
 * The service's event-loop delay for its resource report, without waking an idle process 100 times a second.
 * The scheduler calls a service busy from a delay of 50 ms (p99 over a report's interval), a threshold set against
 * a histogram at 10 ms resolution. That histogram runs on a timer that wakes the loop at every tick: while the loop
 * sleeps most of the time (a service at concurrency 1) those ticks were most of its wake-ups,
 * about one per transaction, each costing a cold process some 0.1 ms. So the histogram runs only while the loop was
 * busy for at least `busyShare` of the last check interval (event-loop utilization, read without a timer of its
 * own); below that the delay is how late the check's own timer fired, which catches a stall that covers it.
 */
import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';

export interface LoopDelayGaugeOptions {
  /** How often utilization decides whether the 10 ms histogram runs (1000 ms). */
  checkEveryMs?: number;
  /** The share of a check interval the loop must have been busy for the histogram to run (0.5). */
  busyShare?: number;
  /** For tests: the loop's busy share since the previous call (default: event-loop utilization). */
  utilization?: () => number;
}

/** The histogram's resolution: the scheduler's threshold was set against it. */
export const LOOP_DELAY_RESOLUTION_MS = 10;

function utilizationSinceLastCall(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const share = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    return share;
  };
}

export class LoopDelayGauge {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  readonly #checkEveryMs: number;
  readonly #busyShare: number;
  readonly #utilization: () => number;
  readonly #timer: NodeJS.Timeout;
  #monitoring = false;
  #checkedAt = performance.now();
  /** The most the check fired late since the last take, ms. */
  #lateMs = 0;

  constructor(options: LoopDelayGaugeOptions = {}) {
    this.#checkEveryMs = options.checkEveryMs ?? 1000;
    this.#busyShare = options.busyShare ?? 0.5;
    this.#utilization = options.utilization ?? utilizationSinceLastCall();
    this.#timer = setInterval(() => this.#check(), this.#checkEveryMs);
    this.#timer.unref();
  }

  /** Whether the 10 ms histogram runs now. */
  get monitoring(): boolean {
    return this.#monitoring;
  }

  #check(): void {
    const now = performance.now();
    this.#lateMs = Math.max(this.#lateMs, now - this.#checkedAt - this.#checkEveryMs);
    this.#checkedAt = now;
    const busy = this.#utilization() >= this.#busyShare;
    if (busy === this.#monitoring) return;
    this.#monitoring = busy;
    if (busy) this.#histogram.enable();
    else this.#histogram.disable();
  }

  /**
   * The delay since the previous take, ms (the histogram's p99 or the check's lateness); undefined when none.
   * The histogram's reset drops its last tick, so the first 10 ms after a take are not recorded: a stall that
   * starts there is seen only if it covers a check.
   */
  take(): number | undefined {
    const p99Ms = this.#histogram.count > 0 ? this.#histogram.percentile(99) / 1e6 : 0;
    const delayMs = Math.max(p99Ms, this.#lateMs);
    this.#histogram.reset();
    this.#lateMs = 0;
    return Number.isFinite(delayMs) && delayMs > 0 ? delayMs : undefined;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#histogram.disable();
    this.#monitoring = false;
  }
}
