/**
 * What the shard shows of its transactions: GET /v1/transactions/:txId from memory or from the log,
 * the decision a recovering participant asks for, and the in-doubt list. Pure functions of their inputs.
 */
import {
  BranchState,
  Decision,
  Outcome,
  TxState,
  Vote,
  type BranchStatus,
  type DecisionAnswer,
  type InDoubtBranch,
  type TransactionStatus,
} from '@txmesh/protocol';
import type { DecisionRecord } from './decision-log.ts';
import type { LiveTx } from './live-transaction.ts';

export function snapshotOf(tx: LiveTx, shard: number): TransactionStatus {
  const status: TransactionStatus = {
    txId: tx.txId,
    shard,
    state: tx.state,
    createdAt: tx.createdAt,
    branches: tx.branches.map((b) => {
      const branch: BranchStatus = { service: b.service, state: b.state, attempts: b.attempts };
      if (b.vote !== undefined) branch.vote = b.vote;
      if (b.reason !== undefined) branch.reason = b.reason;
      if (b.details !== undefined) branch.details = b.details;
      return branch;
    }),
  };
  if (tx.outcome !== undefined) status.outcome = tx.outcome;
  if (tx.reason !== undefined) status.reason = tx.reason;
  if (tx.decidedAt !== undefined) status.decidedAt = tx.decidedAt;
  return status;
}

export function statusFromRecord(record: DecisionRecord, shard: number): TransactionStatus {
  const committed = record.state === 'COMMITTING' || record.state === 'COMMITTED';
  const status: TransactionStatus = {
    txId: record.txId,
    shard,
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
      if (p.details !== undefined) branch.details = p.details;
      return branch;
    }),
  };
  if (record.result.reason !== undefined) status.reason = record.result.reason;
  return status;
}

/**
 * Presumed abort: commit if a COMMIT record exists, pending while still preparing in this process,
 * otherwise abort (also for a transaction this shard never heard of).
 */
export function decisionOf(txId: string, live: LiveTx | undefined, record: DecisionRecord | undefined): DecisionAnswer {
  if (live) {
    if (live.state === TxState.PREPARING) return { txId, decision: Decision.PENDING };
    return { txId, decision: live.outcome === Outcome.COMMITTED ? Decision.COMMIT : Decision.ABORT };
  }
  const committed = record !== undefined && (record.state === 'COMMITTING' || record.state === 'COMMITTED');
  return { txId, decision: committed ? Decision.COMMIT : Decision.ABORT };
}

/**
 * Branches whose commit/rollback has been unacknowledged for at least `olderThanMs` since the decision,
 * oldest first.
 */
export function inDoubtBranches(
  txs: Iterable<LiveTx>,
  olderThanMs: number,
  now: number,
  sidecarUrlOf: (service: string) => string | undefined,
): InDoubtBranch[] {
  const out: InDoubtBranch[] = [];
  for (const tx of txs) {
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
      if (b.lastErrorDetails !== undefined) entry.details = b.lastErrorDetails;
      const sidecarUrl = sidecarUrlOf(b.service);
      if (sidecarUrl !== undefined) entry.sidecarUrl = sidecarUrl;
      out.push(entry);
    }
  }
  return out.sort((a, b) => b.ageMs - a.ageMs);
}
