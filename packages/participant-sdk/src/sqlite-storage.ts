/**
 * The better-sqlite3 storage adapter (the default): the SDK's tables live in the service's SQLite
 * database (its rows: BarrierStore) and every call answers at once. A set of prepares or decisions is one
 * IMMEDIATE transaction (one fsync with synchronous = FULL), each branch in its own savepoint, so one
 * branch's failure undoes only its own writes (a prepare's refusal, one INSERT after its savepoint rolled back,
 * needs none: a failed SQLite statement undoes only itself; branch-rules.ts, guardedPrepareRule). Hooks are
 * synchronous and get the same `db`.
 *
 * Outcomes may be written unforced (synchronous = NORMAL for that transaction): the WAL is appended in
 * order and one fsync covers every frame before it, so the next forced transaction makes them durable too.
 * Until then `unforcedPending` is true and nothing that depends on them may be answered; `forceUnforced()`
 * syncs them when no forced write came. Losing an unforced outcome in a crash loses nothing decided: the
 * coordinator keeps its decision until the outcome is acknowledged, and resends it.
 *
 * Two connection settings are the storage's business: `synchronous` is read once, here (each unforced write
 * switches to NORMAL and back to it; reading it per batch cost more than the statements of a branch), so a
 * service sets it before creating the participant; and `temp_store` goes to MEMORY unless the service chose
 * one. Every branch has its own savepoint, and a savepoint journals each page it changes first: with 14
 * branches per batch that journal outgrew SQLite's 64 KiB in-memory spill limit and went to a temporary
 * file, one write system call per page (docs/benchmarks.md).
 */
import { channel } from 'node:diagnostics_channel';
import type Database from 'better-sqlite3';
import type { BranchItem, BranchItemResult } from '@txmesh/protocol';
import { BarrierStore, type HookPhase } from './barrier-store.ts';
import { decisionRule, guardedPrepareRule } from './branch-rules.ts';
import type { HookContext, OperationHandlers } from './operation.ts';
import type { BranchRows, DecisionWriteOptions, HookCall, ParticipantStorage, PrepareOutcome, PrepareWrite, RuleContext, TogetherWritten, Written } from './storage-adapter.ts';
import { isThenable, runNow, type Steps } from './steps-runner.ts';

type RunIn = Database.Transaction<(fn: () => unknown) => unknown>;

/**
 * Published as each write transaction of the SDK runs, with the connection's `synchronous` level then
 * (2 = FULL: synced on commit, 1 = NORMAL), so tests can see which writes were forced. Nothing subscribes
 * in production.
 */
export const sqliteWriteChannel = channel('txmesh:participant:sqlite-write');
export interface SqliteWriteEvent {
  kind: 'prepares' | 'decisions' | 'together' | 'force';
  synchronous: number;
  /** This forced write also carries earlier unforced outcomes to disk. */
  carriesUnforced: boolean;
}

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
  /** The connection's `synchronous` level, restored after each unforced write. */
  readonly #synchronous: number;
  #unforcedPending = false;

  constructor(db: Database.Database, onLateHookFailure: (call: HookCall, err: unknown) => void, clockSkewAllowanceMs = 0) {
    super(db, clockSkewAllowanceMs);
    this.#db = db;
    this.#inTransaction = db.transaction((fn: () => unknown) => fn());
    this.#inSavepoint = db.transaction((fn: () => unknown) => fn());
    this.#onLateHookFailure = onLateHookFailure;
    this.#synchronous = db.pragma('synchronous', { simple: true }) as number;
    // 0 = SQLite's default (a file for this build); 1 (FILE) or 2 (MEMORY) is the service's own choice.
    if (db.pragma('temp_store', { simple: true }) === 0) db.pragma('temp_store = MEMORY');
  }

  /** Outcomes were written unforced and no forced transaction has synced them since. */
  get unforcedPending(): boolean {
    return this.#unforcedPending;
  }

  writePrepares(works: readonly PrepareWrite[], ctx: RuleContext): Written<PrepareOutcome> {
    const results: PrepareOutcome[] = [];
    try {
      this.#forced('prepares', () => {
        for (const w of works) results.push(runNow(guardedPrepareRule(this, w, ctx)));
      });
    } catch (err) {
      this.rememberPrepared([]);
      throw err;
    }
    this.#rememberPrepared(works, results);
    return { results, transactions: 1 };
  }

  /** After the transaction is durable: the branches it left prepared are remembered (see BarrierStore). */
  #rememberPrepared(works: readonly PrepareWrite[], outcomes: readonly PrepareOutcome[]): void {
    this.rememberPrepared(works.filter((_, i) => outcomes[i]?.holdsLocks === true).map((w) => w.txId));
  }

  writeDecisions(items: readonly BranchItem[], ctx: RuleContext, options: DecisionWriteOptions = {}): Written<BranchItemResult> {
    const results: BranchItemResult[] = [];
    const write = (): void => {
      for (const item of items) results.push(runNow(decisionRule(this, item, ctx)));
    };
    if (options.unforced) this.#unforced(write);
    else this.#forced('decisions', write);
    return { results, transactions: 1 };
  }

  writeTogether(items: readonly BranchItem[], ctx: RuleContext, prepares: (decided: readonly BranchItemResult[]) => readonly PrepareWrite[] | undefined): TogetherWritten {
    const decisions: BranchItemResult[] = [];
    let outcomes: PrepareOutcome[] | undefined;
    let written: readonly PrepareWrite[] = [];
    try {
      this.#forced('together', () => {
        for (const item of items) decisions.push(runNow(decisionRule(this, item, ctx)));
        const works = prepares(decisions);
        if (works === undefined) return;
        written = works;
        outcomes = [];
        for (const w of works) outcomes.push(runNow(guardedPrepareRule(this, w, ctx)));
      });
    } catch (err) {
      this.rememberPrepared([]);
      throw err;
    }
    this.#rememberPrepared(written, outcomes ?? []);
    return { decisions, prepares: outcomes };
  }

  forceUnforced(): void {
    if (this.#unforcedPending) this.#forced('force', () => {});
  }

  /** One IMMEDIATE transaction synced on commit; it carries to disk any unforced one before it. */
  #forced(kind: SqliteWriteEvent['kind'], work: () => void): void {
    const carrying = this.#unforcedPending;
    this.#inTransaction.immediate(() => {
      this.#publishWrite(kind, carrying);
      // A transaction whose writes were all undone commits nothing and is not synced: the mark is a write.
      if (carrying) this.markForced();
      work();
    });
    if (carrying) this.#unforcedPending = false;
  }

  #unforced(work: () => void): void {
    // Compiled each time, not a kept statement: SQLite applies `synchronous` when the pragma is compiled
    // (exec: no statement object, no result rows).
    this.#db.exec('PRAGMA synchronous = NORMAL');
    try {
      this.#inTransaction.immediate(() => {
        this.#publishWrite('decisions', false);
        work();
      });
      this.#unforcedPending = true;
    } finally {
      this.#db.exec(`PRAGMA synchronous = ${this.#synchronous}`);
    }
  }

  #publishWrite(kind: SqliteWriteEvent['kind'], carriesUnforced: boolean): void {
    if (!sqliteWriteChannel.hasSubscribers) return;
    const synchronous = this.#db.pragma('synchronous', { simple: true }) as number;
    sqliteWriteChannel.publish({ kind, synchronous, carriesUnforced } satisfies SqliteWriteEvent);
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
