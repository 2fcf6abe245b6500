/**
 * The stamp that says whose decision log a file is: cluster, shard, shard count, and when it began.
 * Checked at every open, so a coordinator pointed at another shard's or cluster's data refuses to start
 * rather than answer for transactions it never saw.
 */

/**
 * The part of a better-sqlite3 connection this needs. Structural, so the coordinator's shipped types do not
 * name better-sqlite3's (it declares no @types/better-sqlite3: its database is an implementation detail).
 */
export interface SqlConnection {
  prepare(sql: string): { get(...params: unknown[]): unknown; run(...params: unknown[]): unknown };
}

export interface LogIdentity {
  cluster: string;
  shard: number;
  shards: number;
}

export class LogIdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogIdentityError';
  }
}

interface IdentityRow {
  cluster: string;
  shard: number;
  shards: number;
  born_at: number;
}

/**
 * Stamps a new log with `identity` (or checks an existing stamp against it) and returns when the log
 * began. A log written before stamps existed counts as born at 0: it may hold any older transaction.
 * Without an identity (tests, tools) an unstamped log is stamped with none and nothing is checked.
 */
export function stampLogIdentity(db: SqlConnection, identity: LogIdentity | undefined, hadRecords: boolean, now: number = Date.now()): number {
  const row = db.prepare('SELECT cluster, shard, shards, born_at FROM log_identity WHERE only_row = 1').get() as IdentityRow | undefined;
  if (!row) {
    const bornAt = hadRecords ? 0 : now;
    db.prepare('INSERT INTO log_identity (only_row, cluster, shard, shards, born_at) VALUES (1, ?, ?, ?, ?)').run(
      identity?.cluster ?? '',
      identity?.shard ?? -1,
      identity?.shards ?? -1,
      bornAt,
    );
    return bornAt;
  }
  if (identity) {
    const stamped: LogIdentity = { cluster: row.cluster, shard: row.shard, shards: row.shards };
    const unstamped = row.cluster === '' && row.shard === -1;
    if (!unstamped && (stamped.cluster !== identity.cluster || stamped.shard !== identity.shard || stamped.shards !== identity.shards)) {
      throw new LogIdentityError(
        `this decision log belongs to cluster "${stamped.cluster}" shard ${stamped.shard} of ${stamped.shards}, ` +
          `not cluster "${identity.cluster}" shard ${identity.shard} of ${identity.shards}: point --data at this shard's own data`,
      );
    }
    if (unstamped) {
      db.prepare('UPDATE log_identity SET cluster = ?, shard = ?, shards = ? WHERE only_row = 1').run(identity.cluster, identity.shard, identity.shards);
    }
  }
  return row.born_at;
}
