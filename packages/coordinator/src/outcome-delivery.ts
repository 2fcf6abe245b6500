/**
 * Phase two: delivers a decided transaction's commit or rollback to its branches in the background and
 * retries each one with capped, jittered backoff until it is acknowledged (rule 4 of ARCHITECTURE.md).
 * A warn line every `warnEvery` failed attempts; the branch's last failure stays on it for the in-doubt list.
 */
import { carrierOf } from '@txmesh/client';
import { BranchAction, BranchState, Reason, traceLogFieldsOf, type BranchItem } from '@txmesh/protocol';
import { backoffDelayMs } from './backoff.ts';
import type { BatchingDispatcher } from './batching-dispatcher.ts';
import { branchCallErrorOf } from './branch-errors.ts';
import type { Branch, LiveTx } from './live-transaction.ts';
import type { ResolvedManagerOptions } from './manager-options.ts';
import type { ServiceRegistry } from './service-registry.ts';
import type { Sleeper } from './sleeper.ts';
import { CoordinatorSteps, reachStep } from './steps.ts';
import { endBranchSpan, startBranchSpan } from './transaction-spans.ts';

export type OutcomeAction = typeof BranchAction.COMMIT | typeof BranchAction.ROLLBACK;

/** A delivery's branches and how many acknowledged so far (the crash point between the first and the rest). */
interface Fanout {
  acks: number;
  branches: number;
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
  readonly #running = new Set<Promise<void>>();

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
    const fanout: Fanout = { acks: 0, branches: targets.length };
    const delivery = Promise.all(targets.map((b) => this.#deliverBranch(tx, b, action, fanout))).then((acked) => {
      if (acked.every(Boolean)) onAcknowledged();
    });
    this.#running.add(delivery);
    void delivery.finally(() => this.#running.delete(delivery));
  }

  /** Resolves when every delivery running now has finished. */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /**
   * Retries until the branch acknowledges; false only when the manager is closing. One span for all attempts.
   * One async function per branch, not three nested ones: a shard at concurrency 1000 holds a thousand deliveries
   * for about a second, long enough for their frames and promises to be promoted and die in the old space.
   */
  async #deliverBranch(tx: LiveTx, branch: Branch, action: OutcomeAction, fanout: Fanout): Promise<boolean> {
    const { dispatcher, registry, sleeper, options, isClosing } = this.#parts;
    const span = startBranchSpan(tx.trace, tx.txId, branch.service, action);
    const trace = carrierOf(span);
    let acked = false;
    branch.attempts = 0;
    for (let n = 1; !isClosing(); n++) {
      branch.attempts = n;
      let reason: string;
      let details: string | undefined;
      const sidecarUrl = registry.sidecarUrl(branch.service);
      if (sidecarUrl === undefined) {
        reason = Reason.UNREACHABLE;
        details = `no sidecar address known for ${branch.service}`;
      } else {
        try {
          const timeoutMs = options.serviceTimeouts[branch.service]?.deliveryTimeoutMs ?? options.deliveryTimeoutMs;
          const item: BranchItem = { action, txId: tx.txId, service: branch.service };
          if (trace !== undefined) item.trace = trace;
          const result = await dispatcher.submit(sidecarUrl, item, timeoutMs).result;
          if (result.status === 'ok') {
            branch.state = action === BranchAction.COMMIT ? BranchState.COMMITTED : BranchState.ROLLED_BACK;
            acked = true;
            break;
          }
          reason = result.reason ?? (result.status === 'no' ? Reason.REFUSED : Reason.ERROR);
          details = result.message;
        } catch (err) {
          const failure = branchCallErrorOf(err);
          reason = failure.reason;
          details = failure.message;
        }
      }
      branch.lastError = reason;
      if (details === undefined) delete branch.lastErrorDetails;
      else branch.lastErrorDetails = details;
      if (isClosing()) break;
      if (n % options.warnEvery === 0) {
        const failure = details === undefined ? reason : `${reason} (${details})`;
        options.logger.warn({ txId: tx.txId, ...traceLogFieldsOf(trace), service: branch.service, action, attempts: n, failure }, 'branch has not acknowledged the outcome yet; still retrying');
      }
      await sleeper.sleep(backoffDelayMs(options.deliveryBackoff, n, options.random));
    }
    endBranchSpan(span, branch.attempts, acked ? {} : { failed: branch.lastError ?? 'not acknowledged before shutdown' });
    branch.delivering = false;
    if (acked) {
      branch.acked = true;
      if (tx.logged) this.#parts.recordAck?.(tx.txId, branch.service);
      if (action === BranchAction.COMMIT && ++fanout.acks === 1 && fanout.branches > 1) reachStep(CoordinatorSteps.MID_FANOUT);
    }
    return acked;
  }
}
