/**
 * Per-sidecar batching. Items for one sidecar are queued and leave together:
 * - at once (at the end of the current event-loop turn) while fewer than `maxInFlightBatches` batches to
 *   that sidecar await their answer: when the sidecar is idle the window is zero;
 * - otherwise when an outstanding batch comes back, when the queue reaches `maxBatchItems`, or when the
 *   oldest queued item has waited `maxWindowMs`, whichever comes first. Under load batches therefore grow
 *   with the sidecar's round trip, and one HTTP request carries many transactions' prepares and outcomes.
 * Outcomes (commit, rollback) alone do not open a batch at once: they wait up to `outcomeLingerMs` for the
 * next prepare to that sidecar and ride with it. A client that runs one transaction after another then
 * costs one call per service per transaction instead of two (the service applies a batch's outcomes before
 * its prepares, so the next prepare never waits for a lock the lingering commit still holds). Nobody waits
 * for an outcome's delivery: the client heard the decision once it was durable.
 * Each caller gets its own item's result. `batching: false` (the naive mode) sends every item as its own
 * request at once.
 */
import { BranchAction, type BranchItem, type BranchItemResult, type ResourceReport } from '@txmesh/protocol';
import { BadAnswerError, DispatcherClosedError, TransportTimeoutError } from './branch-errors.ts';
import type { BranchTransport } from './branch-transport.ts';

export const MAX_BATCH_ITEMS = 256;
export const MAX_WINDOW_MS = 5;
export const MAX_IN_FLIGHT_BATCHES = 2;
export const OUTCOME_LINGER_MS = 5;

export interface DispatcherOptions {
  maxBatchItems?: number;
  /** Longest an item waits for its batch while the sidecar is busy. */
  maxWindowMs?: number;
  /** Batches to one sidecar that may await their answer before new items wait for the window. */
  maxInFlightBatches?: number;
  /** Longest outcomes wait for a prepare to ride with before they leave on their own (0: at once). */
  outcomeLingerMs?: number;
  /** false: one item per request, sent at once (for comparison). */
  batching?: boolean;
  /** Called with the resource report a sidecar piggybacked on its answer. */
  onReport?: (service: string, report: ResourceReport) => void;
}

export interface DispatchStats {
  batchesSent: number;
  itemsSent: number;
}

export interface Dispatch {
  /** Resolves once the item's batch has been handed to the transport. */
  sent: Promise<void>;
  /** The item's own result; rejects on transport failure or timeout (callers treat that as transient). */
  result: Promise<BranchItemResult>;
}

/**
 * Where the result of an item handed to BatchingDispatcher.send goes: called once, with the item's own result
 * (answered) or with why none came (failed: transport failure, timeout, a bad answer, the dispatcher closing).
 */
export interface ItemAnswer {
  answered(result: BranchItemResult): void;
  failed(err: unknown): void;
}

/**
 * One submitted item and its caller's side. It is its own Dispatch: `sent` is made only when someone asks for
 * it (the tests; nothing in the shard does), so an item costs one promise, not two; and an item sent with an
 * ItemAnswer (send) costs none: its answer is a call.
 */
class Queued implements Dispatch {
  readonly item: BranchItem;
  readonly timeoutMs: number;
  readonly #target: ItemAnswer | undefined;
  readonly #result: Promise<BranchItemResult> | undefined;
  #resolve: ((result: BranchItemResult) => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;
  #settled = false;
  #handedOver = false;
  #onSent: (() => void) | undefined;
  #sent: Promise<void> | undefined;

  constructor(item: BranchItem, timeoutMs: number, target?: ItemAnswer) {
    this.item = item;
    this.timeoutMs = timeoutMs;
    if (target !== undefined) {
      this.#target = target;
    } else {
      this.#result = new Promise<BranchItemResult>((resolve, reject) => {
        this.#resolve = resolve;
        this.#reject = reject;
      });
    }
  }

  /** The item's result (submit); an item sent with an ItemAnswer has no promise. */
  get result(): Promise<BranchItemResult> {
    if (this.#result === undefined) throw new Error('an item sent with an ItemAnswer has no result promise');
    return this.#result;
  }

  resolve(result: BranchItemResult): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#target === undefined) return this.#resolve!(result);
    try {
      this.#target.answered(result);
    } catch (err) {
      rethrowLater(err);
    }
  }

  reject(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#target === undefined) return this.#reject!(err);
    try {
      this.#target.failed(err);
    } catch (thrown) {
      rethrowLater(thrown);
    }
  }

  get sent(): Promise<void> {
    this.#sent ??= this.#handedOver ? Promise.resolve() : new Promise<void>((resolve) => (this.#onSent = resolve));
    return this.#sent;
  }

  /** Its batch went to the transport (or the dispatcher closed). */
  onSent(): void {
    this.#handedOver = true;
    this.#onSent?.();
    this.#onSent = undefined;
  }
}

