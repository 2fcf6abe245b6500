/**
 * PreparedStore on better-sqlite3. WAL with synchronous = FULL so a committed write transaction is on disk
 * when it returns: the sidecar may only vote yes after that. One put() or remove() is one transaction, so a
 * batch costs one fsync, not one per branch.
 *
 * Removals are not forced (synchronous = NORMAL for that transaction only): losing one in a crash only
 * brings back a record whose outcome the service already applied, which the in-doubt resolver settles by
 * asking the shard and resending an idempotent outcome. The next forced put() carries it to disk anyway.
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
}

export class SqlitePreparedStore implements PreparedStore {
  /** The file a sidecar for `service` keeps in `dataDir`. */
  static fileFor(dataDir: string, service: string): string {
    return join(dataDir, `sidecar-${service}.db`);
  }

  /** Opens (creating if needed) the store of a sidecar for `service` under `dataDir`. */
  static forService(dataDir: string, service: string, options: { forcePuts?: boolean } = {}): SqlitePreparedStore {
    mkdirSync(dataDir, { recursive: true });
    return new SqlitePreparedStore(SqlitePreparedStore.fileFor(dataDir, service), options);
  }

  readonly #db: Database.Database;
  readonly #insertOne: Database.Statement<[string, string, string, number, string | null]>;
  readonly #deleteOne: Database.Statement<[string]>;
  readonly #selectOne: Database.Statement<[string], Row>;
  readonly #selectAll: Database.Statement<[], Row>;
  readonly #countAll: Database.Statement<[], { n: number }>;
  readonly #putAll: (records: readonly PreparedRecord[]) => void;
  readonly #removeAll: (txIds: readonly string[]) => void;
  readonly #counters = { forcedWrites: 0, unforcedWrites: 0, recordsPut: 0, recordsRemoved: 0 };

  readonly #forcePuts: boolean;

  /**
   * `forcePuts: false` (opt-in) writes the yes-vote records without an fsync too. They then survive a crash of
   * the sidecar process but not of the machine; what the machine loses the in-doubt resolver still finds in
   * the service's own durable prepared list (GET /txmesh/participant/v1/prepared), which it always reads.
   */
  constructor(
    readonly file: string,
    options: { forcePuts?: boolean } = {},
  ) {
    this.#forcePuts = options.forcePuts ?? true;
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS prepared (
      tx_id TEXT PRIMARY KEY,
      service TEXT NOT NULL,
      operations TEXT NOT NULL,
      prepared_at INTEGER NOT NULL,
      trace TEXT
    )`);
    // A file written before records carried their trace context gains the column (NULL for old rows).
    const columns = this.#db.prepare("SELECT name FROM pragma_table_info('prepared')").all() as { name: string }[];
    if (!columns.some((c) => c.name === 'trace')) this.#db.exec('ALTER TABLE prepared ADD COLUMN trace TEXT');
    // A retried prepare must not move preparedAt forward, or the in-doubt age rule would keep deferring it.
    this.#insertOne = this.#db.prepare('INSERT INTO prepared (tx_id, service, operations, prepared_at, trace) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tx_id) DO NOTHING');
    this.#deleteOne = this.#db.prepare('DELETE FROM prepared WHERE tx_id = ?');
    this.#selectOne = this.#db.prepare('SELECT tx_id, service, operations, prepared_at, trace FROM prepared WHERE tx_id = ?');
    this.#selectAll = this.#db.prepare('SELECT tx_id, service, operations, prepared_at, trace FROM prepared ORDER BY prepared_at, tx_id');
    this.#countAll = this.#db.prepare('SELECT COUNT(*) AS n FROM prepared');
    this.#putAll = this.#db.transaction((records: readonly PreparedRecord[]) => {
      this.#publishWrite('put');
      for (const r of records) this.#insertOne.run(r.txId, r.service, JSON.stringify(r.operations), r.preparedAt, r.trace === undefined ? null : JSON.stringify(r.trace));
    });
    this.#removeAll = this.#db.transaction((txIds: readonly string[]) => {
      this.#publishWrite('remove');
      for (const txId of txIds) this.#deleteOne.run(txId);
    });
  }

  put(records: readonly PreparedRecord[]): void {
    if (records.length === 0) return;
    if (!this.#forcePuts) {
      this.#unforced(() => this.#putAll(records));
      this.#counters.unforcedWrites += 1;
      this.#counters.recordsPut += records.length;
      return;
    }
    this.#putAll(records);
    this.#counters.forcedWrites += 1;
    this.#counters.recordsPut += records.length;
  }

  remove(txIds: readonly string[]): void {
    if (txIds.length === 0) return;
    this.#unforced(() => this.#removeAll(txIds));
    this.#counters.unforcedWrites += 1;
    this.#counters.recordsRemoved += txIds.length;
  }

  #publishWrite(kind: StoreWriteEvent['kind']): void {
    if (storeWriteChannel.hasSubscribers) storeWriteChannel.publish({ kind, synchronous: this.synchronousLevel() } satisfies StoreWriteEvent);
  }

  /** The connection's `synchronous` level now: 2 (FULL) between writes. */
  synchronousLevel(): number {
    return this.#db.pragma('synchronous', { simple: true }) as number;
  }

  #unforced(write: () => void): void {
    // db.pragma each time, not a kept statement: SQLite applies `synchronous` when the statement is
    // compiled, so re-running a prepared one changes nothing.
    this.#db.pragma('synchronous = NORMAL');
    try {
      write();
    } finally {
      // Every other write stays forced.
      this.#db.pragma('synchronous = FULL');
    }
  }

  /** Write transactions so far: forcedWrites is the number of fsyncs the store asked for. */
  stats(): { forcedWrites: number; unforcedWrites: number; recordsPut: number; recordsRemoved: number } {
    return { ...this.#counters };
  }

  get(txId: string): PreparedRecord | undefined {
    const row = this.#selectOne.get(txId);
    return row ? fromRow(row) : undefined;
  }

  list(): PreparedRecord[] {
    return this.#selectAll.all().map(fromRow);
  }

  count(): number {
    return this.#countAll.get()?.n ?? 0;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
