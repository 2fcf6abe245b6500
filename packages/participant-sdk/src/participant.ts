/**
 * The participant over a better-sqlite3 database (the default): answers batches of prepare/commit/
 * rollback for this service's branches, with synchronous hooks that share the SDK's SQLite transaction.
 *
 * Durability points: a prepare's business change and its txm_branches 'prepared' row (the hooks' barrier,
 * with the keys it holds) commit in one SQLite transaction (synchronous = FULL) before the yes leaves.
 * A commit/rollback applies its hooks and moves the branch to its outcome (releasing its keys) in one
 * transaction before the ack leaves. Every vote, yes or no, is stored, so a duplicate gets the same answer.
 * The batching and the rules are shared with every storage (participant-core.ts, branch-rules.ts).
 */
import type { FastifyInstance } from 'fastify';
import type { BranchBatchRequest, BranchBatchResponse, PreparedListResponse, ServiceUsage, WaitReport } from '@txmesh/protocol';
import { messageOf } from './item-results.ts';
import { CoreBackedParticipant, ParticipantCore } from './participant-core.ts';
import { mountParticipantRoutes } from './participant-routes.ts';
import { resolveParticipantOptions, type ParticipantOptions } from './participant-options.ts';
import type { ParticipantStats } from './participant-parts.ts';
import { SqliteStorage } from './sqlite-storage.ts';

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
  return new SqliteParticipant(options);
}

class SqliteParticipant extends CoreBackedParticipant implements Participant {
  readonly #storage: SqliteStorage;

  constructor(options: ParticipantOptions) {
    const resolved = resolveParticipantOptions(options);
    const storage = new SqliteStorage(
      options.db,
      (call, err) => resolved.log({ event: 'async-hook-rejected', txId: call.txId, phase: call.phase, error: messageOf(err) }),
      resolved.retention.clockSkewAllowanceMs,
    );
    super(new ParticipantCore(resolved, storage, options.operations));
    this.#storage = storage;
    this.core.restoreLocks(storage.heldLocks());
    this.core.startPruning(() => this.pruneFinishedBranches());
  }

  /** Bound, so it can be handed over as a plugin: app.register(participant.routes). */
  readonly routes = (app: FastifyInstance): void => {
    const { service, keys, batchChannel } = this.core.options;
    mountParticipantRoutes(app, this, keys === undefined ? undefined : { service, keys }, batchChannel);
  };

  preparedList(): PreparedListResponse {
    // A branch whose outcome is not yet durable must still be listed: after a crash it is prepared again.
    this.#storage.forceUnforced();
    return { service: this.core.options.service, prepared: this.#storage.preparedBranches() };
  }

  pruneFinishedBranches(now: number = Date.now()): number {
    if (this.core.closed) return 0;
    try {
      return this.#storage.pruneFinished(now - this.core.options.retention.retentionMs, now - this.core.options.retention.tombstoneRetentionMs);
    } catch (err) {
      return this.pruneFailed(err);
    }
  }
}
