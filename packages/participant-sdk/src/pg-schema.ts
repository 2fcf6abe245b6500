/**
 * The SDK's tables in the service's PostgreSQL database: the same three as in SQLite (see barrier-store.ts),
 * one set per database, so each service keeps its own database (or its own PostgreSQL user whose
 * search_path points at its own schema). Millisecond times are BIGINT.
 */
import type { Pool, PoolClient } from 'pg';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS txm_branches (
  tx_id TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('prepared', 'voted_no', 'committed', 'rolled_back')),
  reason TEXT,
  message TEXT,
  operations TEXT,
  prepared_at BIGINT,
  decided_at BIGINT
);
CREATE INDEX IF NOT EXISTS txm_branches_prepared ON txm_branches (prepared_at) WHERE state = 'prepared';
CREATE INDEX IF NOT EXISTS txm_branches_finished ON txm_branches (decided_at) WHERE state <> 'prepared';
CREATE TABLE IF NOT EXISTS txm_barrier (
  tx_id TEXT NOT NULL,
  op_index INTEGER NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('prepare', 'commit', 'rollback')),
  at BIGINT NOT NULL,
  PRIMARY KEY (tx_id, op_index, phase)
);
CREATE TABLE IF NOT EXISTS txm_key_locks (
  key TEXT NOT NULL,
  tx_id TEXT NOT NULL,
  mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')),
  PRIMARY KEY (key, tx_id)
);
CREATE INDEX IF NOT EXISTS txm_key_locks_by_tx ON txm_key_locks (tx_id);
CREATE TABLE IF NOT EXISTS txm_tombstones (
  tx_id TEXT PRIMARY KEY,
  decided_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS txm_tombstones_age ON txm_tombstones (decided_at);
CREATE TABLE IF NOT EXISTS txm_force_marks (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  marks BIGINT NOT NULL
);
INSERT INTO txm_force_marks (id, marks) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
`;

/** Two services starting at once on one database: CREATE ... IF NOT EXISTS can still race, so one at a time. */
const SCHEMA_LOCK = 7_207_001;
const OBJECTS = ['txm_branches', 'txm_branches_prepared', 'txm_branches_finished', 'txm_barrier', 'txm_key_locks', 'txm_key_locks_by_tx', 'txm_tombstones', 'txm_tombstones_age', 'txm_force_marks'];

/**
 * A write for a transaction that must be synced even when its other writes were all undone: PostgreSQL
 * flushes the WAL at commit only for a transaction that wrote some (see PgTentativeStorage).
 */
export const BUMP_FORCE_MARK = 'UPDATE txm_force_marks SET marks = marks + 1 WHERE id = 1';

/**
 * True when every table and index exists. Checked first because CREATE INDEX IF NOT EXISTS locks its table
 * before it looks, and a prepared transaction (native mode) holds a lock on txm_branches until its outcome.
 */
async function schemaPresent(client: Pick<PoolClient, 'query'>): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>('SELECT COUNT(*)::int AS n FROM unnest($1::text[]) AS o(name) WHERE to_regclass(o.name) IS NOT NULL', [OBJECTS]);
  return rows[0]?.n === OBJECTS.length;
}

export async function ensurePgSchema(pool: Pool): Promise<void> {
  const client = await pool.connect();
  try {
    if (await schemaPresent(client)) return;
    await client.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK]);
    try {
      if (!(await schemaPresent(client))) await client.query(SCHEMA);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK]);
    }
  } finally {
    client.release();
  }
}

const PRUNE_BATCH = 1000;
const MAX_PRUNE_BATCHES = 100;

/**
 * Deletes finished branches decided at or before `before` with their barrier rows (a committed one leaves
 * its tombstone, in the same statement), then tombstones decided at or before `tombstonesBefore`, in
 * bounded batches. Returns how many branches went.
 */
export async function pruneFinishedPg(pool: Pool, before: number, tombstonesBefore: number): Promise<number> {
  let deleted = 0;
  for (let batch = 0; batch < MAX_PRUNE_BATCHES; batch++) {
    const { rows } = await pool.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM txm_branches WHERE tx_id IN (
           SELECT tx_id FROM txm_branches WHERE state <> 'prepared' AND decided_at IS NOT NULL AND decided_at <= $1 LIMIT $2)
         RETURNING tx_id, state, decided_at),
       barrier AS (DELETE FROM txm_barrier WHERE tx_id IN (SELECT tx_id FROM gone)),
       tombstones AS (INSERT INTO txm_tombstones (tx_id, decided_at) SELECT tx_id, decided_at FROM gone WHERE state = 'committed' ON CONFLICT DO NOTHING)
       SELECT COUNT(*)::int AS n FROM gone`,
      [before, PRUNE_BATCH],
    );
    const n = rows[0]?.n ?? 0;
    deleted += n;
    if (n < PRUNE_BATCH) break;
  }
  for (let batch = 0; batch < MAX_PRUNE_BATCHES; batch++) {
    const { rowCount } = await pool.query(
      'DELETE FROM txm_tombstones WHERE tx_id IN (SELECT tx_id FROM txm_tombstones WHERE decided_at <= $1 ORDER BY decided_at LIMIT $2)',
      [tombstonesBefore, PRUNE_BATCH],
    );
    if ((rowCount ?? 0) < PRUNE_BATCH) break;
  }
  return deleted;
}
