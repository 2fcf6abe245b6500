/**
 * Phase two: delivers a decided transaction's commit or rollback to its branches in the background and
 * retries each one with capped, jittered backoff until it is acknowledged (rule 4 of ARCHITECTURE.md).
 * A warn line every `warnEvery` failed attempts; the branch's last failure stays on it for the in-doubt list.
 */
import { carrierOf } from '@txmesh/client';
import { BranchAction, BranchState, Reason, traceLogFieldsOf, type BranchItem, type BranchItemResult, type TraceCarrier } from '@txmesh/protocol';
import type { Span } from '@opentelemetry/api';
import { backoffDelayMs } from './backoff.ts';
import type { BatchingDispatcher, ItemAnswer } from './batching-dispatcher.ts';
import { branchCallErrorOf } from './branch-errors.ts';
import type { Branch, LiveTx } from './live-transaction.ts';
import type { ResolvedManagerOptions } from './manager-options.ts';
import type { ServiceRegistry } from './service-registry.ts';
import type { Sleeper } from './sleeper.ts';
import { CoordinatorSteps, reachStep } from './steps.ts';
import { endBranchSpan, startBranchSpan } from './transaction-spans.ts';

/** How an acknowledged branch's span ends: nothing to add. */
const ACKNOWLEDGED = {};

export type OutcomeAction = typeof BranchAction.COMMIT | typeof BranchAction.ROLLBACK;

/**
 * One transaction's delivery: its branches, how many acknowledged (the crash point between the first and the
 * rest) and how many finished, acknowledged or not. The last branch to finish ends it: counted, not a
 * Promise.all over the branches with a then and a finally (a shard holds one per transaction it delivers).
 */
class Fanout {
  readonly branches: number;
  acks = 0;
  #finished = 0;
  readonly #onAcknowledged: () => void;
  readonly #onEnd: () => void;

  constructor(branches: number, onAcknowledged: () => void, onEnd: () => void) {
    this.branches = branches;
    this.#onAcknowledged = onAcknowledged;
    this.#onEnd = onEnd;
  }

  /** A branch's delivery ended, acknowledged or not (the manager closed). */
  finished(): void {
    this.#finished += 1;
    if (this.#finished < this.branches) return;
    try {
      if (this.acks === this.branches) this.#onAcknowledged();
    } finally {
      this.#onEnd();
    }
  }
}

export interface OutcomeDeliveryParts {
  dispatcher: BatchingDispatcher;
  registry: ServiceRegistry;
  sleeper: Sleeper;
  options: Pick<ResolvedManagerOptions, 'deliveryBackoff' | 'deliveryTimeoutMs' | 'serviceTimeouts' | 'warnEvery' | 'random' | 'logger'>;
  isClosing: () => boolean;
  /** Records one branch's acknowledgement of a logged decision, so a restart does not send it again. */
  recordAck?: (txId: string, service: string) => void;
}

export class OutcomeDelivery {
  readonly #parts: OutcomeDeliveryParts;
  /** Deliveries not yet ended, and who waits for none to be left. */
  #running = 0;
  #idle: (() => void)[] = [];
  readonly #ended = (): void => {
    this.#running -= 1;
    if (this.#running > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  };

  constructor(parts: OutcomeDeliveryParts) {
    this.#parts = parts;
  }

  /**
   * Starts delivery of `action` to the branches that need it; `onAcknowledged` runs once every one of
   * them acknowledged (never when the manager closes first).
   */
  deliver(tx: LiveTx, action: OutcomeAction, onAcknowledged: () => void): void {
    // Rollback goes to every branch that was sent a prepare and did not itself refuse: a timed-out one may
    // have prepared late. A branch that acknowledged already (before a restart) is not asked again: it may have
    // forgotten the branch.
    const targets = (action === BranchAction.COMMIT ? tx.branches : tx.branches.filter((b) => b.prepareSent && !b.refused)).filter((b) => !b.acked);
    for (const b of targets) b.delivering = true;
    this.#running += 1;
    const fanout = new Fanout(targets.length, onAcknowledged, this.#ended);
    // Nothing left to deliver (every branch acknowledged before a restart): finished, on a later turn as if delivered.
    if (targets.length === 0) queueMicrotask(() => fanout.finished());
    for (const b of targets) this.#deliverBranch(tx, b, action, fanout);
  }

  /** Resolves when no delivery is running any more. */
  settled(): Promise<void> {
    if (this.#running === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  /**
   * Delivers to one branch and tells the fanout when that ended, whatever happened; one span for all attempts.
   * The first attempt is sent and answered by plain callbacks: nearly every branch acknowledges it, and an async
   * function per branch (its frame holding every local of the retry loop) was a large share of what a busy shard
   * allocated per transaction (docs/benchmarks.md). A branch that did not acknowledge it goes on in #retry.
   */
  #deliverBranch(tx: LiveTx, branch: Branch, action: OutcomeAction, fanout: Fanout): void {
    const run = new DeliveryRun(tx, branch, action, fanout, this.#firstAnswered);
    branch.attempts = 0;
    const { registry, isClosing } = this.#parts;
    const sidecarUrl = isClosing() ? undefined : registry.sidecarUrl(branch.service);
    if (sidecarUrl === undefined) return void this.#retry(run, 1, undefined);
    branch.attempts = 1;
    // The answer comes back as a call to the run (an ItemAnswer), not through a promise and two callbacks.
    this.#parts.dispatcher.send(sidecarUrl, this.#item(run), this.#timeoutOf(run), run);
  }

  /** The first attempt's answer, or why none came (`result` undefined): acknowledged, or on to #retry. */
  readonly #firstAnswered = (run: DeliveryRun, result: BranchItemResult | undefined, err: unknown): void => {
    if (result === undefined) void this.#retry(run, 1, branchCallErrorOf(err));
    else if (result.status === 'ok') this.#end(run, true);
    else void this.#retry(run, 1, { reason: result.reason ?? (result.status === 'no' ? Reason.REFUSED : Reason.ERROR), message: result.message });
  };

  #timeoutOf(run: DeliveryRun): number {
    const { options } = this.#parts;
    return options.serviceTimeouts[run.branch.service]?.deliveryTimeoutMs ?? options.deliveryTimeoutMs;
  }

  #item(run: DeliveryRun): BranchItem {
    const item: BranchItem = { action: run.action, txId: run.tx.txId, service: run.branch.service };
    if (run.trace !== undefined) item.trace = run.trace;
    return item;
  }

  #submit(run: DeliveryRun, sidecarUrl: string): Promise<BranchItemResult> {
    return this.#parts.dispatcher.submit(sidecarUrl, this.#item(run), this.#timeoutOf(run)).result;
  }

