/**
 * Phase one: sends every branch its prepare (through the scheduler's lane of its service, retrying
 * transient failures with backoff inside the branch's deadline) and counts the votes. All yes → commit;
 * the first no (or a branch that gave up) → abort at once; the deadline → abort "TIMEOUT".
 * Nothing here writes anything durable.
 */
import { carrierOf } from '@txmesh/client';
import { BranchAction, BranchState, Reason, Vote, type BeginTransactionRequest, type BranchItem, type BranchItemResult, type TraceCarrier } from '@txmesh/protocol';
import type { Span } from '@opentelemetry/api';
import { backoffDelayMs } from './backoff.ts';
import type { BatchingDispatcher, ItemAnswer } from './batching-dispatcher.ts';
import { SidecarUnreachableError, branchCallErrorOf } from './branch-errors.ts';
import type { Branch, LiveTx } from './live-transaction.ts';
import type { ResolvedManagerOptions } from './manager-options.ts';
import type { Release, Scheduler } from './scheduler.ts';
import type { ServiceRegistry } from './service-registry.ts';
import type { Sleeper } from './sleeper.ts';
import { CoordinatorSteps, reachStep } from './steps.ts';
import { endBranchSpan, startBranchSpan } from './transaction-spans.ts';

/** What a prepare that took no scheduler slot gives back: nothing. */
const IGNORED_SLOT: Release = () => {};
const YES: VoteOutcome = { vote: Vote.YES };
/** A prepare's `last` before any attempt failed: every run starts with this one object. */
const NO_ATTEMPT_YET: Failure = Object.freeze({ reason: Reason.UNREACHABLE });
/** A re-ask goes alone: in a batch with other items it would be deferred again as soon as they answer. */
const ALONE = { alone: true } as const;

export type Verdict = { commit: true } | { commit: false; reason: string; details?: string };

interface VoteOutcome {
  vote: Vote;
  reason?: string;
  details?: string;
}

/** Why the latest attempt did not bring a vote. */
interface Failure {
  reason: string;
  details?: string;
}

export interface VoteCollectorParts {
  dispatcher: BatchingDispatcher;
  registry: ServiceRegistry;
  scheduler: Scheduler;
  sleeper: Sleeper;
  options: Pick<ResolvedManagerOptions, 'maxPrepareAttempts' | 'prepareBackoff' | 'random' | 'serviceTimeouts'>;
  isClosing: () => boolean;
}

function withDetails<T extends object>(target: T, details: string | undefined): T & { details?: string } {
  return details === undefined ? target : { ...target, details };
}

export class VoteCollector {
  readonly #parts: VoteCollectorParts;
  /** Where a first attempt that brought no vote goes on: one function for the collector, not one per prepare. */
  readonly #again = (run: PrepareRun): void => void this.#retry(run, true);

  constructor(parts: VoteCollectorParts) {
    this.#parts = parts;
  }

  /** Sends the prepares (the one expected to take longest first) and resolves with the verdict. */
  collect(tx: LiveTx, request: BeginTransactionRequest, deadline: number): Promise<Verdict> {
    const count = new VoteCount(tx, deadline);
    for (const i of this.#slowestFirst(tx.branches)) {
      const branch = tx.branches[i]!;
      this.#prepare(tx, i, this.#prepareDeadline(branch.service, tx.createdAt, deadline, request.prepareTimeoutMs), count);
    }
    return count.verdict;
  }

