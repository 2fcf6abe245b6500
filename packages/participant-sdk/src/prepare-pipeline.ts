/**
 * Prepare items of a batch, from arrival to vote:
 * 1. start: a stored branch answers at once (duplicate, prepare after rollback); otherwise the arguments
 *    are parsed, the deadline checked and the branch's keys requested (wait-die, bounded by lockWaitMs
 *    and the deadline);
 * 2. flush: every branch whose locks are settled runs in one SQLite transaction, one savepoint each, so
 *    one branch's refusal does not undo another's; its barrier rows, tentative change, lock rows and vote
 *    are durable before the answer leaves. Only a branch that prepared keeps its keys.
 * A duplicate arriving while the first is under way shares its answer.
 */
import { BranchAction, DeadlockMode, ItemStatus, type BranchItem, type BranchItemResult, type OperationSpec } from '@txmesh/protocol';
import type { BatchWaits } from './batch-waits.ts';
import type { ParsedOperation, Refusal } from './hook-runner.ts';
import { ItemReasons, answerFromStored, itemResult, messageOf } from './item-results.ts';
import { LockWaitError, type LockFailure, type LockRequest } from './lock-manager.ts';
import { BusinessRefusal } from './operation.ts';
import type { ParticipantParts } from './participant-parts.ts';
import { ParticipantSteps, reachStep } from './steps.ts';

export interface PreparePipelineOptions {
  lockWaitMs: number;
  lockGraceMs: number;
  deadlock: DeadlockMode;
  /** Where a batch's hidden waits (prepared → still waiting in the same batch) are published. */
  batchWaits: BatchWaits;
  clockSkewAllowanceMs: number;
  isClosed: () => boolean;
}

/** One prepare branch of a batch, from its arrival to its vote. */
interface PrepareWork {
  txId: string;
  operations: OperationSpec[];
  deadline: number | undefined;
  parsed: ParsedOperation[];
  locks: LockRequest[];
  /** Answer known from the stored branch before doing anything (duplicate, prepare after rollback). */
  answer?: BranchItemResult;
  /** A no decided before the transaction; still recorded durably in it. */
  refusal?: Refusal;
  lockFailure?: LockFailure;
  settled: boolean;
  whenSettled: Promise<void>;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const prepareOf = (txId: string) => ({ txId, action: BranchAction.PREPARE });

export class PreparePipeline {
  readonly #parts: ParticipantParts;
  readonly #options: PreparePipelineOptions;
  /** Prepares under way, by txId: a duplicate arriving meanwhile shares the first one's answer. */
  readonly #inflight = new Map<string, Promise<BranchItemResult>>();

  constructor(parts: ParticipantParts, options: PreparePipelineOptions) {
    this.#parts = parts;
    this.#options = options;
  }

  /** A prepare whose deadline passed (beyond the clock-skew allowance) must not run. */
  #deadlinePassed(deadline: number | undefined, now: number): boolean {
    return deadline !== undefined && deadline + this.#options.clockSkewAllowanceMs <= now;
  }

  /** Answers items[i] for every i of `indices` into results[i]. */
  async run(items: readonly BranchItem[], indices: readonly number[], results: BranchItemResult[]): Promise<void> {
    const { log } = this.#parts;
    const own = new Map<string, { work: PrepareWork; settle(r: BranchItemResult): void }>();
    const shared: { index: number; answer: Promise<BranchItemResult> }[] = [];
    for (const i of indices) {
      const item = items[i]!;
      // A duplicate in this batch or in one still running shares the first prepare's answer.
      const running = this.#inflight.get(item.txId);
      if (running) {
        shared.push({ index: i, answer: running });
        continue;
      }
      let work: PrepareWork;
      try {
        work = this.#start(item);
      } catch (err) {
        // Thrown before any lock is requested (e.g. an unreadable stored branch): this item fails
        // alone, instead of rejecting the batch with the earlier items' locks and inflight entries orphaned.
        log({ event: 'prepare-start-failed', txId: item.txId, error: messageOf(err) });
        results[i] = itemResult(item, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
        continue;
      }
      let settle!: (r: BranchItemResult) => void;
      const answer = new Promise<BranchItemResult>((resolve) => (settle = resolve));
      this.#inflight.set(item.txId, answer);
      own.set(item.txId, { work, settle });
      shared.push({ index: i, answer });
    }

    const pending = [...own.values()];
    const preparedHere = new Set<string>();
    // Until this batch answers, its prepared branches' votes wait for its branches still waiting for locks.
    const batchWait = this.#options.batchWaits.open(preparedHere, () => pending.map((p) => p.work.txId));
    try {
      await this.#settle(pending, preparedHere);
    } finally {
      this.#options.batchWaits.close(batchWait);
    }
    for (const { index, answer } of shared) results[index] = await answer;
  }

  /** Writes every prepare of `pending` as soon as its locks settle, several in one transaction when they can. */
  async #settle(pending: { work: PrepareWork; settle(r: BranchItemResult): void }[], preparedHere: Set<string>): Promise<void> {
    const { locks } = this.#parts;
    await nextTurn();
    while (pending.length > 0) {
      const ready = pending.filter((p) => p.work.settled);
      if (ready.length === 0) {
        await Promise.race(pending.map((p) => p.work.whenSettled));
        await nextTurn();
        continue;
      }
      pending.splice(0, pending.length, ...pending.filter((p) => !p.work.settled));
      const answers = this.#flush(ready.map((p) => p.work));
      ready.forEach((p, k) => {
        this.#inflight.delete(p.work.txId);
        p.settle(answers[k]!);
        if (answers[k]!.status === ItemStatus.OK) preparedHere.add(p.work.txId);
      });
      // A prepare waiting for a key that a branch of THIS batch now holds prepared would wait in vain:
      // that holder's outcome cannot arrive before this batch answers. It loses at once instead.
      for (const p of pending) {
        if (locks.waitingOn(p.work.txId).some((key) => locks.holdersOf(key).some((holder) => preparedHere.has(holder)))) {
          locks.failWaits(p.work.txId, 'conflict');
        }
      }
    }
  }

