/**
 * Finds prepared branches whose outcome never arrived (the sidecar or coordinator crashed, a message was
 * lost) and finishes them by asking the shard their txId names. Candidates come from the sidecar's store
 * and from the service itself, which may hold a branch the sidecar never recorded (crash between the
 * service's yes and the sidecar's write).
 */
import type { Logger } from 'pino';
import { BranchAction, Decision, ItemStatus, SpanNames, shardOfTxId, traceLogFieldsOf, type BranchItem } from '@txmesh/protocol';
import type { CoordinatorClient } from './coordinator-client.ts';
import { withItemSpans } from '@txmesh/client';
import type { InFlightPrepares } from './in-flight-prepares.ts';
import type { PreparedStore } from './prepared-store.ts';
import type { ServiceClient } from './service-client.ts';

/** Candidates looked up and sent per service batch: well under the batch item limit (DEFAULT_LIMITS.maxBatchItems). */
export const RESOLVE_PAGE_ITEMS = 1000;

/**
 * Decision look-ups in flight at once. Each look-up's timeout starts when it is issued, so a page issued all
 * at once would queue a thousand calls on the client's few connections and time out the tail of the queue
 * on a busy shard; a bounded set keeps every call's wait its own.
 */
export const DECISION_LOOKUPS_IN_FLIGHT = 8;

export interface InDoubtResolverDeps {
  service: string;
  store: PreparedStore;
  serviceClient: ServiceClient;
  coordinator: CoordinatorClient;
  /** The batch handler's: an outcome acknowledged here also makes a yes vote still on its way stale. */
  inFlight: InFlightPrepares;
  /** Later rounds only look at branches prepared at least this long ago, so live transactions are left alone. */
  inDoubtAfterMs: number;
  log: Logger;
  now?: () => number;
}

export class InDoubtResolver {
  #running: Promise<number> | undefined;
  #firstRoundDone = false;

  readonly #deps: InDoubtResolverDeps;
  constructor(deps: InDoubtResolverDeps) {
    this.#deps = deps;
  }

  /** Runs one round, or joins the one already running: never two at once. Resolves to how many branches it finished. */
  resolve(): Promise<number> {
    if (!this.#running) {
      this.#running = this.#round().finally(() => {
        this.#running = undefined;
      });
    }
    return this.#running;
  }

  /** Waits for a running round, if any, ignoring its outcome. */
  async idle(): Promise<void> {
    await this.#running?.catch(() => undefined);
  }

  async #round(): Promise<number> {
    const { store, serviceClient, log } = this.#deps;
    // The first round runs at start-up, when nothing can still be on its way: every branch is in doubt.
    const cutoff = this.#firstRoundDone ? (this.#deps.now ?? Date.now)() - this.#deps.inDoubtAfterMs : Infinity;
    this.#firstRoundDone = true;

    const candidates = new Set<string>();
    for (const record of store.list()) if (record.preparedAt <= cutoff) candidates.add(record.txId);
    try {
      for (const branch of await serviceClient.listPrepared()) if (branch.preparedAt <= cutoff) candidates.add(branch.txId);
    } catch (err) {
      log.warn({ err }, 'could not read the service prepared list; resolving the sidecar records only');
    }
    // In pages: a service refuses a batch above its item limit whole, so one huge round would resolve nothing.
    const all = [...candidates];
    let finished = 0;
    for (let start = 0; start < all.length; start += RESOLVE_PAGE_ITEMS) {
      finished += await this.#resolvePage(all.slice(start, start + RESOLVE_PAGE_ITEMS));
    }
    return finished;
  }

  async #resolvePage(txIds: string[]): Promise<number> {
    const { store, serviceClient, log } = this.#deps;
    const items = await this.#decideAll(txIds);
    if (items.length === 0) return 0;

    // Delivered by this process for a transaction decided earlier, maybe before a crash: the recovery span
    // links the round to each transaction's trace, and each item continues its stored trace context.
    const results = await withItemSpans({ scope: '@txmesh/sidecar', name: SpanNames.SIDECAR_ITEM, service: this.#deps.service, recovery: true }, items, (traced) => serviceClient.sendBatch(traced));
    const acked = items.filter((_, i) => results[i]?.status === ItemStatus.OK).map((item) => item.txId);
    results.forEach((result, i) => {
      if (result.status !== ItemStatus.OK) log.warn({ txId: items[i]?.txId, ...traceLogFieldsOf(items[i]?.trace), reason: result.reason }, 'the service did not acknowledge an in-doubt outcome; retrying next round');
    });
    this.#deps.inFlight.outcomeAcknowledged(acked);
    store.remove(acked);
    return acked.length;
  }

  /** The outcome items of `txIds` that their shards have decided, looked up DECISION_LOOKUPS_IN_FLIGHT at a time. */
  async #decideAll(txIds: readonly string[]): Promise<BranchItem[]> {
    const items: BranchItem[] = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < txIds.length) {
        const item = await this.#decide(txIds[next++] as string);
        if (item !== undefined) items.push(item);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DECISION_LOOKUPS_IN_FLIGHT, txIds.length) }, lane));
    return items;
  }

  /** The outcome item to send for `txId`, or undefined to leave it for a later round. */
  async #decide(txId: string): Promise<BranchItem | undefined> {
    const { log, coordinator, service } = this.#deps;
    const shard = shardOfTxId(txId);
    if (shard === undefined) {
      log.warn({ txId }, 'an in-doubt branch has a malformed transaction id; it cannot be resolved automatically');
      return undefined;
    }
    let decision: Decision;
    try {
      decision = await coordinator.decision(shard, txId);
    } catch (err) {
      log.warn({ err, txId, shard }, 'the owning shard could not give the decision of an in-doubt branch; retrying next round');
      return undefined;
    }
    if (decision === Decision.PENDING) return undefined;
    const item: BranchItem = { action: decision === Decision.COMMIT ? BranchAction.COMMIT : BranchAction.ROLLBACK, txId, service };
    const trace = this.#deps.store.get(txId)?.trace;
    if (trace !== undefined) item.trace = trace;
    return item;
  }
}
