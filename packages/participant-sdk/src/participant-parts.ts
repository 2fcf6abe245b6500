/** What the prepare pipeline and the decision runner share: the storage, the locks, the rules' context, the counters. */
import type { LockManager } from './lock-manager.ts';
import type { ParticipantLog } from './participant-options.ts';
import type { OperationParser } from './operation-parser.ts';
import type { ParticipantStorage, RuleContext } from './storage-adapter.ts';

/** Write transactions on the service database: each is one fsync, however many branches it carries. */
export interface ParticipantStats {
  batches: number;
  prepareTransactions: number;
  preparesWritten: number;
  decisionTransactions: number;
  decisionsWritten: number;
  /** Forced transactions that carried a batch's outcomes and its prepares together (see mixed-batch.ts). */
  batchTransactions: number;
  /**
   * Rollbacks that found their branch already committed (acknowledged as ALREADY_COMMITTED, each also an
   * error log line). Non-zero means a stale presumed-abort look-up or a forged or misrouted rollback: look.
   */
  rollbacksAfterCommit: number;
}

export interface ParticipantParts {
  storage: ParticipantStorage;
  locks: LockManager;
  operations: OperationParser;
  log: ParticipantLog;
  counters: ParticipantStats;
  rules: RuleContext;
}
