/**
 * The 2PC core of one shard, with presumed abort. No sockets here: branches are reached through a
 * BranchTransport (batched per sidecar), decisions through a DecisionLog.
 *
 * Durability points: a COMMIT record is forced (group commit) before the client hears "committed";
 * an ABORT record is forced only when the request carried an idempotencyKey. Nothing else is forced.
 */
import {
  BranchAction,
  BranchState,
  Decision,
  Outcome,
  TxState,
  TxmeshError,
  Vote,
  newTxId,
  shardForIdempotencyKey,
  shardOfTxId,
  validateBeginRequest,
  type BeginTransactionRequest,
  type BranchStatus,
  type DecisionAnswer,
  type OperationSpec,
  type ParticipantResult,
  type RegisterServiceRequest,
  type RegisterServiceResponse,
  type ServiceView,
  type TransactionResult,
  type TransactionStatus,
} from '@txmesh/protocol';
import { CoordinatorSteps, reachStep } from './steps.ts';
import { DELIVERY_BACKOFF, PREPARE_BACKOFF, backoffDelayMs, type BackoffPolicy } from './backoff.ts';
import { BatchingDispatcher, MAX_BATCH_ITEMS, type DispatcherOptions } from './batching-dispatcher.ts';
import type { BranchTransport } from './branch-transport.ts';
import type { DecisionLog, DecisionRecord, DecisionState, FinalDecisionState } from './decision-log.ts';
import { RecentMap } from './recent-map.ts';
import { requestHash } from './request-hash.ts';
import { Scheduler, type SchedulerOptions } from './scheduler.ts';
import { ServiceRegistry } from './service-registry.ts';
import { validateServiceTimeouts, type ServiceTimeouts } from './service-timeouts.ts';

/** The subset of a pino/fastify logger the manager uses. */
export interface ManagerLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
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
}

function stopProcess(err: unknown, txId: string): void {
  process.stderr.write(`txmesh coordinator: decision log write failed for ${txId} (${reasonOf(err)}); stopping so that recovery settles it\n`);
  process.exit(70);
}

/** One branch whose outcome has not been acknowledged for longer than the in-doubt threshold. */
export interface InDoubtBranch {
  txId: string;
  service: string;
  action: 'commit' | 'rollback';
  /** Since the decision. */
  ageMs: number;
  attempts: number;
  lastError?: string;
  sidecarUrl?: string;
}

export interface ManagerStats {
  committed: number;
  aborted: number;
  inFlight: number;
  logFlushes: number;
  logRecords: number;
  batchesSent: number;
  itemsSent: number;
  /** New transactions refused with TXM_OVERLOADED by the scheduler. */
  refusedOverloaded: number;
  schedulerEnabled: boolean;
  recovered: number;
  /** Branches in doubt right now (unacknowledged past inDoubtAfterMs). */
  inDoubt: number;
  /** Finished decision records deleted from the log since start. */
  logPruned: number;
}

export const DEFAULT_PRUNE_INTERVAL_MS = 5_000;
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 3_600_000;

interface Branch {
  service: string;
  operations: OperationSpec[];
  state: BranchState;
  vote?: Vote;
  reason?: string;
  attempts: number;
  /** Answered `no` itself: it never prepared, so it needs no rollback. */
  refused: boolean;
  /** Commit/rollback sent and not yet acknowledged. */
  delivering?: boolean;
  /** Why the latest commit/rollback attempt failed. */
  lastError?: string;
}

interface LiveTx {
  txId: string;
  state: TxState;
  createdAt: number;
  decidedAt?: number;
  outcome?: Outcome;
  reason?: string;
  branches: Branch[];
  /** A decision record exists in the log, so its done mark must be written. */
  logged: boolean;
  /** Set once commit/abort is chosen; outstanding prepare retries stop. */
  decided: boolean;
}

interface VoteOutcome {
  vote: Vote;
  reason?: string;
}

type Verdict = { commit: true } | { commit: false; reason: string };

