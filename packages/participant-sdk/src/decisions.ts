/**
 * Commit and rollback items of a batch: all of them in one SQLite transaction (one fsync), each in its
 * own savepoint so a failing hook undoes only its branch. Once the outcome is durable the branch's keys
 * are freed. Duplicates, rollback before prepare and a stale rollback after commit are answered without
 * running anything twice.
 */
import { BranchAction, ItemStatus, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import { ItemReasons, itemResult, messageOf } from './item-results.ts';
import type { ParticipantParts } from './participant-parts.ts';
import { ParticipantSteps, reachStep } from './steps.ts';

export class DecisionRunner {
  readonly #parts: ParticipantParts;

  constructor(parts: ParticipantParts) {
    this.#parts = parts;
  }

  /** Answers items[i] for every i of `indices` into results[i]. */
  run(items: readonly BranchItem[], indices: readonly number[], results: BranchItemResult[]): void {
    const { inTransaction, counters, log, locks } = this.#parts;
    const answers = new Map<number, BranchItemResult>();
    try {
      inTransaction.immediate(() => {
        for (const i of indices) answers.set(i, this.#decideOne(items[i]!));
      });
      counters.decisionTransactions += 1;
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
      if (answer.status !== ItemStatus.OK) continue;
      // The outcome is durable: free the keys. A prepare of this tx still waiting for locks stops
      // waiting; it finds the rolled-back branch and votes no.
      if (item.action === BranchAction.ROLLBACK) locks.cancelWaits(item.txId);
      locks.release(item.txId);
    }
  }

  /** One commit or rollback, in its own savepoint: a failing hook undoes only this branch. */
  #decideOne(item: BranchItem): BranchItemResult {
    const { inSavepoint, store, hooks, log } = this.#parts;
    const phase: 'commit' | 'rollback' = item.action === BranchAction.COMMIT ? 'commit' : 'rollback';
    let answer = itemResult(item, ItemStatus.OK);
    try {
      inSavepoint(() => {
        const row = store.branch(item.txId);
        const now = Date.now();
        if (phase === 'commit') {
          if (!row || row.state === 'voted_no' || row.state === 'rolled_back') {
            answer = itemResult(item, ItemStatus.ERROR, 'TXM_COMMIT_WITHOUT_PREPARE', `branch ${item.txId} did not prepare yes here (${row?.state ?? 'unknown'})`);
            return;
          }
          if (row.state === 'committed') return;
          hooks.decide('commit', row, now);
          store.recordDecided(item.txId, 'committed', now);
          return;
        }
        if (!row) store.recordRolledBackUnprepared(item.txId, now);
        else if (row.state === 'voted_no') store.touchDecided(item.txId, now);
        else if (row.state === 'committed') {
          // Only a stale look-up can ask this: the shard pruned the finished COMMIT record (every branch
          // had acknowledged) and now presumes abort. The commit stands; acknowledging lets the asker
          // drop its leftover record instead of retrying forever.
          log({ event: 'rollback-after-commit-ignored', txId: item.txId });
          answer = itemResult(item, ItemStatus.OK, ItemReasons.ALREADY_COMMITTED, `branch ${item.txId} already committed here; nothing rolled back`);
        } else if (row.state === 'prepared') {
          hooks.decide('rollback', row, now);
          store.recordDecided(item.txId, 'rolled_back', now);
        }
      });
    } catch (err) {
      log({ event: `${phase}-failed`, txId: item.txId, error: messageOf(err) });
      const reason = phase === 'commit' ? ItemReasons.COMMIT_FAILED : ItemReasons.ROLLBACK_FAILED;
      return itemResult(item, ItemStatus.ERROR, reason, messageOf(err));
    }
    return answer;
  }
}