  /**
   * The moment this branch's vote must be in: the transaction deadline, tightened by the request's
   * prepareTimeoutMs and by the service's own. A vote still missing then counts as "no" (TIMEOUT).
   */
  #prepareDeadline(service: string, createdAt: number, txDeadline: number, requestPrepareMs: number | undefined): number {
    let deadline = txDeadline;
    if (requestPrepareMs !== undefined) deadline = Math.min(deadline, createdAt + requestPrepareMs);
    const own = this.#parts.options.serviceTimeouts[service]?.prepareTimeoutMs;
    if (own !== undefined) deadline = Math.min(deadline, createdAt + own);
    return deadline;
  }

  #slowestFirst(branches: readonly Branch[]): number[] {
    const order = branches.map((_, i) => i);
    const scheduler = this.#parts.scheduler;
    // Resource-blind (scheduler off): request order.
    if (branches.length < 2 || !scheduler.enabled) return order;
    const expected = branches.map((b) => scheduler.expectedLatencyMs(b.service) ?? 0);
    // Insertion sort, stable like Array.prototype.sort but without its working storage: a handful of branches.
    for (let i = 1; i < order.length; i++) {
      const index = order[i]!;
      let j = i - 1;
      while (j >= 0 && expected[order[j]!]! < expected[index]!) {
        order[j + 1] = order[j]!;
        j -= 1;
      }
      order[j + 1] = index;
    }
    return order;
  }

  /**
   * Sends a prepare and retries transient failures, then hands the vote to the count; never throws. Each attempt
   * first takes a slot of the service's scheduler lane (oldest transaction first); the slot's latency feeds the
   * service's adaptive limit. One span for every attempt; its context travels in each item. The first attempt,
   * when its lane has a free slot, is sent and answered by plain callbacks: most prepares end there, and an async
   * function per branch (its frame holds every local of the retry loop) was the largest share of what a busy shard
   * allocated per transaction (docs/benchmarks.md). Whatever is left (a queued slot, a failure, a deferral)
   * continues in #retry.
   */
  #prepare(tx: LiveTx, index: number, deadline: number, count: VoteCount): void {
    const run = new PrepareRun(tx, index, deadline, count, this.#again);
    const { dispatcher, scheduler, isClosing } = this.#parts;
    const service = run.branch.service;
    // Most prepares find a free slot: no promise and no turn for them, and no closure to ask whether they were withdrawn.
    const release = scheduler.tryAcquire(service);
    if (release === undefined) return void this.#retry(run, false);
    // Decided while the slot was being granted: sending now would prepare a branch nobody rolls back.
    if (tx.decided || isClosing()) {
      release(0, false);
      return run.voted({ vote: Vote.NONE, ...run.last });
    }
    let sidecarUrl: string;
    try {
      sidecarUrl = this.#sidecarOf(service);
    } catch (err) {
      run.failed(err);
      release(0, false);
      return void this.#retry(run, true);
    }
    // The answer comes back as a call to the run (FirstAttempt), not through a promise and two callbacks.
    run.firstAttempt(release);
    dispatcher.send(sidecarUrl, run.item(), Math.max(1, deadline - Date.now()), run);
  }

  #sidecarOf(service: string): string {
    const sidecarUrl = this.#parts.registry.sidecarUrl(service);
    if (sidecarUrl === undefined) throw new SidecarUnreachableError(`no sidecar address known for ${service}`);
    return sidecarUrl;
  }

  /**
   * The rest of a prepare's attempts. `afterAttempt`: one attempt was made and brought no vote (its outcome is in
   * `run`), so first decide whether and when to try again; else start with an attempt.
   */
  async #retry(run: PrepareRun, afterAttempt: boolean): Promise<void> {
    const { tx, branch, deadline } = run;
    const { dispatcher, scheduler, sleeper, options, isClosing } = this.#parts;
    for (let attempted = afterAttempt; ; attempted = true) {
      if (attempted) {
        if (run.last.reason === Reason.PREPARE_DEFERRED) {
          // Not a failed attempt: the participant still waits for a lock and answers the next ask with the
          // vote. Ask again at once (alone, so it is answered when the lock is granted), then a little later
          // each time should it be deferred again (the deadline bounds the asking).
          run.last = { reason: Reason.TIMEOUT };
          if (tx.decided || isClosing() || Date.now() >= deadline) break;
          if (run.deferrals > 1) await sleeper.sleep(Math.min(run.deferrals, 20));
        } else {
          if (tx.decided || isClosing() || run.n >= options.maxPrepareAttempts) break;
          const wait = backoffDelayMs(options.prepareBackoff, run.n, options.random);
          if (Date.now() + wait >= deadline) return run.voted(withDetails({ vote: Vote.NONE, reason: Reason.TIMEOUT }, run.last.details));
          await sleeper.sleep(wait);
          if (tx.decided || isClosing()) break;
          run.n += 1;
        }
      }
      // A deferred prepare waits for a business lock at the participant, not for the service's capacity:
      // its re-ask takes no scheduler slot and its wait is no latency sample (it would shrink the limit).
      const release = run.reasking
        ? IGNORED_SLOT
        : (scheduler.tryAcquire(branch.service) ?? (await scheduler.acquire(branch.service, tx.createdAt, () => tx.decided || isClosing() || Date.now() >= deadline)));
      // Withdrawn while queued: nothing was sent for this attempt.
      if (!release) return run.voted(tx.decided || isClosing() ? { vote: Vote.NONE, ...run.last } : { vote: Vote.NONE, reason: Reason.TIMEOUT });
      // Decided while the slot was being granted: sending now would prepare a branch nobody rolls back.
      if (tx.decided || isClosing()) {
        release(0, false);
        return run.voted({ vote: Vote.NONE, ...run.last });
      }
      const sentAt = performance.now();
      let answered = false;
      try {
        // Re-asked alone: in a batch with other items it would be deferred again as soon as they answer.
        const result = await dispatcher.submit(this.#sidecarOf(branch.service), run.item(), Math.max(1, deadline - Date.now()), run.reasking ? ALONE : undefined).result;
        answered = true;
        if (run.answer(result)) return;
      } catch (err) {
        run.noAnswer(err);
      } finally {
        release(performance.now() - sentAt, answered);
      }
    }
    return run.voted({ vote: Vote.NONE, ...run.last });
  }
}

