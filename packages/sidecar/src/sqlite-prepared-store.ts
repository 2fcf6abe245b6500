/**
 * PreparedStore on better-sqlite3. WAL with synchronous = FULL so a committed write transaction is on disk
 * when it returns: the sidecar may only vote yes after that. One put() is one transaction, so a batch costs
 * one fsync, not one per branch.
 *
 * Removals are not forced, and not written at once: they ride in the next put()'s transaction (at
 * concurrency 1 every batch removes the previous transaction's record and puts the next one's, so one write
 * instead of two), or are written unforced (synchronous = NORMAL for that transaction only) after
 * `removalLingerMs` when no put comes, before any read, and at close. Losing one in a crash only brings back
 * a record whose outcome the service already applied, which the in-doubt resolver settles by asking the
 * shard and resending an idempotent outcome.
 */
import { channel } from 'node:diagnostics_channel';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { validTraceCarrier, type OperationSpec } from '@txmesh/protocol';
import type { PreparedRecord, PreparedStore } from './prepared-store.ts';

interface Row {
  tx_id: string;
  service: string;
  operations: string;
  prepared_at: number;
  trace: string | null;
}

function fromRow(row: Row): PreparedRecord {
  const record: PreparedRecord = { txId: row.tx_id, service: row.service, operations: JSON.parse(row.operations) as OperationSpec[], preparedAt: row.prepared_at };
  const trace = row.trace === null ? undefined : validTraceCarrier(JSON.parse(row.trace));
  if (trace !== undefined) record.trace = trace;
  return record;
}

/**
 * Published as each write runs, with the connection's `synchronous` level at that moment (2 = FULL, 1 = NORMAL),
 * so tests can see what was forced. Nothing subscribes in production.
 */
export const storeWriteChannel = channel('txmesh:sidecar:store-write');
export interface StoreWriteEvent {
  kind: 'put' | 'remove';
  synchronous: number;
  /** Records this write deleted (removals that waited for it). */
  removes: number;
}

/** How long removals wait for a put to carry them before they are written on their own. */
export const DEFAULT_REMOVAL_LINGER_MS = 200;

export interface SqlitePreparedStoreOptions {
  /** false (opt-in) writes the yes-vote records without an fsync too (see the constructor). */
  forcePuts?: boolean;
  /** How long removals wait for the next put before they are written on their own (DEFAULT_REMOVAL_LINGER_MS). */
  removalLingerMs?: number;
}

export class SqlitePreparedStore implements PreparedStore {
  /** The file a sidecar for `service` keeps in `dataDir`. */
  static fileFor(dataDir: string, service: string): string {
    return join(dataDir, `sidecar-${service}.db`);
  }

  /** Opens (creating if needed) the store of a sidecar for `service` under `dataDir`. */
  static forService(dataDir: string, service: string, options: SqlitePreparedStoreOptions = {}): SqlitePreparedStore {
    mkdirSync(dataDir, { recursive: true });
    return new SqlitePreparedStore(SqlitePreparedStore.fileFor(dataDir, service), options);
  }

  readonly #db: Database.Database;
  readonly #insertOne: Database.Statement<[string, string, string, number, string | null]>;
  readonly #deleteOne: Database.Statement<[string]>;
  readonly #selectOne: Database.Statement<[string], Row>;
  readonly #selectAll: Database.Statement<[], Row>;
  readonly #countAll: Database.Statement<[], { n: number }>;
  readonly #putAll: (records: readonly PreparedRecord[], removals: readonly string[]) => void;
  readonly #removeAll: (txIds: readonly string[]) => void;
  readonly #counters = { forcedWrites: 0, unforcedWrites: 0, recordsPut: 0, recordsRemoved: 0 };

  readonly #forcePuts: boolean;
  readonly #removalLingerMs: number;
  /** Removed ids not written yet, in the order they were removed. */
  readonly #pendingRemovals = new Set<string>();
  #removalTimer: NodeJS.Timeout | undefined;

