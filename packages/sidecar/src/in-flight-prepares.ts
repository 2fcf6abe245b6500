/**
 * Prepares handed to the service whose answers the sidecar has not handled yet, and which of them had their
 * outcome acknowledged meanwhile. Batches run concurrently and their answers may come back in any order: a
 * yes vote that arrives after the same branch's commit or rollback was acknowledged (a slow first attempt, a
 * retried prepare) must not write a prepared record again, or the record would outlive its branch.
 * A duplicate prepare may also arrive after the outcome was acknowledged (delayed on the network): the
 * service answers it yes from its stored branch, so the most recently acknowledged ids are remembered too.
 * Memory is bounded by the prepares in flight plus `recentLimit`.
 */
export class InFlightPrepares {
  readonly #pending = new Map<string, number>();
  readonly #finished = new Set<string>();
  /** Insertion-ordered, oldest first; trimmed to recentLimit. */
  readonly #recentlyAcknowledged = new Set<string>();

  readonly #recentLimit: number;
  constructor(recentLimit = 100_000) {
    this.#recentLimit = recentLimit;
  }

  /** Call before forwarding prepares; every call needs a matching `end` with the same ids. */
  begin(txIds: readonly string[]): void {
    for (const txId of txIds) this.#pending.set(txId, (this.#pending.get(txId) ?? 0) + 1);
  }

  end(txIds: readonly string[]): void {
    for (const txId of txIds) {
      const left = (this.#pending.get(txId) ?? 1) - 1;
      if (left > 0) {
        this.#pending.set(txId, left);
      } else {
        this.#pending.delete(txId);
        this.#finished.delete(txId);
      }
    }
  }

  /** The service acknowledged this branch's commit or rollback: yes votes still on their way are stale. */
  outcomeAcknowledged(txIds: readonly string[]): void {
    for (const txId of txIds) {
      if (this.#pending.has(txId)) this.#finished.add(txId);
      this.#recentlyAcknowledged.add(txId);
    }
    for (const oldest of this.#recentlyAcknowledged) {
      if (this.#recentlyAcknowledged.size <= this.#recentLimit) break;
      this.#recentlyAcknowledged.delete(oldest);
    }
  }

  /** Whether a yes vote for `txId` now in hand must not be recorded. */
  isFinished(txId: string): boolean {
    return this.#finished.has(txId) || this.#recentlyAcknowledged.has(txId);
  }
}
