/**
 * Shared bookkeeping for the services: a one-row-per-key meta table that makes seeding happen once, and
 * a ledger of branches whose commit hook ran here. The ledger is written in the same local transaction
 * as the commit's effect rows, so the invariant checks can compare the two and spot a tampered row.
 */
import type Database from 'better-sqlite3';
import type { ServiceCheck } from './service-definition.ts';

export function migrateShared(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS shop_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS shop_committed_branches (tx_id TEXT PRIMARY KEY, committed_at INTEGER NOT NULL) WITHOUT ROWID;
  `);
}

/** Runs seed() inside one transaction the first time only; a reopened database keeps its rows. */
export function seedOnce(db: Database.Database, seed: () => void): boolean {
  return db.transaction(() => {
    const done = db.prepare(`SELECT value FROM shop_meta WHERE key = 'seeded_at'`).get();
    if (done !== undefined) return false;
    seed();
    db.prepare(`INSERT INTO shop_meta (key, value) VALUES ('seeded_at', ?)`).run(String(Date.now()));
    return true;
  })();
}

const ledgerStatements = new WeakMap<Database.Database, Database.Statement>();

/** Idempotent: a branch with several operations records itself once. */
export function recordCommittedBranch(db: Database.Database, txId: string): void {
  let insert = ledgerStatements.get(db);
  if (!insert) {
    insert = db.prepare(`INSERT OR IGNORE INTO shop_committed_branches (tx_id, committed_at) VALUES (?, ?)`);
    ledgerStatements.set(db, insert);
  }
  insert.run(txId, Date.now());
}

export function committedBranchIds(db: Database.Database): Set<string> {
  const rows = db.prepare(`SELECT tx_id FROM shop_committed_branches`).pluck().all() as string[];
  return new Set(rows);
}

/** Distinct tx_id values of a query, as a set. */
export function txIdSet(db: Database.Database, sql: string): Set<string> {
  return new Set(db.prepare(sql).pluck().all() as string[]);
}

/** Adds a problem line when two txId sets differ, naming a few of the differing ids. */
export function compareTxSets(problems: string[], label: string, actual: ReadonlySet<string>, expected: ReadonlySet<string>, expectedLabel: string): void {
  const missing = [...expected].filter((id) => !actual.has(id));
  const extra = [...actual].filter((id) => !expected.has(id));
  if (missing.length === 0 && extra.length === 0) return;
  const sample = (ids: string[]): string => ids.slice(0, 3).join(', ') + (ids.length > 3 ? ', …' : '');
  const parts: string[] = [];
  if (extra.length > 0) parts.push(`${extra.length} not in ${expectedLabel} (${sample(extra)})`);
  if (missing.length > 0) parts.push(`${missing.length} of ${expectedLabel} missing (${sample(missing)})`);
  problems.push(`${label} differ from ${expectedLabel}: ${parts.join('; ')}`);
}

export function sortedIds(ids: Iterable<string>): string[] {
  return [...ids].sort();
}

export interface StatusTableAudit {
  table: string;
  /** Plural noun for messages and invariant names, e.g. "orders". */
  noun: string;
  /** Status of a committed row and of a tentative (prepared) row. */
  committed: string;
  tentative: string;
}

/**
 * Audit of a table whose rows move tentative → committed (orders, shipments): committed rows must be
 * exactly the committed branches, tentative rows exactly the prepared ones, and no row has another status.
 */
export function checkStatusTable(db: Database.Database, preparedTxIds: ReadonlySet<string>, audit: StatusTableAudit): ServiceCheck {
  const { table, noun, committed: done, tentative: live } = audit;
  const counts = db
    .prepare(
      `SELECT COUNT(CASE WHEN status = ? THEN 1 END) AS done,
              COUNT(CASE WHEN status = ? THEN 1 END) AS live,
              COUNT(CASE WHEN status NOT IN (?, ?) THEN 1 END) AS unknown
         FROM ${table}`,
    )
    .get(done, live, done, live) as { done: number; live: number; unknown: number };
  const problems: string[] = [];
  if (counts.unknown > 0) problems.push(`${counts.unknown} ${noun} have an unknown status`);
  const committedIds = txIdSet(db, `SELECT DISTINCT tx_id FROM ${table} WHERE status = '${done}'`);
  const tentativeIds = txIdSet(db, `SELECT DISTINCT tx_id FROM ${table} WHERE status = '${live}'`);
  const branches = committedBranchIds(db);
  compareTxSets(problems, `${done} ${noun}`, committedIds, branches, 'committed branches');
  compareTxSets(problems, `${live} ${noun}`, tentativeIds, preparedTxIds, 'prepared branches');
  const capitalised = noun[0]!.toUpperCase() + noun.slice(1);
  return {
    committedTxIds: sortedIds(committedIds),
    invariants: {
      [`${done}${capitalised}`]: counts.done,
      [`${live}${capitalised}`]: counts.live,
      committedBranches: branches.size,
      unknownStatus: counts.unknown,
    },
    problems,
  };
}
