/**
 * The 2PC core of one shard, with presumed abort. No sockets here: branches are reached through a
 * BranchTransport (batched per sidecar), decisions through a DecisionLog. This file orchestrates; the
 * parts do the work: VoteCollector (phase one), OutcomeDelivery (phase two, retried until acknowledged),
 * IdempotencyGate, LogPruner, and the pure views of status-views.ts.
 *
 * Durability points: a COMMIT record is forced (group commit) before the client hears "committed";
 * an ABORT record is forced only when the request carried an idempotencyKey. Nothing else is forced.
 */
import {
  BranchAction,
  BranchState,
  Outcome,
  Reason,
  TxState,
  TxmeshError,
  Vote,
  DeadlockMode,
  newTxId,
  shardForIdempotencyKey,
  shardOfTxId,
  txTimeOf,
  validateBeginRequest,
  type BeginTransactionRequest,
  type DecisionAnswer,
  type InDoubtBranch,
  type RegisterServiceRequest,
  type RegisterServiceResponse,
  type ServiceView,
  type TransactionResult,
  type TransactionStatus,
  type WaitReport,
} from '@txmesh/protocol';
import { ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { BatchingDispatcher } from './batching-dispatcher.ts';
import type { DecisionLog, DecisionRecord } from './decision-log.ts';
import { IdempotencyGate } from './idempotency-gate.ts';
import { decisionRecordOf, liveTxFromRecord, newLiveTx, participantResults, type KeyedRequest, type LiveTx } from './live-transaction.ts';
import { LogPruner } from './log-pruner.ts';
import { resolveManagerOptions, type ResolvedManagerOptions, type TransactionManagerOptions } from './manager-options.ts';
import { OutcomeDelivery, type OutcomeAction } from './outcome-delivery.ts';
import { RecentMap } from './recent-map.ts';
import { requestHash } from './request-hash.ts';
import { OverloadedError, Scheduler } from './scheduler.ts';
import { ServiceRegistry } from './service-registry.ts';
import { Sleeper } from './sleeper.ts';
import { decisionOf, inDoubtBranches, snapshotOf, statusFromRecord } from './status-views.ts';
import { CoordinatorSteps, reachStep } from './steps.ts';
import { endTransactionSpan, inRecoverySpan, noteTxId, startTransactionSpan, transactionLogFields } from './transaction-spans.ts';
import { VoteCollector } from './vote-collector.ts';
import { DeadlockDetector, type DeadlockStats } from './deadlock-detector.ts';

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
  deadlockMode: DeadlockMode;
  /** Cycle victims this shard aborted, and how long their cycles stood. */
  deadlocks: DeadlockStats;
}

