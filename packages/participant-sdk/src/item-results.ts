/** The answers a participant gives per batch item, and the reasons the SDK itself puts on them. */
import { BranchAction, ItemStatus, Reason, type BranchItemResult } from '@txmesh/protocol';
import type { BranchRecord } from './barrier-store.ts';

/**
 * Reasons the SDK itself puts on no votes and errors (business reasons come from BusinessRefusal).
 * Each is in the protocol's reason catalogue (`Reasons`), with a sentence saying what it means.
 */
export const ItemReasons = {
  ALREADY_ROLLED_BACK: Reason.ALREADY_ROLLED_BACK,
  LOCK_TIMEOUT: Reason.LOCK_TIMEOUT,
  LOCK_CONFLICT: Reason.LOCK_CONFLICT,
  DEADLINE_PASSED: Reason.DEADLINE_PASSED,
  PREPARE_FAILED: Reason.PREPARE_FAILED,
  COMMIT_FAILED: Reason.COMMIT_FAILED,
  ROLLBACK_FAILED: Reason.ROLLBACK_FAILED,
  ALREADY_COMMITTED: Reason.ALREADY_COMMITTED,
  DEADLOCK: Reason.DEADLOCK,
  VERSION_CONFLICT: Reason.VERSION_CONFLICT,
  PREPARE_DEFERRED: Reason.PREPARE_DEFERRED,
} as const;

export function itemResult(item: { txId: string; action: BranchAction }, status: ItemStatus, reason?: string, message?: string): BranchItemResult {
  const r: BranchItemResult = { txId: item.txId, action: item.action, status };
  if (reason !== undefined) r.reason = reason;
  if (message !== undefined) r.message = message;
  return r;
}

/** What a prepare answers when its branch is already known here: the same vote as before. */
export function answerFromStored(txId: string, row: BranchRecord): BranchItemResult {
  const item = { txId, action: BranchAction.PREPARE };
  switch (row.state) {
    case 'prepared':
    case 'committed':
      return itemResult(item, ItemStatus.OK);
    case 'voted_no':
      return itemResult(item, ItemStatus.NO, row.reason, row.message);
    case 'rolled_back':
      return itemResult(item, ItemStatus.NO, ItemReasons.ALREADY_ROLLED_BACK, 'this branch was rolled back before it prepared');
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
