/**
 * The SDK's own tables in the service database, and the statements over them.
 *
 * - txm_branches: one row per branch (txId) this service saw: its vote, its operations (commit and
 *   rollback messages carry none, so the hooks get their arguments from here) and its outcome.
 *   A rollback that arrives before any prepare leaves a 'rolled_back' row, so a late prepare runs nothing.
 * - txm_barrier: one row per (txId, opIndex, phase) whose hook ran, written by SDKs before stop 30. Here the
 *   branch row is the barrier: the rules run a phase's hooks only after reading the branch in a state that
 *   says they have not run (no row for prepare, 'prepared' for commit and rollback), and move the row out of
 *   that state in the same savepoint as the hooks, so a hook's change and the proof that it ran commit or
 *   vanish together. A separate row per hook proved nothing more and cost an INSERT and a b-tree page per
 *   branch and phase (docs/benchmarks.md). Old rows stay until their branch is pruned.
 * - txm_branches.locks: the business keys a prepared branch holds and how (shared or exclusive), as JSON
 *   ([[key, mode], ...]) in the row its prepare inserts anyway, so a restarted service gets them back (from
 *   the prepared rows only: an outcome moves the row out of 'prepared' and its keys with it). Earlier SDKs
 *   kept them in a table txm_key_locks, one row per key, inserted by the prepare and deleted by the outcome:
 *   two statements and a b-tree's page per batch more. Rows found there (and in the older txm_locks,
 *   exclusive only) move into their branch's row once, at open; txm_key_locks is now a view of the column.
 * - txm_tombstones: the proof that a pruned branch committed here (its id and when), kept longer than the
 *   branch row: a commit re-sent late (a shard that was down while the row aged out) is acknowledged
 *   from it, and a rollback of it is refused as ALREADY_COMMITTED, instead of either being guessed.
 * - txm_force_marks: one row, bumped by a forced transaction that must reach the disk even when its other
 *   writes were all undone (its savepoints rolled back): only a transaction that writes is synced, and
 *   its sync carries the outcomes written unforced before it (see SqliteStorage).
 */
import type Database from 'better-sqlite3';
import { LockMode, txTimeOf, type OperationSpec } from '@txmesh/protocol';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS txm_branches (
  tx_id TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('prepared', 'voted_no', 'committed', 'rolled_back')),
  reason TEXT,
  message TEXT,
  operations TEXT,
  prepared_at INTEGER,
  decided_at INTEGER,
  locks TEXT
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

/** A txm_branches written by an SDK before stop 30 gets its locks column (a change of the schema only). */
function addLocksColumn(db: Database.Database): void {
  const columns = db.prepare(`SELECT name FROM pragma_table_info('txm_branches')`).pluck().all() as string[];
  if (!columns.includes('locks')) db.exec('ALTER TABLE txm_branches ADD COLUMN locks TEXT');
}

/** A key as the locks column stores it. */
type StoredLock = [key: string, mode: LockMode];

const isTable = (db: Database.Database, name: string): boolean =>
  db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;

/**
 * The lock tables of earlier SDKs (txm_key_locks in either key order, the older txm_locks with exclusive locks
 * only) move into their prepared branches' rows and are dropped, in one transaction. A row of a branch that is
 * not prepared guarded nothing (its outcome would have deleted it) and goes with them. Then txm_key_locks is
 * a view of the locks column, with the table's columns: what read the table reads the same rows, and an SDK
 * that would still write it (one before stop 30, opened on this file) fails instead of losing the keys.
 */
function moveLegacyLocks(db: Database.Database): void {
  const sources = [
    ['txm_key_locks', `SELECT tx_id, key, mode FROM txm_key_locks`],
    ['txm_locks', `SELECT tx_id, key, 'exclusive' AS mode FROM txm_locks`],
  ].filter(([table]) => isTable(db, table!));
  if (sources.length > 0) {
    db.transaction(() => {
      const byTx = new Map<string, Map<string, LockMode>>();
      for (const [table, select] of sources) {
        for (const row of db.prepare(select!).all() as { tx_id: string; key: string; mode: string }[]) {
          let held = byTx.get(row.tx_id);
          if (held === undefined) byTx.set(row.tx_id, (held = new Map()));
          // Exclusive wins when both tables name the key.
          if (held.get(row.key) !== LockMode.EXCLUSIVE) held.set(row.key, row.mode === LockMode.SHARED ? LockMode.SHARED : LockMode.EXCLUSIVE);
        }
        db.exec(`DROP TABLE ${table!}`);
      }
      const read = db.prepare(`SELECT locks FROM txm_branches WHERE tx_id = ? AND state = 'prepared'`).pluck();
      const write = db.prepare(`UPDATE txm_branches SET locks = ? WHERE tx_id = ?`);
      for (const [txId, held] of byTx) {
        const stored = read.get(txId) as string | null | undefined;
        if (stored === undefined) continue;
        for (const [key, mode] of stored === null ? [] : (JSON.parse(stored) as StoredLock[])) if (!held.has(key)) held.set(key, mode);
        const merged: StoredLock[] = [...held].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        write.run(JSON.stringify(merged), txId);
      }
    }).immediate();
  }
  db.exec(`CREATE VIEW IF NOT EXISTS txm_key_locks (tx_id, key, mode) AS
    SELECT b.tx_id, j.value ->> 0, j.value ->> 1 FROM txm_branches b, json_each(b.locks) j WHERE b.state = 'prepared'`);
}

