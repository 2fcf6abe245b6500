/**
 * A participant over the service's own PostgreSQL database through `pg` (node-postgres), with async hooks
 * that get a client inside the transaction that writes the SDK's rows. Two modes (see pg-operation.ts):
 * 'tentative' (pg-tentative-storage.ts) and 'native' two-phase commit (pg-native-storage.ts). The batching,
 * the locks and the rules are the same as with SQLite (participant-core.ts, branch-rules.ts).
 *
 * The pool belongs to the service: close() stops the participant, the service ends its pool after.
 */
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { BranchBatchRequest, BranchBatchResponse, PreparedListResponse, ServiceUsage, WaitReport } from '@txmesh/protocol';
import type { HeldLock } from './barrier-store.ts';
import { CoreBackedParticipant, ParticipantCore } from './participant-core.ts';
import { resolveParticipantOptions, type CommonParticipantOptions } from './participant-options.ts';
import type { ParticipantStats } from './participant-parts.ts';
import { mountParticipantRoutes } from './participant-routes.ts';
import { PgMode, type NativeOperationHandlers, type PgOperationHandlers } from './pg-operation.ts';
import { PgNativeStorage, assertPreparedTransactionsOn } from './pg-native-storage.ts';
import { ensurePgSchema } from './pg-schema.ts';
import { PgTentativeStorage } from './pg-tentative-storage.ts';
import type { ParticipantStorage } from './storage-adapter.ts';


interface PgBase extends CommonParticipantOptions {
  /** The service's pool; the SDK borrows a client per unit of work and creates its tables (txm_*) at start. */
  pool: Pool;
}

export type PgParticipantOptions =
  | (PgBase & { mode: 'tentative'; operations: Record<string, PgOperationHandlers<any>> })
  | (PgBase & { mode: 'native'; operations: Record<string, NativeOperationHandlers<any>> });

export interface PgParticipant {
  readonly mode: PgMode;
  /** fastify plugin: the same routes as the SQLite participant. */
  routes(app: FastifyInstance): void;
  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse>;
  /** Prepared, undecided branches (native: this service's gids in pg_prepared_xacts). */
  preparedList(): Promise<PreparedListResponse>;
  usage(): ServiceUsage | undefined;
  stats(): ParticipantStats;
  waits(): WaitReport;
  pruneFinishedBranches(now?: number): Promise<number>;
  close(): void;
}

const HOOKS_OF_MODE: Record<PgMode, readonly string[]> = { tentative: ['prepare', 'commit', 'rollback'], native: ['execute'] };

/** Every operation has the hooks its mode calls, so a mix-up fails at start and not at the first prepare. */
function checkOperations(mode: unknown, operations: Record<string, object>): PgMode {
  if (mode !== PgMode.TENTATIVE && mode !== PgMode.NATIVE) throw new TypeError(`mode must be 'tentative' or 'native', got ${JSON.stringify(mode)}`);
  for (const [op, handlers] of Object.entries(operations)) {
    for (const hook of ['parseArgs', ...HOOKS_OF_MODE[mode]]) {
      if (typeof (handlers as Record<string, unknown>)[hook] !== 'function') throw new TypeError(`operation "${op}" has no ${hook} hook, which mode '${mode}' needs`);
    }
  }
  return mode;
}

/** Creates the SDK's tables, checks PostgreSQL (native: max_prepared_transactions), restores what a crash left. */
export async function createPgParticipant(options: PgParticipantOptions): Promise<PgParticipant> {
  const mode = checkOperations(options.mode, options.operations);
  const resolved = resolveParticipantOptions(options);
  await ensurePgSchema(options.pool);
  let storage: PgNativeStorage | PgTentativeStorage;
  if (mode === PgMode.NATIVE) {
    await assertPreparedTransactionsOn(options.pool);
    const native = new PgNativeStorage(options.pool, resolved.service);
    const finished = await native.finishCommitted();
    if (finished > 0) resolved.log({ event: 'native-commits-finished', count: finished });
    storage = native;
  } else {
    storage = new PgTentativeStorage(options.pool);
  }
  const participant = new PgParticipantImpl(mode, new ParticipantCore(resolved, storage, options.operations), storage);
  try {
    participant.restore(await storage.heldLocks());
  } catch (err) {
    // Its usage meter is running already.
    participant.close();
    throw err;
  }
  return participant;
}

class PgParticipantImpl extends CoreBackedParticipant implements PgParticipant {
  readonly mode: PgMode;
  readonly #storage: ParticipantStorage;

  constructor(mode: PgMode, core: ParticipantCore, storage: ParticipantStorage) {
    super(core);
    this.mode = mode;
    this.#storage = storage;
  }

  restore(held: readonly HeldLock[]): void {
    this.core.restoreLocks(held);
    this.core.startPruning(() => this.pruneFinishedBranches());
  }

  readonly routes = (app: FastifyInstance): void => {
    const { service, keys, batchChannel } = this.core.options;
    mountParticipantRoutes(app, this, keys === undefined ? undefined : { service, keys }, batchChannel);
  };

  async preparedList(): Promise<PreparedListResponse> {
    // A branch whose outcome is not yet durable must still be listed: after a crash it is prepared again.
    await this.#storage.forceUnforced?.();
    return { service: this.core.options.service, prepared: await this.#storage.preparedBranches() };
  }

  async pruneFinishedBranches(now: number = Date.now()): Promise<number> {
    if (this.core.closed) return 0;
    try {
      const { retentionMs, tombstoneRetentionMs } = this.core.options.retention;
      return await this.#storage.pruneFinished(now - retentionMs, now - tombstoneRetentionMs);
    } catch (err) {
      return this.pruneFailed(err);
    }
  }
}
