/**
 * Resource-aware admission of prepares, per service. No sockets: the transaction manager asks for a slot
 * before it sends a prepare and gives it back with the measured latency when the vote (or failure) arrives.
 *
 * - Each service has a concurrency limit of prepares in flight. It adapts by a gradient against the best
 *   prepare latency observed for that service: while recent latency stays within `tolerance` × best the
 *   limit grows (by about √limit per round trip, only when the limit is actually used); when latency rises
 *   above it the limit shrinks in proportion. A service reporting its CPU near its limit or a long event-loop
 *   delay does not get a larger limit.
 * - Waiting prepares are served oldest transaction first (a binary heap on the transaction's start time),
 *   so retries of old transactions are not starved by new ones.
 * - admit() refuses a new transaction before anything is sent or locked when one of its services would make
 *   it wait longer than `maxQueueWaitMs`: the caller answers TXM_OVERLOADED with Retry-After.
 * - expectedLatencyMs() lets the caller send the prepares expected to be slowest first.
 *
 * Disabled (`enabled: false`), every acquire is granted at once and admit() never refuses; the figures are
 * still kept so GET /v1/services shows them.
 */
import { TxmeshError, type ResourceReport, type SchedulerView } from '@txmesh/protocol';

export interface SchedulerOptions {
  enabled?: boolean;
  /** Starting concurrency limit per service. */
  initialLimit?: number;
  minLimit?: number;
  maxLimit?: number;
  /** A new transaction is refused when a service's queue would make it wait longer than this (or half its timeout). */
  maxQueueWaitMs?: number;
  /** Latency up to tolerance × best observed counts as "not queueing". */
  tolerance?: number;
  now?: () => number;
}

/** TXM_OVERLOADED with the number of seconds the client should wait (HTTP Retry-After). */
export class OverloadedError extends TxmeshError {
  readonly retryAfterSeconds: number;
  constructor(service: string, waitMs: number) {
    super('TXM_OVERLOADED', `service ${service} would make this transaction wait about ${Math.ceil(waitMs)} ms`);
    this.retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
  }
}

/** Given back once per granted slot: latency in ms, and whether the service answered at all. */
export type Release = (latencyMs: number, answered: boolean) => void;

interface Waiter {
  age: number;
  seq: number;
  grant: (release: Release | undefined) => void;
  withdrawn?: () => boolean;
}

/**
 * Min-heap on (age, seq): the oldest transaction first, arrival order among equals. Sifts move a hole rather
 * than swapping pairs: a destructuring swap allocated an array per level (docs/benchmarks.md, scheduler lanes).
 */
class WaiterHeap {
  readonly #items: Waiter[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(w: Waiter): void {
    const a = this.#items;
    let i = a.length;
    a.push(w);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const up = a[parent]!;
      if (!before(w, up)) break;
      a[i] = up;
      i = parent;
    }
    a[i] = w;
  }

  pop(): Waiter | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const m = r < a.length && before(a[r]!, a[l]!) ? r : l;
        const child = a[m]!;
        if (!before(child, last)) break;
        a[i] = child;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }
}

function before(a: Waiter, b: Waiter): boolean {
  return a.age < b.age || (a.age === b.age && a.seq < b.seq);
}

const EWMA_WEIGHT = 0.2;
/** The best latency creeps up slowly so that a service that became slower for good is not punished forever. */
const BEST_DRIFT = 1.002;
const CPU_BUSY_FRACTION = 0.9;
const LOOP_DELAY_BUSY_MS = 50;

class Lane {
  limit: number;
  inFlight = 0;
  readonly queue = new WaiterHeap();
  bestMs: number | undefined;
  smoothedMs: number | undefined;
  /** Samples since the limit last changed, so one round trip changes it once. */
  samplesSinceChange = 0;
  granted = 0;
  report: ResourceReport | undefined;

  constructor(limit: number) {
    this.limit = limit;
  }

  get queued(): number {
    return this.queue.size;
  }
}

