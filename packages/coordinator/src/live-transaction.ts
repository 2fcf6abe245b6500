/**
 * A transaction as this shard holds it in memory while it runs and while its outcome is delivered, and
 * its translation to and from the decision record that makes it durable.
 */
import {
  BranchState,
  Outcome,
  TxState,
  Vote,
  type OperationSpec,
  type ParticipantResult,
  type ParticipantSpec,
  type TransactionResult,
} from '@txmesh/protocol';
import type { DecisionRecord, DecisionState, LoggedParticipant } from './decision-log.ts';
import { resumedTransactionTrace, transactionCarrier, type TransactionTrace } from './transaction-spans.ts';

export interface Branch {
  service: string;
  operations: OperationSpec[];
  state: BranchState;
  vote?: Vote;
  /** Why it did not vote yes: a token (catalogue reason or the participant's own). */
  reason?: string;
  /** The raw text behind the reason. */
  details?: string;
  attempts: number;
  /** Answered `no` itself: it never prepared, so it needs no rollback. */
  refused: boolean;
  /**
   * A prepare was handed to the transport (it may have prepared, answered or not). A branch never sent one
   * (still queued for its service's lane when the transaction was decided) cannot have prepared: it gets no
   * rollback, which would otherwise be retried for as long as that service is unreachable.
   */
  prepareSent: boolean;
  /** Commit/rollback sent and not yet acknowledged. */
  delivering?: boolean;
  /** Why the latest commit/rollback attempt failed, as a token, and its raw text. */
  lastError?: string;
  lastErrorDetails?: string;
  /** Acknowledged the outcome (logged): never sent it again, not even after a restart. */
  acked?: boolean;
}

export interface LiveTx {
  txId: string;
  state: TxState;
  createdAt: number;
  decidedAt?: number;
  outcome?: Outcome;
  reason?: string;
  details?: string;
  branches: Branch[];
  /** A decision record exists in the log, so its done mark must be written. */
  logged: boolean;
  /** Set once commit/abort is chosen; outstanding prepare retries stop. */
  decided: boolean;
  /** While votes are counted: ends the count with an abort (a deadlock victim). */
  interrupt?: (reason: string) => void;
  /** Where its branch spans start: the transaction's span, or the stored trace when resumed. */
  trace: TransactionTrace;
}

/** The idempotency key of a request and the hash of its body, kept in the decision record. */
export interface KeyedRequest {
  key: string;
  hash: string;
}

export function newLiveTx(txId: string, createdAt: number, participants: readonly ParticipantSpec[], trace: TransactionTrace): LiveTx {
  return {
    txId,
    state: TxState.PREPARING,
    createdAt,
    branches: participants.map((p) => ({ service: p.service, operations: p.operations, state: BranchState.PREPARING, attempts: 0, refused: false, prepareSent: false })),
    logged: false,
    decided: false,
    trace,
  };
}

/** A decided transaction read back from the log, ready for its delivery to resume. */
export function liveTxFromRecord(record: DecisionRecord): LiveTx {
  const committing = record.state === 'COMMITTING' || record.state === 'COMMITTED';
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
        prepareSent: p.unsent !== true,
      };
      if (p.reason !== undefined) branch.reason = p.reason;
      if (p.details !== undefined) branch.details = p.details;
      if (record.acked?.includes(p.service)) {
        branch.acked = true;
        branch.state = committing ? BranchState.COMMITTED : BranchState.ROLLED_BACK;
      }
      return branch;
    }),
    logged: true,
    decided: true,
    trace: resumedTransactionTrace(record.trace),
  };
  if (record.result.reason !== undefined) tx.reason = record.result.reason;
  if (record.result.details !== undefined) tx.details = record.result.details;
  return tx;
}

export function participantResults(tx: LiveTx): ParticipantResult[] {
  return tx.branches.map((b) => {
    const result: ParticipantResult = { service: b.service, vote: b.vote ?? Vote.NONE };
    if (b.reason !== undefined) result.reason = b.reason;
    if (b.details !== undefined) result.details = b.details;
    return result;
  });
}

export function decisionRecordOf(tx: LiveTx, state: DecisionState, result: TransactionResult, keyed: KeyedRequest | undefined): DecisionRecord {
  const record: DecisionRecord = {
    txId: tx.txId,
    state,
    participants: tx.branches.map((b) => {
      const p: LoggedParticipant = { service: b.service, operations: b.operations, vote: b.vote ?? Vote.NONE };
      if (b.reason !== undefined) p.reason = b.reason;
      if (b.details !== undefined) p.details = b.details;
      if (!b.prepareSent) p.unsent = true;
      return p;
    }),
    result,
    createdAt: tx.createdAt,
    decidedAt: tx.decidedAt ?? Date.now(),
  };
  const trace = transactionCarrier(tx.trace);
  if (trace !== undefined) record.trace = trace;
  if (keyed) {
    record.idempotencyKey = keyed.key;
    record.requestHash = keyed.hash;
  }
  return record;
}