/** What recover() found: decisions resumed, and which of their branches were in doubt already. */
export interface RecoverySummary {
  resumed: number;
  /** Branches of resumed decisions already past the in-doubt threshold when delivery resumed. */
  inDoubt: InDoubtBranch[];
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class TransactionManager {
  readonly shard: number;
  readonly shards: number;
  readonly #options: ResolvedManagerOptions;
  readonly #log: DecisionLog;
  readonly #dispatcher: BatchingDispatcher;
  readonly #registry: ServiceRegistry;
  readonly #scheduler: Scheduler;
  readonly #sleeper = new Sleeper();
  readonly #votes: VoteCollector;
  readonly #delivery: OutcomeDelivery;
  readonly #idempotency: IdempotencyGate;
  readonly #pruner: LogPruner;
  /** Undecided or still delivering: bounded by load, not by history. */
  readonly #active = new Map<string, LiveTx>();
  readonly #recent: RecentMap<string, TransactionStatus>;
  #closing = false;
  #committed = 0;
  #aborted = 0;
  #recovered = 0;
  readonly #deadlocks: DeadlockDetector | undefined;

  constructor(options: TransactionManagerOptions) {
    const o = resolveManagerOptions(options);
    this.#options = o;
    this.shard = o.shard;
    this.shards = o.shards;
    this.#log = o.log;
    this.#scheduler = new Scheduler(o.scheduler);
    this.#registry = new ServiceRegistry(o.log, { leaseMs: o.registrationLeaseMs, forgetAfterMs: o.forgetServiceAfterMs }, this.#scheduler);
    this.#dispatcher = new BatchingDispatcher(o.transport, { ...o.dispatcher, onReport: (service, report) => this.#registry.noteReport(service, report) });
    const isClosing = (): boolean => this.#closing;
    const shared = { dispatcher: this.#dispatcher, registry: this.#registry, sleeper: this.#sleeper, options: o, isClosing };
    this.#votes = new VoteCollector({ ...shared, scheduler: this.#scheduler });
    this.#delivery = new OutcomeDelivery({ ...shared, recordAck: (txId, service) => this.#log.markAcked(txId, service, Date.now()) });
    this.#idempotency = new IdempotencyGate(o.log);
    this.#pruner = new LogPruner(o.log, { retentionMs: o.idempotencyRetentionMs, intervalMs: o.pruneIntervalMs, logger: o.logger });
    this.#recent = new RecentMap(o.recentLimit);
    if (o.deadlock === DeadlockMode.DETECT) this.#deadlocks = new DeadlockDetector({ shard: o.shard, abort: (txId) => this.#abortVictim(txId) });
  }

  // ------------------------------------------------------------------ deadlocks

  /** A sidecar's wait-for edges of its service (POST /v1/wait-for). Ignored unless the mode is detect. */
  reportWaits(report: WaitReport): { edges: number } {
    this.#deadlocks?.report(report);
    return { edges: report.edges.length };
  }

  /** Aborts a cycle's victim if it is still counting votes here; a decided one is left alone. */
  #abortVictim(txId: string): boolean {
    const tx = this.#active.get(txId);
    if (!tx || tx.decided || !tx.interrupt) return false;
    tx.interrupt(Reason.DEADLOCK);
    return true;
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
    return { shard: this.shard, shards: this.shards, heartbeatMs: this.#options.heartbeatMs };
  }

  listServices(): ServiceView[] {
    return this.#registry.list();
  }

  // ------------------------------------------------------------------ begin → decide

  /** Runs one transaction to its decision. Refusals (TxmeshError) are thrown before anything is sent. */
  /** `parent`: the caller's trace context (from its traceparent), the parent of the transaction's span. */
  async begin(body: unknown, parent: Context = ROOT_CONTEXT): Promise<TransactionResult> {
    if (this.#closing) throw new TxmeshError('TXM_SHUTTING_DOWN');
    const request = validateBeginRequest(body);
    if (this.#active.size >= this.#options.maxInFlight) {
      // The shard's own bound, whatever the services' lanes say: refused before anything is sent or locked.
      throw new OverloadedError(`(none: this shard already runs ${this.#active.size} transactions, its maxInFlight)`, 1000);
    }
    const key = request.idempotencyKey;
    if (key === undefined) {
      this.#checkServices(request);
      return this.#run(request, undefined, parent);
    }
    const owner = shardForIdempotencyKey(key, this.shards);
    if (owner !== this.shard) {
      // Another shard owns this key; running it here could run it twice.
      throw new TxmeshError('TXM_WRONG_SHARD', `idempotencyKey ${key} belongs to shard ${owner}, this is shard ${this.shard}`);
    }
    const hash = requestHash(request);
    return this.#idempotency.run(key, hash, () => {
      this.#checkServices(request);
      return this.#run(request, { key, hash }, parent);
    });
  }

  #checkServices(request: BeginTransactionRequest): void {
    const now = Date.now();
    // A loop that makes an array only for a refusal: every begin runs this.
    let unknown: string[] | undefined;
    const services: string[] = [];
    for (const p of request.participants) {
      const why = this.#registry.unavailable(p.service, now);
      if (why !== undefined) (unknown ??= []).push(why);
      services.push(p.service);
    }
    if (unknown !== undefined) throw new TxmeshError('TXM_UNKNOWN_SERVICE', unknown.join(', '));
    // Refused before anything is sent or locked, rather than timing out later while holding locks.
    this.#scheduler.admit(services, request.timeoutMs ?? this.#options.defaultTimeoutMs);
  }

