/**
 * Transaction and branch states, with explicit wire names.
 * A "branch" is one service's share of a transaction.
 */

export const TxState = {
  /** Prepares are out; nothing durable exists yet (presumed abort). */
  PREPARING: 'PREPARING',
  /** COMMIT decision is durable; commit is being delivered to branches. */
  COMMITTING: 'COMMITTING',
  /** Decided abort (no forced write); rollback is being delivered to branches. */
  ABORTING: 'ABORTING',
  /** Every branch acknowledged commit. */
  COMMITTED: 'COMMITTED',
  /** Every branch acknowledged rollback (or never prepared). */
  ABORTED: 'ABORTED',
} as const;
export type TxState = (typeof TxState)[keyof typeof TxState];

export const BranchState = {
  /** Prepare sent or about to be sent, no vote yet. */
  PREPARING: 'PREPARING',
  /** Voted yes: tentative changes, locks and prepared record are durable. */
  PREPARED: 'PREPARED',
  /** Voted no (business refusal, lock timeout) or did not vote in time. */
  VOTED_NO: 'VOTED_NO',
  /** Acknowledged commit. */
  COMMITTED: 'COMMITTED',
  /** Acknowledged rollback. */
  ROLLED_BACK: 'ROLLED_BACK',
} as const;
export type BranchState = (typeof BranchState)[keyof typeof BranchState];

export const Outcome = {
  COMMITTED: 'committed',
  ABORTED: 'aborted',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

export const Vote = {
  YES: 'yes',
  NO: 'no',
  /** No vote arrived (timeout, unreachable). Counts as no. */
  NONE: 'none',
} as const;
export type Vote = (typeof Vote)[keyof typeof Vote];

/** What a shard answers when asked how a transaction ended (sidecar recovery, polling clients). */
export const Decision = {
  COMMIT: 'commit',
  ABORT: 'abort',
  /** Still preparing in this shard's memory: ask again later, do nothing yet. */
  PENDING: 'pending',
} as const;
export type Decision = (typeof Decision)[keyof typeof Decision];

export function isFinalTxState(state: TxState): boolean {
  return state === TxState.COMMITTED || state === TxState.ABORTED;
}
