/**
 * The participant: answers batches of prepare/commit/rollback for this service's branches.
 *
 * Durability points: a prepare's business change, its txm_branches 'prepared' row, its barrier rows
 * and its txm_key_locks rows commit in one SQLite transaction (synchronous = FULL) before the yes leaves.
 * A commit/rollback applies its hooks, moves the branch to its outcome and deletes its locks in one
 * transaction before the ack leaves. Every vote, yes or no, is stored, so a duplicate gets the same answer.
 *
 * Batching: the decisions of a batch run first (DecisionRunner, one transaction; they release locks
 * prepares may be waiting for); then its prepares (PreparePipeline). This file routes items and owns the
 * lifetime: locks restored at start, pruning of finished branches, the usage meter.
 */
import type { FastifyInstance } from 'fastify';
import {
  BranchAction,
  DeadlockMode,
  ItemStatus,
  PROTOCOL_VERSION,
  TxmeshError,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type BranchItemResult,
  type PreparedListResponse,
  type ServiceUsage,
  type WaitReport,
} from '@txmesh/protocol';
import { BatchWaits } from './batch-waits.ts';
import { BarrierStore } from './barrier-store.ts';
import { DecisionRunner } from './decisions.ts';
import { HookRunner } from './hook-runner.ts';
import { itemResult, messageOf } from './item-results.ts';
import { LockManager } from './lock-manager.ts';
import { mountParticipantRoutes } from './participant-routes.ts';
import { resolveParticipantOptions, type ParticipantOptions, type ResolvedParticipantOptions } from './participant-options.ts';
import type { ParticipantParts, ParticipantStats } from './participant-parts.ts';
import { PreparePipeline } from './prepare-pipeline.ts';
import { ResourceUsageMeter } from './resource-usage.ts';

export interface Participant {
  /** fastify plugin: mounts POST /txmesh/participant/v1/batch and GET /txmesh/participant/v1/prepared */
  routes(app: FastifyInstance): void;
  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse>;
  preparedList(): PreparedListResponse;
  /** This process's usage figures (also attached to every batch answer). */
  usage(): ServiceUsage | undefined;
  stats(): ParticipantStats;
  /** Who waits for whom here right now (empty unless the deadlock mode is 'detect'). */
  waits(): WaitReport;
  /** Deletes finished branch rows older than the retention (also run every branchPruneIntervalMs). */
  pruneFinishedBranches(now?: number): number;
  close(): void;
}

export function createParticipant(options: ParticipantOptions): Participant {
  return new ParticipantImpl(resolveParticipantOptions(options));
}

class ParticipantImpl implements Participant {
  readonly #options: ResolvedParticipantOptions;
  readonly #store: BarrierStore;
  readonly #locks = new LockManager();
  readonly #batchWaits = new BatchWaits();
  readonly #counters: ParticipantStats = { batches: 0, prepareTransactions: 0, preparesWritten: 0, decisionTransactions: 0, decisionsWritten: 0 };
  readonly #decisions: DecisionRunner;
  readonly #prepares: PreparePipeline;
  readonly #meter: ResourceUsageMeter | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ResolvedParticipantOptions) {
    this.#options = options;
    const { db, log, retention } = options;
    this.#store = new BarrierStore(db);
    const parts: ParticipantParts = {
      store: this.#store,
      locks: this.#locks,
      hooks: new HookRunner({ service: options.service, db, operations: options.operations, store: this.#store, log }),
      log,
      counters: this.#counters,
      inTransaction: db.transaction((fn: () => void) => fn()),
      inSavepoint: db.transaction((fn: () => void) => fn()),
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
    if (options.resourceUsage) this.#meter = new ResourceUsageMeter();
    // Prepared-undecided branches get their locks back before the service takes any traffic.
    for (const { key, txId, mode } of this.#store.allLocks()) this.#locks.hold(key, txId, mode);
    if (retention.pruneIntervalMs > 0) {
      this.#pruneTimer = setInterval(() => this.pruneFinishedBranches(), retention.pruneIntervalMs);
      this.#pruneTimer.unref();
    }
  }

  /** Bound, so it can be handed over as a plugin: app.register(participant.routes). */
  readonly routes = (app: FastifyInstance): void => mountParticipantRoutes(app, this);

  usage(): ServiceUsage | undefined {
    return this.#meter?.sample();
  }

  stats(): ParticipantStats {
    return { ...this.#counters };
  }

  waits(): WaitReport {
    if (this.#options.deadlock !== DeadlockMode.DETECT) return { service: this.#options.service, edges: [] };
    return { service: this.#options.service, edges: [...this.#locks.edges(), ...this.#batchWaits.edges()] };
  }

  preparedList(): PreparedListResponse {
    return { service: this.#options.service, prepared: this.#store.preparedBranches() };
  }

  pruneFinishedBranches(now: number = Date.now()): number {
    if (this.#closed) return 0;
    try {
      return this.#store.pruneFinished(now - this.#options.retention.retentionMs);
    } catch (err) {
      // Housekeeping only: the rows stay until the next round.
      this.#options.log({ event: 'branch-prune-failed', error: messageOf(err) });
      return 0;
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#locks.cancelAll();
    this.#meter?.close();
  }

  async handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse> {
    const service = this.#options.service;
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
    if (decisions.length > 0) this.#decisions.run(req.items, decisions, results);
    if (prepares.length > 0) await this.#prepares.run(req.items, prepares, results);
    this.#counters.batches += 1;
    const response: BranchBatchResponse = { protocolVersion: PROTOCOL_VERSION, results };
    const usage = this.#meter?.sample();
    if (usage) response.usage = usage;
    if (this.#options.deadlock === DeadlockMode.DETECT) response.waits = this.waits().edges;
    return response;
  }
}