export class Scheduler {
  readonly enabled: boolean;
  readonly #initialLimit: number;
  readonly #minLimit: number;
  readonly #maxLimit: number;
  readonly #maxQueueWaitMs: number;
  readonly #tolerance: number;
  readonly #now: () => number;
  readonly #lanes = new Map<string, Lane>();
  #seq = 0;
  #refused = 0;

  constructor(options: SchedulerOptions = {}) {
    this.enabled = options.enabled ?? true;
    // The floor is the starting limit: with batching a service gets faster per item as concurrency grows (a
    // lower limit means smaller batches), and on a shared machine latency also rises with everyone's load,
    // which a lower limit would not cure. The benchmark showed a floor of 8 collapsing throughput 40-fold with
    // no slow service at all, and a floor of 64 halving it at concurrency 300.
    this.#minLimit = options.minLimit ?? 256;
    this.#maxLimit = options.maxLimit ?? 4096;
    this.#initialLimit = Math.min(this.#maxLimit, Math.max(this.#minLimit, options.initialLimit ?? 256));
    this.#maxQueueWaitMs = options.maxQueueWaitMs ?? 2000;
    this.#tolerance = options.tolerance ?? 4;
    this.#now = options.now ?? Date.now;
    if (!(this.#minLimit >= 1 && this.#maxLimit >= this.#minLimit)) throw new RangeError('need 1 <= minLimit <= maxLimit');
  }

  #lane(service: string): Lane {
    let lane = this.#lanes.get(service);
    if (!lane) {
      lane = new Lane(this.#initialLimit);
      this.#lanes.set(service, lane);
    }
    return lane;
  }

  /** Drops the lane of a service that went away, unless prepares still wait or run on it. */
  forget(service: string): void {
    const lane = this.#lanes.get(service);
    if (lane && lane.inFlight === 0 && lane.queued === 0) this.#lanes.delete(service);
  }

  /** Services with a lane. */
  get lanes(): number {
    return this.#lanes.size;
  }

  /** The latest resource report of a service (from a batch answer or a heartbeat). */
  noteReport(service: string, report: ResourceReport): void {
    this.#lane(service).report = report;
  }

  /** How long a prepare to this service is expected to take, for ordering; undefined when nothing is known. */
  expectedLatencyMs(service: string): number | undefined {
    const lane = this.#lanes.get(service);
    return lane?.smoothedMs ?? lane?.report?.latencyP50Ms;
  }

  /** Estimated wait for a new prepare to this service before it may be sent. */
  estimatedWaitMs(service: string): number {
    const lane = this.#lanes.get(service);
    if (!lane) return 0;
    const ahead = lane.queued + lane.inFlight + 1 - lane.limit;
    if (ahead <= 0) return 0;
    const perPrepare = lane.smoothedMs ?? lane.report?.latencyP50Ms ?? 1;
    // `limit` prepares are served per round trip.
    return Math.ceil(ahead / lane.limit) * perPrepare;
  }

  /**
   * Refuses (OverloadedError) when a needed service would make a new transaction wait longer than
   * maxQueueWaitMs or half its own time budget: it would likely time out later, holding locks meanwhile.
   */
  admit(services: readonly string[], budgetMs: number = Infinity): void {
    if (!this.enabled) return;
    const bound = Math.min(this.#maxQueueWaitMs, budgetMs / 2);
    for (const service of services) {
      const wait = this.estimatedWaitMs(service);
      if (wait > bound) {
        this.#refused += 1;
        throw new OverloadedError(service, wait);
      }
    }
  }

  /**
   * A slot to send one prepare to `service`, granted oldest `age` (transaction start, epoch ms) first.
   * A waiter whose `withdrawn()` has become true when its turn comes (its transaction was decided or ran
   * out of time meanwhile) gets undefined and holds no slot.
   */
  acquire(service: string, age: number, withdrawn?: () => boolean): Promise<Release | undefined> {
    const now = this.tryAcquire(service);
    if (now !== undefined) return Promise.resolve(now);
    const lane = this.#lane(service);
    return new Promise((resolve) => {
      const waiter: Waiter = { age, seq: this.#seq++, grant: resolve };
      if (withdrawn) waiter.withdrawn = withdrawn;
      lane.queue.push(waiter);
    });
  }

  /**
   * The slot at once when one is free and nobody waits for it (always, disabled), else undefined: then call
   * acquire(). Saves a prepare that need not wait a promise and a turn of the microtask queue.
   */
  tryAcquire(service: string): Release | undefined {
    const lane = this.#lane(service);
    return !this.enabled || (lane.inFlight < lane.limit && lane.queue.size === 0) ? this.#grant(service, lane) : undefined;
  }

  #grant(service: string, lane: Lane): Release {
    lane.inFlight += 1;
    lane.granted += 1;
    let released = false;
    return (latencyMs, answered) => {
      if (released) return;
      released = true;
      lane.inFlight -= 1;
      if (answered) this.#observe(lane, latencyMs);
      this.#drain(service, lane);
    };
  }

  #drain(service: string, lane: Lane): void {
    if (!this.enabled) return;
    while (lane.inFlight < lane.limit && lane.queue.size > 0) {
      const next = lane.queue.pop()!;
      if (next.withdrawn?.()) next.grant(undefined);
      else next.grant(this.#grant(service, lane));
    }
  }

  #observe(lane: Lane, latencyMs: number): void {
    const sample = Math.max(0.01, latencyMs);
    lane.bestMs = lane.bestMs === undefined ? sample : Math.min(sample, lane.bestMs * BEST_DRIFT);
    lane.smoothedMs = lane.smoothedMs === undefined ? sample : lane.smoothedMs + EWMA_WEIGHT * (sample - lane.smoothedMs);
    lane.samplesSinceChange += 1;
    // One adjustment per round trip's worth of answers.
    if (lane.samplesSinceChange < Math.max(1, Math.floor(lane.limit / 2))) return;
    lane.samplesSinceChange = 0;
    const gradient = (this.#tolerance * lane.bestMs) / lane.smoothedMs;
    let next = lane.limit;
    if (gradient < 1) {
      // Queueing at the service: shrink gently (at most 10 % per round trip), so a burst of machine-wide
      // latency does not throttle a healthy service.
      next = lane.limit * Math.max(0.9, gradient);
    } else if (lane.inFlight + lane.queued >= lane.limit / 2 && !this.#busy(lane.report)) {
      next = lane.limit + Math.sqrt(lane.limit);
    }
    lane.limit = Math.min(this.#maxLimit, Math.max(this.#minLimit, Math.round(next)));
  }

  /** The service says it is short of CPU or its event loop lags: no more concurrency for it. */
  #busy(report: ResourceReport | undefined): boolean {
    if (!report || this.#now() - report.at > 10_000) return false;
    if (report.cpuPercent !== undefined && report.cpuPercent >= CPU_BUSY_FRACTION * 100) return true;
    return report.eventLoopDelayMs !== undefined && report.eventLoopDelayMs >= LOOP_DELAY_BUSY_MS;
  }

  view(service: string): SchedulerView {
    const lane = this.#lanes.get(service);
    const view: SchedulerView = {
      enabled: this.enabled,
      limit: lane?.limit ?? this.#initialLimit,
      inFlight: lane?.inFlight ?? 0,
      queued: lane?.queued ?? 0,
      estimatedWaitMs: this.estimatedWaitMs(service),
    };
    if (lane?.bestMs !== undefined) view.bestLatencyMs = round(lane.bestMs);
    if (lane?.smoothedMs !== undefined) view.latencyMs = round(lane.smoothedMs);
    return view;
  }

  stats(): { refusedOverloaded: number; queued: number } {
    let queued = 0;
    for (const lane of this.#lanes.values()) queued += lane.queued;
    return { refusedOverloaded: this.#refused, queued };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
