/**
 * The better-sqlite3 storage adapter (the default): the SDK's tables live in the service's SQLite
 * database (its rows: BarrierStore) and every call answers at once. A set of prepares or decisions is one
 * IMMEDIATE transaction (one fsync with synchronous = FULL), each branch in its own savepoint, so one
 * branch's failure undoes only its own writes. Hooks are synchronous and get the same `db`.
 */
import type Database from 'better-sqlite3';
import type { BranchItem, BranchItemResult } from '@txmesh/protocol';
import { BarrierStore, type HookPhase } from './barrier-store.ts';
import { decisionRule, isolatedPrepareRule } from './branch-rules.ts';
import type { HookContext, OperationHandlers } from './operation.ts';
import type { BranchRows, HookCall, ParticipantStorage, PrepareOutcome, PrepareWrite, RuleContext, Written } from './storage-adapter.ts';
import { isThenable, runNow, type Steps } from './steps-runner.ts';

type RunIn = Database.Transaction<(fn: () => unknown) => unknown>;

/**
 * Hooks must finish inside the SQLite transaction: an async hook would change data after the vote.
 * The refused promise still gets a rejection handler, or its failure would crash the process.
 */
function assertSynchronous(returned: unknown, phase: HookPhase, op: string, onLateFailure: (err: unknown) => void): void {
  if (isThenable(returned)) {
    returned.then(undefined, onLateFailure);
    throw new Error(`the ${phase} hook of operation "${op}" returned a promise; hooks must be synchronous`);
  }
}

export class SqliteStorage extends BarrierStore implements ParticipantStorage, BranchRows {
  readonly backend = 'sqlite';
  readonly #db: Database.Database;
  readonly #inTransaction: RunIn;
  readonly #inSavepoint: RunIn;
  readonly #onLateHookFailure: (call: HookCall, err: unknown) => void;

  constructor(db: Database.Database, onLateHookFailure: (call: HookCall, err: unknown) => void) {
    super(db);
    this.#db = db;
    this.#inTransaction = db.transaction((fn: () => unknown) => fn());
    this.#inSavepoint = db.transaction((fn: () => unknown) => fn());
    this.#onLateHookFailure = onLateHookFailure;
  }

  writePrepares(works: readonly PrepareWrite[], ctx: RuleContext): Written<PrepareOutcome> {
    const results: PrepareOutcome[] = [];
    this.#inTransaction.immediate(() => {
      for (const w of works) results.push(runNow(isolatedPrepareRule(this, w, ctx)));
    });
    return { results, transactions: 1 };
  }

  writeDecisions(items: readonly BranchItem[], ctx: RuleContext): Written<BranchItemResult> {
    const results: BranchItemResult[] = [];
    this.#inTransaction.immediate(() => {
      for (const item of items) results.push(runNow(decisionRule(this, item, ctx)));
    });
    return { results, transactions: 1 };
  }

  isolated<T>(work: () => Steps<T>): T {
    return this.#inSavepoint(() => runNow(work())) as T;
  }

  runHook(call: HookCall): void {
    const ctx: HookContext = { db: this.#db, txId: call.txId, opIndex: call.opIndex, service: call.service };
    if (call.expectVersion !== undefined) ctx.expectVersion = call.expectVersion;
    const handlers = call.parsed.handlers as OperationHandlers<unknown>;
    assertSynchronous(handlers[call.phase](ctx, call.parsed.args), call.phase, call.op, (err) => this.#onLateHookFailure(call, err));
  }
}
