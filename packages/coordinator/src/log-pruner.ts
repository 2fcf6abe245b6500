/**
 * Deletes finished records from the decision log: unkeyed ones at once (nobody can ask for them by key,
 * and every branch acknowledged, so none will ask for the decision), keyed ones after the retention
 * window. A pruned transaction then answers GET with TXM_TX_NOT_FOUND and /decision with abort: safe,
 * because no branch of it is prepared anywhere any more (see docs/design.md, Recovery).
 */
import type { DecisionLog } from './decision-log.ts';
import type { ManagerLogger } from './manager-options.ts';

export class LogPruner {
  readonly #log: DecisionLog;
  readonly #retentionMs: number;
  readonly #logger: ManagerLogger;
  readonly #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #pruned = 0;

  /** `intervalMs` 0: only explicit prune() calls. */
  constructor(log: DecisionLog, options: { retentionMs: number; intervalMs: number; logger: ManagerLogger }) {
    this.#log = log;
    this.#retentionMs = options.retentionMs;
    this.#logger = options.logger;
    if (options.intervalMs > 0) {
      this.#timer = setInterval(() => this.prune(), options.intervalMs);
      this.#timer.unref();
    }
  }

  /** Records deleted since start. */
  get pruned(): number {
    return this.#pruned;
  }

  prune(now: number = Date.now()): number {
    if (this.#stopped) return 0;
    try {
      const { deleted } = this.#log.prune({ unkeyedDoneBefore: now, keyedDoneBefore: now - this.#retentionMs });
      this.#pruned += deleted;
      return deleted;
    } catch (err) {
      // Pruning is housekeeping: a failure leaves the records for the next round.
      this.#logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'pruning finished decision records failed; retrying at the next interval');
      return 0;
    }
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
  }
}
