/**
 * What every participant does, whatever its storage: routes the items of a batch (decisions first, they
 * release locks prepares may be waiting for; then prepares), restores the locks of prepared branches
 * before traffic, prunes finished branches on a timer, measures the process, reports lock waits, and keeps
 * the lock metrics.
 */
import {
  BranchAction,
  DeadlockMode,
  ItemStatus,
  PROTOCOL_VERSION,
  TxmeshError,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type BranchItemResult,
  type ServiceUsage,
  type WaitReport,
} from '@txmesh/protocol';
import type { HeldLock } from './barrier-store.ts';
import { BatchWaits } from './batch-waits.ts';
import { DecisionRunner } from './decisions.ts';
import { itemResult, messageOf } from './item-results.ts';
import { LockManager } from './lock-manager.ts';
import { MixedBatchWriter } from './mixed-batch.ts';
import { OperationParser, type OperationParsing } from './operation-parser.ts';
import type { ResolvedParticipantOptions } from './participant-options.ts';
import { ParticipantMetrics } from './participant-metrics.ts';
import type { ParticipantStats } from './participant-parts.ts';
import { PreparePipeline } from './prepare-pipeline.ts';
import { ResourceUsageMeter } from './resource-usage.ts';
import type { ParticipantStorage } from './storage-adapter.ts';