/**
 * A throw in an ItemAnswer's call is a bug of the caller's: it must not keep the rest of the batch from their
 * answers, and it surfaces as an uncaught exception, as a throw in a promise callback would have.
 */
function rethrowLater(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}

interface Lane {
  queue: Queued[];
  /** Queued prepares: a queue of outcomes only may linger for one. */
  prepares: number;
  inFlight: number;
  window: NodeJS.Timeout | undefined;
}

export class BatchingDispatcher {
  readonly #transport: BranchTransport;
  readonly #maxBatchItems: number;
  readonly #maxWindowMs: number;
  readonly #maxInFlightBatches: number;
  readonly #outcomeLingerMs: number;
  readonly #onReport: ((service: string, report: ResourceReport) => void) | undefined;
  readonly #lanes = new Map<string, Lane>();
  /** Sidecars with queued items to look at in the next flush. */
  #dirty = new Set<string>();
  #scheduled: NodeJS.Immediate | undefined;
  /** Batches awaiting an answer, so close() can release their callers at once. */
  readonly #inFlight = new Set<{ batch: Queued[]; timer: NodeJS.Timeout | undefined }>();
  #closed = false;
  #batchesSent = 0;
  #itemsSent = 0;

  constructor(transport: BranchTransport, options: number | DispatcherOptions = {}) {
    const o: DispatcherOptions = typeof options === 'number' ? { maxBatchItems: options } : options;
    const batching = o.batching ?? true;
    const maxBatchItems = batching ? (o.maxBatchItems ?? MAX_BATCH_ITEMS) : 1;
    // Zero would never drain a queue; a fraction would cut batches at odd sizes.
    if (!Number.isInteger(maxBatchItems) || maxBatchItems < 1) throw new RangeError(`maxBatchItems must be a positive integer: ${maxBatchItems}`);
    this.#transport = transport;
    this.#maxBatchItems = maxBatchItems;
    this.#maxWindowMs = batching ? (o.maxWindowMs ?? MAX_WINDOW_MS) : 0;
    this.#maxInFlightBatches = batching ? (o.maxInFlightBatches ?? MAX_IN_FLIGHT_BATCHES) : Infinity;
    this.#outcomeLingerMs = batching ? (o.outcomeLingerMs ?? OUTCOME_LINGER_MS) : 0;
    this.#onReport = o.onReport;
  }

  /** Sidecars with queued or unanswered items. */
  get lanes(): number {
    return this.#lanes.size;
  }

  stats(): DispatchStats {
    return { batchesSent: this.#batchesSent, itemsSent: this.#itemsSent };
  }

  /** Fails every queued and unanswered item; later submits fail at once. */
  close(): void {
    this.#closed = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const closing = new DispatcherClosedError();
    for (const lane of this.#lanes.values()) {
      clearTimeout(lane.window);
      for (const q of lane.queue) {
        q.onSent();
        q.reject(closing);
      }
      lane.queue = [];
      lane.prepares = 0;
    }
    this.#dirty.clear();
    for (const flight of this.#inFlight) {
      clearTimeout(flight.timer);
      for (const q of flight.batch) q.reject(closing);
    }
    this.#inFlight.clear();
  }

  /**
   * Queues `item` for its sidecar's next batch. `alone`: sent at once as its own request, outside the lane
   * (neither waiting for nor holding one of its in-flight slots): a prepare known to wait for a lock
   * answers only when the lock is granted, and must neither delay nor be deferred by other items.
   */
  submit(sidecarUrl: string, item: BranchItem, timeoutMs: number, options?: { alone?: boolean }): Dispatch {
    if (this.#closed) return { sent: Promise.resolve(), result: Promise.reject(new DispatcherClosedError()) };
    const queued = new Queued(item, timeoutMs);
    if (options?.alone) {
      this.#sendBatch(sidecarUrl, undefined, [queued]);
      return queued;
    }
    this.#enqueue(sidecarUrl, queued);
    return queued;
  }

  /**
   * As submit (never alone), but the result goes to `answer` by a call, on the turn the batch's answer is read,
   * instead of through a promise: the first attempt of nearly every prepare and outcome goes this way, and a
   * promise, its two settling functions and the caller's callbacks were a large share of what a transaction
   * allocated. A closed dispatcher fails the item on a later turn, as a rejected promise would.
   */
  send(sidecarUrl: string, item: BranchItem, timeoutMs: number, answer: ItemAnswer): void {
    if (this.#closed) {
      queueMicrotask(() => answer.failed(new DispatcherClosedError()));
      return;
    }
    this.#enqueue(sidecarUrl, new Queued(item, timeoutMs, answer));
  }

  #enqueue(sidecarUrl: string, queued: Queued): void {
    const item = queued.item;
    let lane = this.#lanes.get(sidecarUrl);
    if (!lane) {
      lane = { queue: [], prepares: 0, inFlight: 0, window: undefined };
      this.#lanes.set(sidecarUrl, lane);
    }
    lane.queue.push(queued);
    if (item.action === BranchAction.PREPARE) lane.prepares += 1;
    this.#markDirty(sidecarUrl);
  }

  #markDirty(sidecarUrl: string): void {
    this.#dirty.add(sidecarUrl);
    this.#scheduled ??= setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = undefined;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const sidecarUrl of dirty) this.#flushLane(sidecarUrl, false);
  }

