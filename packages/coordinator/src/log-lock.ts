/**
 * Keeps a second process off a shard's decision log. Two coordinators on one log would each presume
 * abort for what the other is committing. The lock is an open EXCLUSIVE SQLite transaction on a side
 * file: an operating-system lock, so it goes when the process dies (SIGKILL included), and a second
 * opener is refused at once instead of waiting.
 */
import Database from 'better-sqlite3';

export class LogLockedError extends Error {
  constructor(file: string) {
    super(`another process holds the decision log lock ${file}: only one coordinator may run on a shard's data at a time`);
    this.name = 'LogLockedError';
  }
}

export class LogLock {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  static acquire(file: string): LogLock {
    const db = new Database(file, { timeout: 0 });
    try {
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { code?: unknown }).code === 'SQLITE_BUSY') throw new LogLockedError(file);
      throw err;
    }
    return new LogLock(db);
  }

  release(): void {
    if (!this.#db.open) return;
    this.#db.exec('ROLLBACK');
    this.#db.close();
  }
}
