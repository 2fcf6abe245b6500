/**
 * Waits that lock queues do not show: a batch answers all its prepares at once, so a branch that is
 * already prepared cannot deliver its vote (and so cannot commit and free its keys) before every
 * branch of its batch still waiting for a lock is settled. These edges (prepared → still waiting)
 * let the coordinator see cycles that pass through a batch.
 */
import type { WaitEdge } from '@txmesh/protocol';

/** The pseudo key naming an edge that comes from sharing a batch, not from a lock. */
export const BATCH_WAIT_KEY = '(batch)';

interface OpenBatch {
  since: number;
  prepared: ReadonlySet<string>;
  waiting(): readonly string[];
}

export class BatchWaits {
  readonly #open = new Set<OpenBatch>();

  open(prepared: ReadonlySet<string>, waiting: () => readonly string[]): OpenBatch {
    const batch = { since: Date.now(), prepared, waiting };
    this.#open.add(batch);
    return batch;
  }

  close(batch: OpenBatch): void {
    this.#open.delete(batch);
  }

  /** O(prepared × waiting) per open batch. */
  edges(): WaitEdge[] {
    const edges: WaitEdge[] = [];
    for (const batch of this.#open) {
      const waiting = batch.waiting();
      for (const waiter of batch.prepared) for (const holder of waiting) edges.push({ waiter, holder, key: BATCH_WAIT_KEY, since: batch.since });
    }
    return edges;
  }
}
