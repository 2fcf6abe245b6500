/**
 * The transaction manager's options and their defaults, checked once when a manager is built, so a
 * typo fails loudly at start and nothing later re-reads an optional field.
 */
import { DeadlockMode, isDeadlockMode } from '@txmesh/protocol';
import { DELIVERY_BACKOFF, PREPARE_BACKOFF, type BackoffPolicy } from './backoff.ts';
import { MAX_BATCH_ITEMS, type DispatcherOptions } from './batching-dispatcher.ts';
import type { BranchTransport } from './branch-transport.ts';
import type { DecisionLog } from './decision-log.ts';
import type { SchedulerOptions } from './scheduler.ts';
import { validateServiceTimeouts, type ServiceTimeouts } from './service-timeouts.ts';

/** The subset of a pino/fastify logger the manager uses. */
export interface ManagerLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface TransactionManagerOptions {
  shard: number;
  shards: number;
  log: DecisionLog;
  transport: BranchTransport;
  defaultTimeoutMs?: number;
  heartbeatMs?: number;
  logger?: ManagerLogger;
  /** Finished transactions kept in memory for GET (older ones are answered from the log). */
  recentLimit?: number;
  /**
   * Transactions this shard runs at once (deciding or delivering). Default 20 000: past it a new one is
   * refused with TXM_OVERLOADED before anything is sent, so memory stays bounded whatever the clients do.
   */
  maxInFlight?: number;
  maxBatchItems?: number;
  /** false: one item per request, no window (naive mode for comparison). Other dispatcher knobs too. */
  batching?: boolean | DispatcherOptions;
  /** false: every prepare leaves at once and nothing is refused as overloaded (resource-blind). */
  scheduler?: boolean | SchedulerOptions;
  maxPrepareAttempts?: number;
  prepareBackoff?: BackoffPolicy;
  deliveryBackoff?: BackoffPolicy;
  /** How long one commit/rollback delivery attempt waits for its batch's answer. */
  deliveryTimeoutMs?: number;
  /** Failed deliveries of one branch between two warn lines. */
  warnEvery?: number;
  /** Per-service phase timeouts; a service's prepareTimeoutMs tightens (never extends) the transaction's. */
  serviceTimeouts?: ServiceTimeouts;
  /** A branch whose commit/rollback is unacknowledged this long after the decision is listed as in doubt. Default 10 000. */
  inDoubtAfterMs?: number;
  /**
   * A registration is a lease renewed by every heartbeat (1 s): a service unseen this long is refused to new
   * transactions (TXM_UNKNOWN_SERVICE, saying since when). Default 30 000.
   */
  registrationLeaseMs?: number;
  /** Unseen this long, a service's entry and scheduler lane are dropped from memory. Default 600 000 (10 min). */
  forgetServiceAfterMs?: number;
  /** How often finished decision records are pruned from the log. Default 5 000; 0 turns pruning off. */
  pruneIntervalMs?: number;
  /**
   * How long a finished record with an idempotencyKey is kept, so that a retry gets the first outcome.
   * A retry after this window runs as a new transaction. Default 3 600 000 (one hour).
   */
  idempotencyRetentionMs?: number;
  random?: () => number;
  /**
   * Called when the decision log fails to force a record. The write may still have reached the disk,
   * so the outcome is unknown until a restart reads the log: nothing is delivered, the transaction keeps
   * answering "pending", and by default the process stops (as PostgreSQL does on a failed fsync) so that
   * recovery settles it. Tests pass their own handler.
   */
  onLogFailure?: (err: unknown, txId: string) => void;
  /**
   * Default 'detect': wait-for reports from the sidecars feed a cycle detector, and the youngest
   * transaction of each cycle this shard owns is aborted with DEADLOCK. Otherwise reports are ignored.
   */
  deadlock?: DeadlockMode;
}

export const DEFAULT_PRUNE_INTERVAL_MS = 5_000;
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 3_600_000;