  /**
   * `forcePuts: false` (opt-in) writes the yes-vote records without an fsync too. They then survive a crash of
   * the sidecar process but not of the machine; what the machine loses the in-doubt resolver still finds in
   * the service's own durable prepared list (GET /txmesh/participant/v1/prepared), which it always reads.
   */
  constructor(
    readonly file: string,
    options: SqlitePreparedStoreOptions = {},
  ) {
    this.#forcePuts = options.forcePuts ?? true;
    this.#removalLingerMs = options.removalLingerMs ?? DEFAULT_REMOVAL_LINGER_MS;
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    // Without a rowid the records are one b-tree keyed by tx_id, not a table and its key's index: a put
    // changes one page fewer. A file created earlier keeps its rowid table.
    this.#db.exec(`CREATE TABLE IF NOT EXISTS prepared (
      tx_id TEXT PRIMARY KEY,
      service TEXT NOT NULL,
      operations TEXT NOT NULL,
      prepared_at INTEGER NOT NULL,
      trace TEXT
    ) WITHOUT ROWID`);
    // A file written before records carried their trace context gains the column (NULL for old rows).
    const columns = this.#db.prepare("SELECT name FROM pragma_table_info('prepared')").all() as { name: string }[];
    if (!columns.some((c) => c.name === 'trace')) this.#db.exec('ALTER TABLE prepared ADD COLUMN trace TEXT');
    // A retried prepare must not move preparedAt forward, or the in-doubt age rule would keep deferring it.
    this.#insertOne = this.#db.prepare('INSERT INTO prepared (tx_id, service, operations, prepared_at, trace) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tx_id) DO NOTHING');
    this.#deleteOne = this.#db.prepare('DELETE FROM prepared WHERE tx_id = ?');
    this.#selectOne = this.#db.prepare('SELECT tx_id, service, operations, prepared_at, trace FROM prepared WHERE tx_id = ?');
    this.#selectAll = this.#db.prepare('SELECT tx_id, service, operations, prepared_at, trace FROM prepared ORDER BY prepared_at, tx_id');
    this.#countAll = this.#db.prepare('SELECT COUNT(*) AS n FROM prepared');
    // Removals first: a record removed and then put again (a retried prepare) stays.
    this.#putAll = this.#db.transaction((records: readonly PreparedRecord[], removals: readonly string[]) => {
      this.#publishWrite('put', removals.length);
      for (const txId of removals) this.#deleteOne.run(txId);
      for (const r of records) this.#insertOne.run(r.txId, r.service, JSON.stringify(r.operations), r.preparedAt, r.trace === undefined ? null : JSON.stringify(r.trace));
    });
    this.#removeAll = this.#db.transaction((txIds: readonly string[]) => {
      this.#publishWrite('remove', txIds.length);
      for (const txId of txIds) this.#deleteOne.run(txId);
    });
  }

  put(records: readonly PreparedRecord[]): void {
    if (records.length === 0) return;
    const removals = [...this.#pendingRemovals];
    if (!this.#forcePuts) {
      this.#unforced(() => this.#putAll(records, removals));
      this.#counters.unforcedWrites += 1;
    } else {
      this.#putAll(records, removals);
      this.#counters.forcedWrites += 1;
    }
    this.#counters.recordsPut += records.length;
    this.#removalsWritten(removals);
  }

  /** Forgets the records; they are deleted with the next put, or on their own after removalLingerMs. */
  remove(txIds: readonly string[]): void {
    if (txIds.length === 0) return;
    for (const txId of txIds) this.#pendingRemovals.add(txId);
    this.#counters.recordsRemoved += txIds.length;
    if (this.#removalTimer === undefined) {
      this.#removalTimer = setTimeout(() => this.#writeRemovalsSafely(), this.#removalLingerMs);
      this.#removalTimer.unref();
    }
  }

  /** Writes the removals no put carried, unforced. Throws what SQLite throws; they stay pending then. */
  #writeRemovals(): void {
    if (this.#pendingRemovals.size === 0) return;
    const removals = [...this.#pendingRemovals];
    this.#unforced(() => this.#removeAll(removals));
    this.#counters.unforcedWrites += 1;
    this.#removalsWritten(removals);
  }

  /** From the timer: a failure leaves them pending for the next put, read or round. */
  #writeRemovalsSafely(): void {
    this.#removalTimer = undefined;
    try {
      this.#writeRemovals();
    } catch {
      if (this.#db.open && this.#pendingRemovals.size > 0) {
        this.#removalTimer = setTimeout(() => this.#writeRemovalsSafely(), this.#removalLingerMs);
        this.#removalTimer.unref();
      }
    }
  }

  /** Removals removed again while a write ran stay pending; only those written go. */
  #removalsWritten(removals: readonly string[]): void {
    for (const txId of removals) this.#pendingRemovals.delete(txId);
    if (this.#pendingRemovals.size === 0 && this.#removalTimer !== undefined) {
      clearTimeout(this.#removalTimer);
      this.#removalTimer = undefined;
    }
  }

  #publishWrite(kind: StoreWriteEvent['kind'], removes: number): void {
    if (storeWriteChannel.hasSubscribers) storeWriteChannel.publish({ kind, synchronous: this.synchronousLevel(), removes } satisfies StoreWriteEvent);
  }

  /** The connection's `synchronous` level now: 2 (FULL) between writes. */
  synchronousLevel(): number {
    return this.#db.pragma('synchronous', { simple: true }) as number;
  }

  #unforced(write: () => void): void {
    // Compiled each time, not a kept statement: SQLite applies `synchronous` when the statement is compiled,
    // so re-running a prepared one changes nothing (exec: no statement object, no result rows).
    this.#db.exec('PRAGMA synchronous = NORMAL');
    try {
      write();
    } finally {
      // Every other write stays forced.
      this.#db.exec('PRAGMA synchronous = FULL');
    }
  }

  /** Write transactions so far: forcedWrites is the number of fsyncs the store asked for. */
  stats(): { forcedWrites: number; unforcedWrites: number; recordsPut: number; recordsRemoved: number } {
    return { ...this.#counters };
  }

  get(txId: string): PreparedRecord | undefined {
    if (this.#pendingRemovals.has(txId)) return undefined;
    const row = this.#selectOne.get(txId);
    return row ? fromRow(row) : undefined;
  }

  list(): PreparedRecord[] {
    this.#writeRemovals();
    return this.#selectAll.all().map(fromRow);
  }

  count(): number {
    this.#writeRemovals();
    return this.#countAll.get()?.n ?? 0;
  }

  /** Writes the removals still pending (unforced), then closes the file. */
  close(): void {
    if (!this.#db.open) return;
    clearTimeout(this.#removalTimer);
    this.#removalTimer = undefined;
    try {
      this.#writeRemovals();
    } finally {
      this.#db.close();
    }
  }
}
