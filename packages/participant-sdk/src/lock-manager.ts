/**
 * In-memory exclusive locks on business keys, owned by transaction ids. Waiters queue FIFO per key
 * with a timeout; a transaction asking again for a key it holds gets it at once (re-entrant).
 * Durability is not this class's job: the participant mirrors held locks in txm_locks.
 *
 * Deadlocks across services are prevented with wait-die on transaction age (ids carry their start
 * time): a transaction older than everyone it would queue behind may wait its whole budget; a younger
 * one waits at most a short grace and then dies ('conflict'). Every wait-for cycle has a younger→older
 * edge, so no cycle lasts longer than the grace.
 */
import { compareTxAge } from '@txmesh/protocol';

export type LockFailure = 'timeout' | 'conflict' | 'cancelled';

const FAILURE_TEXT: Record<LockFailure, string> = {
  timeout: 'timed out waiting for lock',
  conflict: 'an older transaction holds or awaits lock',
  cancelled: 'the wait was cancelled for lock',
};

export class LockWaitError extends Error {
  readonly failure: LockFailure;

  constructor(failure: LockFailure, key: string) {
    super(`${FAILURE_TEXT[failure]} ${key}`);
    this.name = 'LockWaitError';
    this.failure = failure;
  }
}

interface Waiter {
  key: string;
  txId: string;
  resolve(): void;
  reject(err: LockWaitError): void;
  timer: NodeJS.Timeout;
}

export class LockManager {
  readonly #holders = new Map<string, string>();
  readonly #keysByTx = new Map<string, Set<string>>();
  readonly #queues = new Map<string, Waiter[]>();
  readonly #waitersByTx = new Map<string, Set<Waiter>>();

  holderOf(key: string): string | undefined {
    return this.#holders.get(key);
  }

  keysHeldBy(txId: string): string[] {
    return [...(this.#keysByTx.get(txId) ?? [])];
  }

  get heldCount(): number {
    return this.#holders.size;
  }

  /** Takes a key without waiting: used to restore locks of prepared branches after a restart. */
  hold(key: string, txId: string): void {
    const holder = this.#holders.get(key);
    if (holder !== undefined && holder !== txId) throw new Error(`lock ${key} is held by ${holder}, cannot restore it for ${txId}`);
    this.#grant(key, txId);
  }

  /**
   * Waits for `key`: up to `timeoutMs` when `txId` is older than the holder and every queued waiter,
   * otherwise up to `youngerGraceMs` (wait-die).
   */
  acquire(key: string, txId: string, timeoutMs: number, youngerGraceMs: number = timeoutMs): Promise<void> {
    const holder = this.#holders.get(key);
    if (holder === undefined || holder === txId) {
      this.#grant(key, txId);
      return Promise.resolve();
    }
    const queue = this.#queues.get(key) ?? [];
    const oldest = compareTxAge(txId, holder) < 0 && queue.every((w) => w.txId === txId || compareTxAge(txId, w.txId) < 0);
    const limited = !oldest && youngerGraceMs < timeoutMs;
    const waitMs = limited ? youngerGraceMs : timeoutMs;
    const failure: LockFailure = limited ? 'conflict' : 'timeout';
    if (waitMs <= 0) return Promise.reject(new LockWaitError(failure, key));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        key,
        txId,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#forget(waiter);
          reject(new LockWaitError(failure, key));
        }, waitMs),
      };
      queue.push(waiter);
      this.#queues.set(key, queue);
      const mine = this.#waitersByTx.get(txId) ?? new Set<Waiter>();
      mine.add(waiter);
      this.#waitersByTx.set(txId, mine);
    });
  }

  /**
   * Acquires keys one after another in sorted order (so two branches never wait on each other in
   * opposite orders here), within one time budget. On failure the keys already taken stay held:
   * the caller releases the whole transaction.
   */
  async acquireAll(keys: readonly string[], txId: string, timeoutMs: number, youngerGraceMs: number = timeoutMs): Promise<void> {
    const ordered = [...new Set(keys)].sort();
    const until = Date.now() + timeoutMs;
    for (const key of ordered) {
      const left = until - Date.now();
      await this.acquire(key, txId, left, Math.min(youngerGraceMs, left));
      // A grant resolves a turn later; if the transaction was released meanwhile (its rollback
      // arrived), it must not go on queueing for, and taking, the remaining keys.
      if (this.#holders.get(key) !== txId) throw new LockWaitError('cancelled', key);
    }
  }

  /** Releases every key the transaction holds and hands each to its next waiter. */
  release(txId: string): void {
    const keys = this.#keysByTx.get(txId);
    if (!keys) return;
    this.#keysByTx.delete(txId);
    for (const key of keys) {
      this.#holders.delete(key);
      this.#grantNext(key);
    }
  }

  /** Fails every wait of this transaction (e.g. its rollback arrived while its prepare waited). */
  cancelWaits(txId: string): void {
    this.failWaits(txId, 'cancelled');
  }

  /** Fails every wait of this transaction with the given failure. */
  failWaits(txId: string, failure: LockFailure): void {
    for (const waiter of [...(this.#waitersByTx.get(txId) ?? [])]) {
      this.#forget(waiter);
      waiter.reject(new LockWaitError(failure, waiter.key));
    }
  }

  /** The keys this transaction is queued for right now. */
  waitingOn(txId: string): string[] {
    return [...(this.#waitersByTx.get(txId) ?? [])].map((w) => w.key);
  }

  /** Fails every wait (shutdown), so no timer keeps the process alive. */
  cancelAll(): void {
    for (const txId of [...this.#waitersByTx.keys()]) this.cancelWaits(txId);
  }

  #grant(key: string, txId: string): void {
    this.#holders.set(key, txId);
    const keys = this.#keysByTx.get(txId) ?? new Set<string>();
    keys.add(key);
    this.#keysByTx.set(txId, keys);
  }

  #grantNext(key: string): void {
    const queue = this.#queues.get(key);
    const next = queue?.[0];
    if (!queue || !next) return;
    this.#grant(key, next.txId);
    // The new holder's other waiters on this key are satisfied too (re-entrant).
    for (const waiter of queue.filter((w) => w.txId === next.txId)) {
      this.#forget(waiter);
      waiter.resolve();
    }
  }

  #forget(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    const queue = this.#queues.get(waiter.key);
    if (queue) {
      const at = queue.indexOf(waiter);
      if (at >= 0) queue.splice(at, 1);
      if (queue.length === 0) this.#queues.delete(waiter.key);
    }
    const mine = this.#waitersByTx.get(waiter.txId);
    if (mine) {
      mine.delete(waiter);
      if (mine.size === 0) this.#waitersByTx.delete(waiter.txId);
    }
  }
}
