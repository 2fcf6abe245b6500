/**
 * One coordinator batch: forward it to the service in one call, make its prepares durable in one SQLite
 * transaction while the service works (so before any yes vote is heard), and forget branches whose outcome
 * the service acknowledged or whose prepare it did not vote yes on.
 */
import type { Logger } from 'pino';
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
  log: Logger;
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

  const prepares = forwarded.filter((f) => f.item.action === BranchAction.PREPARE);
  const preparing = prepares.map((f) => f.item.txId);
  deps.inFlight.begin(preparing);
  try {
    // The prepared records are forced while the service runs its prepares, not after its answer: one forced
    // write fewer on the commit's critical path. A record ahead of a vote that is not a yes is removed below;
    // one left by a crash only costs the in-doubt resolver a decision look-up (design.md, "Recorded ahead").
    const answering = deps.serviceClient.sendBatch(forwarded.map((f) => f.item));
    const recordedAhead = prepares.length > 0 && (await recordAhead(prepares, now(), deps));
    const answers = await answering;

    // An acknowledged commit or rollback ends the branch whatever its position in the batch (the service
    // applies outcomes before prepares), so a yes in the same batch is a duplicate and keeps no record.
    const decided = new Set<string>();
    forwarded.forEach(({ index, item }, i) => {
      const answer = answers[i];
      results[index] = answer;
      if (answer?.status === ItemStatus.OK && item.action !== BranchAction.PREPARE) decided.add(item.txId);
    });
    deps.inFlight.outcomeAcknowledged([...decided]);
    const toRemove = new Set(decided);
    let votedYes = false;
    for (const { index, item } of prepares) {
      const result = results[index];
      if (result?.status !== ItemStatus.OK) {
        if (recordedAhead) toRemove.add(item.txId);
      } else if (decided.has(item.txId) || deps.inFlight.isFinished(item.txId)) {
        // A yes whose outcome this batch, another one or the resolver acknowledged while it was on its way:
        // its record would outlive the branch. The vote itself still goes back; the branch is finished.
        toRemove.add(item.txId);
      } else if (!recordedAhead) {
        // Without a durable record the yes vote must not leave; the service's own prepared list lets the
        // in-doubt resolver find this branch later.
        results[index] = { txId: item.txId, action: BranchAction.PREPARE, status: ItemStatus.ERROR, reason: 'TXM_INTERNAL', message: 'the sidecar could not record the prepared branch' };
      } else {
        votedYes = true;
      }
    }
    if (votedYes) reachStep(SidecarSteps.AFTER_PREPARED_RECORDED);
    if (toRemove.size > 0) {
      try {
        deps.store.remove([...toRemove]);
      } catch (err) {
        // A record left behind only costs a later decision look-up and an idempotent resend.
        deps.log.error({ err }, 'could not remove finished or refused branches from the prepared store');
      }
    }
  } finally {
    deps.inFlight.end(preparing);
  }
  return results.map((r, i) => r ?? { txId: items[i]!.txId, action: items[i]!.action, status: ItemStatus.ERROR, reason: 'TXM_INTERNAL' });
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Forces a record of every prepare of the batch, once the call carrying them to the service has left (its
 * bytes go out in the microtasks of this turn; the write then blocks this loop while the service works).
 * False when the records could not be written: then no yes vote of the batch may leave.
 */
async function recordAhead(prepares: readonly { item: BranchItem }[], at: number, deps: BatchHandlerDeps): Promise<boolean> {
  await nextTurn();
  const records = prepares.map(({ item }): PreparedRecord => {
    const record: PreparedRecord = { txId: item.txId, service: item.service, operations: item.operations ?? [], preparedAt: at };
    if (item.trace !== undefined) record.trace = item.trace;
    return record;
  });
  try {
    deps.store.put(records);
    reachStep(SidecarSteps.AFTER_RECORDED_AHEAD);
    return true;
  } catch (err) {
    deps.log.error({ err }, 'could not record prepared branches; answering error instead of yes');
    return false;
  }
}
