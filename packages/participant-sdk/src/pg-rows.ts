/**
 * The SDK's rows over one `pg` client (BranchRows): the same statements as the SQLite store, awaited.
 * What runs a hook and what isolates a branch differ between the two PostgreSQL modes, so they are given.
 */
import type { PoolClient } from 'pg';
import { LockMode, type OperationSpec } from '@txmesh/protocol';
import { branchFromRow, type BranchRecord, type BranchRow, type HeldLock, type HookPhase } from './barrier-store.ts';
import { BusinessRefusal } from './operation.ts';
import type { PgHookContext } from './pg-operation.ts';
import type { BranchRows, HookCall } from './storage-adapter.ts';
import type { Steps } from './steps-runner.ts';


/** PostgreSQL's lock_not_available: a row stayed locked past lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';
const DEADLOCK_DETECTED = '40P01';

/** A lock wait that ran out inside PostgreSQL votes no like one in the SDK's lock manager. */
export function asLockRefusal(err: unknown, lockWaitMs: number): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === LOCK_NOT_AVAILABLE) return new BusinessRefusal('LOCK_TIMEOUT', `a row stayed locked for more than ${lockWaitMs} ms (another transaction holds it, perhaps prepared)`);
  if (code === DEADLOCK_DETECTED) return new BusinessRefusal('DEADLOCK', 'PostgreSQL found a deadlock between this branch and another transaction');
  return err;
}


export function hookContext(client: PoolClient, call: HookCall): PgHookContext {
  const ctx: PgHookContext = { client, txId: call.txId, opIndex: call.opIndex, service: call.service };
  if (call.expectVersion !== undefined) ctx.expectVersion = call.expectVersion;
  return ctx;
}

export async function readBranch(client: Pick<PoolClient, 'query'>, txId: string): Promise<BranchRecord | undefined> {
  const { rows } = await client.query<BranchRow<string>>('SELECT tx_id, state, reason, message, operations, prepared_at FROM txm_branches WHERE tx_id = $1', [txId]);
  if (rows[0]) return branchFromRow(rows[0]);
  // A pruned committed branch: its tombstone proves the commit (no operations are kept).
  const tombstone = await client.query('SELECT 1 FROM txm_tombstones WHERE tx_id = $1', [txId]);
  return tombstone.rowCount ? { txId, state: 'committed', reason: undefined, message: undefined, operations: [], preparedAt: undefined } : undefined;
}

export async function readHeldLocks(client: Pick<PoolClient, 'query'>): Promise<HeldLock[]> {
  const { rows } = await client.query<{ key: string; tx_id: string; mode: string }>('SELECT key, tx_id, mode FROM txm_key_locks ORDER BY key, tx_id');
  return rows.map((row) => ({ key: row.key, txId: row.tx_id, mode: row.mode === LockMode.SHARED ? LockMode.SHARED : LockMode.EXCLUSIVE }));
}

export abstract class PgRows implements BranchRows {
  protected readonly client: PoolClient;

  constructor(client: PoolClient) {
    this.client = client;
  }

  abstract isolated<T>(work: () => Steps<T>): Promise<T>;
  abstract runHook(call: HookCall): Promise<void>;

  branch(txId: string): Promise<BranchRecord | undefined> {
    return readBranch(this.client, txId);
  }

  async recordPrepared(txId: string, operations: OperationSpec[], locks: readonly { key: string; mode: LockMode }[], now: number): Promise<void> {
    await this.client.query(`INSERT INTO txm_branches (tx_id, state, operations, prepared_at) VALUES ($1, 'prepared', $2, $3)`, [txId, JSON.stringify(operations), now]);
    if (locks.length === 0) return;
    await this.client.query(`INSERT INTO txm_key_locks (key, tx_id, mode) SELECT k, $2, m FROM unnest($1::text[], $3::text[]) AS l(k, m)`, [
      locks.map((l) => l.key),
      txId,
      locks.map((l) => l.mode),
    ]);
  }

  async recordVotedNo(txId: string, reason: string, message: string | undefined, operations: OperationSpec[], now: number): Promise<void> {
    await this.client.query(`INSERT INTO txm_branches (tx_id, state, reason, message, operations, decided_at) VALUES ($1, 'voted_no', $2, $3, $4, $5)`, [
      txId,
      reason,
      message ?? null,
      JSON.stringify(operations),
      now,
    ]);
  }

  async recordRolledBackUnprepared(txId: string, now: number): Promise<void> {
    await this.client.query(`INSERT INTO txm_branches (tx_id, state, decided_at) VALUES ($1, 'rolled_back', $2)`, [txId, now]);
  }

  async recordDecided(txId: string, state: 'committed' | 'rolled_back', now: number): Promise<void> {
    await this.client.query('UPDATE txm_branches SET state = $1, decided_at = $2 WHERE tx_id = $3', [state, now, txId]);
    await this.client.query('DELETE FROM txm_key_locks WHERE tx_id = $1', [txId]);
  }

  async touchDecided(txId: string, now: number): Promise<void> {
    await this.client.query(`UPDATE txm_branches SET decided_at = $1 WHERE tx_id = $2`, [now, txId]);
  }

  async claimHook(txId: string, opIndex: number, phase: HookPhase, now: number): Promise<boolean> {
    const { rowCount } = await this.client.query('INSERT INTO txm_barrier (tx_id, op_index, phase, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
      txId,
      opIndex,
      phase,
      now,
    ]);
    return rowCount === 1;
  }
}