  /**
   * Retries until the branch acknowledges or the manager closes. `failed`: attempt `n` was made and brought no
   * acknowledgement, for that reason (else attempt `n` is still to be made).
   */
  async #retry(run: DeliveryRun, first: number, failed: { reason: string; message?: string | undefined } | undefined): Promise<void> {
    let acked = false;
    try {
      const { registry, sleeper, options, isClosing } = this.#parts;
      const { tx, branch, action } = run;
      let failure = failed;
      for (let n = first; !isClosing(); n++) {
        if (failure === undefined) {
          branch.attempts = n;
          const sidecarUrl = registry.sidecarUrl(branch.service);
          if (sidecarUrl === undefined) {
            failure = { reason: Reason.UNREACHABLE, message: `no sidecar address known for ${branch.service}` };
          } else {
            try {
              const result = await this.#submit(run, sidecarUrl);
              if (result.status === 'ok') {
                acked = true;
                break;
              }
              failure = { reason: result.reason ?? (result.status === 'no' ? Reason.REFUSED : Reason.ERROR), message: result.message };
            } catch (err) {
              failure = branchCallErrorOf(err);
            }
          }
        }
        const { reason, message: details } = failure;
        failure = undefined;
        branch.lastError = reason;
        if (details === undefined) delete branch.lastErrorDetails;
        else branch.lastErrorDetails = details;
        if (isClosing()) break;
        if (n % options.warnEvery === 0) {
          const shown = details === undefined ? reason : `${reason} (${details})`;
          options.logger.warn({ txId: tx.txId, ...traceLogFieldsOf(run.trace), service: branch.service, action, attempts: n, failure: shown }, 'branch has not acknowledged the outcome yet; still retrying');
        }
        await sleeper.sleep(backoffDelayMs(options.deliveryBackoff, n, options.random));
      }
    } finally {
      this.#end(run, acked);
    }
  }

  /** The branch's delivery ended: acknowledged, or not before the manager closed. The fanout hears it whatever happens here. */
  #end(run: DeliveryRun, acked: boolean): void {
    const { tx, branch, action, fanout } = run;
    try {
      if (acked) branch.state = action === BranchAction.COMMIT ? BranchState.COMMITTED : BranchState.ROLLED_BACK;
      endBranchSpan(run.span, branch.attempts, acked ? ACKNOWLEDGED : { failed: branch.lastError ?? 'not acknowledged before shutdown' });
      branch.delivering = false;
      if (acked) {
        branch.acked = true;
        if (tx.logged) this.#parts.recordAck?.(tx.txId, branch.service);
        if (++fanout.acks === 1 && action === BranchAction.COMMIT && fanout.branches > 1) reachStep(CoordinatorSteps.MID_FANOUT);
      }
    } finally {
      fanout.finished();
    }
  }
}

/** One branch's delivery: what it delivers, where its end is counted, and its span; the ItemAnswer of its first attempt. */
class DeliveryRun implements ItemAnswer {
  readonly tx: LiveTx;
  readonly branch: Branch;
  readonly action: OutcomeAction;
  readonly fanout: Fanout;
  readonly span: Span;
  readonly trace: TraceCarrier | undefined;
  readonly #first: (run: DeliveryRun, result: BranchItemResult | undefined, err: unknown) => void;

  constructor(tx: LiveTx, branch: Branch, action: OutcomeAction, fanout: Fanout, first: (run: DeliveryRun, result: BranchItemResult | undefined, err: unknown) => void) {
    this.tx = tx;
    this.branch = branch;
    this.action = action;
    this.fanout = fanout;
    this.#first = first;
    this.span = startBranchSpan(tx.trace, tx.txId, branch.service, action);
    this.trace = carrierOf(this.span);
  }

  answered(result: BranchItemResult): void {
    this.#first(this, result, undefined);
  }

  failed(err: unknown): void {
    this.#first(this, undefined, err);
  }
}