  /** Sends what may leave now; `windowOver` sends everything queued whatever is in flight. */
  #flushLane(sidecarUrl: string, windowOver: boolean): void {
    const lane = this.#lanes.get(sidecarUrl);
    if (!lane || lane.queue.length === 0 || this.#closed) return;
    const queue = lane.queue;
    const idle = lane.inFlight < this.#maxInFlightBatches;
    let start = 0;
    // Full batches always leave; a partial one only when the sidecar is idle or the window is over.
    while (queue.length - start >= this.#maxBatchItems) {
      this.#sendBatch(sidecarUrl, lane, queue.slice(start, start + this.#maxBatchItems));
      start += this.#maxBatchItems;
    }
    const lingering = lane.prepares === 0 && this.#outcomeLingerMs > 0;
    if (start < queue.length && (windowOver || (idle && !lingering))) {
      this.#sendBatch(sidecarUrl, lane, queue.slice(start));
      start = queue.length;
    }
    lane.queue = start === 0 ? queue : queue.slice(start);
    if (lane.queue.length === 0) {
      clearTimeout(lane.window);
      lane.window = undefined;
    } else if (lane.window === undefined) {
      lane.window = setTimeout(
        () => {
          lane.window = undefined;
          this.#flushLane(sidecarUrl, true);
        },
        idle && lingering ? this.#outcomeLingerMs : this.#maxWindowMs,
      );
    }
  }

  /** Sends one batch; `lane` undefined for an item sent alone (no in-flight slot taken). */
  #sendBatch(sidecarUrl: string, lane: Lane | undefined, batch: Queued[]): void {
    const items = batch.map((q) => q.item);
    if (lane) for (const item of items) if (item.action === BranchAction.PREPARE) lane.prepares -= 1;
    // A loop, not Math.max(...spread): a large batch must not overflow the call stack.
    let timeoutMs = 1;
    for (const q of batch) if (q.timeoutMs > timeoutMs) timeoutMs = q.timeoutMs;
    this.#batchesSent += 1;
    this.#itemsSent += items.length;
    if (lane) lane.inFlight += 1;
    const flight: { batch: Queued[]; timer: NodeJS.Timeout | undefined } = { batch, timer: undefined };
    this.#inFlight.add(flight);
    // A transport that ignores its timeout must not hold callers forever.
    const timeout = new Promise<never>((_, reject) => {
      flight.timer = setTimeout(() => reject(new TransportTimeoutError(sidecarUrl, timeoutMs)), timeoutMs);
    });
    let sending: Promise<Awaited<ReturnType<BranchTransport['send']>>>;
    try {
      sending = this.#transport.send(sidecarUrl, items, timeoutMs);
    } catch (err) {
      sending = Promise.reject(err);
    }
    for (const q of batch) q.onSent();
    Promise.race([sending, timeout])
      .then((response) => {
        const results = Array.isArray(response?.results) ? response.results : [];
        if (response?.report && this.#onReport && items[0]) {
          try {
            this.#onReport(items[0].service, response.report);
          } catch {
            // A report is advice for the scheduler; it must never fail the batch it rode on.
          }
        }
        batch.forEach((q, i) => {
          const result = results[i];
          if (results.length !== batch.length || !result || result.txId !== q.item.txId || result.action !== q.item.action) {
            q.reject(new BadAnswerError(`sidecar ${sidecarUrl} answered ${results.length} results for ${batch.length} items, or out of order`));
          } else {
            q.resolve(result);
          }
        });
      })
      .catch((err: unknown) => {
        for (const q of batch) q.reject(err);
      })
      .finally(() => {
        clearTimeout(flight.timer);
        this.#inFlight.delete(flight);
        if (!lane) return;
        lane.inFlight -= 1;
        // The answer frees a slot: what waited behind it leaves now instead of at the window's end.
        if (lane.queue.length > 0) this.#markDirty(sidecarUrl);
        // An idle lane goes: sidecar addresses come and go, and their lanes must not pile up.
        else if (lane.inFlight === 0 && lane.window === undefined && this.#lanes.get(sidecarUrl) === lane) this.#lanes.delete(sidecarUrl);
      });
  }
}
