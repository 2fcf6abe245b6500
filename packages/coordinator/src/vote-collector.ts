/**
 * Phase one: sends every branch its prepare (through the scheduler's lane of its service, retrying
 * transient failures with backoff inside the branch's deadline) and counts the votes. All yes → commit;
 * the first no (or a branch that gave up) → abort at once; the deadline → abort "TIMEOUT".
 * Nothing here writes anything durable.
 */
import { carrierOf } from '@txmesh/client';
import { BranchAction, BranchState, Reason, Vote, type BeginTransactionRequest, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import { backoffDelayMs } from './backoff.ts';
import type { BatchingDispatcher } from './batching-dispatcher.ts';
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

  constructor(parts: VoteCollectorParts) {
    this.#parts = parts;
  }

  /** Sends the prepares (the one expected to take longest first) and resolves with the verdict. */
  collect(tx: LiveTx, request: BeginTransactionRequest, deadline: number): Promise<Verdict> {
    const count = new VoteCount(tx, deadline);
    for (const i of this.#slowestFirst(tx.branches)) {
      const branch = tx.branches[i]!;
      void this.#prepare(tx, i, this.#prepareDeadline(branch.service, tx.createdAt, deadline, request.prepareTimeoutMs), count);
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
   * Sends a prepare and retries transient failures, then hands the vote to the count; never rejects. Each
   * attempt first takes a slot of the service's scheduler lane (oldest transaction first); the slot's latency
   * feeds the service's adaptive limit. One span for every attempt; its context travels in each item. One async
   * function per branch, the vote handed on by a call: a shard holds these for every prepare in flight.
   */
  async #prepare(tx: LiveTx, index: number, deadline: number, count: VoteCount): Promise<void> {
    const branch = tx.branches[index]!;
    const span = startBranchSpan(tx.trace, tx.txId, branch.service, BranchAction.PREPARE);
    const trace = carrierOf(span);
    const voted = (outcome: VoteOutcome): void => {
      endBranchSpan(span, branch.attempts, outcome);
      count.note(index, outcome);
    };
    const { dispatcher, registry, scheduler, sleeper, options, isClosing } = this.#parts;
    let last: Failure = { reason: Reason.UNREACHABLE };
    let deferrals = 0;
    let reasking = false;
    for (let n = 1; ; n++) {
      // A deferred prepare waits for a business lock at the participant, not for the service's capacity:
      // its re-ask takes no scheduler slot and its wait is no latency sample (it would shrink the limit).
      // Most prepares find a free slot: no promise and no turn for them, and no closure to ask whether they were withdrawn.
      const release = reasking
        ? IGNORED_SLOT
        : (scheduler.tryAcquire(branch.service) ?? (await scheduler.acquire(branch.service, tx.createdAt, () => tx.decided || isClosing() || Date.now() >= deadline)));
      // Withdrawn while queued: nothing was sent for this attempt.
      if (!release) return voted(tx.decided || isClosing() ? { vote: Vote.NONE, ...last } : { vote: Vote.NONE, reason: Reason.TIMEOUT });
      // Decided while the slot was being granted: sending now would prepare a branch nobody rolls back.
      if (tx.decided || isClosing()) {
        release(0, false);
        return voted({ vote: Vote.NONE, ...last });
      }
      const sentAt = performance.now();
      let answered = false;
      try {
        const sidecarUrl = registry.sidecarUrl(branch.service);
        if (sidecarUrl === undefined) throw new SidecarUnreachableError(`no sidecar address known for ${branch.service}`);
        branch.attempts += 1;
        branch.prepareSent = true;
        const item: BranchItem = { action: BranchAction.PREPARE, txId: tx.txId, service: branch.service, operations: branch.operations, deadline };
        if (trace !== undefined) item.trace = trace;
        // Re-asked alone: in a batch with other items it would be deferred again as soon as they answer.
        const result: BranchItemResult = await dispatcher.submit(sidecarUrl, item, Math.max(1, deadline - Date.now()), reasking ? ALONE : undefined).result;
        answered = true;
        if (result.status === 'ok') return voted(YES);
        if (result.status === 'no') return voted(withDetails({ vote: Vote.NO, reason: result.reason ?? Reason.REFUSED }, result.message));
        last = withDetails({ reason: result.reason ?? Reason.ERROR }, result.message);
        if (result.reason === Reason.PREPARE_DEFERRED) deferrals += 1;
        reasking = result.reason === Reason.PREPARE_DEFERRED;
      } catch (err) {
        const failure = branchCallErrorOf(err);
        last = { reason: failure.reason, details: failure.message };
        reasking = false;
      } finally {
        release(performance.now() - sentAt, answered);
      }
      if (last.reason === Reason.PREPARE_DEFERRED) {
        // Not a failed attempt: the participant still waits for a lock and answers the next ask with the
        // vote. Ask again at once (alone, so it is answered when the lock is granted), then a little later
        // each time should it be deferred again (the deadline bounds the asking).
        n -= 1;
        last = { reason: Reason.TIMEOUT };
        if (tx.decided || isClosing() || Date.now() >= deadline) break;
        if (deferrals > 1) await sleeper.sleep(Math.min(deferrals, 20));
        continue;
      }
      if (tx.decided || isClosing() || n >= options.maxPrepareAttempts) break;
      const wait = backoffDelayMs(options.prepareBackoff, n, options.random);
      if (Date.now() + wait >= deadline) return voted(withDetails({ vote: Vote.NONE, reason: Reason.TIMEOUT }, last.details));
      await sleeper.sleep(wait);
      if (tx.decided || isClosing()) break;
    }
    return voted({ vote: Vote.NONE, ...last });
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
