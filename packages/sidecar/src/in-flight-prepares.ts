/**
 * Prepares handed to the service whose answers the sidecar has not handled yet, and which of them had their
 * outcome acknowledged meanwhile. Batches run concurrently and their answers may come back in any order: a
 * yes vote that arrives after the same branch's commit or rollback was acknowledged (a slow first attempt, a
 * retried prepare) must not write a prepared record again, or the record would outlive its branch.
 * Memory is bounded by the prepares in flight.
 */
export class InFlightPrepares {
  private readonly pending = new Map<string, number>();
  private readonly finished = new Set<string>();

  /** Call before forwarding prepares; every call needs a matching `end` with the same ids. */
  begin(txIds: readonly string[]): void {
    for (const txId of txIds) this.pending.set(txId, (this.pending.get(txId) ?? 0) + 1);
  }

  end(txIds: readonly string[]): void {
    for (const txId of txIds) {
      const left = (this.pending.get(txId) ?? 1) - 1;
      if (left > 0) {
        this.pending.set(txId, left);
      } else {
        this.pending.delete(txId);
        this.finished.delete(txId);
      }
    }
  }

  /** The service acknowledged this branch's commit or rollback: yes votes still on their way are stale. */
  outcomeAcknowledged(txIds: readonly string[]): void {
    for (const txId of txIds) if (this.pending.has(txId)) this.finished.add(txId);
  }

  /** Whether a yes vote for `txId` now in hand must not be recorded. */
  isFinished(txId: string): boolean {
    return this.finished.has(txId);
  }
}