/**
 * One branch's prepare: where its vote goes, its span, and the state of its attempts. It is also the ItemAnswer of
 * its first attempt (firstAttempt, then the dispatcher calls answered or failed once).
 */
class PrepareRun implements ItemAnswer {
  readonly tx: LiveTx;
  readonly branch: Branch;
  readonly deadline: number;
  readonly #index: number;
  readonly #count: VoteCount;
  readonly #span: Span;
  readonly #trace: TraceCarrier | undefined;
  readonly #again: (run: PrepareRun) => void;
  /** The first attempt's scheduler slot and when it was sent, until its answer releases the slot. */
  #release: Release | undefined;
  #sentAt = 0;
  /** Attempts made (a deferral is not one). */
  n = 1;
  /** Why the latest attempt did not bring a vote (replaced, never changed in place: the first is shared). */
  last: Failure = NO_ATTEMPT_YET;
  deferrals = 0;
  /** The latest attempt was deferred: the next one is a re-ask, sent alone and without a slot. */
  reasking = false;

  constructor(tx: LiveTx, index: number, deadline: number, count: VoteCount, again: (run: PrepareRun) => void) {
    this.tx = tx;
    this.branch = tx.branches[index]!;
    this.deadline = deadline;
    this.#index = index;
    this.#count = count;
    this.#again = again;
    this.#span = startBranchSpan(tx.trace, tx.txId, this.branch.service, BranchAction.PREPARE);
    this.#trace = carrierOf(this.#span);
  }

  /** The first attempt is about to be sent holding `release`: its answer (answered / failed) frees it. */
  firstAttempt(release: Release): void {
    this.#release = release;
    this.#sentAt = performance.now();
  }

  /** ItemAnswer of the first attempt: the vote, or another attempt (VoteCollector.#retry). */
  answered(result: BranchItemResult): void {
    const voted = this.answer(result);
    this.#releaseFirst(true);
    if (!voted) this.#again(this);
  }

  /** ItemAnswer of the first attempt: it brought no answer; the next attempt decides what follows. */
  failed(err: unknown): void {
    this.noAnswer(err);
    this.#releaseFirst(false);
    this.#again(this);
  }

