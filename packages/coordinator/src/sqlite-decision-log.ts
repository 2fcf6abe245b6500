/**
 * Decision log on better-sqlite3: WAL with synchronous = FULL, so a committed group is on disk when
 * the SQLite transaction returns. One group commit = one transaction = one fsync; a group of unforced
 * writes only is written without one.
 */
import { channel } from 'node:diagnostics_channel';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { validTraceCarrier } from '@txmesh/protocol';
import { LogLock } from './log-lock.ts';
import { resultColumn, resultFromColumn } from './logged-result.ts';
import { stampLogIdentity, type LogIdentity } from './log-identity.ts';
import {
  GroupCommitLog,
  type DecisionRecord,
  type DecisionState,
  type GroupCommitOptions,
  type LogWrite,
  type PruneCutoffs,
  type StoredService,
} from './decision-log.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS decisions (
  tx_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  idempotency_key TEXT,
  request_hash TEXT,
  participants TEXT NOT NULL,
  result TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  decided_at INTEGER NOT NULL,
  done_at INTEGER,
  trace TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_idempotency_key ON decisions (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_unfinished ON decisions (decided_at) WHERE state IN ('COMMITTING', 'ABORTING');
CREATE INDEX IF NOT EXISTS decisions_finished ON decisions (done_at) WHERE done_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS services (
  service TEXT PRIMARY KEY,
  sidecar_url TEXT NOT NULL,
  registered_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS decision_acks (
  tx_id TEXT NOT NULL,
  service TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (tx_id, service)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_identity (
  only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
  cluster TEXT NOT NULL,
  shard INTEGER NOT NULL,
  shards INTEGER NOT NULL,
  born_at INTEGER NOT NULL
);
`;

interface DecisionRow {
  tx_id: string;
  state: string;
  idempotency_key: string | null;
  request_hash: string | null;
  participants: string;
  result: string;
  created_at: number;
  decided_at: number;
  done_at: number | null;
  trace: string | null;
}

interface ServiceRow {
  service: string;
  sidecar_url: string;
  registered_at: number;
}

function fromRow(row: DecisionRow): DecisionRecord {
  const state = row.state as DecisionState;
  const participants = JSON.parse(row.participants) as DecisionRecord['participants'];
  const record: DecisionRecord = {
    txId: row.tx_id,
    state,
    participants,
    result: resultFromColumn(row.result, { txId: row.tx_id, state, participants, createdAt: row.created_at, decidedAt: row.decided_at }),
    createdAt: row.created_at,
    decidedAt: row.decided_at,
  };
  if (row.idempotency_key !== null) record.idempotencyKey = row.idempotency_key;
  if (row.request_hash !== null) record.requestHash = row.request_hash;
  if (row.done_at !== null) record.doneAt = row.done_at;
  const trace = row.trace === null ? undefined : validTraceCarrier(JSON.parse(row.trace));
  if (trace !== undefined) record.trace = trace;
  return record;
}

export interface SqliteDecisionLogOptions extends GroupCommitOptions {
  /** Whose log this is; checked against the stamp in the file (a file of another shard or cluster is refused). */
  identity?: LogIdentity;
}

/** Rows deleted per statement, so one prune never holds the write lock for long. */
const PRUNE_BATCH = 2000;
const MAX_PRUNE_BATCHES = 50;

/**
 * Published as each group is written, with the connection's `synchronous` level at that moment (2 = FULL,
 * 1 = NORMAL), so tests can see which groups were forced. Nothing subscribes in production.
 */
export const logWriteChannel = channel('txmesh:coordinator:log-write');
export interface LogWriteEvent {
  writes: number;
  synchronous: number;
}

export class SqliteDecisionLog extends GroupCommitLog {
  readonly file: string;
  readonly bornAt: number;
  readonly #db: Database.Database;
  readonly #lock: LogLock;
  readonly #insertAck: Database.Statement;
  readonly #deleteAcks: Database.Statement;
  readonly #acksOf: Database.Statement<[string], { service: string }>;
  readonly #unfinishedAcks: Database.Statement<[], { tx_id: string; service: string }>;
  readonly #insert: Database.Statement;
  readonly #markDone: Database.Statement;
  readonly #upsertService: Database.Statement;
  readonly #byTxId: Database.Statement<[string], DecisionRow>;
  readonly #byKey: Database.Statement<[string], DecisionRow>;
  readonly #keyKnown: Database.Statement<[string], number>;
  readonly #unfinished: Database.Statement<[], DecisionRow>;
  readonly #services: Database.Statement<[], ServiceRow>;
  readonly #deleteService: Database.Statement<[string]>;
  readonly #pruneBatch: Database.Statement<[number, number, number]>;
  readonly #writeGroupTx: (writes: readonly LogWrite[]) => void;

  constructor(file: string, options: SqliteDecisionLogOptions = {}) {
    super(options);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.file = file;
    // Before the file is touched: a second process on the same log would decide against the first one's records.
    this.#lock = LogLock.acquire(`${file}.lock`);
    try {
      this.#db = new Database(file);
    } catch (err) {
      this.#lock.release();
      throw err;
    }
    // Pages freed by pruning go back to the file system (incremental_vacuum after each prune), so the
    // file shrinks with the work instead of keeping its high-water mark. Takes effect on a new file;
    // an older file is converted once by VACUUM.
    this.#db.pragma('auto_vacuum = INCREMENTAL');
    // Only this process ever opens the log (LogLock above), so it keeps SQLite's file locks for the life of the
    // connection and the WAL index in its own memory instead of a shared-memory file: no fcntl lock calls and
    // no shm reads per statement. Must precede the first WAL access; a SIGKILL releases the locks as before.
    this.#db.pragma('locking_mode = EXCLUSIVE');
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    if (this.#db.pragma('auto_vacuum', { simple: true }) !== 2) this.#db.exec('VACUUM');
    const existed = this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decisions'").get() !== undefined;
    // In one transaction: a fresh log then costs one forced write for the schema, not one per statement.
    this.#db.transaction(() => this.#db.exec(SCHEMA))();
    // A log written before records carried their trace context gains the column (NULL for old rows).
    const columns = this.#db.prepare("SELECT name FROM pragma_table_info('decisions')").all() as { name: string }[];
    if (!columns.some((c) => c.name === 'trace')) this.#db.exec('ALTER TABLE decisions ADD COLUMN trace TEXT');
    try {
      this.bornAt = stampLogIdentity(this.#db, options.identity, existed);
    } catch (err) {
      this.#db.close();
      this.#lock.release();
      throw err;
    }
    this.#insertAck = this.#db.prepare('INSERT OR IGNORE INTO decision_acks (tx_id, service, at) VALUES (?, ?, ?)');
    this.#deleteAcks = this.#db.prepare('DELETE FROM decision_acks WHERE tx_id = ?');
    this.#acksOf = this.#db.prepare<[string], { service: string }>('SELECT service FROM decision_acks WHERE tx_id = ? ORDER BY service');
    this.#unfinishedAcks = this.#db.prepare<[], { tx_id: string; service: string }>(
      "SELECT a.tx_id, a.service FROM decision_acks a JOIN decisions d ON d.tx_id = a.tx_id WHERE d.state IN ('COMMITTING', 'ABORTING')",
    );
    // Positional parameters: named ones cost an object per record and a property look-up per column.
    this.#insert = this.#db.prepare(
      `INSERT INTO decisions (tx_id, state, idempotency_key, request_hash, participants, result, created_at, decided_at, done_at, trace)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#markDone = this.#db.prepare('UPDATE decisions SET state = ?, done_at = ? WHERE tx_id = ?');
    this.#upsertService = this.#db.prepare(
      `INSERT INTO services (service, sidecar_url, registered_at) VALUES (?, ?, ?)
       ON CONFLICT (service) DO UPDATE SET sidecar_url = excluded.sidecar_url, registered_at = excluded.registered_at`,
    );
    this.#byTxId = this.#db.prepare<[string], DecisionRow>('SELECT * FROM decisions WHERE tx_id = ?');
    this.#byKey = this.#db.prepare<[string], DecisionRow>(
      'SELECT * FROM decisions WHERE idempotency_key = ? ORDER BY decided_at LIMIT 1',
    );
    // The ORDER BY above takes a temporary B-tree even when no row matches; nearly every key asked for is new.
    this.#keyKnown = this.#db.prepare<[string], number>('SELECT 1 FROM decisions WHERE idempotency_key = ? LIMIT 1').pluck();
    this.#unfinished = this.#db.prepare<[], DecisionRow>(
      "SELECT * FROM decisions WHERE state IN ('COMMITTING', 'ABORTING') ORDER BY decided_at",
    );
    this.#services = this.#db.prepare<[], ServiceRow>('SELECT * FROM services ORDER BY service');
    this.#deleteService = this.#db.prepare<[string]>('DELETE FROM services WHERE service = ?');
    this.#pruneBatch = this.#db.prepare(
      `DELETE FROM decisions WHERE tx_id IN (
         SELECT tx_id FROM decisions
          WHERE done_at IS NOT NULL AND state IN ('COMMITTED', 'ABORTED')
            AND done_at <= (CASE WHEN idempotency_key IS NULL THEN ? ELSE ? END)
          LIMIT ?)`,
    );
    this.#writeGroupTx = this.#db.transaction((writes: readonly LogWrite[]) => {
      if (logWriteChannel.hasSubscribers) {
        logWriteChannel.publish({ writes: writes.length, synchronous: this.#db.pragma('synchronous', { simple: true }) as number } satisfies LogWriteEvent);
      }
      for (const write of writes) {
        if (write.kind === 'append') {
          const r = write.record;
          this.#insert.run(
            r.txId,
            r.state,
            r.idempotencyKey ?? null,
            r.requestHash ?? null,
            JSON.stringify(r.participants),
            resultColumn(r),
            r.createdAt,
            r.decidedAt,
            r.doneAt ?? null,
            r.trace === undefined ? null : JSON.stringify(r.trace),
          );
        } else if (write.kind === 'done') {
          this.#markDone.run(write.state, write.at, write.txId);
          // Finished: nothing will be re-sent, so its acknowledgements are no longer needed.
          this.#deleteAcks.run(write.txId);
        } else if (write.kind === 'ack') {
          this.#insertAck.run(write.txId, write.service, write.at);
        } else if (write.kind === 'forget-service') {
          this.#deleteService.run(write.service);
        } else {
          this.#upsertService.run(write.entry.service, write.entry.sidecarUrl, write.entry.registeredAt);
        }
      }
    });
  }

  protected writeGroup(writes: readonly LogWrite[]): void {
    if (writes.some((w) => w.kind === 'append')) {
      this.#writeGroupTx(writes);
      return;
    }
    // Nothing in this group is awaited (done marks, acks, addresses): no fsync of its own, as the sidecar
    // does for its removals. It reaches the disk with the next decision's fsync of the WAL; a crash of the
    // machine before that loses only writes whose loss recovery already tolerates.
    // Run as SQL each time, not a statement prepared once: SQLite applies this pragma while compiling it. exec,
    // not db.pragma(): no statement object and no result rows for a switch made twice per group.
    this.#db.exec('PRAGMA synchronous = NORMAL');
    try {
      this.#writeGroupTx(writes);
    } finally {
      this.#db.exec('PRAGMA synchronous = FULL');
    }
  }

  protected pruneStorage(cutoffs: PruneCutoffs): number {
    let deleted = 0;
    for (let batch = 0; batch < MAX_PRUNE_BATCHES; batch++) {
      const changes = this.#pruneBatch.run(cutoffs.unkeyedDoneBefore, cutoffs.keyedDoneBefore, PRUNE_BATCH).changes;
      deleted += changes;
      if (changes < PRUNE_BATCH) break;
    }
    if (deleted > 0) {
      this.#db.pragma('incremental_vacuum');
      // Copy the WAL into the main file and cut it to zero, or it keeps its high-water mark.
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    }
    return deleted;
  }

  /** Bytes on disk: the database file plus its WAL. */
  sizeOnDisk(): number {
    let bytes = 0;
    for (const f of [this.file, `${this.file}-wal`]) {
      try {
        bytes += fs.statSync(f).size;
      } catch {
        // no WAL right now
      }
    }
    return bytes;
  }

  /** How many decision records the file holds. */
  countRecords(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM decisions').get() as { n: number }).n;
  }

  protected closeStorage(): void {
    this.#db.close();
    this.#lock.release();
  }

  get(txId: string): DecisionRecord | undefined {
    const row = this.#byTxId.get(txId);
    if (!row) return undefined;
    const record = fromRow(row);
    const acked = this.#acksOf.all(txId).map((a) => a.service);
    if (acked.length > 0) record.acked = acked;
    return record;
  }

  getByIdempotencyKey(key: string): DecisionRecord | undefined {
    // A miss answered by the index alone (0.9 µs against 2.2 µs with the sort, docs/benchmarks.md); a hit reads the first record.
    if (this.#keyKnown.get(key) === undefined) return undefined;
    const row = this.#byKey.get(key);
    return row && fromRow(row);
  }

  listUnfinished(): DecisionRecord[] {
    const acked = new Map<string, string[]>();
    for (const { tx_id, service } of this.#unfinishedAcks.all()) acked.set(tx_id, [...(acked.get(tx_id) ?? []), service]);
    return this.#unfinished.all().map((row) => {
      const record = fromRow(row);
      const services = acked.get(record.txId);
      if (services) record.acked = services.sort();
      return record;
    });
  }

  listServices(): StoredService[] {
    return this.#services.all().map((row) => ({ service: row.service, sidecarUrl: row.sidecar_url, registeredAt: row.registered_at }));
  }
}