const noopLogger: ManagerLogger = { warn() {}, error() {} };

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class TransactionManager {
  readonly shard: number;
  readonly shards: number;
  readonly #log: DecisionLog;
  readonly #dispatcher: BatchingDispatcher;
  readonly #registry: ServiceRegistry;
  readonly #scheduler: Scheduler;
  readonly #logger: ManagerLogger;
  readonly #onLogFailure: (err: unknown, txId: string) => void;
  readonly #defaultTimeoutMs: number;
  readonly #heartbeatMs: number;
  readonly #maxPrepareAttempts: number;
  readonly #prepareBackoff: BackoffPolicy;
  readonly #deliveryBackoff: BackoffPolicy;
  readonly #deliveryTimeoutMs: number;
  readonly #serviceTimeouts: ServiceTimeouts;
  readonly #inDoubtAfterMs: number;
  readonly #idempotencyRetentionMs: number;
  readonly #pruneTimer: NodeJS.Timeout | undefined;
  #pruned = 0;
  readonly #warnEvery: number;
  readonly #random: () => number;
  /** Undecided or still delivering: bounded by load, not by history. */
  readonly #active = new Map<string, LiveTx>();
  readonly #recent: RecentMap<string, TransactionStatus>;
  /** Idempotency keys whose transaction is running right now. */
  readonly #running = new Map<string, { hash: string; result: Promise<TransactionResult> }>();
  readonly #deliveries = new Set<Promise<void>>();
  readonly #sleeps = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  #closing = false;
  #committed = 0;
  #aborted = 0;
  #recovered = 0;

  constructor(options: TransactionManagerOptions) {
    if (!Number.isInteger(options.shards) || options.shards < 1) throw new RangeError(`shards must be a positive integer: ${options.shards}`);
    if (!Number.isInteger(options.shard) || options.shard < 0 || options.shard >= options.shards) {
      throw new RangeError(`shard must be an integer from 0 to ${options.shards - 1}: ${options.shard}`);
    }
    this.shard = options.shard;
    this.shards = options.shards;
    this.#log = options.log;
    this.#scheduler = new Scheduler(typeof options.scheduler === 'object' ? options.scheduler : { enabled: options.scheduler ?? true });
    this.#registry = new ServiceRegistry(options.log, this.#scheduler);
    const batching = typeof options.batching === 'object' ? options.batching : { batching: options.batching ?? true };
    this.#dispatcher = new BatchingDispatcher(options.transport, {
      maxBatchItems: options.maxBatchItems ?? MAX_BATCH_ITEMS,
      ...batching,
      onReport: (service, report) => this.#registry.noteReport(service, report),
    });
    this.#logger = options.logger ?? noopLogger;
    this.#onLogFailure = options.onLogFailure ?? stopProcess;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 5000;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#maxPrepareAttempts = options.maxPrepareAttempts ?? 3;
    this.#prepareBackoff = options.prepareBackoff ?? PREPARE_BACKOFF;
    this.#deliveryBackoff = options.deliveryBackoff ?? DELIVERY_BACKOFF;
    this.#deliveryTimeoutMs = options.deliveryTimeoutMs ?? 5000;
    this.#serviceTimeouts = validateServiceTimeouts(options.serviceTimeouts ?? {});
    this.#inDoubtAfterMs = options.inDoubtAfterMs ?? 10_000;
    if (!Number.isInteger(this.#inDoubtAfterMs) || this.#inDoubtAfterMs < 0) throw new RangeError(`inDoubtAfterMs must be a non-negative integer: ${this.#inDoubtAfterMs}`);
    this.#idempotencyRetentionMs = options.idempotencyRetentionMs ?? DEFAULT_IDEMPOTENCY_RETENTION_MS;
    if (!Number.isInteger(this.#idempotencyRetentionMs) || this.#idempotencyRetentionMs < 0) {
      throw new RangeError(`idempotencyRetentionMs must be a non-negative integer: ${this.#idempotencyRetentionMs}`);
    }
    const pruneIntervalMs = options.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS;
    if (!Number.isInteger(pruneIntervalMs) || pruneIntervalMs < 0) throw new RangeError(`pruneIntervalMs must be a non-negative integer: ${pruneIntervalMs}`);
    if (pruneIntervalMs > 0) {
      this.#pruneTimer = setInterval(() => this.pruneFinished(), pruneIntervalMs);
      this.#pruneTimer.unref();
    }
    this.#warnEvery = options.warnEvery ?? 10;
    this.#random = options.random ?? Math.random;
    this.#recent = new RecentMap(options.recentLimit ?? 10_000);
  }

  // ------------------------------------------------------------------ registry

  registerService(request: RegisterServiceRequest): RegisterServiceResponse {
    if ((request.shard !== undefined && request.shard !== this.shard) || (request.shards !== undefined && request.shards !== this.shards)) {
      // The sender is configured for another shard or another cluster: registering it would send this
      // shard's branches to a service that does not belong to it.
      throw new TxmeshError(
        'TXM_WRONG_SHARD',
        `the sidecar of ${request.service} expects shard ${request.shard ?? '?'} of ${request.shards ?? '?'}, this is shard ${this.shard} of ${this.shards}: check its coordinator URL list`,
      );
    }
    this.#registry.register(request);
    return { shard: this.shard, shards: this.shards, heartbeatMs: this.#heartbeatMs };
  }

  listServices(): ServiceView[] {
    return this.#registry.list();
  }

  // ------------------------------------------------------------------ begin

  /** Runs one transaction to its decision. Refusals (TxmeshError) are thrown before anything is sent. */
  async begin(body: unknown): Promise<TransactionResult> {
    if (this.#closing) throw new TxmeshError('TXM_SHUTTING_DOWN');
    const request = validateBeginRequest(body);
    const key = request.idempotencyKey;
    if (key === undefined) {
      this.#checkServices(request);
      return this.#run(request, undefined);
    }
    const owner = shardForIdempotencyKey(key, this.shards);
    if (owner !== this.shard) {
      // Another shard owns this key; running it here could run it twice.
      throw new TxmeshError('TXM_WRONG_SHARD', `idempotencyKey ${key} belongs to shard ${owner}, this is shard ${this.shard}`);
    }
    const hash = requestHash(request);
    const running = this.#running.get(key);
    if (running) {
      if (running.hash !== hash) throw new TxmeshError('TXM_IDEMPOTENCY_CONFLICT', `idempotencyKey ${key}`);
      return running.result;
    }
    const logged = this.#log.getByIdempotencyKey(key);
    if (logged) {
      if (logged.requestHash !== hash) throw new TxmeshError('TXM_IDEMPOTENCY_CONFLICT', `idempotencyKey ${key}`);
      return logged.result;
    }
    this.#checkServices(request);
    const result = this.#run(request, hash);
    this.#running.set(key, { hash, result });
    try {
      return await result;
    } finally {
      // By now the decision record holding the key is durable (or the key never ran anything).
      this.#running.delete(key);
    }
  }

  #checkServices(request: BeginTransactionRequest): void {
    const unknown = request.participants.map((p) => p.service).filter((s) => !this.#registry.has(s));
    if (unknown.length > 0) throw new TxmeshError('TXM_UNKNOWN_SERVICE', unknown.join(', '));
    // Refused before anything is sent or locked, rather than timing out later while holding locks.
    this.#scheduler.admit(
      request.participants.map((p) => p.service),
      request.timeoutMs ?? this.#defaultTimeoutMs,
    );
  }

  async #run(request: BeginTransactionRequest, hash: string | undefined): Promise<TransactionResult> {
    const createdAt = Date.now();
    const deadline = createdAt + (request.timeoutMs ?? this.#defaultTimeoutMs);
    const tx: LiveTx = {
      txId: newTxId(this.shard, createdAt),
      state: TxState.PREPARING,
      createdAt,
      branches: request.participants.map((p) => ({
        service: p.service,
        operations: p.operations,
        state: BranchState.PREPARING,
        attempts: 0,
        refused: false,
      })),
      logged: false,
      decided: false,
    };
    this.#active.set(tx.txId, tx);
    reachStep(CoordinatorSteps.BEFORE_PREPARES_SENT);
    const votes: Promise<VoteOutcome>[] = new Array(tx.branches.length);
    // The prepare expected to take longest leaves first, so the slowest branch starts as early as possible.
    for (const i of this.#slowestFirst(tx.branches)) {
      const branch = tx.branches[i]!;
      votes[i] = this.#prepare(tx, branch, this.#prepareDeadline(branch.service, createdAt, deadline, request.prepareTimeoutMs));
    }
    const verdict = await this.#countVotes(tx, votes, deadline);
    tx.decided = true;
    const keyed = request.idempotencyKey !== undefined ? { key: request.idempotencyKey, hash: hash ?? requestHash(request) } : undefined;
    if (verdict.commit) return this.#commit(tx, keyed);
    return this.#abort(tx, verdict.reason, keyed);
  }

  /**
   * The moment this branch's vote must be in: the transaction deadline, tightened by the request's
   * prepareTimeoutMs and by the service's own. A vote still missing then counts as "no" (TIMEOUT).
   */
  #prepareDeadline(service: string, createdAt: number, txDeadline: number, requestPrepareMs: number | undefined): number {
    let deadline = txDeadline;
    if (requestPrepareMs !== undefined) deadline = Math.min(deadline, createdAt + requestPrepareMs);
    const own = this.#serviceTimeouts[service]?.prepareTimeoutMs;
    if (own !== undefined) deadline = Math.min(deadline, createdAt + own);
    return deadline;
  }

  #slowestFirst(branches: readonly Branch[]): number[] {
    const order = branches.map((_, i) => i);
    // Resource-blind (scheduler off): request order.
    if (branches.length < 2 || !this.#scheduler.enabled) return order;
    const expected = branches.map((b) => this.#scheduler.expectedLatencyMs(b.service) ?? 0);
    return order.sort((a, b) => expected[b]! - expected[a]!);
  }

  /**
   * Sends a prepare and retries transient failures; the promise never rejects. Each attempt first waits
   * for a slot of the service's scheduler lane (oldest transaction first); the slot's latency feeds the
   * service's adaptive limit.
   */
  #prepare(tx: LiveTx, branch: Branch, deadline: number): Promise<VoteOutcome> {
    const withdrawn = (): boolean => tx.decided || this.#closing || Date.now() >= deadline;
    return (async (): Promise<VoteOutcome> => {
      let lastReason = 'UNREACHABLE';
      for (let n = 1; ; n++) {
        const release = await this.#scheduler.acquire(branch.service, tx.createdAt, withdrawn);
        // Withdrawn while queued: nothing was sent for this attempt.
        if (!release) return { vote: Vote.NONE, reason: tx.decided || this.#closing ? lastReason : 'TIMEOUT' };
        const sentAt = performance.now();
        let answered = false;
        try {
          const sidecarUrl = this.#registry.sidecarUrl(branch.service);
          if (sidecarUrl === undefined) throw new Error(`no sidecar address known for ${branch.service}`);
          branch.attempts += 1;
          const item = { action: BranchAction.PREPARE, txId: tx.txId, service: branch.service, operations: branch.operations, deadline };
          const result = await this.#dispatcher.submit(sidecarUrl, item, Math.max(1, deadline - Date.now())).result;
          answered = true;
          if (result.status === 'ok') return { vote: Vote.YES };
          if (result.status === 'no') return { vote: Vote.NO, reason: result.reason ?? 'REFUSED' };
          lastReason = result.reason ?? 'ERROR';
        } catch (err) {
          lastReason = err instanceof Error && err.name === 'TransportTimeoutError' ? 'TIMEOUT' : reasonOf(err);
        } finally {
          release(performance.now() - sentAt, answered);
        }
        if (tx.decided || this.#closing || n >= this.#maxPrepareAttempts) break;
        const wait = backoffDelayMs(this.#prepareBackoff, n, this.#random);
        if (Date.now() + wait >= deadline) return { vote: Vote.NONE, reason: 'TIMEOUT' };
        await this.#sleep(wait);
        if (tx.decided || this.#closing) break;
      }
      return { vote: Vote.NONE, reason: lastReason };
    })();
  }

  /** All yes → commit; the first no (or exhausted retries) → abort at once; the deadline → abort "TIMEOUT". */
  #countVotes(tx: LiveTx, votes: Promise<VoteOutcome>[], deadline: number): Promise<Verdict> {
    return new Promise<Verdict>((resolve) => {
      let yes = 0;
      let done = false;
      let counting = false;
      // The crash point fires when the first answer (or the deadline) arrives and before it is counted:
      // by then prepares have demonstrably reached the sidecars, and nothing is decided.
      const startCounting = (): void => {
        if (counting) return;
        counting = true;
        reachStep(CoordinatorSteps.AFTER_PREPARES_SENT);
      };
      const finish = (verdict: Verdict): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(verdict);
      };
      const timer = setTimeout(() => {
        startCounting();
        finish({ commit: false, reason: 'TIMEOUT' });
      }, Math.max(0, deadline - Date.now()));
      votes.forEach((pending, i) => {
        void pending.then((outcome) => {
          const branch = tx.branches[i];
          if (done || !branch) return;
          startCounting();
          branch.vote = outcome.vote;
          if (outcome.vote === Vote.YES) {
            branch.state = BranchState.PREPARED;
            yes += 1;
            if (yes === votes.length) finish({ commit: true });
            else reachStep(CoordinatorSteps.BETWEEN_VOTES);
            return;
          }
          branch.state = BranchState.VOTED_NO;
          if (outcome.reason !== undefined) branch.reason = outcome.reason;
          branch.refused = outcome.vote === Vote.NO;
          finish({ commit: false, reason: outcome.reason ?? 'REFUSED' });
        });
      });
    });
  }

  #participantResults(tx: LiveTx): ParticipantResult[] {
    return tx.branches.map((b) => {
      const result: ParticipantResult = { service: b.service, vote: b.vote ?? Vote.NONE };
      if (b.reason !== undefined) result.reason = b.reason;
      return result;
    });
  }

  #record(tx: LiveTx, state: DecisionState, result: TransactionResult, keyed: { key: string; hash: string } | undefined): DecisionRecord {
    const record: DecisionRecord = {
      txId: tx.txId,
      state,
      participants: tx.branches.map((b) => {
        const p: DecisionRecord['participants'][number] = { service: b.service, operations: b.operations, vote: b.vote ?? Vote.NONE };
        if (b.reason !== undefined) p.reason = b.reason;
        return p;
      }),
      result,
      createdAt: tx.createdAt,
      decidedAt: tx.decidedAt ?? Date.now(),
    };
    if (keyed) {
      record.idempotencyKey = keyed.key;
      record.requestHash = keyed.hash;
    }
    return record;
  }

  async #commit(tx: LiveTx, keyed: { key: string; hash: string } | undefined): Promise<TransactionResult> {
    tx.decidedAt = Date.now();
    const result: TransactionResult = {
      txId: tx.txId,
      outcome: Outcome.COMMITTED,
      participants: this.#participantResults(tx),
      durationMs: tx.decidedAt - tx.createdAt,
    };
    try {
      await this.#log.append(this.#record(tx, 'COMMITTING', result, keyed));
    } catch (err) {
      // A failed COMMIT may still have left its frames on disk: neither commit nor rollback is safe
      // to send. The transaction stays PREPARING (decision "pending") until recovery reads the log.
      this.#logger.error({ txId: tx.txId, err: reasonOf(err) }, 'commit record could not be forced; outcome left to recovery');
      this.#onLogFailure(err, tx.txId);
      throw new TxmeshError('TXM_OUTCOME_UNKNOWN', tx.txId);
    }
    tx.logged = true;
    tx.state = TxState.COMMITTING;
    tx.outcome = Outcome.COMMITTED;
    this.#committed += 1;
    reachStep(CoordinatorSteps.AFTER_COMMIT_LOGGED);
    this.#deliver(tx, BranchAction.COMMIT);
    return result;
  }

  async #abort(tx: LiveTx, reason: string, keyed: { key: string; hash: string } | undefined): Promise<TransactionResult> {
    tx.decidedAt = Date.now();
    for (const b of tx.branches) {
      if (b.vote === undefined) {
        b.vote = Vote.NONE;
        b.reason = 'TIMEOUT';
        b.state = BranchState.VOTED_NO;
      }
    }
    tx.state = TxState.ABORTING;
    tx.outcome = Outcome.ABORTED;
    tx.reason = reason;
    this.#aborted += 1;
    const result: TransactionResult = {
      txId: tx.txId,
      outcome: Outcome.ABORTED,
      reason,
      participants: this.#participantResults(tx),
      durationMs: tx.decidedAt - tx.createdAt,
    };
    if (keyed) {
      // Only so a retried key never runs again after a crash; correctness of the abort needs no write.
      try {
        await this.#log.append(this.#record(tx, 'ABORTING', result, keyed));
        tx.logged = true;
      } catch (err) {
        // Rolling back is still right (nothing was committed), but the key is not protected, so the
        // client must not be told a final outcome under it.
        this.#logger.error({ txId: tx.txId, err: reasonOf(err) }, 'abort record could not be forced; the idempotencyKey stays unused');
        this.#deliver(tx, BranchAction.ROLLBACK);
        this.#onLogFailure(err, tx.txId);
        throw new TxmeshError('TXM_OUTCOME_UNKNOWN', tx.txId);
      }
    }
    this.#deliver(tx, BranchAction.ROLLBACK);
    return result;
  }

  // ------------------------------------------------------------------ delivery of the outcome

  /** Starts commit/rollback delivery in the background; it ends only when every target acknowledged. */
  #deliver(tx: LiveTx, action: typeof BranchAction.COMMIT | typeof BranchAction.ROLLBACK): void {
    // Rollback goes to every branch that did not itself refuse: a timed-out one may have prepared late.
    const targets = action === BranchAction.COMMIT ? tx.branches : tx.branches.filter((b) => !b.refused);
    for (const b of targets) b.delivering = true;
    let acks = 0;
    const deliverOne = async (b: Branch): Promise<boolean> => {
      const acked = await this.#deliverBranch(tx, b, action);
      b.delivering = false;
      if (acked && action === BranchAction.COMMIT && ++acks === 1 && targets.length > 1) reachStep(CoordinatorSteps.MID_FANOUT);
      return acked;
    };
    const delivery = Promise.all(targets.map(deliverOne)).then((acked) => {
      if (!acked.every(Boolean)) return;
      const final: FinalDecisionState = action === BranchAction.COMMIT ? 'COMMITTED' : 'ABORTED';
      tx.state = final === 'COMMITTED' ? TxState.COMMITTED : TxState.ABORTED;
      this.#active.delete(tx.txId);
      this.#recent.set(tx.txId, this.#snapshot(tx));
      if (tx.logged) this.#log.markDone(tx.txId, final, Date.now());
    });
    this.#deliveries.add(delivery);
    void delivery.finally(() => this.#deliveries.delete(delivery));
  }

  /** Retries until the branch acknowledges; false only when the manager is closing. */
  async #deliverBranch(tx: LiveTx, branch: Branch, action: typeof BranchAction.COMMIT | typeof BranchAction.ROLLBACK): Promise<boolean> {
    branch.attempts = 0;
    for (let n = 1; ; n++) {
      if (this.#closing) return false;
      branch.attempts = n;
      let failure: string;
      const sidecarUrl = this.#registry.sidecarUrl(branch.service);
      if (sidecarUrl === undefined) {
        failure = 'no sidecar address known';
      } else {
        try {
          const timeoutMs = this.#serviceTimeouts[branch.service]?.deliveryTimeoutMs ?? this.#deliveryTimeoutMs;
          const result = await this.#dispatcher.submit(sidecarUrl, { action, txId: tx.txId, service: branch.service }, timeoutMs).result;
          if (result.status === 'ok') {
            branch.state = action === BranchAction.COMMIT ? BranchState.COMMITTED : BranchState.ROLLED_BACK;
            return true;
          }
          failure = `${result.status}${result.reason ? `: ${result.reason}` : ''}`;
        } catch (err) {
          failure = reasonOf(err);
        }
      }
      branch.lastError = failure;
      if (this.#closing) return false;
      if (n % this.#warnEvery === 0) {
        this.#logger.warn({ txId: tx.txId, service: branch.service, action, attempts: n, failure }, 'branch has not acknowledged the outcome yet; still retrying');
      }
      await this.#sleep(backoffDelayMs(this.#deliveryBackoff, n, this.#random));
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#sleeps.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      this.#sleeps.add(entry);
    });
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Resumes delivery of every decision record not marked done (commit → commit every branch, abort →
   * rollback). Undecided transactions of a dead process need nothing: no record means abort.
   * Returns how many were resumed; delivery continues in the background.
   */
  recover(): number {
    let resumed = 0;
    for (const record of this.#log.listUnfinished()) {
      // Delivering here, or finished here with its (unforced) done mark not yet written: nothing to resume.
      if (this.#active.has(record.txId) || this.#recent.get(record.txId) !== undefined) continue;
      const committing = record.state === 'COMMITTING';
      const tx: LiveTx = {
        txId: record.txId,
        state: committing ? TxState.COMMITTING : TxState.ABORTING,
        createdAt: record.createdAt,
        decidedAt: record.decidedAt,
        outcome: committing ? Outcome.COMMITTED : Outcome.ABORTED,
        branches: record.participants.map((p) => {
          const branch: Branch = {
            service: p.service,
            operations: p.operations,
            state: p.vote === Vote.YES ? BranchState.PREPARED : BranchState.VOTED_NO,
            vote: p.vote,
            attempts: 0,
            refused: p.vote === Vote.NO,
          };
          if (p.reason !== undefined) branch.reason = p.reason;
          return branch;
        }),
        logged: true,
        decided: true,
      };
      if (record.result.reason !== undefined) tx.reason = record.result.reason;
      this.#active.set(tx.txId, tx);
      this.#deliver(tx, committing ? BranchAction.COMMIT : BranchAction.ROLLBACK);
      resumed += 1;
    }
    this.#recovered += resumed;
    return resumed;
  }

  // ------------------------------------------------------------------ queries

  #checkTxId(txId: string): void {
    const shard = shardOfTxId(txId);
    if (shard === undefined) throw new TxmeshError('TXM_BAD_TX_ID', txId);
    if (shard !== this.shard) throw new TxmeshError('TXM_WRONG_SHARD', `${txId} belongs to shard ${shard}, this is shard ${this.shard}`);
  }

  status(txId: string): TransactionStatus {
    this.#checkTxId(txId);
    const live = this.#active.get(txId);
    if (live) return this.#snapshot(live);
    const recent = this.#recent.get(txId);
    if (recent) return structuredClone(recent);
    const record = this.#log.get(txId);
    if (record) return this.#statusFromRecord(record);
    throw new TxmeshError('TXM_TX_NOT_FOUND', txId);
  }

  /** commit if a COMMIT record exists, pending while still preparing here, otherwise abort (presumed). */
  decision(txId: string): DecisionAnswer {
    this.#checkTxId(txId);
    const live = this.#active.get(txId);
    if (live) {
      if (live.state === TxState.PREPARING) return { txId, decision: Decision.PENDING };
      return { txId, decision: live.outcome === Outcome.COMMITTED ? Decision.COMMIT : Decision.ABORT };
    }
    const record = this.#log.get(txId);
    const committed = record !== undefined && (record.state === 'COMMITTING' || record.state === 'COMMITTED');
    return { txId, decision: committed ? Decision.COMMIT : Decision.ABORT };
  }

  #snapshot(tx: LiveTx): TransactionStatus {
    const status: TransactionStatus = {
      txId: tx.txId,
      shard: this.shard,
      state: tx.state,
      createdAt: tx.createdAt,
      branches: tx.branches.map((b) => {
        const branch: BranchStatus = { service: b.service, state: b.state, attempts: b.attempts };
        if (b.vote !== undefined) branch.vote = b.vote;
        if (b.reason !== undefined) branch.reason = b.reason;
        return branch;
      }),
    };
    if (tx.outcome !== undefined) status.outcome = tx.outcome;
    if (tx.reason !== undefined) status.reason = tx.reason;
    if (tx.decidedAt !== undefined) status.decidedAt = tx.decidedAt;
    return status;
  }

  #statusFromRecord(record: DecisionRecord): TransactionStatus {
    const committed = record.state === 'COMMITTING' || record.state === 'COMMITTED';
    const status: TransactionStatus = {
      txId: record.txId,
      shard: this.shard,
      state: TxState[record.state],
      outcome: committed ? Outcome.COMMITTED : Outcome.ABORTED,
      createdAt: record.createdAt,
      decidedAt: record.decidedAt,
      branches: record.participants.map((p) => {
        let state: BranchState = p.vote === Vote.YES ? BranchState.PREPARED : BranchState.VOTED_NO;
        if (record.state === 'COMMITTED') state = BranchState.COMMITTED;
        if (record.state === 'ABORTED' && p.vote !== Vote.NO) state = BranchState.ROLLED_BACK;
        const branch: BranchStatus = { service: p.service, state, vote: p.vote, attempts: 0 };
        if (p.reason !== undefined) branch.reason = p.reason;
        return branch;
      }),
    };
    if (record.result.reason !== undefined) status.reason = record.result.reason;
    return status;
  }

  stats(): ManagerStats {
    const log = this.#log.stats();
    const sent = this.#dispatcher.stats();
    return {
      committed: this.#committed,
      aborted: this.#aborted,
      inFlight: this.#active.size,
      logFlushes: log.flushes,
      logRecords: log.records,
      batchesSent: sent.batchesSent,
      itemsSent: sent.itemsSent,
      refusedOverloaded: this.#scheduler.stats().refusedOverloaded,
      schedulerEnabled: this.#scheduler.enabled,
      recovered: this.#recovered,
      inDoubt: this.inDoubt().length,
      logPruned: this.#pruned,
    };
  }

  /**
   * Branches whose commit/rollback has been unacknowledged for at least `olderThanMs` (default
   * inDoubtAfterMs) since the decision, oldest first. Delivery keeps retrying them meanwhile.
   */
  inDoubt(olderThanMs: number = this.#inDoubtAfterMs, now: number = Date.now()): InDoubtBranch[] {
    const out: InDoubtBranch[] = [];
    for (const tx of this.#active.values()) {
      if (tx.decidedAt === undefined || tx.state === TxState.PREPARING) continue;
      const ageMs = now - tx.decidedAt;
      if (ageMs < olderThanMs) continue;
      for (const b of tx.branches) {
        if (!b.delivering) continue;
        const entry: InDoubtBranch = {
          txId: tx.txId,
          service: b.service,
          action: tx.outcome === Outcome.COMMITTED ? 'commit' : 'rollback',
          ageMs,
          attempts: b.attempts,
        };
        if (b.lastError !== undefined) entry.lastError = b.lastError;
        const sidecarUrl = this.#registry.sidecarUrl(b.service);
        if (sidecarUrl !== undefined) entry.sidecarUrl = sidecarUrl;
        out.push(entry);
      }
    }
    return out.sort((a, b) => b.ageMs - a.ageMs);
  }

  /**
   * Deletes finished records from the log: unkeyed ones at once (nobody can ask for them by key, and
   * every branch acknowledged, so none will ask for the decision), keyed ones after the retention
   * window. A pruned transaction then answers GET with TXM_TX_NOT_FOUND and /decision with abort:
   * safe, because no branch of it is prepared anywhere any more (see docs/design.md, Recovery).
   */
  pruneFinished(now: number = Date.now()): number {
    if (this.#closing) return 0;
    try {
      const { deleted } = this.#log.prune({ unkeyedDoneBefore: now, keyedDoneBefore: now - this.#idempotencyRetentionMs });
      this.#pruned += deleted;
      return deleted;
    } catch (err) {
      // Pruning is housekeeping: a failure leaves the records for the next round.
      this.#logger.warn({ err: reasonOf(err) }, 'pruning finished decision records failed; retrying at the next interval');
      return 0;
    }
  }

  get inDoubtAfterMs(): number {
    return this.#inDoubtAfterMs;
  }

  get inFlight(): number {
    return this.#active.size;
  }

  /** Resolves when every delivery running now has finished (tests, graceful drains). */
  async settled(): Promise<void> {
    while (this.#deliveries.size > 0) await Promise.allSettled([...this.#deliveries]);
  }

  /**
   * Stops retries and refuses new work. Unfinished deliveries stay unfinished in the log and resume
   * at the next recover(); undecided transactions become presumed aborts.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer);
      sleep.wake();
    }
    this.#sleeps.clear();
    this.#dispatcher.close();
  }
}
