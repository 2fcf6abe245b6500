/**
 * The SDK's own tables in the service database, and the statements over them.
 *
 * - txm_branches: one row per branch (txId) this service saw: its vote, its operations (commit and
 *   rollback messages carry none, so the hooks get their arguments from here) and its outcome.
 *   A rollback that arrives before any prepare leaves a 'rolled_back' row, so a late prepare runs nothing.
 * - txm_barrier: one row per (txId, opIndex, phase) whose hook ran, written in the same transaction
 *   as the hook's business change: a hook runs only if its row could be inserted, hence at most once.
 * - txm_key_locks: the business keys a prepared branch holds and how (shared or exclusive), so a
 *   restarted service gets them back. It replaces txm_locks (exclusive only), whose rows move over once.
 *   Keyed by (tx_id, key): a prepare inserts and an outcome deletes one branch's rows, which then sit on one
 *   page of one b-tree (ids are time-ordered, so the next prepare's rows land on the same page). Keyed by
 *   (key, tx_id) with an index by tx_id, as an earlier SDK wrote it, each batch changed a page of each.
 * - txm_tombstones: the proof that a pruned branch committed here (its id and when), kept longer than the
 *   branch row: a commit re-sent late (a shard that was down while the row aged out) is acknowledged
 *   from it, and a rollback of it is refused as ALREADY_COMMITTED, instead of either being guessed.
 * - txm_force_marks: one row, bumped by a forced transaction that must reach the disk even when its other
 *   writes were all undone (its savepoints rolled back): only a transaction that writes is synced, and
 *   its sync carries the outcomes written unforced before it (see SqliteStorage).
 */
import type Database from 'better-sqlite3';
import { LockMode, type OperationSpec } from '@txmesh/protocol';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS txm_branches (
  tx_id TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('prepared', 'voted_no', 'committed', 'rolled_back')),
  reason TEXT,
  message TEXT,
  operations TEXT,
  prepared_at INTEGER,
  decided_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txm_branches_prepared ON txm_branches (prepared_at) WHERE state = 'prepared';
