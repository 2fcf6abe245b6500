/**
 * Per-sidecar batching: every item queued for the same sidecar during one event-loop turn leaves as one
 * batch (at most maxBatchItems per batch), and each caller gets its own item's result. Under load this
 * turns N prepares to a service into a handful of HTTP requests.
 */
import type { BranchItem, BranchItemResult } from '@txmesh/protocol';
import type { BranchTransport } from './branch-transport.ts';

export const MAX_BATCH_ITEMS = 256;

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

interface Queued {
  item: BranchItem;
  timeoutMs: number;
  onSent: () => void;
  resolve: (result: BranchItemResult) => void;
  reject: (err: unknown) => void;
}

export class TransportTimeoutError extends Error {
  constructor(sidecarUrl: string, timeoutMs: number) {
    super(`no answer from ${sidecarUrl} within ${timeoutMs} ms`);
    this.name = 'TransportTimeoutError';
  }
}

export class BatchingDispatcher {
  readonly #transport: BranchTransport;
  readonly #maxBatchItems: number;
  #queues = new Map<string, Queued[]>();
  #scheduled: NodeJS.Immediate | undefined;
  /** Batches awaiting an answer, so close() can release their callers at once. */
  readonly #inFlight = new Set<{ batch: Queued[]; timer: NodeJS.Timeout | undefined }>();
  #closed = false;
  #batchesSent = 0;
  #itemsSent = 0;

  constructor(transport: BranchTransport, maxBatchItems: number = MAX_BATCH_ITEMS) {
    // Zero would never drain a queue; a fraction would cut batches at odd sizes.
    if (!Number.isInteger(maxBatchItems) || maxBatchItems < 1) throw new RangeError(`maxBatchItems must be a positive integer: ${maxBatchItems}`);
    this.#transport = transport;
    this.#maxBatchItems = maxBatchItems;
  }

  stats(): DispatchStats {
    return { batchesSent: this.#batchesSent, itemsSent: this.#itemsSent };
  }

  /** Fails every queued and unanswered item; later submits fail at once. */
  close(): void {
    this.#closed = true;
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const closing = new Error('dispatcher is closed');
    for (const queue of this.#queues.values()) {
      for (const q of queue) {
        q.onSent();
        q.reject(closing);
      }
    }
    this.#queues.clear();
    for (const flight of this.#inFlight) {
      clearTimeout(flight.timer);
      for (const q of flight.batch) q.reject(closing);
    }
    this.#inFlight.clear();
  }

  submit(sidecarUrl: string, item: BranchItem, timeoutMs: number): Dispatch {
    if (this.#closed) return { sent: Promise.resolve(), result: Promise.reject(new Error('dispatcher is closed')) };
    let onSent!: () => void;
    const sent = new Promise<void>((resolve) => (onSent = resolve));
    const result = new Promise<BranchItemResult>((resolve, reject) => {
      let queue = this.#queues.get(sidecarUrl);
      if (!queue) {
        queue = [];
        this.#queues.set(sidecarUrl, queue);
      }
      queue.push({ item, timeoutMs, onSent, resolve, reject });
    });
    this.#scheduled ??= setImmediate(() => this.#flush());
    return { sent, result };
  }

  #flush(): void {
    this.#scheduled = undefined;
    const queues = this.#queues;
    this.#queues = new Map();
    for (const [sidecarUrl, queue] of queues) {
      for (let start = 0; start < queue.length; start += this.#maxBatchItems) {
        this.#sendBatch(sidecarUrl, queue.slice(start, start + this.#maxBatchItems));
      }
    }
  }

  #sendBatch(sidecarUrl: string, batch: Queued[]): void {
    const items = batch.map((q) => q.item);
    // A loop, not Math.max(...spread): a large batch must not overflow the call stack.
    let timeoutMs = 1;
    for (const q of batch) if (q.timeoutMs > timeoutMs) timeoutMs = q.timeoutMs;
    this.#batchesSent += 1;
    this.#itemsSent += items.length;
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
        batch.forEach((q, i) => {
          const result = results[i];
          if (results.length !== batch.length || !result || result.txId !== q.item.txId || result.action !== q.item.action) {
            q.reject(new Error(`sidecar ${sidecarUrl} answered ${results.length} results for ${batch.length} items, or out of order`));
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
      });
  }
}
