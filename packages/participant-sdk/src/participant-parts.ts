/** What the prepare pipeline and the decision runner share: the store, the locks, the hooks, the counters. */
import type Database from 'better-sqlite3';
import type { BarrierStore } from './barrier-store.ts';
import type { HookRunner } from './hook-runner.ts';
import type { LockManager } from './lock-manager.ts';
import type { ParticipantLog } from './participant-options.ts';

/** Write transactions on the service database: each is one fsync, however many branches it carries. */
export interface ParticipantStats {
  batches: number;
  prepareTransactions: number;
  preparesWritten: number;
  decisionTransactions: number;
  decisionsWritten: number;
}

export type RunIn = Database.Transaction<(fn: () => void) => void>;

export interface ParticipantParts {
  store: BarrierStore;
  locks: LockManager;
  hooks: HookRunner;
  log: ParticipantLog;
  counters: ParticipantStats;
  /** Runs fn in a write transaction (`.immediate`), or in a savepoint when called inside one. */
  inTransaction: RunIn;
  inSavepoint: RunIn;
}
