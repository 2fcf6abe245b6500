/**
 * In-memory shared/exclusive locks on business keys, owned by transaction ids. Durability is not this
 * class's job: the participant stores a prepared branch's keys with its row (SQLite: txm_branches.locks;
 * PostgreSQL: txm_key_locks).
 *
 * - Readers (shared) share a key; a writer (exclusive) excludes everyone else.
 * - A transaction asking again for a mode it holds (or a weaker one) gets it at once; a shared holder
 *   asking for exclusive upgrades: at once when it is the only holder, else it queues at the head and
 *   is granted when the other readers leave.
 * - Waiters are served first come, first served: a new reader never overtakes a queued writer, so no
 *   writer starves behind a stream of readers and the longest waiter is served first.
 * - `edges()` lists who waits for whom (waiter → holder or conflicting waiter ahead), for the
 *   coordinator's deadlock detector.
 * - With a `youngerGraceMs` below the budget (wait-die), a transaction younger than someone it would
 *   wait behind gives up after the grace ('conflict'); every wait-for cycle has such an edge.
 */
import { channel } from 'node:diagnostics_channel';
import { compareTxAge, LockMode, type WaitEdge } from '@txmesh/protocol';

/** A transaction starts waiting for a key another holds (tracing turns it into a span event). */
export const lockWaitChannel = channel('txmesh:participant:lock-wait');
export interface LockWaitEvent {
  txId: string;
  key: string;
  mode: LockMode;
  /** The transactions it waits behind (holders and conflicting waiters ahead). */
  blockers: string[];
  /** How long it may wait, and whether it is the younger one (wait-die: it dies after a short grace). */
  waitMs: number;
  younger: boolean;
}

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

/** One key a branch needs, and how. */
export interface LockRequest {
  key: string;
  mode: LockMode;
}

interface Waiter {
  key: string;
  txId: string;
  mode: LockMode;
  since: number;
  resolve(): void;
  reject(err: LockWaitError): void;
  timer: NodeJS.Timeout;
}

interface KeyState {
  /** Mode of the current owners: several when shared, one when exclusive. */
  mode: LockMode;
  owners: Set<string>;
  queue: Waiter[];
}

const conflicts = (a: LockMode, b: LockMode): boolean => a === LockMode.EXCLUSIVE || b === LockMode.EXCLUSIVE;

/** The strongest mode wins when one branch names a key twice (read it in one operation, write it in another). */
export function mergeLockRequests(requests: readonly LockRequest[]): LockRequest[] {
  const modes = new Map<string, LockMode>();
  for (const { key, mode } of requests) {
    if (modes.get(key) !== LockMode.EXCLUSIVE) modes.set(key, mode);
  }
  return [...modes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, mode]) => ({ key, mode }));
}

export class LockManager {
  readonly #keys = new Map<string, KeyState>();
  readonly #held = new Map<string, Map<string, LockMode>>();
  readonly #waitersByTx = new Map<string, Set<Waiter>>();

