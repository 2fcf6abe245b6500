/**
 * One coordinator batch: forward it to the service in one call, make the yes votes durable in one SQLite
 * transaction before anyone hears them, and forget branches whose outcome the service acknowledged.
 */
import type { FastifyBaseLogger } from 'fastify';
import { BranchAction, ItemStatus, shardOfTxId, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import { SidecarSteps, reachStep } from './steps.ts';
import type { InFlightPrepares } from './in-flight-prepares.ts';
import type { PreparedRecord, PreparedStore } from './prepared-store.ts';
import type { ServiceClient } from './service-client.ts';

export interface BatchHandlerDeps {
  service: string;
  store: PreparedStore;
  serviceClient: ServiceClient;
  /** Shared by every batch and the in-doubt resolver of one sidecar. */
  inFlight: InFlightPrepares;
  log: FastifyBaseLogger;
  now?: () => number;
  /** How many shards the cluster has (this sidecar's coordinator URLs); undefined when it knows none. */
  shards?: number;
}

export async function handleBatch(items: readonly BranchItem[], deps: BatchHandlerDeps): Promise<BranchItemResult[]> {
  const now = deps.now ?? Date.now;
  const results: (BranchItemResult | undefined)[] = new Array(items.length);
  const forwarded: { index: number; item: BranchItem }[] = [];
  items.forEach((item, index) => {
    // A branch of another service must never be recorded in this service's file nor reach this service.
    if (item.service !== deps.service) {
      results[index] = { txId: item.txId, action: item.action, status: ItemStatus.ERROR, reason: 'TXM_UNKNOWN_SERVICE', message: `this sidecar serves ${deps.service}, not ${item.service}` };
    } else if (item.action === BranchAction.PREPARE && deps.shards !== undefined && (shardOfTxId(item.txId) ?? deps.shards) >= deps.shards) {
      // No shard could ever decide it: prepared, it would hold its keys for good.
      results[index] = { txId: item.txId, action: item.action, status: ItemStatus.NO, reason: 'TXM_WRONG_SHARD', message: `the id names a shard this cluster of ${deps.shards} does not have` };
    } else {
      forwarded.push({ index, item });
    }
  });

  const preparing = forwarded.filter((f) => f.item.action === BranchAction.PREPARE).map((f) => f.item.txId);
  deps.inFlight.begin(preparing);
  try {
    const answers = await deps.serviceClient.sendBatch(forwarded.map((f) => f.item));

    // An acknowledged commit or rollback ends the branch whatever its position in the batch (the service
    // applies outcomes before prepares), so a yes in the same batch is a duplicate and leaves no record.
    const yes = new Map<string, { item: BranchItem; index: number }>();
    const decided = new Set<string>();
    forwarded.forEach(({ index, item }, i) => {
      const answer = answers[i];
      results[index] = answer;
      if (answer?.status !== ItemStatus.OK) return;
      if (item.action === BranchAction.PREPARE) yes.set(item.txId, { item, index });
      else decided.add(item.txId);
    });
    const toRemove = [...decided];
    deps.inFlight.outcomeAcknowledged(toRemove);
    const toRecord: { record: PreparedRecord; index: number }[] = [];
    const at = now();
    for (const [txId, { item, index }] of yes) {
      // Also skips a yes whose outcome another batch (or the resolver) had acknowledged while it was on its
      // way: its record would outlive the branch. The vote itself still goes back; the branch is finished.
      if (decided.has(txId) || deps.inFlight.isFinished(txId)) continue;
      const record: PreparedRecord = { txId, service: item.service, operations: item.operations ?? [], preparedAt: at };
      if (item.trace !== undefined) record.trace = item.trace;
      toRecord.push({ index, record });
    }

    // The batch's acknowledged branches leave in the records' transaction when there is one (an outcome that
    // rode with the next transaction's prepare): one write instead of two.
    let removed = false;
    if (toRecord.length > 0) {
      try {
        deps.store.put(
          toRecord.map((r) => r.record),
          toRemove,
        );
        removed = true;
        reachStep(SidecarSteps.AFTER_PREPARED_RECORDED);
      } catch (err) {
        // Without a durable record the yes vote must not leave; the service's own prepared list lets the
        // in-doubt resolver find these branches later.
        deps.log.error({ err }, 'could not record prepared branches; answering error instead of yes');
        for (const { index, record } of toRecord) {
          results[index] = { txId: record.txId, action: BranchAction.PREPARE, status: ItemStatus.ERROR, reason: 'TXM_INTERNAL', message: 'the sidecar could not record the prepared branch' };
        }
      }
    }
    if (toRemove.length > 0 && !removed) {
      try {
        deps.store.remove(toRemove);
      } catch (err) {
        // A record left behind only costs a later decision look-up and an idempotent resend.
        deps.log.error({ err }, 'could not remove acknowledged branches from the prepared store');
      }
    }
  } finally {
    deps.inFlight.end(preparing);
  }
  return results.map((r, i) => r ?? { txId: items[i]!.txId, action: items[i]!.action, status: ItemStatus.ERROR, reason: 'TXM_INTERNAL' });
}