  /** Everything up to the lock wait: stored answer, argument parsing, lock keys, deadline. */
  #start(item: BranchItem): PrepareWork {
    const { store, hooks, locks } = this.#parts;
    const work: PrepareWork = {
      txId: item.txId,
      operations: item.operations ?? [],
      deadline: item.deadline,
      parsed: [],
      locks: [],
      settled: false,
      whenSettled: Promise.resolve(),
    };
    const stored = store.branch(item.txId);
    if (stored) work.answer = answerFromStored(item.txId, stored);
    else if (work.operations.length === 0) work.refusal = { reason: 'TXM_BAD_REQUEST', message: 'prepare carries no operations' };
    else if (this.#deadlinePassed(work.deadline, Date.now())) work.refusal = { reason: ItemReasons.DEADLINE_PASSED };
    else {
      const parsed = hooks.parse(work.txId, work.operations);
      if ('refusal' in parsed) work.refusal = parsed.refusal;
      else {
        work.parsed = parsed.parsed;
        work.locks = parsed.locks;
      }
    }

    let acquisition = Promise.resolve();
    if (!work.answer && !work.refusal) {
      const budget = Math.min(this.#options.lockWaitMs, work.deadline === undefined ? Infinity : work.deadline + this.#options.clockSkewAllowanceMs - Date.now());
      const grace = this.#options.deadlock === DeadlockMode.WAIT_DIE ? this.#options.lockGraceMs : budget;
      acquisition = locks.acquireAll(work.locks, work.txId, budget, grace);
    }
    work.whenSettled = acquisition.then(
      () => {
        work.settled = true;
      },
      (err: unknown) => {
        work.settled = true;
        work.lockFailure = err instanceof LockWaitError ? err.failure : 'cancelled';
      },
    );
    return work;
  }

  /** One SQLite transaction for all ready branches; returns their answers in order. */
  #flush(works: PrepareWork[]): BranchItemResult[] {
    const { inTransaction, counters, log, locks } = this.#parts;
    const answers: BranchItemResult[] = works.map((w) => w.answer ?? itemResult(prepareOf(w.txId), ItemStatus.ERROR));
    const keep = new Set<string>();
    const toRun = works.map((w, k) => ({ w, k })).filter(({ w }) => !w.answer);
    if (toRun.length > 0) {
      if (this.#options.isClosed()) {
        for (const { w, k } of toRun) answers[k] = itemResult(prepareOf(w.txId), ItemStatus.ERROR, 'TXM_SHUTTING_DOWN');
      } else {
        try {
          inTransaction.immediate(() => {
            for (const { w, k } of toRun) {
              const { answer, holdsLocks } = this.#prepareOne(w);
              answers[k] = answer;
              if (holdsLocks) keep.add(w.txId);
            }
          });
          counters.prepareTransactions += 1;
          counters.preparesWritten += toRun.length;
          reachStep(ParticipantSteps.AFTER_PREPARE);
        } catch (err) {
          log({ event: 'prepare-transaction-failed', error: messageOf(err) });
          keep.clear();
          for (const { w, k } of toRun) answers[k] = itemResult(prepareOf(w.txId), ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
        }
      }
    }
    // Only a branch that is durably prepared keeps its keys; every other one frees them now.
    for (const { w } of toRun) if (!keep.has(w.txId)) locks.release(w.txId);
    return answers;
  }

  #prepareOne(w: PrepareWork): { answer: BranchItemResult; holdsLocks: boolean } {
    const { store, hooks, inSavepoint, log } = this.#parts;
    const item = prepareOf(w.txId);
    const now = Date.now();
    // A rollback may have landed while this prepare waited for its locks.
    const stored = store.branch(w.txId);
    if (stored) return { answer: answerFromStored(w.txId, stored), holdsLocks: stored.state === 'prepared' };

    const refuse = (reason: string, message?: string) => {
      store.recordVotedNo(w.txId, reason, message, w.operations, now);
      return { answer: itemResult(item, ItemStatus.NO, reason, message), holdsLocks: false };
    };
    if (w.refusal) return refuse(w.refusal.reason, w.refusal.message);
    if (this.#deadlinePassed(w.deadline, now)) return refuse(ItemReasons.DEADLINE_PASSED);
    if (w.lockFailure === 'timeout') return refuse(ItemReasons.LOCK_TIMEOUT, `a business key stayed locked for more than ${this.#options.lockWaitMs} ms`);
    if (w.lockFailure === 'conflict') {
      return refuse(ItemReasons.LOCK_CONFLICT, 'another transaction holds a business key this branch needs; retry the transaction');
    }
    if (w.lockFailure === 'cancelled') {
      // Cancelled without a stored rollback: this participant is closing. Decide nothing.
      return { answer: itemResult(item, ItemStatus.ERROR, 'TXM_SHUTTING_DOWN'), holdsLocks: false };
    }
    try {
      inSavepoint(() => {
        store.recordPrepared(w.txId, w.operations, w.locks, now);
        hooks.prepare(w.txId, w.operations, w.parsed, now);
      });
    } catch (err) {
      if (err instanceof BusinessRefusal) return refuse(err.reason, err.message);
      log({ event: 'prepare-failed', txId: w.txId, error: messageOf(err) });
      return refuse(ItemReasons.PREPARE_FAILED, messageOf(err));
    }
    return { answer: itemResult(item, ItemStatus.OK), holdsLocks: true };
  }
}
