/**
 * Commit and rollback items of a batch, written by the storage adapter (SQLite: one transaction, one
 * fsync, each branch in its own savepoint so a failing hook undoes only its branch; the rules are in
 * branch-rules.ts). Once the outcome is durable the branch's keys
 * are freed. Duplicates, rollback before prepare and a stale rollback after commit are answered without
 * running anything twice.
 */
import { BranchAction, ItemStatus, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import { ItemReasons, itemResult, messageOf } from './item-results.ts';
import type { ParticipantParts } from './participant-parts.ts';
import { ParticipantSteps, reachStep } from './steps.ts';
import { isThenable } from './steps-runner.ts';
import type { Written } from './storage-adapter.ts';

export class DecisionRunner {
  readonly #parts: ParticipantParts;

  constructor(parts: ParticipantParts) {
    this.#parts = parts;
  }

  /**
   * Answers items[i] for every i of `indices` into results[i]. `unforced`: the storage leaves the sync to
   * the caller's next forced write (see DecisionWriteOptions); the keys are freed all the same, since any
   * answer that could reveal what they guarded leaves only after a sync.
   */
  async run(items: readonly BranchItem[], indices: readonly number[], results: BranchItemResult[], unforced = false): Promise<void> {
    const { storage, rules, counters } = this.#parts;
    let written: Written<BranchItemResult>;
    try {
      const pending = storage.writeDecisions(
        indices.map((i) => items[i]!),
        rules,
        unforced ? { unforced } : {},
      );
      // SQLite answers at once: no turn of the event loop between its transaction and the lock release.
      written = isThenable(pending) ? await pending : pending;
      counters.decisionTransactions += written.transactions;
    } catch (err) {
      this.failed(items, indices, results, err);
      return;
    }
    this.settle(items, indices, written.results, results);
  }

  /** The write of these outcomes failed: none is applied, every branch keeps its keys. */
  failed(items: readonly BranchItem[], indices: readonly number[], results: BranchItemResult[], err: unknown): void {
    this.#parts.log({ event: 'decision-transaction-failed', error: messageOf(err) });
    for (const i of indices) results[i] = itemResult(items[i]!, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
  }

  /** Once the outcomes are written (`answers` in the order of `indices`): answers out, keys of the applied ones freed. */
  settle(items: readonly BranchItem[], indices: readonly number[], answers: readonly BranchItemResult[], results: BranchItemResult[]): void {
    const { counters, locks } = this.#parts;
    counters.decisionsWritten += indices.length;
    if (indices.some((i, k) => items[i]!.action === BranchAction.COMMIT && answers[k]!.status === ItemStatus.OK)) {
      reachStep(ParticipantSteps.AFTER_COMMIT);
    }
    indices.forEach((i, k) => {
      const item = items[i]!;
      const answer = answers[k]!;
      results[i] = answer;
      if (item.action === BranchAction.ROLLBACK && answer.reason === ItemReasons.ALREADY_COMMITTED) counters.rollbacksAfterCommit += 1;
      if (answer.status !== ItemStatus.OK) return;
      // The outcome is durable: free the keys. A prepare of this tx still waiting for locks stops
      // waiting; it finds the rolled-back branch and votes no.
      if (item.action === BranchAction.ROLLBACK) locks.cancelWaits(item.txId);
      locks.release(item.txId);
    });
  }
}