export class ParticipantCore {
  readonly options: ResolvedParticipantOptions;
  readonly #locks = new LockManager();
  readonly #batchWaits = new BatchWaits();
  readonly #counters: ParticipantStats = { batches: 0, prepareTransactions: 0, preparesWritten: 0, decisionTransactions: 0, decisionsWritten: 0, batchTransactions: 0, rollbacksAfterCommit: 0 };
  readonly #decisions: DecisionRunner;
  readonly #prepares: PreparePipeline;
  readonly #mixed: MixedBatchWriter;
  readonly #meter: ResourceUsageMeter | undefined;
  readonly #metrics: ParticipantMetrics;
  readonly #storage: ParticipantStorage;
  #pruneTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ResolvedParticipantOptions, storage: ParticipantStorage, operations: Record<string, OperationParsing<any>>) {
    this.options = options;
    this.#storage = storage;
    const { service, log, retention } = options;
    const parser = new OperationParser({ service, operations, log });
    const parts = {
      storage,
      locks: this.#locks,
      operations: parser,
      log,
      counters: this.#counters,
      rules: { service, operations: parser, log, lockWaitMs: options.lockWaitMs, clockSkewAllowanceMs: retention.clockSkewAllowanceMs },
    };
    this.#decisions = new DecisionRunner(parts);
    this.#prepares = new PreparePipeline(parts, {
      lockWaitMs: options.lockWaitMs,
      lockGraceMs: options.lockGraceMs,
      deadlock: options.deadlock,
      batchWaits: this.#batchWaits,
      clockSkewAllowanceMs: retention.clockSkewAllowanceMs,
      isClosed: () => this.#closed,
    });
    this.#mixed = new MixedBatchWriter(parts, this.#decisions, this.#prepares);
    if (options.resourceUsage) this.#meter = new ResourceUsageMeter();
    this.#metrics = new ParticipantMetrics(service, () => this.#locks.heldCount);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Prepared-undecided branches get their locks back before the service takes any traffic. */
  restoreLocks(held: readonly HeldLock[]): void {
    for (const { key, txId, mode } of held) this.#locks.hold(key, txId, mode);
  }

  /** Runs `prune` every retention.pruneIntervalMs (when above 0), without holding the process open. */
  startPruning(prune: () => unknown): void {
    const { pruneIntervalMs } = this.options.retention;
    if (pruneIntervalMs <= 0) return;
    this.#pruneTimer = setInterval(prune, pruneIntervalMs);
    this.#pruneTimer.unref();
  }

  usage(): ServiceUsage | undefined {
    return this.#meter?.sample();
  }

  stats(): ParticipantStats {
    return { ...this.#counters };
  }

  waits(): WaitReport {
    const { service, deadlock } = this.options;
    if (deadlock !== DeadlockMode.DETECT) return { service, edges: [] };
    return { service, edges: [...this.#locks.edges(), ...this.#batchWaits.edges()] };
  }

  close(): void {
    this.#closed = true;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#locks.cancelAll();
    this.#meter?.close();
    this.#metrics.close();
  }

  async handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse> {
    const service = this.options.service;
    if (this.#closed) throw new TxmeshError('TXM_SHUTTING_DOWN', `participant ${service} is closed`);
    const results: BranchItemResult[] = new Array<BranchItemResult>(req.items.length);
    const decisions: number[] = [];
    const prepares: number[] = [];
    req.items.forEach((item, i) => {
      if (item.service !== service) {
        const status = item.action === BranchAction.PREPARE ? ItemStatus.NO : ItemStatus.ERROR;
        results[i] = itemResult(item, status, 'TXM_UNKNOWN_SERVICE', `this participant is ${service}, not ${item.service}`);
      } else if (item.action === BranchAction.PREPARE) prepares.push(i);
      else if (item.action === BranchAction.COMMIT || item.action === BranchAction.ROLLBACK) decisions.push(i);
      else results[i] = itemResult(item, ItemStatus.ERROR, 'TXM_BAD_REQUEST', 'action must be prepare, commit or rollback');
    });
    // Outcomes that travel with prepares (a client running one transaction after another sends each commit
    // with the next prepare) go in the prepares' forced transaction when the storage can (mixed-batch.ts);
    // otherwise they are written unforced, and the prepares' forced write right after carries both to disk
    // in one sync instead of two in series.
    const storage = this.#storage;
    const together = decisions.length > 0 && prepares.length > 0 ? this.#mixed.run(req.items, decisions, prepares, results) : undefined;
    if (together === undefined) {
      const unforced = decisions.length > 0 && prepares.length > 0 && storage.forceUnforced !== undefined;
      if (decisions.length > 0) await this.#decisions.run(req.items, decisions, results, unforced);
    }
    const preparesLeft = together?.prepares ?? prepares;
    // After a mixed batch's transaction the others have their answers: a prepare left waiting is deferred at once.
    const answered = together !== undefined && together.prepares.length < prepares.length ? { prepared: together.prepared } : undefined;
    if (preparesLeft.length > 0) await this.#prepares.run(req.items, preparesLeft, results, answered);
    // Nothing leaves before every outcome it may rest on is durable (usually the prepares' write did it).
    if (storage.unforcedPending === true) await this.#forceUnforced(req.items, results);
    this.#counters.batches += 1;
    const response: BranchBatchResponse = { protocolVersion: PROTOCOL_VERSION, results };
    const usage = this.#meter?.sample();
    if (usage) response.usage = usage;
    if (this.options.deadlock === DeadlockMode.DETECT) response.waits = this.waits().edges;
    return response;
  }

  /** Syncs outcomes written unforced; when that fails no answer of the batch may claim anything durable. */
  async #forceUnforced(items: BranchBatchRequest['items'], results: BranchItemResult[]): Promise<void> {
    try {
      await this.#storage.forceUnforced!();
    } catch (err) {
      this.options.log({ event: 'force-unforced-failed', error: messageOf(err) });
      items.forEach((item, i) => {
        if (results[i]?.status === ItemStatus.OK) results[i] = itemResult(item, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
      });
    }
  }
}

/** What every participant facade delegates to its core; each adds its storage's prepared list and pruning. */
export abstract class CoreBackedParticipant {
  protected readonly core: ParticipantCore;

  constructor(core: ParticipantCore) {
    this.core = core;
  }

  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse> {
    return this.core.handleBatch(req);
  }

  usage(): ServiceUsage | undefined {
    return this.core.usage();
  }

  stats(): ParticipantStats {
    return this.core.stats();
  }

  waits(): WaitReport {
    return this.core.waits();
  }

  close(): void {
    this.core.close();
  }

  /** Housekeeping only: a failure is logged and the rows stay until the next round. */
  protected pruneFailed(err: unknown): number {
    this.core.options.log({ event: 'branch-prune-failed', error: messageOf(err) });
    return 0;
  }
}