  /**
   * Runs in the transaction's span (its branch spans start from it and its log lines name it) to its decision.
   * One async function from the span's start to the decision, not one per step: a shard holds one per transaction
   * in flight.
   */
  async #run(request: BeginTransactionRequest, keyed: KeyedRequest | undefined, parent: Context): Promise<TransactionResult> {
    const trace = startTransactionSpan(parent, this.shard);
    try {
      const createdAt = Date.now();
      const deadline = createdAt + (request.timeoutMs ?? this.#options.defaultTimeoutMs);
      const tx = newLiveTx(newTxId(this.shard, createdAt), createdAt, request.participants, trace);
      noteTxId(trace, tx.txId);
      this.#active.set(tx.txId, tx);
      reachStep(CoordinatorSteps.BEFORE_PREPARES_SENT);
      const verdict = await this.#votes.collect(tx, request, deadline);
      tx.decided = true;
      const result = await (verdict.commit ? this.#commit(tx, keyed) : this.#abort(tx, verdict.reason, verdict.details, keyed));
      this.#options.logger.debug?.({ txId: result.txId, ...transactionLogFields(trace), outcome: result.outcome, reason: result.reason }, 'transaction decided');
      endTransactionSpan(trace, result);
      return result;
    } catch (err) {
      endTransactionSpan(trace, undefined, err);
      throw err;
    }
  }

  async #commit(tx: LiveTx, keyed: KeyedRequest | undefined): Promise<TransactionResult> {
    tx.decidedAt = Date.now();
    const result: TransactionResult = {
      txId: tx.txId,
      outcome: Outcome.COMMITTED,
      participants: participantResults(tx),
      durationMs: tx.decidedAt - tx.createdAt,
    };
    try {
      await this.#log.append(decisionRecordOf(tx, 'COMMITTING', result, keyed));
    } catch (err) {
      // A failed COMMIT may still have left its frames on disk: neither commit nor rollback is safe
      // to send. The transaction stays PREPARING (decision "pending") until recovery reads the log.
      this.#options.logger.error({ txId: tx.txId, ...transactionLogFields(tx.trace), err: messageOf(err) }, 'commit record could not be forced; outcome left to recovery');
      this.#options.onLogFailure(err, tx.txId);
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

  async #abort(tx: LiveTx, reason: string, details: string | undefined, keyed: KeyedRequest | undefined): Promise<TransactionResult> {
    tx.decidedAt = Date.now();
    for (const b of tx.branches) {
      if (b.vote === undefined) {
        b.vote = Vote.NONE;
        // A deadlock victim's branches still waiting for locks were cut short, not late.
        b.reason = reason === Reason.DEADLOCK ? reason : Reason.TIMEOUT;
        b.state = BranchState.VOTED_NO;
      }
    }
    tx.state = TxState.ABORTING;
    tx.outcome = Outcome.ABORTED;
    tx.reason = reason;
    if (details !== undefined) tx.details = details;
    this.#aborted += 1;
    const result: TransactionResult = {
      txId: tx.txId,
      outcome: Outcome.ABORTED,
      reason,
      participants: participantResults(tx),
      durationMs: tx.decidedAt - tx.createdAt,
    };
    if (details !== undefined) result.details = details;
    if (keyed) {
      // Only so a retried key never runs again after a crash; correctness of the abort needs no write.
      try {
        await this.#log.append(decisionRecordOf(tx, 'ABORTING', result, keyed));
        tx.logged = true;
      } catch (err) {
        // Rolling back is still right (nothing was committed), but the key is not protected, so the
        // client must not be told a final outcome under it.
        this.#options.logger.error({ txId: tx.txId, ...transactionLogFields(tx.trace), err: messageOf(err) }, 'abort record could not be forced; the idempotencyKey stays unused');
        this.#deliver(tx, BranchAction.ROLLBACK);
        this.#options.onLogFailure(err, tx.txId);
        throw new TxmeshError('TXM_OUTCOME_UNKNOWN', tx.txId);
      }
    }
    this.#deliver(tx, BranchAction.ROLLBACK);
    return result;
  }

  /** Delivers the outcome in the background; once every branch acknowledged, the tx is finished. */
  #deliver(tx: LiveTx, action: OutcomeAction): void {
    this.#delivery.deliver(tx, action, () => {
      const committed = action === BranchAction.COMMIT;
      tx.state = committed ? TxState.COMMITTED : TxState.ABORTED;
      this.#active.delete(tx.txId);
      this.#recent.set(tx.txId, snapshotOf(tx, this.shard));
      if (tx.logged) this.#log.markDone(tx.txId, committed ? 'COMMITTED' : 'ABORTED', Date.now());
    });
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Resumes delivery of every decision record not marked done (commit → commit every branch, abort →
   * rollback). Undecided transactions of a dead process need nothing: no record means abort.
   * Returns how many were resumed; delivery continues in the background.
   */
  recover(): number {
    return this.recoverWithSummary().resumed;
  }

  /** recover(), also naming the resumed branches that were in doubt already (for one summary line). */
  recoverWithSummary(now: number = Date.now()): RecoverySummary {
    const records = this.#log.listUnfinished();
    // One recovery span, linked to every resumed transaction's trace; each delivery joins its own trace.
    return inRecoverySpan(this.shard, records, () => this.#resume(records, now));
  }

  #resume(records: readonly DecisionRecord[], now: number): RecoverySummary {
    const resumedTxs: LiveTx[] = [];
    for (const record of records) {
      // Delivering here, or finished here with its (unforced) done mark not yet written: nothing to resume.
      if (this.#active.has(record.txId) || this.#recent.get(record.txId) !== undefined) continue;
      const tx = liveTxFromRecord(record);
      this.#active.set(tx.txId, tx);
      this.#deliver(tx, tx.outcome === Outcome.COMMITTED ? BranchAction.COMMIT : BranchAction.ROLLBACK);
      resumedTxs.push(tx);
    }
    this.#recovered += resumedTxs.length;
    const inDoubt = inDoubtBranches(resumedTxs, this.#options.inDoubtAfterMs, now, (s) => this.#registry.sidecarUrl(s));
    return { resumed: resumedTxs.length, inDoubt };
  }

  // ------------------------------------------------------------------ queries

  #checkTxId(txId: string): void {
    const shard = shardOfTxId(txId);
    if (shard === undefined) throw new TxmeshError('TXM_BAD_TX_ID', txId);
    if (shard !== this.shard) throw new TxmeshError('TXM_WRONG_SHARD', `${txId} belongs to shard ${shard}, this is shard ${this.shard}`);
  }

  /** Presumed abort needs a log that was there when the transaction began; otherwise nobody can tell. */
  #checkLogCovers(txId: string): void {
    const began = txTimeOf(txId);
    if (began !== undefined && began < this.#log.bornAt) {
      throw new TxmeshError('TXM_DECISION_UNKNOWN', `${txId} began at ${new Date(began).toISOString()}, this log at ${new Date(this.#log.bornAt).toISOString()}`);
    }
  }

  status(txId: string): TransactionStatus {
    this.#checkTxId(txId);
    const live = this.#active.get(txId);
    if (live) return snapshotOf(live, this.shard);
    const recent = this.#recent.get(txId);
    if (recent) return structuredClone(recent);
    const record = this.#log.get(txId);
    if (record) return statusFromRecord(record, this.shard);
    this.#checkLogCovers(txId);
    throw new TxmeshError('TXM_TX_NOT_FOUND', txId);
  }

  /** commit if a COMMIT record exists, pending while still preparing here, otherwise abort (presumed). */
  decision(txId: string): DecisionAnswer {
    this.#checkTxId(txId);
    const live = this.#active.get(txId);
    const record = live ? undefined : this.#log.get(txId);
    if (!live && record === undefined) this.#checkLogCovers(txId);
    return decisionOf(txId, live, record);
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
      logPruned: this.#pruner.pruned,
      deadlockMode: this.#options.deadlock,
      deadlocks: this.#deadlocks?.stats() ?? { victims: 0, edges: 0 },
    };
  }

  /**
   * Branches whose commit/rollback has been unacknowledged for at least `olderThanMs` (default
   * inDoubtAfterMs) since the decision, oldest first. Delivery keeps retrying them meanwhile.
   */
  inDoubt(olderThanMs: number = this.#options.inDoubtAfterMs, now: number = Date.now()): InDoubtBranch[] {
    return inDoubtBranches(this.#active.values(), olderThanMs, now, (s) => this.#registry.sidecarUrl(s));
  }

  /** Deletes finished records from the log now (see LogPruner); also runs every pruneIntervalMs. */
  pruneFinished(now: number = Date.now()): number {
    if (this.#closing) return 0;
    return this.#pruner.prune(now);
  }

  get inDoubtAfterMs(): number {
    return this.#options.inDoubtAfterMs;
  }

  get inFlight(): number {
    return this.#active.size;
  }

  /** Resolves when every delivery running now has finished (tests, graceful drains). */
  settled(): Promise<void> {
    return this.#delivery.settled();
  }

  /**
   * Stops retries and refuses new work. Unfinished deliveries stay unfinished in the log and resume
   * at the next recover(); undecided transactions become presumed aborts.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#pruner.stop();
    this.#deadlocks?.close();
    this.#sleeper.wakeAll();
    this.#dispatcher.close();
  }
}

export type { TransactionManagerOptions } from './manager-options.ts';
