/**
 * The participant: answers batches of prepare/commit/rollback for this service's branches.
 *
 * Durability points: a prepare's business change, its txm_branches 'prepared' row, its barrier rows
 * and its txm_locks rows commit in one SQLite transaction (synchronous = FULL) before the yes leaves.
 * A commit/rollback applies its hooks, moves the branch to its outcome and deletes its locks in one
 * transaction before the ack leaves. Every vote, yes or no, is stored, so a duplicate gets the same answer.
 *
 * Batching: the decisions of a batch run first, in one transaction (they release locks prepares may
 * be waiting for); then its prepares take their locks in parallel and every prepare that is ready runs
 * in one transaction, one savepoint per branch, so one branch's refusal does not undo another's.
 */
import type Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import {
  BranchAction,
  ItemStatus,
  PROTOCOL_VERSION,
  TxmeshError,
  isValidName,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type BranchItem,
  type BranchItemResult,
  type OperationSpec,
  type PreparedListResponse,
  type ServiceUsage,
} from '@txmesh/protocol';
import { ParticipantSteps, reachStep } from './steps.ts';
import { BarrierStore, type BranchRecord, type HookPhase } from './barrier-store.ts';
import { LockManager, LockWaitError, type LockFailure } from './lock-manager.ts';
import { BusinessRefusal, type HookContext, type OperationHandlers } from './operation.ts';
import { mountParticipantRoutes } from './participant-routes.ts';
import { resolveBranchRetention, type BranchRetention, type BranchRetentionOptions } from './branch-retention.ts';
import { ResourceUsageMeter } from './resource-usage.ts';

export interface ParticipantOptions extends BranchRetentionOptions {
  service: string;
  db: Database.Database;
  operations: Record<string, OperationHandlers<any>>;
  /** Default 1000: waiting longer for a lock votes no with reason LOCK_TIMEOUT. */
  lockWaitMs?: number;
  /**
   * Default 100: how long a transaction waits for a lock held or awaited by an OLDER transaction
   * before it votes no with LOCK_CONFLICT (wait-die; this is what breaks cross-service deadlocks).
   */
  lockGraceMs?: number;
  /** Where unexpected hook failures are reported; default: one JSON line on stderr. */
  log?: (entry: Record<string, unknown>) => void;
  /**
   * Default true: measure this process (CPU against its cgroup quota, memory, event-loop delay) and attach
   * the figures to batch answers, for the sidecar's resource report.
   */
  resourceUsage?: boolean;
}

/** Write transactions on the service database: each is one fsync, however many branches it carries. */
export interface ParticipantStats {
  batches: number;
  prepareTransactions: number;
  preparesWritten: number;
  decisionTransactions: number;
  decisionsWritten: number;
}

export interface Participant {
  /** fastify plugin: mounts POST /txmesh/participant/v1/batch and GET /txmesh/participant/v1/prepared */
  routes(app: FastifyInstance): void;
  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse>;
  preparedList(): PreparedListResponse;
  /** This process's usage figures (also attached to every batch answer). */
  usage(): ServiceUsage | undefined;
  stats(): ParticipantStats;
  /** Deletes finished branch rows older than the retention (also run every branchPruneIntervalMs). */
  pruneFinishedBranches(now?: number): number;
  close(): void;
}

/** Reasons the SDK itself puts on no votes and errors (business reasons come from BusinessRefusal). */
export const ItemReasons = {
  ALREADY_ROLLED_BACK: 'ALREADY_ROLLED_BACK',
  LOCK_TIMEOUT: 'LOCK_TIMEOUT',
  LOCK_CONFLICT: 'LOCK_CONFLICT',
  DEADLINE_PASSED: 'DEADLINE_PASSED',
  PREPARE_FAILED: 'PREPARE_FAILED',
  COMMIT_FAILED: 'COMMIT_FAILED',
  ROLLBACK_FAILED: 'ROLLBACK_FAILED',
  ALREADY_COMMITTED: 'ALREADY_COMMITTED',
} as const;

