/**
 * Prepare items of a batch, from arrival to vote:
 * 1. start: a stored branch answers at once (duplicate, prepare after rollback); otherwise the arguments
 *    are parsed, the deadline checked and the branch's keys requested (wait-die, bounded by lockWaitMs
 *    and the deadline);
 * 2. flush: every branch whose locks are settled is written by the storage adapter (SQLite: one
 *    transaction, one savepoint each, so one branch's refusal does not undo another's; the rules are in
 *    branch-rules.ts); its barrier rows, tentative change, lock rows and vote are durable before the
 *    answer leaves. Only a branch that prepared keeps its keys.
 * A duplicate arriving while the first is under way shares its answer.
 */
import { BranchAction, DEFAULT_LIMITS, DeadlockMode, ItemStatus, txTimeOf, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import type { BatchWaits } from './batch-waits.ts';
import { deadlinePassed } from './branch-rules.ts';
import type { BranchRecord } from './barrier-store.ts';
import { ItemReasons, answerFromStored, itemResult, messageOf } from './item-results.ts';
import { LockWaitError, mergeLockRequests } from './lock-manager.ts';
import type { ParticipantParts } from './participant-parts.ts';
import { ParticipantSteps, reachStep } from './steps.ts';
import type { PrepareOutcome, PrepareWrite, Written } from './storage-adapter.ts';
import { isThenable } from './steps-runner.ts';

export interface PreparePipelineOptions {
  lockWaitMs: number;
  lockGraceMs: number;
  deadlock: DeadlockMode;
  /** Where a batch's hidden waits (prepared → still waiting in the same batch) are published. */
  batchWaits: BatchWaits;
  clockSkewAllowanceMs: number;
  isClosed: () => boolean;
}

/** How far ahead of this clock a transaction id's start time may be (beyond the skew allowance). */
const FUTURE_ID_ALLOWANCE_MS = 60_000;

/** One prepare branch of a batch, from its arrival to its vote. */
export interface PrepareWork extends PrepareWrite {
  /** Answer known from the stored branch before doing anything (duplicate, prepare after rollback). */
  answer?: BranchItemResult;
  settled: boolean;
  whenSettled: Promise<void>;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const prepareOf = (txId: string) => ({ txId, action: BranchAction.PREPARE });

/** One item of a batch being answered: its own prepare's answer, or the one it shares. */
interface BatchEntry {
  index: number;
  txId: string;
  answer: Promise<BranchItemResult>;
  /** Its result is in (a vote, an error, or deferred). */
  done: boolean;
}

const deferred = (txId: string): BranchItemResult =>
  itemResult(prepareOf(txId), ItemStatus.ERROR, ItemReasons.PREPARE_DEFERRED, 'still waiting for a business key while the rest of its batch is answered; ask again for the vote');

export class PreparePipeline {
  readonly #parts: ParticipantParts;
  readonly #options: PreparePipelineOptions;
  /** Prepares under way, by txId: a duplicate arriving meanwhile shares the first one's answer. */
  readonly #inflight = new Map<string, Promise<BranchItemResult>>();

  constructor(parts: ParticipantParts, options: PreparePipelineOptions) {
    this.#parts = parts;
    this.#options = options;
  }

  /**
   * Why a prepare's timing cannot come from a coordinator, or undefined. Its locks are held until its
   * outcome, and wait-die favours the oldest id: a prepare without a deadline, with one beyond the longest
   * transaction, or with an id from far in the past or future could hold keys for good and win every conflict.
   */
  #implausibleTiming(item: BranchItem, now: number): PrepareWork['refusal'] {
    const began = txTimeOf(item.txId) ?? 0;
    const skew = this.#options.clockSkewAllowanceMs;
    if (item.deadline === undefined) return { reason: 'TXM_BAD_TIMEOUT', message: 'a prepare must carry its deadline' };
    if (item.deadline - began > DEFAULT_LIMITS.maxTimeoutMs) {
      return { reason: 'TXM_BAD_TIMEOUT', message: `the deadline lies more than ${DEFAULT_LIMITS.maxTimeoutMs} ms after the transaction began` };
    }
    if (began > now + skew + FUTURE_ID_ALLOWANCE_MS) return { reason: 'TXM_BAD_TX_ID', message: 'the transaction id names a start time in the future' };
    if (began + DEFAULT_LIMITS.maxTimeoutMs + skew < now) return { reason: ItemReasons.DEADLINE_PASSED };
    return undefined;
  }

  /**
   * Answers items[i] for every i of `indices` into results[i]. The batch answers once every item has its
   * answer or is deferred: as soon as one item has its answer, every item still waiting for a lock is
   * answered PREPARE_DEFERRED instead, keeps waiting here, and shares its answer with the coordinator's next
   * ask. So a vote never waits for another transaction's lock wait: a yes held back behind a waiting
   * neighbour would be a wait-for edge no lock shows (its holder's outcome cannot arrive before the batch
   * answers), and batches joined by such edges deadlock. `othersAnswered`: other items of the batch have their
   * answers already (the prepares a mixed batch wrote with its outcomes, `prepared` those that voted yes), so
   * whatever waits for a lock here is deferred at once.
   */
  async run(items: readonly BranchItem[], indices: readonly number[], results: BranchItemResult[], othersAnswered?: { prepared: readonly string[] }): Promise<void> {
    const { log } = this.#parts;
    const own: { work: PrepareWork; settle(r: BranchItemResult): void }[] = [];
    const entries: BatchEntry[] = [];
    for (const i of indices) {
      const item = items[i]!;
      // A duplicate in this batch or in one still running (a deferred prepare asked again) shares the first one's answer.
      const running = this.#inflight.get(item.txId);
      if (running) {
        entries.push({ index: i, txId: item.txId, answer: running, done: false });
        continue;
      }
      let work: PrepareWork;
      try {
        const looked = this.#parts.storage.branch(item.txId);
        // SQLite answers at once: the locks of a batch are requested in item order without a turn between.
        work = this.#start(item, isThenable(looked) ? await looked : looked);
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
      own.push({ work, settle });
      entries.push({ index: i, txId: item.txId, answer, done: false });
    }
    if (entries.length === 0) return;

    // The writes go on after this batch answers when some of its prepares were deferred.
    this.#settle(own).catch((err: unknown) => {
      log({ level: 'error', event: 'prepare-settle-failed', error: messageOf(err) });
      for (const p of own) {
        this.#inflight.delete(p.work.txId);
        this.#parts.locks.release(p.work.txId);
        p.settle(itemResult(prepareOf(p.work.txId), ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err)));
      }
    });

    const preparedHere = new Set<string>(othersAnswered?.prepared);
    // Until this batch answers, its prepared branches' votes wait for its branches still waiting for locks.
    const batchWait = this.#options.batchWaits.open(preparedHere, () => entries.filter((e) => !e.done).map((e) => e.txId));
    try {
      await new Promise<void>((allAnswered) => {
        let left = entries.length;
        const finish = (e: BatchEntry, result: BranchItemResult): void => {
          if (e.done) return;
          e.done = true;
          results[e.index] = result;
          if (--left === 0) allAnswered();
        };
        // One scan per burst of answers (they settle together, one microtask each), not one per answer:
        // O(n) for a batch of n instead of O(n²).
        let deferQueued = false;
        const deferBlocked = (): void => {
          deferQueued = false;
          for (const e of entries) if (!e.done && this.#parts.locks.waitingOn(e.txId).length > 0) finish(e, deferred(e.txId));
        };
        for (const e of entries) {
          void e.answer.then((result) => {
            if (e.done) return;
            if (result.status === ItemStatus.OK) preparedHere.add(e.txId);
            finish(e, result);
            if (left > 0 && !deferQueued) {
              deferQueued = true;
              queueMicrotask(deferBlocked);
            }
          });
        }
        if (othersAnswered !== undefined && !deferQueued) {
          deferQueued = true;
          queueMicrotask(deferBlocked);
        }
      });
    } finally {
      this.#options.batchWaits.close(batchWait);
    }
  }

  /** Writes every prepare of `pending` as soon as its locks settle, several in one transaction when they can. */
  async #settle(pending: { work: PrepareWork; settle(r: BranchItemResult): void }[]): Promise<void> {
    await nextTurn();
    while (pending.length > 0) {
      const ready = pending.filter((p) => p.work.settled);
      if (ready.length === 0) {
        await Promise.race(pending.map((p) => p.work.whenSettled));
        await nextTurn();
        continue;
      }
      pending.splice(0, pending.length, ...pending.filter((p) => !p.work.settled));
      const flushed = this.#flush(ready.map((p) => p.work));
      const answers = isThenable(flushed) ? await flushed : flushed;
      ready.forEach((p, k) => {
        this.#inflight.delete(p.work.txId);
        p.settle(answers[k]!);
      });
    }
  }

  /** Everything up to the lock wait: stored answer, argument parsing, lock keys, deadline; then the wait. */
  #start(item: BranchItem, stored: BranchRecord | undefined): PrepareWork {
    const { locks } = this.#parts;
    const work = this.#plan(item, stored);
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

  /** Stored answer, deadline and timing checks, arguments and lock keys: what a prepare is before its locks. */
  #plan(item: BranchItem, stored: BranchRecord | undefined): PrepareWork {
    const work: PrepareWork = {
      txId: item.txId,
      operations: item.operations ?? [],
      deadline: item.deadline,
      parsed: [],
      locks: [],
      settled: false,
      whenSettled: Promise.resolve(),
    };
    const now = Date.now();
    // No deadline, one no coordinator would give, or an id from a time no live transaction has: refused.
    const implausible = stored ? undefined : this.#implausibleTiming(item, now);
    if (stored) work.answer = answerFromStored(item.txId, stored);
    else if (work.operations.length === 0) work.refusal = { reason: 'TXM_BAD_REQUEST', message: 'prepare carries no operations' };
    else if (implausible) work.refusal = implausible;
    else if (deadlinePassed(work.deadline, now, this.#options.clockSkewAllowanceMs)) work.refusal = { reason: ItemReasons.DEADLINE_PASSED };
    else {
      const parsed = this.#parts.operations.parse(work.txId, work.operations);
      if ('refusal' in parsed) work.refusal = parsed.refusal;
      else {
        work.parsed = parsed.parsed;
        work.locks = parsed.locks;
      }
    }
    return work;
  }

  /**
   * The prepares of a batch that also carries outcomes, planned to be written in the outcomes' transaction
   * (see mixed-batch.ts), one per index of `indices`. Undefined for a prepare that must take the pipeline
   * after the outcomes are written: one under way already (a deferred prepare asked again), named a second
   * time, with an outcome in the same batch (that outcome must be applied before its first look), or whose
   * stored branch could not be read. Undefined for all when the participant is closing. The storage must
   * answer at once.
   */
  planWithOutcomes(items: readonly BranchItem[], indices: readonly number[], decided: ReadonlySet<string>): (PrepareWork | undefined)[] | undefined {
    if (this.#options.isClosed()) return undefined;
    const named = new Set<string>();
    return indices.map((i) => {
      const txId = items[i]!.txId;
      if (this.#inflight.has(txId) || decided.has(txId) || named.has(txId)) return undefined;
      named.add(txId);
      let stored: BranchRecord | undefined;
      try {
        const looked = this.#parts.storage.branch(txId);
        if (isThenable(looked)) throw new TypeError('a storage that writes outcomes and prepares together must answer at once');
        stored = looked;
      } catch (err) {
        this.#parts.log({ event: 'prepare-start-failed', txId, error: messageOf(err) });
        return undefined;
      }
      const work = this.#plan(items[i]!, stored);
      // Nothing runs between this look-up and the write but the batch's outcomes, none of them this branch's.
      if (stored === undefined) work.absentSincePlan = true;
      return work;
    });
  }

  /**
   * After the transaction that wrote `works` with the batch's outcomes is durable (`outcomes`: one per work
   * without a stored answer, in order): every answer goes into results, and each branch that prepared takes
   * its keys, which their holders' outcomes, applied in the same transaction, have just released.
   */
  settleWritten(indices: readonly number[], works: readonly PrepareWork[], outcomes: readonly PrepareOutcome[], results: BranchItemResult[]): void {
    const { locks, counters } = this.#parts;
    let written = 0;
    indices.forEach((i, n) => {
      const work = works[n]!;
      if (work.answer) {
        results[i] = work.answer;
        return;
      }
      const outcome = outcomes[written++]!;
      results[i] = outcome.answer;
      if (outcome.holdsLocks) for (const { key, mode } of mergeLockRequests(work.locks)) locks.hold(key, work.txId, mode);
    });
    counters.preparesWritten += written;
    if (written > 0) reachStep(ParticipantSteps.AFTER_PREPARE);
  }

  /** One write of the storage for all ready branches; returns their answers in order. */
  #flush(works: PrepareWork[]): BranchItemResult[] | Promise<BranchItemResult[]> {
    const answers: BranchItemResult[] = works.map((w) => w.answer ?? itemResult(prepareOf(w.txId), ItemStatus.ERROR));
    const toRun = works.map((w, k) => ({ w, k })).filter(({ w }) => !w.answer);
    if (toRun.length === 0) return answers;
    if (this.#options.isClosed()) {
      for (const { w, k } of toRun) answers[k] = itemResult(prepareOf(w.txId), ItemStatus.ERROR, 'TXM_SHUTTING_DOWN');
      this.#releaseUnless(toRun.map(({ w }) => w), new Set());
      return answers;
    }
    const { storage, rules, counters, log } = this.#parts;
    const keep = new Set<string>();
    const record = (written: Written<PrepareOutcome>): BranchItemResult[] => {
      toRun.forEach(({ w, k }, n) => {
        const outcome = written.results[n]!;
        answers[k] = outcome.answer;
        if (outcome.holdsLocks) keep.add(w.txId);
      });
      counters.prepareTransactions += written.transactions;
      counters.preparesWritten += toRun.length;
      reachStep(ParticipantSteps.AFTER_PREPARE);
      this.#releaseUnless(toRun.map(({ w }) => w), keep);
      return answers;
    };
    const failed = (err: unknown): BranchItemResult[] => {
      log({ event: 'prepare-transaction-failed', error: messageOf(err) });
      for (const { w, k } of toRun) answers[k] = itemResult(prepareOf(w.txId), ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
      this.#releaseUnless(toRun.map(({ w }) => w), new Set());
      return answers;
    };
    try {
      const written = storage.writePrepares(toRun.map(({ w }) => w), rules);
      if (isThenable(written)) return Promise.resolve(written).then(record, failed);
      return record(written);
    } catch (err) {
      return failed(err);
    }
  }

  /** Only a branch that is durably prepared keeps its keys; every other one frees them now. */
  #releaseUnless(works: readonly PrepareWork[], keep: ReadonlySet<string>): void {
    for (const w of works) if (!keep.has(w.txId)) this.#parts.locks.release(w.txId);
  }
}