/** Every option with its default applied; what the manager and its parts read. */
export interface ResolvedManagerOptions {
  shard: number;
  shards: number;
  log: DecisionLog;
  transport: BranchTransport;
  logger: ManagerLogger;
  onLogFailure: (err: unknown, txId: string) => void;
  defaultTimeoutMs: number;
  heartbeatMs: number;
  recentLimit: number;
  deadlock: DeadlockMode;
  maxInFlight: number;
  dispatcher: DispatcherOptions;
  scheduler: SchedulerOptions;
  maxPrepareAttempts: number;
  prepareBackoff: BackoffPolicy;
  deliveryBackoff: BackoffPolicy;
  deliveryTimeoutMs: number;
  warnEvery: number;
  serviceTimeouts: ServiceTimeouts;
  inDoubtAfterMs: number;
  registrationLeaseMs: number;
  forgetServiceAfterMs: number;
  pruneIntervalMs: number;
  idempotencyRetentionMs: number;
  random: () => number;
}

const noopLogger: ManagerLogger = { warn() {}, error() {} };

function stopProcess(err: unknown, txId: string): void {
  process.stderr.write(`txmesh coordinator: decision log write failed for ${txId} (${err instanceof Error ? err.message : String(err)}); stopping so that recovery settles it\n`);
  process.exit(70);
}

function integer(value: number | undefined, fallback: number, field: string, min: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${field} must be an integer of at least ${min}: ${n}`);
  return n;
}

function deadlockMode(value: unknown): DeadlockMode {
  if (value === undefined) return DeadlockMode.DETECT;
  if (!isDeadlockMode(value)) throw new RangeError(`deadlock must be one of ${Object.values(DeadlockMode).join(', ')}: ${String(value)}`);
  return value;
}

export function resolveManagerOptions(options: TransactionManagerOptions): ResolvedManagerOptions {
  if (!Number.isInteger(options.shards) || options.shards < 1) throw new RangeError(`shards must be a positive integer: ${options.shards}`);
  if (!Number.isInteger(options.shard) || options.shard < 0 || options.shard >= options.shards) {
    throw new RangeError(`shard must be an integer from 0 to ${options.shards - 1}: ${options.shard}`);
  }
  const batching = typeof options.batching === 'object' ? options.batching : { batching: options.batching ?? true };
  return {
    shard: options.shard,
    shards: options.shards,
    log: options.log,
    transport: options.transport,
    logger: options.logger ?? noopLogger,
    onLogFailure: options.onLogFailure ?? stopProcess,
    defaultTimeoutMs: integer(options.defaultTimeoutMs, 5000, 'defaultTimeoutMs', 1),
    heartbeatMs: integer(options.heartbeatMs, 1000, 'heartbeatMs', 1),
    recentLimit: integer(options.recentLimit, 10_000, 'recentLimit', 1),
    deadlock: deadlockMode(options.deadlock),
    maxInFlight: integer(options.maxInFlight, 20_000, 'maxInFlight', 1),
    dispatcher: { maxBatchItems: options.maxBatchItems ?? MAX_BATCH_ITEMS, ...batching },
    scheduler: typeof options.scheduler === 'object' ? options.scheduler : { enabled: options.scheduler ?? true },
    maxPrepareAttempts: integer(options.maxPrepareAttempts, 3, 'maxPrepareAttempts', 1),
    prepareBackoff: options.prepareBackoff ?? PREPARE_BACKOFF,
    deliveryBackoff: options.deliveryBackoff ?? DELIVERY_BACKOFF,
    deliveryTimeoutMs: integer(options.deliveryTimeoutMs, 5000, 'deliveryTimeoutMs', 1),
    warnEvery: integer(options.warnEvery, 10, 'warnEvery', 1),
    serviceTimeouts: validateServiceTimeouts(options.serviceTimeouts ?? {}),
    inDoubtAfterMs: integer(options.inDoubtAfterMs, 10_000, 'inDoubtAfterMs', 0),
    registrationLeaseMs: integer(options.registrationLeaseMs, 30_000, 'registrationLeaseMs', 1),
    forgetServiceAfterMs: integer(options.forgetServiceAfterMs, 600_000, 'forgetServiceAfterMs', 1),
    pruneIntervalMs: integer(options.pruneIntervalMs, DEFAULT_PRUNE_INTERVAL_MS, 'pruneIntervalMs', 0),
    idempotencyRetentionMs: integer(options.idempotencyRetentionMs, DEFAULT_IDEMPOTENCY_RETENTION_MS, 'idempotencyRetentionMs', 0),
    random: options.random ?? Math.random,
  };
}