  /** The transactions holding this key (one writer or any number of readers). */
  holdersOf(key: string): string[] {
    return [...(this.#keys.get(key)?.owners ?? [])];
  }

  modeOf(key: string, txId: string): LockMode | undefined {
    return this.#held.get(txId)?.get(key);
  }

  keysHeldBy(txId: string): string[] {
    return [...(this.#held.get(txId)?.keys() ?? [])];
  }

  /** Keys held by at least one transaction. */
  get heldCount(): number {
    let n = 0;
    for (const state of this.#keys.values()) if (state.owners.size > 0) n += 1;
    return n;
  }

  /** Takes a key without waiting: used to restore locks of prepared branches after a restart. */
  hold(key: string, txId: string, mode: LockMode = LockMode.EXCLUSIVE): void {
    const state = this.#keys.get(key);
    const others = state ? [...state.owners].filter((o) => o !== txId) : [];
    if (state && others.length > 0 && conflicts(state.mode, mode)) {
      throw new Error(`lock ${key} is held by ${others.join(', ')}, cannot restore it ${mode} for ${txId}`);
    }
    this.#grant(key, txId, mode);
  }

  /**
   * Waits for `key` in `mode`: up to `timeoutMs` when `txId` is older than every holder and conflicting
   * waiter ahead of it, otherwise up to `youngerGraceMs` (wait-die; equal to the budget when off).
   */
  acquire(key: string, txId: string, mode: LockMode, timeoutMs: number, youngerGraceMs: number = timeoutMs): Promise<void> {
    const state = this.#keys.get(key);
    const mine = this.modeOf(key, txId);
    if (mine === LockMode.EXCLUSIVE || mine === mode) return Promise.resolve();
    if (!state || this.#grantableNow(state, txId, mode)) {
      this.#grant(key, txId, mode);
      return Promise.resolve();
    }
    const ahead = this.#blockers(state, txId, mode, state.queue.length);
    const oldest = ahead.every((other) => compareTxAge(txId, other) < 0);
    const limited = !oldest && youngerGraceMs < timeoutMs;
    const waitMs = limited ? youngerGraceMs : timeoutMs;
    const failure: LockFailure = limited ? 'conflict' : 'timeout';
    if (waitMs <= 0) return Promise.reject(new LockWaitError(failure, key));
    if (lockWaitChannel.hasSubscribers) lockWaitChannel.publish({ txId, key, mode, blockers: ahead, waitMs, younger: limited } satisfies LockWaitEvent);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        key,
        txId,
        mode,
        since: Date.now(),
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#forget(waiter);
          reject(new LockWaitError(failure, key));
        }, waitMs),
      };
      // An upgrade goes ahead of every queued waiter: they wait for this reader anyway, and letting
      // them pass would make it wait for them while they wait for it.
      if (mine === LockMode.SHARED) {
        const firstNonUpgrade = state.queue.findIndex((w) => !state.owners.has(w.txId));
        state.queue.splice(firstNonUpgrade < 0 ? state.queue.length : firstNonUpgrade, 0, waiter);
      } else state.queue.push(waiter);
      const set = this.#waitersByTx.get(txId) ?? new Set<Waiter>();
      set.add(waiter);
      this.#waitersByTx.set(txId, set);
    });
  }

