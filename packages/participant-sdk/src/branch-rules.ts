/**
 * The participant's rules for one branch, written once for every storage backend (see steps-runner.ts):
 * - a prepare answers from its stored branch if any (duplicate, prepare after rollback), records a
 *   refusal decided before it ran, or writes its prepared row, lock rows and barrier rows and runs its
 *   prepare hooks in one savepoint; a hook's throw becomes a recorded no;
 * - a commit or rollback runs the hooks not yet run, in its own savepoint, and records the outcome;
 *   a rollback before any prepare leaves a row so a late prepare runs nothing; a rollback after a
 *   commit (a stale presumed-abort look-up) is acknowledged without undoing anything.
 */
import { BranchAction, ItemStatus, TxmeshError, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import type { BranchRecord } from './barrier-store.ts';
import { ItemReasons, answerFromStored, itemResult, messageOf } from './item-results.ts';
import { BusinessRefusal } from './operation.ts';
import type { BranchRows, PrepareOutcome, PrepareWrite, RuleContext } from './storage-adapter.ts';
import { call, type Steps } from './steps-runner.ts';

const prepareOf = (txId: string) => ({ txId, action: BranchAction.PREPARE });

/** A prepare whose deadline passed (beyond the clock-skew allowance) must not run. */
export function deadlinePassed(deadline: number | undefined, now: number, clockSkewAllowanceMs: number): boolean {
  return deadline !== undefined && deadline + clockSkewAllowanceMs <= now;
}

/**
 * Why a prepare with no stored branch must vote no before running anything; 'closing' when it must not
 * vote at all (its lock wait was cancelled because the participant is closing).
 */
export function refusalBeforeRun(w: PrepareWrite, now: number, ctx: RuleContext): { reason: string; message?: string } | 'closing' | undefined {
  if (w.refusal) return w.refusal;
  if (deadlinePassed(w.deadline, now, ctx.clockSkewAllowanceMs)) return { reason: ItemReasons.DEADLINE_PASSED };
  if (w.lockFailure === 'timeout') return { reason: ItemReasons.LOCK_TIMEOUT, message: `a business key stayed locked for more than ${ctx.lockWaitMs} ms` };
  if (w.lockFailure === 'conflict') return { reason: ItemReasons.LOCK_CONFLICT, message: 'another transaction holds a business key this branch needs; retry the transaction' };
  if (w.lockFailure === 'cancelled') return 'closing';
  return undefined;
}

/** The answer of a prepare whose branch is stored (a rollback may have landed while it waited for locks). */
export function storedOutcome(txId: string, stored: BranchRecord): PrepareOutcome {
  return { answer: answerFromStored(txId, stored), holdsLocks: stored.state === 'prepared' };
}

export function* refuse(rows: BranchRows, w: PrepareWrite, reason: string, message: string | undefined, now: number): Steps<PrepareOutcome> {
  yield* call(rows.recordVotedNo(w.txId, reason, message, w.operations, now));
  return { answer: itemResult(prepareOf(w.txId), ItemStatus.NO, reason, message), holdsLocks: false };
}

export const closingOutcome = (txId: string): PrepareOutcome => ({ answer: itemResult(prepareOf(txId), ItemStatus.ERROR, 'TXM_SHUTTING_DOWN'), holdsLocks: false });

export const preparedOutcome = (txId: string): PrepareOutcome => ({ answer: itemResult(prepareOf(txId), ItemStatus.OK), holdsLocks: true });

/** Runs the prepare hooks not yet run for this branch; throws what a hook throws. */
export function* prepareHooks(rows: BranchRows, w: PrepareWrite, now: number, ctx: RuleContext): Steps<void> {
  for (const [opIndex, parsed] of w.parsed.entries()) {
    if (!(yield* call(rows.claimHook(w.txId, opIndex, 'prepare', now)))) continue;
    const spec = w.operations[opIndex]!;
    const hook = { phase: 'prepare' as const, op: spec.op, parsed, txId: w.txId, opIndex, service: ctx.service };
    yield* call(rows.runHook(spec.expectVersion === undefined ? hook : { ...hook, expectVersion: spec.expectVersion }));
  }
}

/** Maps a prepare hook's throw to its recorded no. */
export function prepareFailure(err: unknown, w: PrepareWrite, ctx: RuleContext): { reason: string; message: string } {
  if (err instanceof BusinessRefusal) return { reason: err.reason, message: err.message };
  ctx.log({ event: 'prepare-failed', txId: w.txId, error: messageOf(err) });
  return { reason: ItemReasons.PREPARE_FAILED, message: messageOf(err) };
}

/**
 * One prepare of a batch that shares one transaction, isolated from the others by a savepoint: whatever
 * fails while recording it (even its refusal) undoes only its own writes and answers an error for it alone;
 * its neighbours still vote as they should. For storages whose `isolated` is a savepoint and where a failed
 * statement spoils the whole transaction (PostgreSQL tentative), not for native two-phase commit, where each
 * branch is its own transaction anyway.
 */
export function* isolatedPrepareRule(rows: BranchRows, w: PrepareWrite, ctx: RuleContext): Steps<PrepareOutcome> {
  try {
    return yield* call(rows.isolated(() => prepareRule(rows, w, ctx)));
  } catch (err) {
    return prepareItemFailed(w, err, ctx);
  }
}

/**
 * The same answer without the outer savepoint, for SQLite: there a failed statement undoes only itself, and
 * prepareRule writes nothing outside its own savepoint (the prepared row and the hooks) but its refusal, one
 * INSERT. So a failure at any point leaves nothing of this branch, as the outer savepoint would have, and a
 * prepare costs one savepoint instead of two (each a SAVEPOINT and a RELEASE, and its own copy of every page
 * it changes in the statement journal).
 */
export function* guardedPrepareRule(rows: BranchRows, w: PrepareWrite, ctx: RuleContext): Steps<PrepareOutcome> {
  try {
    return yield* prepareRule(rows, w, ctx);
  } catch (err) {
    return prepareItemFailed(w, err, ctx);
  }
}

function prepareItemFailed(w: PrepareWrite, err: unknown, ctx: RuleContext): PrepareOutcome {
  ctx.log({ level: 'error', event: 'prepare-item-failed', txId: w.txId, error: messageOf(err) });
  return { answer: itemResult(prepareOf(w.txId), ItemStatus.ERROR, 'TXM_INTERNAL', 'this branch could not be prepared or refused durably'), holdsLocks: false };
}

/** One prepare with tentative state: its rows, locks and hooks in one savepoint, or a recorded no. */
export function* prepareRule(rows: BranchRows, w: PrepareWrite, ctx: RuleContext): Steps<PrepareOutcome> {
  const now = Date.now();
  const stored = w.absentSincePlan === true ? undefined : yield* call(rows.branch(w.txId));
  if (stored) return storedOutcome(w.txId, stored);
  const early = refusalBeforeRun(w, now, ctx);
  if (early === 'closing') return closingOutcome(w.txId);
  if (early) return yield* refuse(rows, w, early.reason, early.message, now);
  try {
    yield* call(
      rows.isolated(function* () {
        yield* call(rows.recordPrepared(w.txId, w.operations, w.locks, now));
        yield* prepareHooks(rows, w, now, ctx);
      }),
    );
  } catch (err) {
    const failure = prepareFailure(err, w, ctx);
    return yield* refuse(rows, w, failure.reason, failure.message, now);
  }
  return preparedOutcome(w.txId);
}

/** Runs the commit or rollback hooks not yet run for a stored branch; throws what a hook throws. */
function* decideHooks(rows: BranchRows, phase: 'commit' | 'rollback', row: BranchRecord, now: number, ctx: RuleContext): Steps<void> {
  for (const [opIndex, spec] of row.operations.entries()) {
    const handlers = ctx.operations.handlersOf(spec.op);
    if (!handlers) throw new TxmeshError('TXM_UNKNOWN_OPERATION', spec.op);
    if (!(yield* call(rows.claimHook(row.txId, opIndex, phase, now)))) continue;
    const parsed = { handlers, args: handlers.parseArgs(spec.args ?? {}) };
    yield* call(rows.runHook({ phase, op: spec.op, parsed, txId: row.txId, opIndex, service: ctx.service }));
  }
}

function* decideInside(rows: BranchRows, item: BranchItem, ctx: RuleContext): Steps<BranchItemResult> {
  const ok = itemResult(item, ItemStatus.OK);
  const row = yield* call(rows.branch(item.txId));
  const now = Date.now();
  if (item.action === BranchAction.COMMIT) {
    if (!row || row.state === 'voted_no' || row.state === 'rolled_back') {
      return itemResult(item, ItemStatus.ERROR, 'TXM_COMMIT_WITHOUT_PREPARE', `branch ${item.txId} did not prepare yes here (${row?.state ?? 'unknown'})`);
    }
    if (row.state === 'committed') return ok;
    yield* decideHooks(rows, 'commit', row, now, ctx);
    yield* call(rows.recordDecided(item.txId, 'committed', now));
    return ok;
  }
  if (!row) yield* call(rows.recordRolledBackUnprepared(item.txId, now));
  else if (row.state === 'voted_no') yield* call(rows.touchDecided(item.txId, now));
  else if (row.state === 'committed') return rollbackAfterCommit(item, ctx);
  else if (row.state === 'prepared') {
    yield* decideHooks(rows, 'rollback', row, now, ctx);
    yield* call(rows.recordDecided(item.txId, 'rolled_back', now));
  }
  return ok;
}

/**
 * Only a stale look-up can ask this: the shard pruned the finished COMMIT record (every branch had
 * acknowledged) and now presumes abort. The commit stands; acknowledging lets the asker drop its
 * leftover record instead of retrying forever.
 */
export function rollbackAfterCommit(item: BranchItem, ctx: RuleContext): BranchItemResult {
  // Never silent: a stale look-up is rare, and a forged or misrouted rollback must be seen (also counted).
  ctx.log({ level: 'error', event: 'rollback-after-commit-ignored', txId: item.txId });
  return itemResult(item, ItemStatus.OK, ItemReasons.ALREADY_COMMITTED, `branch ${item.txId} already committed here; nothing rolled back`);
}

/** A decision's failure: only this branch fails, with a reason saying which phase. */
export function decisionFailure(item: BranchItem, err: unknown, ctx: RuleContext): BranchItemResult {
  const phase = item.action === BranchAction.COMMIT ? 'commit' : 'rollback';
  ctx.log({ event: `${phase}-failed`, txId: item.txId, error: messageOf(err) });
  const reason = phase === 'commit' ? ItemReasons.COMMIT_FAILED : ItemReasons.ROLLBACK_FAILED;
  return itemResult(item, ItemStatus.ERROR, reason, messageOf(err));
}

/** One commit or rollback, in its own savepoint: a failing hook undoes only this branch. */
export function* decisionRule(rows: BranchRows, item: BranchItem, ctx: RuleContext): Steps<BranchItemResult> {
  try {
    return yield* call(rows.isolated(() => decideInside(rows, item, ctx)));
  } catch (err) {
    return decisionFailure(item, err, ctx);
  }
}