/** What is remembered of a branch this process prepared: its row's operations JSON and time. */
interface RememberedPrepare {
  operations: string;
  preparedAt: number;
}

/** A key a prepared branch holds. */
export interface HeldLock {
  key: string;
  txId: string;
  mode: LockMode;
}

/**
 * How far apart the clocks of the coordinator (a transaction id's start time) and this service (a branch's
 * decision time) may be for a look-up to skip the tombstones (see `branch`), besides clockSkewAllowanceMs.
 * Prepares from ids more than a minute in the future are refused anyway.
 */
export const TOMBSTONE_CLOCK_MARGIN_MS = 300_000;

/** Prepared branches remembered in memory at most (beyond it a commit reads its row, as after a restart). */
const MAX_REMEMBERED_PREPARED = 100_000;

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
  readonly #insertPreparedStmt: Database.Statement<[string, string, number, string | null]>;
  readonly #insertVotedNoStmt: Database.Statement<[string, string, string | null, string, number]>;
  readonly #insertRolledBackStmt: Database.Statement<[string, number]>;
  readonly #decideStmt: Database.Statement<[BranchRowState, number, string]>;
  readonly #heldLocksStmt: Database.Statement<[], { tx_id: string; locks: string }>;
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
  /**
   * No tombstone was decided after this (epoch ms; an upper bound: raised before its prune commits). A
   * branch decides after it began, so an id that began later than this plus the clocks' margin has none.
   */
  #newestTombstoneAt: number;
  readonly #clockMarginMs: number;
  /**
   * Branches this process prepared, once the transaction that wrote them is durable, until an outcome is
   * written for them: their row is 'prepared' with exactly this JSON of its operations, so the outcome's
   * look-up (and a duplicate prepare's) reads no row; it parses the same text the row holds, so a hook that
   * changed its arguments' objects changes nothing here either. An outcome forgets its branch before its row
   * moves, so a transaction that fails later leaves the row to be read again, never a stale entry.
   */
  readonly #prepared = new Map<string, RememberedPrepare>();
  /** Prepared rows the running transaction wrote, until it is durable (kept) or not (dropped). */
  readonly #written = new Map<string, RememberedPrepare>();

  /** `clockSkewAllowanceMs`: the participant's allowance, added to TOMBSTONE_CLOCK_MARGIN_MS. */
  constructor(db: Database.Database, clockSkewAllowanceMs = 0) {
    // In one transaction: a fresh database then costs one forced write for the schema, not one per statement.
    db.transaction(() => db.exec(SCHEMA))();
    addLocksColumn(db);
    moveLegacyLocks(db);
    this.#getBranchStmt = db.prepare('SELECT tx_id, state, reason, message, operations, prepared_at FROM txm_branches WHERE tx_id = ?');
    this.#insertPreparedStmt = db.prepare(`INSERT INTO txm_branches (tx_id, state, operations, prepared_at, locks) VALUES (?, 'prepared', ?, ?, ?)`);
    this.#insertVotedNoStmt = db.prepare(
      `INSERT INTO txm_branches (tx_id, state, reason, message, operations, decided_at) VALUES (?, 'voted_no', ?, ?, ?, ?)`,
    );
    this.#insertRolledBackStmt = db.prepare(`INSERT INTO txm_branches (tx_id, state, decided_at) VALUES (?, 'rolled_back', ?)`);
    this.#decideStmt = db.prepare('UPDATE txm_branches SET state = ?, decided_at = ? WHERE tx_id = ?');
    this.#heldLocksStmt = db.prepare(`SELECT tx_id, locks FROM txm_branches WHERE state = 'prepared' AND locks IS NOT NULL`);
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
        if (state === 'committed') {
          this.#newestTombstoneAt = Math.max(this.#newestTombstoneAt, decided_at);
          this.#insertTombstoneStmt.run(tx_id, decided_at);
        }
        this.#deleteBarrierStmt.run(tx_id);
        this.#deleteBranchStmt.run(tx_id);
      }
      return { branches: rows.length, tombstones: this.#pruneTombstonesStmt.run(tombstonesBefore, PRUNE_BATCH).changes };
    });
    this.#clockMarginMs = TOMBSTONE_CLOCK_MARGIN_MS + clockSkewAllowanceMs;
    const newest = db.prepare('SELECT MAX(decided_at) FROM txm_tombstones').pluck().get() as number | null;
    this.#newestTombstoneAt = newest ?? -Infinity;
  }

  /**
   * The branch's row; for a pruned committed branch, what its tombstone proves (committed, no operations).
   * The tombstones are read only for an id that began before the newest tombstone's decision (plus the
   * clocks' margin): a new transaction's prepare, nearly every miss, then costs one statement, not two.
   */
  branch(txId: string): BranchRecord | undefined {
    const remembered = this.#prepared.get(txId);
    if (remembered !== undefined) {
      return branchFromRow({ tx_id: txId, state: 'prepared', reason: null, message: null, operations: remembered.operations, prepared_at: remembered.preparedAt });
    }
    const row = this.#getBranchStmt.get(txId);
    if (!row) {
      if ((txTimeOf(txId) ?? -Infinity) > this.#newestTombstoneAt + this.#clockMarginMs) return undefined;
      // A pruned committed branch: its tombstone proves the commit (no operations are kept).
      const tombstone = this.#getTombstoneStmt.get(txId);
      return tombstone ? { txId, state: 'committed', reason: undefined, message: undefined, operations: [], preparedAt: undefined } : undefined;
    }
    return branchFromRow(row);
  }

  /** The branch's row with its operations and the keys it holds (one statement: see txm_branches.locks). */
  recordPrepared(txId: string, operations: OperationSpec[], locks: readonly { key: string; mode: LockMode }[], now: number): void {
    const stored: StoredLock[] = locks.map(({ key, mode }) => [key, mode]);
    const json = JSON.stringify(operations);
    this.#insertPreparedStmt.run(txId, json, now, stored.length === 0 ? null : JSON.stringify(stored));
    this.#written.set(txId, { operations: json, preparedAt: now });
  }

  recordVotedNo(txId: string, reason: string, message: string | undefined, operations: OperationSpec[], now: number): void {
    this.#insertVotedNoStmt.run(txId, reason, message ?? null, JSON.stringify(operations), now);
  }

  recordRolledBackUnprepared(txId: string, now: number): void {
    this.#insertRolledBackStmt.run(txId, now);
  }

  /** Moves a branch to its outcome, in the caller's transaction; its keys are held no more (only prepared rows' are). */
  recordDecided(txId: string, state: 'committed' | 'rolled_back', now: number): void {
    this.#prepared.delete(txId);
    this.#decideStmt.run(state, now, txId);
  }

  /**
   * Once the transaction that wrote them is durable: of the prepared rows it wrote, those of `keep` (the branches
   * it left prepared; a savepoint may have undone another's) are remembered (see #prepared). Called after every
   * write transaction, with nothing to keep when it failed.
   */
  rememberPrepared(keep: Iterable<string>): void {
    for (const txId of keep) {
      const written = this.#written.get(txId);
      if (written !== undefined && this.#prepared.size < MAX_REMEMBERED_PREPARED) this.#prepared.set(txId, written);
    }
    this.#written.clear();
  }

  /** Marks a voted-no branch as having heard its rollback; its state (and vote) stay. */
  touchDecided(txId: string, now: number): void {
    this.#decideStmt.run('voted_no', now, txId);
  }

  /**
   * True: the rules ask only once they have read the branch in a state whose hooks have not run, and the
   * branch row leaves that state in the same savepoint as the hooks (see txm_barrier above).
   */
  claimHook(_txId: string, _opIndex: number, _phase: HookPhase, _now: number): boolean {
    return true;
  }

  /** One write the caller's transaction is sure to contain, so that its commit is synced to disk. */
  markForced(): void {
    this.#forceMarkStmt.run();
  }

  /** The keys prepared branches hold, sorted by key then branch. */
  heldLocks(): HeldLock[] {
    const held: HeldLock[] = [];
    for (const row of this.#heldLocksStmt.all()) {
      for (const [key, mode] of JSON.parse(row.locks) as StoredLock[]) held.push({ key, txId: row.tx_id, mode: mode === LockMode.SHARED ? LockMode.SHARED : LockMode.EXCLUSIVE });
    }
    return held.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.txId < b.txId ? -1 : a.txId > b.txId ? 1 : 0));
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