const DEFAULT_LOCK_WAIT_MS = 1000;
const DEFAULT_LOCK_GRACE_MS = 100;
/** setTimeout fires at once for longer delays. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface ParsedOperation {
  handlers: OperationHandlers<unknown>;
  args: unknown;
}

/** One prepare branch of a batch, from its arrival to its vote. */
interface PrepareWork {
  txId: string;
  operations: OperationSpec[];
  deadline: number | undefined;
  parsed: ParsedOperation[];
  keys: string[];
  /** Answer known from the stored branch before doing anything (duplicate, prepare after rollback). */
  answer?: BranchItemResult;
  /** A no decided before the transaction; still recorded durably in it. */
  refusal?: { reason: string; message?: string };
  lockFailure?: LockFailure;
  settled: boolean;
  whenSettled: Promise<void>;
}

function result(item: { txId: string; action: BranchAction }, status: ItemStatus, reason?: string, message?: string): BranchItemResult {
  const r: BranchItemResult = { txId: item.txId, action: item.action, status };
  if (reason !== undefined) r.reason = reason;
  if (message !== undefined) r.message = message;
  return r;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Hooks must finish inside the SQLite transaction: an async hook would change data after the vote.
 * The refused promise still gets a rejection handler, or its failure would crash the process.
 */
function assertSynchronous(returned: unknown, phase: HookPhase, op: string, onLateFailure: (err: unknown) => void): void {
  const thenable = returned as { then?: unknown } | null | undefined;
  if (typeof thenable?.then === 'function') {
    (thenable as PromiseLike<unknown>).then(undefined, onLateFailure);
    throw new Error(`the ${phase} hook of operation "${op}" returned a promise; hooks must be synchronous`);
  }
}

function answerFromStored(txId: string, row: BranchRecord): BranchItemResult {
  const item = { txId, action: BranchAction.PREPARE };
  switch (row.state) {
    case 'prepared':
    case 'committed':
      return result(item, ItemStatus.OK);
    case 'voted_no':
      return result(item, ItemStatus.NO, row.reason, row.message);
    case 'rolled_back':
      return result(item, ItemStatus.NO, ItemReasons.ALREADY_ROLLED_BACK, 'this branch was rolled back before it prepared');
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function createParticipant(options: ParticipantOptions): Participant {
  return new ParticipantImpl(options);
}

class ParticipantImpl implements Participant {
  readonly #service: string;
  readonly #db: Database.Database;
  readonly #operations: Record<string, OperationHandlers<any>>;
  readonly #lockWaitMs: number;
  readonly #lockGraceMs: number;
  readonly #log: (entry: Record<string, unknown>) => void;
  readonly #store: BarrierStore;
  readonly #locks = new LockManager();
  /** Prepares under way, by txId: a duplicate arriving meanwhile shares the first one's answer. */
  readonly #inflight = new Map<string, Promise<BranchItemResult>>();
  readonly #inTransaction: Database.Transaction<(fn: () => void) => void>;
  readonly #inSavepoint: Database.Transaction<(fn: () => void) => void>;
  #closed = false;
  readonly #retention: BranchRetention;
  #pruneTimer: NodeJS.Timeout | undefined;
  readonly #meter: ResourceUsageMeter | undefined;
  readonly #counters: ParticipantStats = { batches: 0, prepareTransactions: 0, preparesWritten: 0, decisionTransactions: 0, decisionsWritten: 0 };

  constructor(options: ParticipantOptions) {
    if (!isValidName(options.service)) throw new TypeError(`service must be a service name, got ${JSON.stringify(options.service)}`);
    const lockWaitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    if (!Number.isInteger(lockWaitMs) || lockWaitMs < 0 || lockWaitMs > MAX_TIMER_MS) {
      throw new TypeError(`lockWaitMs must be an integer from 0 to ${MAX_TIMER_MS}, got ${lockWaitMs}`);
    }
    const lockGraceMs = options.lockGraceMs ?? DEFAULT_LOCK_GRACE_MS;
    if (!Number.isInteger(lockGraceMs) || lockGraceMs < 0 || lockGraceMs > MAX_TIMER_MS) {
      throw new TypeError(`lockGraceMs must be an integer from 0 to ${MAX_TIMER_MS}, got ${lockGraceMs}`);
    }
    this.#lockGraceMs = lockGraceMs;
    this.#retention = resolveBranchRetention(options);
    this.#service = options.service;
    this.#db = options.db;
    this.#operations = options.operations;
    this.#lockWaitMs = lockWaitMs;
    this.#log = options.log ?? ((entry) => process.stderr.write(`${JSON.stringify({ component: 'participant-sdk', service: this.#service, ...entry })}\n`));
    this.#store = new BarrierStore(this.#db);
    if (options.resourceUsage ?? true) this.#meter = new ResourceUsageMeter();
    this.#inTransaction = this.#db.transaction((fn: () => void) => fn());
    this.#inSavepoint = this.#db.transaction((fn: () => void) => fn());
    // Prepared-undecided branches get their locks back before the service takes any traffic.
    for (const { key, txId } of this.#store.allLocks()) this.#locks.hold(key, txId);
    if (this.#retention.pruneIntervalMs > 0) {
      this.#pruneTimer = setInterval(() => this.pruneFinishedBranches(), this.#retention.pruneIntervalMs);
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

  preparedList(): PreparedListResponse {
    return { service: this.#service, prepared: this.#store.preparedBranches() };
  }

  pruneFinishedBranches(now: number = Date.now()): number {
    if (this.#closed) return 0;
    try {
      return this.#store.pruneFinished(now - this.#retention.retentionMs);
    } catch (err) {
      // Housekeeping only: the rows stay until the next round.
      this.#log({ event: 'branch-prune-failed', error: messageOf(err) });
      return 0;
    }
  }

  /** A prepare whose deadline passed (beyond the clock-skew allowance) must not run. */
  #deadlinePassed(deadline: number | undefined, now: number): boolean {
    return deadline !== undefined && deadline + this.#retention.clockSkewAllowanceMs <= now;
  }

  close(): void {
    this.#closed = true;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#locks.cancelAll();
    this.#meter?.close();
  }

  async handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse> {
    if (this.#closed) throw new TxmeshError('TXM_SHUTTING_DOWN', `participant ${this.#service} is closed`);
    const results: BranchItemResult[] = new Array<BranchItemResult>(req.items.length);
    const decisions: number[] = [];
    const prepares: number[] = [];
    req.items.forEach((item, i) => {
      if (item.service !== this.#service) {
        const status = item.action === BranchAction.PREPARE ? ItemStatus.NO : ItemStatus.ERROR;
        results[i] = result(item, status, 'TXM_UNKNOWN_SERVICE', `this participant is ${this.#service}, not ${item.service}`);
      } else if (item.action === BranchAction.PREPARE) prepares.push(i);
      else if (item.action === BranchAction.COMMIT || item.action === BranchAction.ROLLBACK) decisions.push(i);
      else results[i] = result(item, ItemStatus.ERROR, 'TXM_BAD_REQUEST', 'action must be prepare, commit or rollback');
    });
    if (decisions.length > 0) this.#runDecisions(req.items, decisions, results);
    if (prepares.length > 0) await this.#runPrepares(req.items, prepares, results);
    this.#counters.batches += 1;
    const response: BranchBatchResponse = { protocolVersion: PROTOCOL_VERSION, results };
    const usage = this.#meter?.sample();
    if (usage) response.usage = usage;
    return response;
  }

  // ------------------------------------------------------------ commit / rollback

  #runDecisions(items: BranchItem[], indices: number[], results: BranchItemResult[]): void {
    const answers = new Map<number, BranchItemResult>();
    try {
      this.#inTransaction.immediate(() => {
        for (const i of indices) answers.set(i, this.#decideOne(items[i]!));
      });
      this.#counters.decisionTransactions += 1;
      this.#counters.decisionsWritten += indices.length;
    } catch (err) {
      this.#log({ event: 'decision-transaction-failed', error: messageOf(err) });
      for (const i of indices) results[i] = result(items[i]!, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
      return;
    }
    if (indices.some((i) => items[i]!.action === BranchAction.COMMIT && answers.get(i)!.status === ItemStatus.OK)) {
      reachStep(ParticipantSteps.AFTER_COMMIT);
    }
    for (const i of indices) {
      const item = items[i]!;
      const answer = answers.get(i)!;
      results[i] = answer;
      if (answer.status !== ItemStatus.OK) continue;
      // The outcome is durable: free the keys. A prepare of this tx still waiting for locks stops
      // waiting; it finds the rolled-back branch and votes no.
      if (item.action === BranchAction.ROLLBACK) this.#locks.cancelWaits(item.txId);
      this.#locks.release(item.txId);
    }
  }

  /** One commit or rollback, in its own savepoint: a failing hook undoes only this branch. */
  #decideOne(item: BranchItem): BranchItemResult {
    const phase: 'commit' | 'rollback' = item.action === BranchAction.COMMIT ? 'commit' : 'rollback';
    let answer = result(item, ItemStatus.OK);
    try {
      this.#inSavepoint(() => {
        const row = this.#store.branch(item.txId);
        const now = Date.now();
        if (phase === 'commit') {
          if (!row || row.state === 'voted_no' || row.state === 'rolled_back') {
            answer = result(item, ItemStatus.ERROR, 'TXM_COMMIT_WITHOUT_PREPARE', `branch ${item.txId} did not prepare yes here (${row?.state ?? 'unknown'})`);
            return;
          }
          if (row.state === 'committed') return;
          this.#runDecisionHooks('commit', row, now);
          this.#store.recordDecided(item.txId, 'committed', now);
          return;
        }
        if (!row) this.#store.recordRolledBackUnprepared(item.txId, now);
        else if (row.state === 'voted_no') this.#store.touchDecided(item.txId, now);
        else if (row.state === 'committed') {
          // Only a stale look-up can ask this: the shard pruned the finished COMMIT record (every branch
          // had acknowledged) and now presumes abort. The commit stands; acknowledging lets the asker
          // drop its leftover record instead of retrying forever.
          this.#log({ event: 'rollback-after-commit-ignored', txId: item.txId });
          answer = result(item, ItemStatus.OK, ItemReasons.ALREADY_COMMITTED, `branch ${item.txId} already committed here; nothing rolled back`);
        } else if (row.state === 'prepared') {
          this.#runDecisionHooks('rollback', row, now);
          this.#store.recordDecided(item.txId, 'rolled_back', now);
        }
      });
    } catch (err) {
      this.#log({ event: `${phase}-failed`, txId: item.txId, error: messageOf(err) });
      const reason = phase === 'commit' ? ItemReasons.COMMIT_FAILED : ItemReasons.ROLLBACK_FAILED;
      return result(item, ItemStatus.ERROR, reason, messageOf(err));
    }
    return answer;
  }

  #runDecisionHooks(phase: 'commit' | 'rollback', row: BranchRecord, now: number): void {
    row.operations.forEach((spec, opIndex) => {
      const handlers = this.#handlersOf(spec.op);
      if (!handlers) throw new TxmeshError('TXM_UNKNOWN_OPERATION', spec.op);
      if (!this.#store.claimHook(row.txId, opIndex, phase, now)) return;
      const args = handlers.parseArgs(spec.args ?? {});
      assertSynchronous(handlers[phase](this.#context(row.txId, opIndex), args), phase, spec.op, this.#lateFailure(row.txId, phase));
    });
  }

  #handlersOf(op: string): OperationHandlers<unknown> | undefined {
    return Object.hasOwn(this.#operations, op) ? (this.#operations[op] as OperationHandlers<unknown>) : undefined;
  }

  #lateFailure(txId: string, phase: HookPhase): (err: unknown) => void {
    return (err) => this.#log({ event: 'async-hook-rejected', txId, phase, error: messageOf(err) });
  }

  #context(txId: string, opIndex: number): HookContext {
    return { db: this.#db, txId, opIndex, service: this.#service };
  }

  // ------------------------------------------------------------ prepare

  async #runPrepares(items: BranchItem[], indices: number[], results: BranchItemResult[]): Promise<void> {
    const own = new Map<string, { work: PrepareWork; settle(r: BranchItemResult): void }>();
    const shared: { index: number; answer: Promise<BranchItemResult> }[] = [];
    for (const i of indices) {
      const item = items[i]!;
      // A duplicate in this batch or in one still running shares the first prepare's answer.
      const running = this.#inflight.get(item.txId);
      if (running) {
        shared.push({ index: i, answer: running });
        continue;
      }
      let work: PrepareWork;
      try {
        work = this.#startPrepare(item);
      } catch (err) {
        // Thrown before any lock is requested (e.g. an unreadable stored branch): this item fails
        // alone, instead of rejecting the batch with the earlier items' locks and inflight entries orphaned.
        this.#log({ event: 'prepare-start-failed', txId: item.txId, error: messageOf(err) });
        results[i] = result(item, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
        continue;
      }
      let settle!: (r: BranchItemResult) => void;
      const answer = new Promise<BranchItemResult>((resolve) => (settle = resolve));
      this.#inflight.set(item.txId, answer);
      own.set(item.txId, { work, settle });
      shared.push({ index: i, answer });
    }

    let pending = [...own.values()];
    const preparedHere = new Set<string>();
    await nextTurn();
    while (pending.length > 0) {
      const ready = pending.filter((p) => p.work.settled);
      if (ready.length === 0) {
        await Promise.race(pending.map((p) => p.work.whenSettled));
        await nextTurn();
        continue;
      }
      pending = pending.filter((p) => !p.work.settled);
      const answers = this.#flushPrepares(ready.map((p) => p.work));
      ready.forEach((p, k) => {
        this.#inflight.delete(p.work.txId);
        p.settle(answers[k]!);
        if (answers[k]!.status === ItemStatus.OK) preparedHere.add(p.work.txId);
      });
      // A prepare waiting for a key that a branch of THIS batch now holds prepared would wait in vain:
      // that holder's outcome cannot arrive before this batch answers. It loses at once instead.
      for (const p of pending) {
        if (this.#locks.waitingOn(p.work.txId).some((key) => preparedHere.has(this.#locks.holderOf(key) ?? ''))) {
          this.#locks.failWaits(p.work.txId, 'conflict');
        }
      }
    }
    for (const { index, answer } of shared) results[index] = await answer;
  }

  /** Everything up to the lock wait: stored answer, argument parsing, lock keys, deadline. */
  #startPrepare(item: BranchItem): PrepareWork {
    const work: PrepareWork = {
      txId: item.txId,
      operations: item.operations ?? [],
      deadline: item.deadline,
      parsed: [],
      keys: [],
      settled: false,
      whenSettled: Promise.resolve(),
    };
    const stored = this.#store.branch(item.txId);
    if (stored) work.answer = answerFromStored(item.txId, stored);
    else if (work.operations.length === 0) work.refusal = { reason: 'TXM_BAD_REQUEST', message: 'prepare carries no operations' };
    else if (this.#deadlinePassed(work.deadline, Date.now())) work.refusal = { reason: ItemReasons.DEADLINE_PASSED };
    else work.refusal = this.#parseOperations(work);

    let acquisition = Promise.resolve();
    if (!work.answer && !work.refusal) {
      const budget = Math.min(this.#lockWaitMs, work.deadline === undefined ? Infinity : work.deadline + this.#retention.clockSkewAllowanceMs - Date.now());
      acquisition = this.#locks.acquireAll(work.keys, work.txId, budget, this.#lockGraceMs);
    }
    work.whenSettled = acquisition.then(
      () => {
        work.settled = true;
      },
      (err: unknown) => {
        work.settled = true;
        work.lockFailure = err instanceof LockWaitError ? err.failure : 'cancelled';
      },
    );
    return work;
  }

  #parseOperations(work: PrepareWork): PrepareWork['refusal'] {
    const keys = new Set<string>();
    for (const spec of work.operations) {
      const handlers = this.#handlersOf(spec.op);
      if (!handlers) {
        return { reason: 'TXM_UNKNOWN_OPERATION', message: `${this.#service} has no operation "${spec.op}"` };
      }
      try {
        const args = handlers.parseArgs(spec.args ?? {});
        for (const key of handlers.lockKeys?.(args) ?? []) keys.add(String(key));
        work.parsed.push({ handlers, args });
      } catch (err) {
        if (err instanceof BusinessRefusal) return { reason: err.reason, message: err.message };
        this.#log({ event: 'parse-args-failed', txId: work.txId, op: spec.op, error: messageOf(err) });
        return { reason: ItemReasons.PREPARE_FAILED, message: messageOf(err) };
      }
    }
    work.keys = [...keys].sort();
    return undefined;
  }

  /** One SQLite transaction for all ready branches; returns their answers in order. */
  #flushPrepares(works: PrepareWork[]): BranchItemResult[] {
    const answers: BranchItemResult[] = works.map((w) => w.answer ?? result({ txId: w.txId, action: BranchAction.PREPARE }, ItemStatus.ERROR));
    const keep = new Set<string>();
    const toRun = works.map((w, k) => ({ w, k })).filter(({ w }) => !w.answer);
    if (toRun.length > 0) {
      if (this.#closed) {
        for (const { w, k } of toRun) answers[k] = result({ txId: w.txId, action: BranchAction.PREPARE }, ItemStatus.ERROR, 'TXM_SHUTTING_DOWN');
      } else {
        try {
          this.#inTransaction.immediate(() => {
            for (const { w, k } of toRun) {
              const { answer, holdsLocks } = this.#prepareOne(w);
              answers[k] = answer;
              if (holdsLocks) keep.add(w.txId);
            }
          });
          this.#counters.prepareTransactions += 1;
          this.#counters.preparesWritten += toRun.length;
          reachStep(ParticipantSteps.AFTER_PREPARE);
        } catch (err) {
          this.#log({ event: 'prepare-transaction-failed', error: messageOf(err) });
          keep.clear();
          for (const { w, k } of toRun) answers[k] = result({ txId: w.txId, action: BranchAction.PREPARE }, ItemStatus.ERROR, 'TXM_INTERNAL', messageOf(err));
        }
      }
    }
    // Only a branch that is durably prepared keeps its keys; every other one frees them now.
    for (const { w } of toRun) if (!keep.has(w.txId)) this.#locks.release(w.txId);
    return answers;
  }

  #prepareOne(w: PrepareWork): { answer: BranchItemResult; holdsLocks: boolean } {
    const item = { txId: w.txId, action: BranchAction.PREPARE };
    const now = Date.now();
    // A rollback may have landed while this prepare waited for its locks.
    const stored = this.#store.branch(w.txId);
    if (stored) return { answer: answerFromStored(w.txId, stored), holdsLocks: stored.state === 'prepared' };

    const refuse = (reason: string, message?: string) => {
      this.#store.recordVotedNo(w.txId, reason, message, w.operations, now);
      return { answer: result(item, ItemStatus.NO, reason, message), holdsLocks: false };
    };
    if (w.refusal) return refuse(w.refusal.reason, w.refusal.message);
    if (this.#deadlinePassed(w.deadline, now)) return refuse(ItemReasons.DEADLINE_PASSED);
    if (w.lockFailure === 'timeout') return refuse(ItemReasons.LOCK_TIMEOUT, `a business key stayed locked for more than ${this.#lockWaitMs} ms`);
    if (w.lockFailure === 'conflict') {
      return refuse(ItemReasons.LOCK_CONFLICT, 'another transaction holds a business key this branch needs (wait-die); retry the transaction');
    }
    if (w.lockFailure === 'cancelled') {
      // Cancelled without a stored rollback: this participant is closing. Decide nothing.
      return { answer: result(item, ItemStatus.ERROR, 'TXM_SHUTTING_DOWN'), holdsLocks: false };
    }
    try {
      this.#inSavepoint(() => {
        this.#store.recordPrepared(w.txId, w.operations, w.keys, now);
        w.parsed.forEach(({ handlers, args }, opIndex) => {
          if (!this.#store.claimHook(w.txId, opIndex, 'prepare', now)) return;
          assertSynchronous(handlers.prepare(this.#context(w.txId, opIndex), args), 'prepare', w.operations[opIndex]!.op, this.#lateFailure(w.txId, 'prepare'));
        });
      });
    } catch (err) {
      if (err instanceof BusinessRefusal) return refuse(err.reason, err.message);
      this.#log({ event: 'prepare-failed', txId: w.txId, error: messageOf(err) });
      return refuse(ItemReasons.PREPARE_FAILED, messageOf(err));
    }
    return { answer: result(item, ItemStatus.OK), holdsLocks: true };
  }
}