  #releaseFirst(answered: boolean): void {
    const release = this.#release;
    this.#release = undefined;
    release?.(performance.now() - this.#sentAt, answered);
  }

  /** The item of the next attempt, counted as sent. */
  item(): BranchItem {
    const branch = this.branch;
    branch.attempts += 1;
    branch.prepareSent = true;
    const item: BranchItem = { action: BranchAction.PREPARE, txId: this.tx.txId, service: branch.service, operations: branch.operations, deadline: this.deadline };
    if (this.#trace !== undefined) item.trace = this.#trace;
    return item;
  }

  /** An attempt's answer: true when it is the vote (handed on), false when it asks for another attempt. */
  answer(result: BranchItemResult): boolean {
    if (result.status === 'ok') {
      this.voted(YES);
      return true;
    }
    if (result.status === 'no') {
      this.voted(withDetails({ vote: Vote.NO, reason: result.reason ?? Reason.REFUSED }, result.message));
      return true;
    }
    this.last = withDetails({ reason: result.reason ?? Reason.ERROR }, result.message);
    if (result.reason === Reason.PREPARE_DEFERRED) this.deferrals += 1;
    this.reasking = result.reason === Reason.PREPARE_DEFERRED;
    return false;
  }

  /** An attempt brought no answer (unreachable, timed out, a bad answer). */
  noAnswer(err: unknown): void {
    const failure = branchCallErrorOf(err);
    this.last = { reason: failure.reason, details: failure.message };
    this.reasking = false;
  }

  voted(outcome: VoteOutcome): void {
    endBranchSpan(this.#span, this.branch.attempts, outcome);
    this.#count.note(this.#index, outcome);
  }
}

/**
 * Counts one transaction's votes as each prepare hands its own in. All yes: commit. The first no (or a branch
 * that gave up), a deadlock victim's interrupt, or the deadline: abort at once; later votes change nothing.
 */
class VoteCount {
  readonly verdict: Promise<Verdict>;
  readonly #tx: LiveTx;
  #resolve!: (verdict: Verdict) => void;
  #yes = 0;
  #done = false;
  #counting = false;
  readonly #timer: NodeJS.Timeout;

  constructor(tx: LiveTx, deadline: number) {
    this.#tx = tx;
    this.verdict = new Promise<Verdict>((resolve) => (this.#resolve = resolve));
    tx.interrupt = (reason) => {
      this.#startCounting();
      this.#finish({ commit: false, reason });
    };
    this.#timer = setTimeout(() => {
      this.#startCounting();
      this.#finish({ commit: false, reason: Reason.TIMEOUT });
    }, Math.max(0, deadline - Date.now()));
  }

  /** Branch `index` has its outcome. */
  note(index: number, outcome: VoteOutcome): void {
    const branch = this.#tx.branches[index];
    if (this.#done || !branch) return;
    this.#startCounting();
    branch.vote = outcome.vote;
    if (outcome.vote === Vote.YES) {
      branch.state = BranchState.PREPARED;
      this.#yes += 1;
      if (this.#yes === this.#tx.branches.length) this.#finish({ commit: true });
      else reachStep(CoordinatorSteps.BETWEEN_VOTES);
      return;
    }
    branch.state = BranchState.VOTED_NO;
    if (outcome.reason !== undefined) branch.reason = outcome.reason;
    if (outcome.details !== undefined) branch.details = outcome.details;
    branch.refused = outcome.vote === Vote.NO;
    this.#finish(withDetails({ commit: false as const, reason: outcome.reason ?? Reason.REFUSED }, outcome.details));
  }

  /**
   * The crash point fires when the first answer (or the deadline) arrives and before it is counted: by then
   * prepares have demonstrably reached the sidecars, and nothing is decided.
   */
  #startCounting(): void {
    if (this.#counting) return;
    this.#counting = true;
    reachStep(CoordinatorSteps.AFTER_PREPARES_SENT);
  }

  #finish(verdict: Verdict): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    delete this.#tx.interrupt;
    this.#resolve(verdict);
  }
}
