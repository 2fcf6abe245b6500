/**
 * A batch that carries outcomes and prepares (at concurrency 1 every commit rides with the next
 * transaction's prepare; under load every batch has both), written in one forced transaction: the outcomes
 * first, each in its savepoint, then the prepares. The usual path writes two transactions, the outcomes
 * unforced and then the prepares forced, and a commit is most of what a branch costs the service (its
 * WAL frames and locks; docs/benchmarks.md).
 *
 * The prepares go in only when every one of them can have its keys at once, without queueing: each key is
 * free, shared, or held by a branch whose outcome this same transaction applies, and nobody is queued for
 * it. Checked before the transaction with every outcome assumed applied, and again inside it with the
 * outcomes that were. The keys change hands only once the transaction is durable: the outcomes' branches
 * release theirs, then each prepared branch takes its own. Nothing between the check and the hand-over
 * runs anything else (the storage answers at once), and a failed transaction moves no key at all, so a
 * branch never holds a key its neighbour's unapplied outcome still guards.
 *
 * Otherwise the batch keeps the usual path: nothing was done, or (the recheck failed) the outcomes were
 * written and the prepares go through the prepare pipeline, waits and deferrals included.
 */
import type { BranchItem, BranchItemResult, LockMode } from '@txmesh/protocol';
import { ItemStatus } from '@txmesh/protocol';
import type { DecisionRunner } from './decisions.ts';
import type { ParticipantParts } from './participant-parts.ts';
import type { PreparePipeline, PrepareWork } from './prepare-pipeline.ts';
import type { TogetherWritten } from './storage-adapter.ts';

export class MixedBatchWriter {
  readonly #parts: ParticipantParts;
  readonly #decisions: DecisionRunner;
  readonly #prepares: PreparePipeline;

  constructor(parts: ParticipantParts, decisions: DecisionRunner, prepares: PreparePipeline) {
    this.#parts = parts;
    this.#decisions = decisions;
    this.#prepares = prepares;
  }

  /**
   * Answers the outcomes and, when they can go together, the prepares of a batch. Returns undefined when it
   * did nothing (the batch takes the usual path), else the prepares still to answer (none, or all of them).
   */
  run(items: readonly BranchItem[], decisions: readonly number[], prepares: readonly number[], results: BranchItemResult[]): readonly number[] | undefined {
    const { storage, rules, counters } = this.#parts;
    if (storage.writeTogether === undefined) return undefined;
    const decided = new Set(decisions.map((i) => items[i]!.txId));
    const works = this.#prepares.planWithOutcomes(items, prepares, decided);
    if (works === undefined) return undefined;
    const toWrite = works.filter((w) => w.answer === undefined);
    if (toWrite.length === 0 || !this.#keysFree(toWrite, decided)) return undefined;

    let written: TogetherWritten;
    try {
      written = storage.writeTogether(
        decisions.map((i) => items[i]!),
        rules,
        (answers) => {
          const applied = new Set(answers.filter((a) => a.status === ItemStatus.OK).map((a) => a.txId));
          return this.#keysFree(toWrite, applied) ? toWrite : undefined;
        },
      );
    } catch (err) {
      this.#decisions.failed(items, decisions, results, err);
      return prepares;
    }
    counters.batchTransactions += 1;
    // The outcomes' keys first: the prepared branches take theirs over.
    this.#decisions.settle(items, decisions, written.decisions, results);
    if (written.prepares === undefined) return prepares;
    this.#prepares.settleWritten(prepares, works, written.prepares, results);
    return [];
  }

  /** Every branch of `works` could take all its keys at once once the branches of `leaving` let go of theirs. */
  #keysFree(works: readonly PrepareWork[], leaving: ReadonlySet<string>): boolean {
    const claimed = new Map<string, LockMode>();
    return works.every((w) => this.#parts.locks.grantableWhenLeft(w.locks, w.txId, leaving, claimed));
  }
}