CREATE INDEX IF NOT EXISTS txm_branches_finished ON txm_branches (decided_at) WHERE state <> 'prepared';
CREATE TABLE IF NOT EXISTS txm_barrier (
  tx_id TEXT NOT NULL,
  op_index INTEGER NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('prepare', 'commit', 'rollback')),
  at INTEGER NOT NULL,
  PRIMARY KEY (tx_id, op_index, phase)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS txm_key_locks (
  tx_id TEXT NOT NULL,
  key TEXT NOT NULL,
  mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')),
  PRIMARY KEY (tx_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS txm_tombstones (
  tx_id TEXT PRIMARY KEY,
  decided_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS txm_tombstones_age ON txm_tombstones (decided_at);
CREATE TABLE IF NOT EXISTS txm_force_marks (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  marks INTEGER NOT NULL
);
INSERT OR IGNORE INTO txm_force_marks (id, marks) VALUES (1, 0);
`;

/** A database written by an SDK with exclusive locks only keeps its prepared branches' locks. */
function migrateExclusiveLocks(db: Database.Database): void {
  const old = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'txm_locks'`).get();
  if (!old) return;
  db.transaction(() => {
    db.exec(`INSERT OR IGNORE INTO txm_key_locks (key, tx_id, mode) SELECT key, tx_id, 'exclusive' FROM txm_locks`);
    db.exec('DROP TABLE txm_locks');
  }).immediate();
}

/**
 * A database whose txm_key_locks is keyed (key, tx_id) with its by-tx index (an earlier SDK) is rewritten
 * keyed (tx_id, key), its rows kept, in one transaction (the table holds only prepared branches' locks).
 */
function migrateLocksByTx(db: Database.Database): void {
  const old = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'txm_key_locks_by_tx'`).get();
  if (!old) return;
  db.transaction(() => {
    db.exec(`
      CREATE TABLE txm_key_locks_by_tx_first (
        tx_id TEXT NOT NULL,
        key TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')),
        PRIMARY KEY (tx_id, key)
      ) WITHOUT ROWID;
      INSERT INTO txm_key_locks_by_tx_first (tx_id, key, mode) SELECT tx_id, key, mode FROM txm_key_locks;
      DROP TABLE txm_key_locks;
      ALTER TABLE txm_key_locks_by_tx_first RENAME TO txm_key_locks;
    `);
  }).immediate();
}

/** A key a prepared branch holds. */
export interface HeldLock {
  key: string;
  txId: string;
  mode: LockMode;
}

const PRUNE_BATCH = 1000;
const MAX_PRUNE_BATCHES = 100;

export type BranchRowState = 'prepared' | 'voted_no' | 'committed' | 'rolled_back';
export type HookPhase = 'prepare' | 'commit' | 'rollback';

export interface BranchRecord {
  txId: string;
  state: BranchRowState;
  reason: string | undefined;
  message: string | undefined;
  operations: OperationSpec[];
  preparedAt: number | undefined;
}

/** A txm_branches row as a driver returns it (`pg` returns BIGINT as a string). */
export interface BranchRow<Millis = number> {
  tx_id: string;
  state: BranchRowState;
  reason: string | null;
  message: string | null;
  operations: string | null;
  prepared_at: Millis | null;
}

/** The record the rules work with, from a row of either database. */
export function branchFromRow(row: BranchRow<number | string>): BranchRecord {
  return {
    txId: row.tx_id,
    state: row.state,
    reason: row.reason ?? undefined,
    message: row.message ?? undefined,
    operations: row.operations === null ? [] : (JSON.parse(row.operations) as OperationSpec[]),
    preparedAt: row.prepared_at === null ? undefined : Number(row.prepared_at),
  };
}

export class BarrierStore {
  readonly #getBranchStmt: Database.Statement<[string], BranchRow>;
  readonly #insertPreparedStmt: Database.Statement<[string, string, number]>;
  readonly #insertVotedNoStmt: Database.Statement<[string, string, string | null, string, number]>;
  readonly #insertRolledBackStmt: Database.Statement<[string, number]>;
  readonly #decideStmt: Database.Statement<[BranchRowState, number, string]>;
  readonly #insertBarrierStmt: Database.Statement<[string, number, HookPhase, number]>;
  readonly #insertLockStmt: Database.Statement<[string, string, LockMode]>;
  readonly #deleteLocksStmt: Database.Statement<[string]>;
  readonly #allLocksStmt: Database.Statement<[], { key: string; tx_id: string; mode: LockMode }>;
  readonly #preparedStmt: Database.Statement<[], { tx_id: string; prepared_at: number }>;
  readonly #finishedStmt: Database.Statement<[number, number], { tx_id: string; state: BranchRowState; decided_at: number }>;
  readonly #insertTombstoneStmt: Database.Statement<[string, number]>;
  readonly #getTombstoneStmt: Database.Statement<[string], { decided_at: number }>;
  readonly #pruneTombstonesStmt: Database.Statement<[number, number]>;
  readonly #countTombstonesStmt: Database.Statement<[], { n: number }>;
  readonly #deleteBarrierStmt: Database.Statement<[string]>;
  readonly #deleteBranchStmt: Database.Statement<[string]>;
  readonly #forceMarkStmt: Database.Statement<[]>;
  readonly #pruneTx: Database.Transaction<(before: number, tombstonesBefore: number) => { branches: number; tombstones: number }>;

  constructor(db: Database.Database) {
    // In one transaction: a fresh database then costs one forced write for the schema, not one per statement.
    db.transaction(() => db.exec(SCHEMA))();
    migrateLocksByTx(db);
    migrateExclusiveLocks(db);
    this.#getBranchStmt = db.prepare('SELECT tx_id, state, reason, message, operations, prepared_at FROM txm_branches WHERE tx_id = ?');
    this.#insertPreparedStmt = db.prepare(`INSERT INTO txm_branches (tx_id, state, operations, prepared_at) VALUES (?, 'prepared', ?, ?)`);
    this.#insertVotedNoStmt = db.prepare(
      `INSERT INTO txm_branches (tx_id, state, reason, message, operations, decided_at) VALUES (?, 'voted_no', ?, ?, ?, ?)`,
    );
    this.#insertRolledBackStmt = db.prepare(`INSERT INTO txm_branches (tx_id, state, decided_at) VALUES (?, 'rolled_back', ?)`);
    this.#decideStmt = db.prepare('UPDATE txm_branches SET state = ?, decided_at = ? WHERE tx_id = ?');
    this.#insertBarrierStmt = db.prepare('INSERT OR IGNORE INTO txm_barrier (tx_id, op_index, phase, at) VALUES (?, ?, ?, ?)');
    this.#insertLockStmt = db.prepare('INSERT INTO txm_key_locks (key, tx_id, mode) VALUES (?, ?, ?)');
    this.#deleteLocksStmt = db.prepare('DELETE FROM txm_key_locks WHERE tx_id = ?');
    this.#allLocksStmt = db.prepare('SELECT key, tx_id, mode FROM txm_key_locks ORDER BY key, tx_id');
    this.#preparedStmt = db.prepare(`SELECT tx_id, prepared_at FROM txm_branches WHERE state = 'prepared' ORDER BY prepared_at`);
    // Finished = decided (committed, rolled back) or refused; a prepared branch is never pruned.
    this.#finishedStmt = db.prepare(
      `SELECT tx_id, state, decided_at FROM txm_branches WHERE state <> 'prepared' AND decided_at IS NOT NULL AND decided_at <= ? LIMIT ?`,
    );
    this.#insertTombstoneStmt = db.prepare('INSERT OR IGNORE INTO txm_tombstones (tx_id, decided_at) VALUES (?, ?)');
    this.#countTombstonesStmt = db.prepare('SELECT COUNT(*) AS n FROM txm_tombstones');
    this.#getTombstoneStmt = db.prepare('SELECT decided_at FROM txm_tombstones WHERE tx_id = ?');
    this.#pruneTombstonesStmt = db.prepare(
      'DELETE FROM txm_tombstones WHERE tx_id IN (SELECT tx_id FROM txm_tombstones WHERE decided_at <= ? ORDER BY decided_at LIMIT ?)',
    );
    this.#deleteBarrierStmt = db.prepare('DELETE FROM txm_barrier WHERE tx_id = ?');
    this.#deleteBranchStmt = db.prepare('DELETE FROM txm_branches WHERE tx_id = ?');
    this.#forceMarkStmt = db.prepare('UPDATE txm_force_marks SET marks = marks + 1 WHERE id = 1');
    this.#pruneTx = db.transaction((before: number, tombstonesBefore: number) => {
      const rows = this.#finishedStmt.all(before, PRUNE_BATCH);
      for (const { tx_id, state, decided_at } of rows) {
        if (state === 'committed') this.#insertTombstoneStmt.run(tx_id, decided_at);
        this.#deleteBarrierStmt.run(tx_id);
        this.#deleteBranchStmt.run(tx_id);
      }
      return { branches: rows.length, tombstones: this.#pruneTombstonesStmt.run(tombstonesBefore, PRUNE_BATCH).changes };
    });
  }

  /** The branch's row; for a pruned committed branch, what its tombstone proves (committed, no operations). */
  branch(txId: string): BranchRecord | undefined {
    const row = this.#getBranchStmt.get(txId);
    if (!row) {
      // A pruned committed branch: its tombstone proves the commit (no operations are kept).
      const tombstone = this.#getTombstoneStmt.get(txId);
      return tombstone ? { txId, state: 'committed', reason: undefined, message: undefined, operations: [], preparedAt: undefined } : undefined;
    }
    return branchFromRow(row);
  }

  recordPrepared(txId: string, operations: OperationSpec[], locks: readonly { key: string; mode: LockMode }[], now: number): void {
    this.#insertPreparedStmt.run(txId, JSON.stringify(operations), now);
    for (const { key, mode } of locks) this.#insertLockStmt.run(key, txId, mode);
  }

  recordVotedNo(txId: string, reason: string, message: string | undefined, operations: OperationSpec[], now: number): void {
    this.#insertVotedNoStmt.run(txId, reason, message ?? null, JSON.stringify(operations), now);
  }

  recordRolledBackUnprepared(txId: string, now: number): void {
    this.#insertRolledBackStmt.run(txId, now);
  }

  /** Moves a branch to its outcome and drops its durable locks, in the caller's transaction. */
  recordDecided(txId: string, state: 'committed' | 'rolled_back', now: number): void {
    this.#decideStmt.run(state, now, txId);
    this.#deleteLocksStmt.run(txId);
  }

  /** Marks a voted-no branch as having heard its rollback; its state (and vote) stay. */
  touchDecided(txId: string, now: number): void {
    this.#decideStmt.run('voted_no', now, txId);
  }

  /** True when this hook has not run yet; the row is the proof that it now has (same transaction). */
  claimHook(txId: string, opIndex: number, phase: HookPhase, now: number): boolean {
    return this.#insertBarrierStmt.run(txId, opIndex, phase, now).changes === 1;
  }

  /** One write the caller's transaction is sure to contain, so that its commit is synced to disk. */
  markForced(): void {
    this.#forceMarkStmt.run();
  }

  heldLocks(): HeldLock[] {
    return this.#allLocksStmt.all().map((row) => ({ key: row.key, txId: row.tx_id, mode: row.mode === LockMode.SHARED ? LockMode.SHARED : LockMode.EXCLUSIVE }));
  }

  /**
   * Deletes finished branches decided at or before `before`, with their barrier rows (a committed one
   * leaves its tombstone), and tombstones of branches decided at or before `tombstonesBefore`, in bounded
   * batches (each its own short transaction). Returns how many branch rows went.
   */
  pruneFinished(before: number, tombstonesBefore: number): number {
    let deleted = 0;
    for (let batch = 0; batch < MAX_PRUNE_BATCHES; batch++) {
      const { branches, tombstones } = this.#pruneTx.immediate(before, tombstonesBefore);
      deleted += branches;
      if (branches < PRUNE_BATCH && tombstones < PRUNE_BATCH) break;
    }
    return deleted;
  }

  /** Tombstones held (pruned committed branches still provable). */
  tombstoneCount(): number {
    return (this.#countTombstonesStmt.get() as { n: number }).n;
  }

  preparedBranches(): { txId: string; preparedAt: number }[] {
    return this.#preparedStmt.all().map((row) => ({ txId: row.tx_id, preparedAt: row.prepared_at }));
  }
}
