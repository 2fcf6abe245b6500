/**
 * How long the SDK keeps finished branch rows (txm_branches, txm_barrier), and why that is safe.
 *
 * A finished row answers duplicates: a repeated commit/rollback, and a prepare that arrives after its
 * rollback (it must not run). Once the row is gone, the prepare's `deadline` does that job instead: a
 * prepare whose deadline passed more than clockSkewAllowanceMs ago is refused (DEADLINE_PASSED). A
 * deadline lies at most maxTimeoutMs after the transaction began, and the row was decided after it
 * began, so a row kept longer than maxTimeoutMs plus twice the allowance (the clocks may differ by
 * that much either way) is only deleted once every prepare that could still find it would be refused
 * anyway. The coordinator always sends a deadline; a prepare without one is refused.
 *
 * A committed branch leaves a tombstone (its id) for tombstoneRetentionMs after its decision: a commit
 * re-sent after the row went (a shard down for that long, then recovering its unacknowledged outcomes)
 * is acknowledged from that proof, and a rollback of it is answered ALREADY_COMMITTED, never applied.
 */
import { DEFAULT_LIMITS } from '@txmesh/protocol';

export interface BranchRetentionOptions {
  /** Finished branch rows older than this are deleted. Default 900 000 (15 min). */
  branchRetentionMs?: number;
  /** How often they are looked for. Default 60 000; 0 turns pruning off. */
  branchPruneIntervalMs?: number;
  /** A prepare is refused once its deadline passed more than this long ago. Default 0 (clocks in sync). */
  clockSkewAllowanceMs?: number;
  /** How long a pruned committed branch's tombstone is kept after its decision. Default 86 400 000 (one day). */
  tombstoneRetentionMs?: number;
}

export interface BranchRetention {
  retentionMs: number;
  pruneIntervalMs: number;
  clockSkewAllowanceMs: number;
  tombstoneRetentionMs: number;
}

export const DEFAULT_BRANCH_RETENTION_MS = 900_000;
export const DEFAULT_BRANCH_PRUNE_INTERVAL_MS = 60_000;
export const DEFAULT_TOMBSTONE_RETENTION_MS = 86_400_000;

function nonNegativeInt(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`${field} must be a non-negative integer of milliseconds, got ${value}`);
  return value;
}

/** The shortest retention that keeps prepare-after-rollback safe with this skew allowance. */
export function minimumBranchRetentionMs(clockSkewAllowanceMs: number): number {
  return DEFAULT_LIMITS.maxTimeoutMs + 2 * clockSkewAllowanceMs;
}

export function resolveBranchRetention(options: BranchRetentionOptions): BranchRetention {
  const clockSkewAllowanceMs = nonNegativeInt(options.clockSkewAllowanceMs ?? 0, 'clockSkewAllowanceMs');
  const retentionMs = nonNegativeInt(options.branchRetentionMs ?? DEFAULT_BRANCH_RETENTION_MS, 'branchRetentionMs');
  const pruneIntervalMs = nonNegativeInt(options.branchPruneIntervalMs ?? DEFAULT_BRANCH_PRUNE_INTERVAL_MS, 'branchPruneIntervalMs');
  const minimum = minimumBranchRetentionMs(clockSkewAllowanceMs);
  if (retentionMs <= minimum) {
    throw new TypeError(
      `branchRetentionMs must be more than ${minimum} (the longest transaction timeout plus twice clockSkewAllowanceMs), got ${retentionMs}: ` +
        'a shorter one could let a late prepare run after its rollback was forgotten',
    );
  }
  const tombstoneRetentionMs = nonNegativeInt(options.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS, 'tombstoneRetentionMs');
  if (tombstoneRetentionMs < retentionMs) {
    throw new TypeError(`tombstoneRetentionMs must be at least branchRetentionMs (${retentionMs}), got ${tombstoneRetentionMs}: a tombstone outlives its row`);
  }
  return { retentionMs, pruneIntervalMs, clockSkewAllowanceMs, tombstoneRetentionMs };
}
