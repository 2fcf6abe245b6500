/**
 * The storage adapter contract: what a participant needs from the database it shares with its service.
 *
 * - `BranchRows`: the row operations of one write transaction (the branch row and its vote, the barrier
 *   rows that make every hook run at most once, the durable lock rows), a savepoint per branch, and the
 *   call of a business hook with a handle on that same transaction. The participant's rules
 *   (branch-rules.ts) are written against it once, for every backend.
 * - `ParticipantStorage`: whole units of work and housekeeping: write a set of prepares, a set of
 *   decisions, list the prepared branches and the locks they hold (for a restart), prune finished rows.
 *
 * A call answers at once (SQLite: better-sqlite3 is synchronous, so a prepare's rows and its business
 * change stay inside one synchronous transaction) or with a promise (PostgreSQL through `pg`).
 */
import type { BranchItem, BranchItemResult, LockMode, OperationSpec } from '@txmesh/protocol';
import type { BranchRecord, HeldLock, HookPhase } from './barrier-store.ts';
import type { OperationParser, ParsedOperation, Refusal } from './operation-parser.ts';
import type { LockFailure, LockRequest } from './lock-manager.ts';
import type { ParticipantLog } from './participant-options.ts';

import type { MaybePromise, Steps } from './steps-runner.ts';

/** One hook call: which hook of which operation, with what, for which branch. */
export interface HookCall {
  phase: HookPhase;
  op: string;
  parsed: ParsedOperation;
  txId: string;
  opIndex: number;
  service: string;
  expectVersion?: number;
}

export interface BranchRows {
  branch(txId: string): MaybePromise<BranchRecord | undefined>;
  recordPrepared(txId: string, operations: OperationSpec[], locks: readonly { key: string; mode: LockMode }[], now: number): MaybePromise<void>;
  recordVotedNo(txId: string, reason: string, message: string | undefined, operations: OperationSpec[], now: number): MaybePromise<void>;
  recordRolledBackUnprepared(txId: string, now: number): MaybePromise<void>;
  /** Moves a branch to its outcome and drops its durable locks. */
  recordDecided(txId: string, state: 'committed' | 'rolled_back', now: number): MaybePromise<void>;
  /** Marks a voted-no branch as having heard its rollback; its state (and vote) stay. */
  touchDecided(txId: string, now: number): MaybePromise<void>;
  /** True when this hook has not run yet; the barrier row is the proof that it now has (same transaction). */
  claimHook(txId: string, opIndex: number, phase: HookPhase, now: number): MaybePromise<boolean>;
  /** Runs `work` so that a throw undoes only what it wrote (a savepoint), and rethrows. */
  isolated<T>(work: () => Steps<T>): MaybePromise<T>;
  /** Calls the business hook with a handle on this same transaction. */
  runHook(call: HookCall): MaybePromise<void>;
}

/** A prepare whose locks are settled, ready to be written with its vote. */
export interface PrepareWrite {
  txId: string;
  operations: OperationSpec[];
  deadline: number | undefined;
  parsed: ParsedOperation[];
  locks: LockRequest[];
  /** A no decided before the transaction; still recorded durably in it. */
  refusal?: Refusal;
  lockFailure?: LockFailure;
  /**
   * The branch was read as absent, and nothing can have written it since: a mixed batch's prepare, planned
   * and written in one synchronous stretch with no outcome of its own in the batch (mixed-batch.ts). The
   * rule then skips its own look-up.
   */
  absentSincePlan?: boolean;
}

export interface PrepareOutcome {
  answer: BranchItemResult;
  /** The branch is durably prepared and keeps its keys until its outcome. */
  holdsLocks: boolean;
}

/** What the rules need besides the rows: the hooks, the log and the participant's limits. */
export interface RuleContext {
  service: string;
  operations: OperationParser;
  log: ParticipantLog;
  lockWaitMs: number;
  clockSkewAllowanceMs: number;
}

/** Results of one unit of work, and how many durable commits (fsyncs) it took. */
export interface DecisionWriteOptions {
  /**
   * Leave the sync to the next forced write or to forceUnforced(): for outcomes that travel with prepares,
   * whose forced write follows at once and then carries both to disk with one sync.
   */
  unforced?: boolean;
}

export interface Written<T> {
  results: T[];
  transactions: number;
}

/** What one transaction of outcomes and prepares wrote. */
export interface TogetherWritten {
  decisions: BranchItemResult[];
  /** Undefined when no prepare was written. */
  prepares: PrepareOutcome[] | undefined;
}

export interface PreparedBranch {
  txId: string;
  preparedAt: number;
}

export interface ParticipantStorage {
  /** 'sqlite', 'postgres-tentative' or 'postgres-native': for logs and errors. */
  readonly backend: string;
  /** A prepare's first look, outside any write: the stored branch, if any. */
  branch(txId: string): MaybePromise<BranchRecord | undefined>;
  /** Writes every prepare with its vote; all of them are durable when this returns. Throws only when none could be. */
  writePrepares(works: readonly PrepareWrite[], ctx: RuleContext): MaybePromise<Written<PrepareOutcome>>;
  /**
   * Applies every commit/rollback item; all outcomes are durable when this returns (unless written unforced).
   * Throws only when none could be.
   */
  writeDecisions(items: readonly BranchItem[], ctx: RuleContext, options?: DecisionWriteOptions): MaybePromise<Written<BranchItemResult>>;
  /**
   * Present when the storage can write outcomes unforced (`options.unforced`): true while some are not yet
   * durable. The caller must then call forceUnforced() before answering anything.
   */
  readonly unforcedPending?: boolean;
  /** Makes every outcome written unforced durable (nothing to do when a forced write came since). */
  forceUnforced?(): MaybePromise<void>;
  /**
   * Present when the storage answers every call at once (SQLite): writes a batch's outcomes and then its
   * prepares in one forced transaction. `prepares` is called inside it, once the outcomes are written, with
   * their answers in order; it returns the prepares to write after them, or undefined for none (the
   * transaction then carries the outcomes alone). All of it is durable when this returns; a throw means
   * none of it is.
   */
  writeTogether?(decisions: readonly BranchItem[], ctx: RuleContext, prepares: (decided: readonly BranchItemResult[]) => readonly PrepareWrite[] | undefined): TogetherWritten;
  /** Keys held by prepared, undecided branches: restored into the lock manager before traffic. */
  heldLocks(): MaybePromise<HeldLock[]>;
  preparedBranches(): MaybePromise<PreparedBranch[]>;
  /**
   * Deletes finished branches decided at or before `before` with their barrier rows, a committed one leaving
   * its tombstone (`branch` answers it as committed, so a late commit is acknowledged from proof), and the
   * tombstones of branches decided at or before `tombstonesBefore`; returns how many branches went.
   */
  pruneFinished(before: number, tombstonesBefore: number): MaybePromise<number>;
}
