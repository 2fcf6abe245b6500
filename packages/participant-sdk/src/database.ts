/**
 * Opening a participant database: WAL with synchronous = FULL, so a transaction that returned is on
 * disk — the participant answers "yes" only after that.
 */
import Database from 'better-sqlite3';

/** How long a write waits for another connection (e.g. an admin script) before SQLite gives up. */
const BUSY_TIMEOUT_MS = 5000;

export function openParticipantDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  return db;
}
