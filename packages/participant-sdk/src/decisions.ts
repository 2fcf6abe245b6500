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
    const { storage, rules, counters, log, locks } = this.#parts;
    const answers = new Map<number, BranchItemResult>();
    try {
      const pending = storage.writeDecisions(
        indices.map((i) => items[i]!),
        rules,
        unforced ? { unforced } : {},
      );
      // SQLite answers at once: no turn of the event loop between its transaction and the lock release.
      const written = isThenable(pending) ? await pending : pending;
      indices.forEach((i, k) => answers.set(i, written.results[k]!));
      counters.decisionTransactions += written.transactions;
      counters.decisionsWritten += indices.length;
    } catch (err) {
      log({ event: 'decision-transaction-failed', error: messageOf(err) });
      for (const i of indices) results[i] = itemResult(items[i]!, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
      return;
    }
    if (indices.some((i) => items[i]!.action === BranchAction.COMMIT && answers.get(i)!.status === ItemStatus.OK)) {
      reachStep(ParticipantSteps.AFTER_COMMIT);
    }
    for (const i of indices) {
      const item = items[i]!;
      const answer = answers.get(i)!;
      results[i] = answer;
      if (item.action === BranchAction.ROLLBACK && answer.reason === ItemReasons.ALREADY_COMMITTED) counters.rollbacksAfterCommit += 1;
      if (answer.status !== ItemStatus.OK) continue;
      // The outcome is durable: free the keys. A prepare of this tx still waiting for locks stops
      // waiting; it finds the rolled-back branch and votes no.
      if (item.action === BranchAction.ROLLBACK) locks.cancelWaits(item.txId);
      locks.release(item.txId);
    }
  }
}
