/**
 * One run per idempotencyKey: a key running now hands its caller the running result, a key in the log
 * hands back the first outcome, and the same key with another body is refused. Only when neither knows
 * the key does the transaction start.
 */
import { TxmeshError, type TransactionResult } from '@txmesh/protocol';
import type { DecisionLog } from './decision-log.ts';

export class IdempotencyGate {
  readonly #log: DecisionLog;
  /** Keys whose transaction is running right now. */
  readonly #running = new Map<string, { hash: string; result: Promise<TransactionResult> }>();

  constructor(log: DecisionLog) {
    this.#log = log;
  }

  /**
   * The result for `key`: the first one if the key ran or runs, else what `start` returns. `start` may
   * throw a refusal synchronously; then nothing is remembered for the key.
   */
  run(key: string, hash: string, start: () => Promise<TransactionResult>): Promise<TransactionResult> {
    const running = this.#running.get(key);
    if (running) {
      if (running.hash !== hash) throw new TxmeshError('TXM_IDEMPOTENCY_CONFLICT', `idempotencyKey ${key}`);
      return running.result;
    }
    const logged = this.#log.getByIdempotencyKey(key);
    if (logged) {
      if (logged.requestHash !== hash) throw new TxmeshError('TXM_IDEMPOTENCY_CONFLICT', `idempotencyKey ${key}`);
      return Promise.resolve(logged.result);
    }
    const result = start();
    this.#running.set(key, { hash, result });
    // By the time it settles the decision record holding the key is durable (or the key ran nothing).
    const forget = (): void => void this.#running.delete(key);
    result.then(forget, forget);
    return result;
  }
}