  /**
   * Acquires keys one after another in sorted order (so two branches never wait on each other in
   * opposite orders here), within one time budget. On failure the keys already taken stay held:
   * the caller releases the whole transaction.
   */
  async acquireAll(requests: readonly LockRequest[], txId: string, timeoutMs: number, youngerGraceMs: number = timeoutMs): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (const { key, mode } of mergeLockRequests(requests)) {
      const left = until - Date.now();
      await this.acquire(key, txId, mode, left, Math.min(youngerGraceMs, left));
      // A grant resolves a turn later; if the transaction was released meanwhile (its rollback
      // arrived), it must not go on queueing for, and taking, the remaining keys.
      if (this.modeOf(key, txId) === undefined) throw new LockWaitError('cancelled', key);
    }
  }

  /**
   * Whether `txId` could have all its keys at once, without queueing, once every transaction of `leaving`
   * has released its keys: nobody is queued for any of them (no waiter is overtaken), every other holder
   * is leaving or shares the key, and `claimed` (keys promised to other branches of the same write, which
   * this call extends when it answers true) does not conflict. Changes no lock.
   */
  grantableWhenLeft(requests: readonly LockRequest[], txId: string, leaving: ReadonlySet<string>, claimed: Map<string, LockMode>): boolean {
    const merged = mergeLockRequests(requests);
    for (const { key, mode } of merged) {
      const promised = claimed.get(key);
      if (promised !== undefined && conflicts(promised, mode)) return false;
      const state = this.#keys.get(key);
      if (!state) continue;
      if (state.queue.length > 0) return false;
      for (const owner of state.owners) {
        if (owner !== txId && !leaving.has(owner) && conflicts(state.mode, mode)) return false;
      }
    }
    for (const { key, mode } of merged) if (claimed.get(key) !== LockMode.EXCLUSIVE) claimed.set(key, mode);
    return true;
  }

  /** Releases every key the transaction holds and hands each to the waiters now compatible. */
  release(txId: string): void {
    const keys = this.#held.get(txId);
    if (!keys) return;
    this.#held.delete(txId);
    for (const key of keys.keys()) {
      const state = this.#keys.get(key);
      if (!state) continue;
      state.owners.delete(txId);
      this.#grantWaiters(key, state);
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

  /** Who waits for whom right now: one edge per (waiter, transaction it cannot pass, key). O(waiters × holders). */
  edges(): WaitEdge[] {
    const edges: WaitEdge[] = [];
    for (const [key, state] of this.#keys) {
      state.queue.forEach((waiter, at) => {
        for (const holder of this.#blockers(state, waiter.txId, waiter.mode, at)) edges.push({ waiter: waiter.txId, holder, key, since: waiter.since });
      });
    }
    return edges;
  }

  /** Granted without queueing: compatible with the owners, and nobody queued ahead (an upgrade only needs to be alone). */
  #grantableNow(state: KeyState, txId: string, mode: LockMode): boolean {
    const others = [...state.owners].filter((o) => o !== txId);
    if (others.length > 0 && conflicts(state.mode, mode)) return false;
    if (state.owners.has(txId)) return true;
    return state.queue.length === 0;
  }

  /** The owners and the waiters among the first `aheadCount` of the queue that `txId` cannot pass. */
  #blockers(state: KeyState, txId: string, mode: LockMode, aheadCount: number): string[] {
    const blockers = new Set<string>();
    if (conflicts(state.mode, mode)) for (const owner of state.owners) if (owner !== txId) blockers.add(owner);
    for (const w of state.queue.slice(0, aheadCount)) if (w.txId !== txId && conflicts(w.mode, mode)) blockers.add(w.txId);
    return [...blockers];
  }

  #grant(key: string, txId: string, mode: LockMode): void {
    let state = this.#keys.get(key);
    if (!state) {
      state = { mode, owners: new Set(), queue: [] };
      this.#keys.set(key, state);
    }
    if (state.owners.size === 0 || (state.owners.size === 1 && state.owners.has(txId))) state.mode = mode;
    else if (mode === LockMode.EXCLUSIVE) throw new Error(`lock ${key}: exclusive grant to ${txId} while others hold it`);
    state.owners.add(txId);
    const held = this.#held.get(txId) ?? new Map<string, LockMode>();
    if (held.get(key) !== LockMode.EXCLUSIVE) held.set(key, mode);
    this.#held.set(txId, held);
  }

  /** Grants from the head of the queue while the head is compatible: a run of readers, or one writer. */
  #grantWaiters(key: string, state: KeyState): void {
    for (;;) {
      const head = state.queue[0];
      if (!head) break;
      const others = [...state.owners].filter((o) => o !== head.txId);
      if (others.length > 0 && conflicts(state.mode, head.mode)) break;
      this.#forget(head, false);
      this.#grant(key, head.txId, head.mode);
      head.resolve();
    }
    if (state.owners.size === 0 && state.queue.length === 0) this.#keys.delete(key);
  }

  /** Takes a waiter out of its queue; `regrant` lets the ones behind a departing head in. */
  #forget(waiter: Waiter, regrant = true): void {
    clearTimeout(waiter.timer);
    const state = this.#keys.get(waiter.key);
    if (state) {
      const at = state.queue.indexOf(waiter);
      if (at >= 0) state.queue.splice(at, 1);
      // A waiter leaving the head may let the ones behind it in (e.g. readers behind a writer that gave up).
      if (at === 0 && regrant) this.#grantWaiters(waiter.key, state);
      else if (regrant && state.owners.size === 0 && state.queue.length === 0) this.#keys.delete(waiter.key);
    }
    const set = this.#waitersByTx.get(waiter.txId);
    if (set) {
      set.delete(waiter);
      if (set.size === 0) this.#waitersByTx.delete(waiter.txId);
    }
  }
}
