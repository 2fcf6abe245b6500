/**
 * A batch that carries outcomes and prepares (at concurrency 1 every commit rides with the next
 * transaction's prepare; under load every batch has both), written in one forced transaction: the outcomes
 * first, each in its savepoint, then the prepares. The usual path writes two transactions, the outcomes
 * unforced and then the prepares forced, and a commit is most of what a branch costs the service (its
 * WAL frames and locks; docs/benchmarks.md).
 *
 * A prepare goes in when it can have its keys at once, without queueing: each key is free, shared, or held
 * by a branch whose outcome this same transaction applies, nobody is queued for it, and no other prepare of
 * the batch that cannot go in asks for it (that one keeps its place in the queue it would join). Checked
 * before the transaction with every outcome assumed applied, and again inside it with the outcomes that
 * were. The keys change hands only once the transaction is durable: the outcomes' branches release theirs,
 * then each prepared branch takes its own. Nothing between the check and the hand-over runs anything else
 * (the storage answers at once), and a failed transaction moves no key at all, so a branch never holds a
 * key its neighbour's unapplied outcome still guards.
 *
 * The prepares that cannot go in (a key held by a branch whose outcome is not in this batch, a waiter
 * queued, one under way already, its own outcome in the batch) take the prepare pipeline once the
 * transaction is durable, waits and deferrals included; with the others answered, whatever waits for a key
 * is deferred at once. At concurrency 1000 nearly every batch of about 150 prepares has one whose key an
 * undecided branch holds: all-or-nothing, each of those batches took two transactions and the pipeline's
 * lock waits for all its prepares. When none can go in, the batch keeps the usual path (outcomes unforced,
 * then the prepares' forced transaction carries them).
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
  run(items: readonly BranchItem[], decisions: readonly number[], prepares: readonly number[], results: BranchItemResult[]): MixedBatchLeft | undefined {
    const { storage, rules, counters } = this.#parts;
    if (storage.writeTogether === undefined) return undefined;
    const decided = new Set(decisions.map((i) => items[i]!.txId));
    const planned = this.#prepares.planWithOutcomes(items, prepares, decided);
    if (planned === undefined) return undefined;
    // Those that must wait, and every prepare that shares a key with one of them, take the pipeline.
    const candidates = planned.filter((w): w is PrepareWork => w !== undefined && w.answer === undefined);
    const claimed = new Map<string, LockMode>();
    const blocked = new Set(candidates.filter((w) => !this.#parts.locks.grantableWhenLeft(w.locks, w.txId, decided, claimed)));
    const blockedKeys = new Set([...blocked].flatMap((w) => w.locks.map((l) => l.key)));
    const goes = (w: PrepareWork | undefined): w is PrepareWork =>
      w !== undefined && (w.answer !== undefined || (!blocked.has(w) && !w.locks.some((l) => blockedKeys.has(l.key))));
    const toWrite = candidates.filter(goes);
    if (toWrite.length === 0) return undefined;

    let kept = toWrite;
    let written: TogetherWritten;
    try {
      written = storage.writeTogether(
        decisions.map((i) => items[i]!),
        rules,
        (answers) => {
          // Removing a prepare only frees keys, so those still free once the applied outcomes left stay free together.
          const applied = new Set(answers.filter((a) => a.status === ItemStatus.OK).map((a) => a.txId));
          const after = new Map<string, LockMode>();
          kept = toWrite.filter((w) => this.#parts.locks.grantableWhenLeft(w.locks, w.txId, applied, after));
          return kept;
        },
      );
    } catch (err) {
      this.#decisions.failed(items, decisions, results, err);
      return { prepares, prepared: [] };
    }
    counters.batchTransactions += 1;
    // The outcomes' keys first: the prepared branches take theirs over.
    this.#decisions.settle(items, decisions, written.decisions, results);
    const inTogether = new Set<PrepareWork>(kept);
    const here: number[] = [];
    const hereWorks: PrepareWork[] = [];
    const left: number[] = [];
    prepares.forEach((i, n) => {
      const w = planned[n];
      if (w !== undefined && (w.answer !== undefined ? goes(w) : inTogether.has(w))) {
        here.push(i);
        hereWorks.push(w);
      } else left.push(i);
    });
    this.#prepares.settleWritten(here, hereWorks, written.prepares ?? [], results);
    const prepared = here.filter((i) => results[i]?.status === ItemStatus.OK).map((i) => items[i]!.txId);
    return { prepares: left, prepared };
  }
}

/** What is left of a mixed batch for the prepare pipeline, and the branches it prepared meanwhile. */
export interface MixedBatchLeft {
  prepares: readonly number[];
  prepared: readonly string[];
}
