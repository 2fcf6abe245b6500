/**
 * Decision log on better-sqlite3: WAL with synchronous = FULL, so a committed group is on disk when
 * the SQLite transaction returns. One group commit = one transaction = one fsync.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { GroupCommitLog, type DecisionRecord, type DecisionState, type LogWrite, type StoredService } from './decision-log.ts';

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
  done_at INTEGER
);
CREATE INDEX IF NOT EXISTS decisions_by_idempotency_key ON decisions (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_unfinished ON decisions (decided_at) WHERE state IN ('COMMITTING', 'ABORTING');
CREATE TABLE IF NOT EXISTS services (
  service TEXT PRIMARY KEY,
  sidecar_url TEXT NOT NULL,
  registered_at INTEGER NOT NULL
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
}

interface ServiceRow {
  service: string;
  sidecar_url: string;
  registered_at: number;
}

function fromRow(row: DecisionRow): DecisionRecord {
  const record: DecisionRecord = {
    txId: row.tx_id,
    state: row.state as DecisionState,
    participants: JSON.parse(row.participants) as DecisionRecord['participants'],
    result: JSON.parse(row.result) as DecisionRecord['result'],
    createdAt: row.created_at,
    decidedAt: row.decided_at,
  };
  if (row.idempotency_key !== null) record.idempotencyKey = row.idempotency_key;
  if (row.request_hash !== null) record.requestHash = row.request_hash;
  if (row.done_at !== null) record.doneAt = row.done_at;
  return record;
}

export class SqliteDecisionLog extends GroupCommitLog {
  readonly file: string;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #markDone: Database.Statement;
  readonly #upsertService: Database.Statement;
  readonly #byTxId: Database.Statement<[string], DecisionRow>;
  readonly #byKey: Database.Statement<[string], DecisionRow>;
  readonly #unfinished: Database.Statement<[], DecisionRow>;
  readonly #services: Database.Statement<[], ServiceRow>;
  readonly #writeGroupTx: (writes: readonly LogWrite[]) => void;

  constructor(file: string) {
    super();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.file = file;
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(SCHEMA);
    this.#insert = this.#db.prepare(
      `INSERT INTO decisions (tx_id, state, idempotency_key, request_hash, participants, result, created_at, decided_at, done_at)
       VALUES (@txId, @state, @idempotencyKey, @requestHash, @participants, @result, @createdAt, @decidedAt, @doneAt)`,
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
    this.#unfinished = this.#db.prepare<[], DecisionRow>(
      "SELECT * FROM decisions WHERE state IN ('COMMITTING', 'ABORTING') ORDER BY decided_at",
    );
    this.#services = this.#db.prepare<[], ServiceRow>('SELECT * FROM services ORDER BY service');
    this.#writeGroupTx = this.#db.transaction((writes: readonly LogWrite[]) => {
      for (const write of writes) {
        if (write.kind === 'append') {
          const r = write.record;
          this.#insert.run({
            txId: r.txId,
            state: r.state,
            idempotencyKey: r.idempotencyKey ?? null,
            requestHash: r.requestHash ?? null,
            participants: JSON.stringify(r.participants),
            result: JSON.stringify(r.result),
            createdAt: r.createdAt,
            decidedAt: r.decidedAt,
            doneAt: r.doneAt ?? null,
          });
        } else if (write.kind === 'done') {
          this.#markDone.run(write.state, write.at, write.txId);
        } else {
          this.#upsertService.run(write.entry.service, write.entry.sidecarUrl, write.entry.registeredAt);
        }
      }
    });
  }

  protected writeGroup(writes: readonly LogWrite[]): void {
    this.#writeGroupTx(writes);
  }

  protected closeStorage(): void {
    this.#db.close();
  }

  get(txId: string): DecisionRecord | undefined {
    const row = this.#byTxId.get(txId);
    return row && fromRow(row);
  }

  getByIdempotencyKey(key: string): DecisionRecord | undefined {
    const row = this.#byKey.get(key);
    return row && fromRow(row);
  }

  listUnfinished(): DecisionRecord[] {
    return this.#unfinished.all().map(fromRow);
  }

  listServices(): StoredService[] {
    return this.#services.all().map((row) => ({ service: row.service, sidecarUrl: row.sidecar_url, registeredAt: row.registered_at }));
  }
}
