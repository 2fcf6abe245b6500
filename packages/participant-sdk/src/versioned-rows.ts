/**
 * Versioned rows for optimistic concurrency: a key → (value, version) table in the service database.
 *
 * A transaction's write is staged in the row (pending_value, pending_tx) at prepare and becomes the
 * value, with version + 1, at commit; rollback drops it. Reads (`get`) only ever see committed values,
 * so a read of a key held by a prepared writer never sees the tentative value. `expect` is the
 * optimistic check: called in a prepare hook, it votes no with VERSION_CONFLICT when the row moved
 * past the version the caller read. The prepare holds the key's lock until the outcome, so a check
 * that passed stays true until the commit.
 */
import type Database from 'better-sqlite3';
import { IsolationReasons, type JsonValue } from '@txmesh/protocol';
import { BusinessRefusal, type HookContext } from './operation.ts';

export interface VersionedValue<T> {
  value: T;
  version: number;
}

interface Row {
  value: string;
  version: number;
  pending_value: string | null;
  pending_tx: string | null;
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export class VersionedRows<T extends JsonValue> {
  readonly #get: Database.Statement<[string], Row>;
  readonly #insert: Database.Statement<[string, string]>;
  readonly #stage: Database.Statement<[string, string, string]>;
  readonly #apply: Database.Statement<[string, string]>;
  readonly #drop: Database.Statement<[string, string]>;

  /** Creates the table if needed. `table` is a plain SQL identifier. */
  constructor(db: Database.Database, table: string) {
    if (!TABLE_NAME.test(table)) throw new TypeError(`table must be a plain SQL identifier, got ${JSON.stringify(table)}`);
    db.exec(`CREATE TABLE IF NOT EXISTS ${table} (
      key TEXT PRIMARY KEY,
      value TEXT NOT NULL,
      version INTEGER NOT NULL,
      pending_value TEXT,
      pending_tx TEXT
    ) WITHOUT ROWID`);
    this.#get = db.prepare(`SELECT value, version, pending_value, pending_tx FROM ${table} WHERE key = ?`);
    this.#insert = db.prepare(`INSERT OR IGNORE INTO ${table} (key, value, version) VALUES (?, ?, 0)`);
    this.#stage = db.prepare(`UPDATE ${table} SET pending_value = ?, pending_tx = ? WHERE key = ?`);
    this.#apply = db.prepare(
      `UPDATE ${table} SET value = pending_value, version = version + 1, pending_value = NULL, pending_tx = NULL WHERE key = ? AND pending_tx = ?`,
    );
    this.#drop = db.prepare(`UPDATE ${table} SET pending_value = NULL, pending_tx = NULL WHERE key = ? AND pending_tx = ?`);
  }

  /** Creates the row at version 0 unless it exists. */
  seed(key: string, value: T): void {
    this.#insert.run(key, JSON.stringify(value));
  }

  /** The committed value and its version; a staged write is invisible here. */
  get(key: string): VersionedValue<T> | undefined {
    const row = this.#get.get(key);
    return row ? { value: JSON.parse(row.value) as T, version: row.version } : undefined;
  }

  /** In a prepare hook: votes no (VERSION_CONFLICT) if the operation carried a version the row has left. */
  expect(ctx: HookContext, key: string): void {
    if (ctx.expectVersion === undefined) return;
    const current = this.get(key)?.version;
    if (current !== ctx.expectVersion) {
      throw new BusinessRefusal(IsolationReasons.VERSION_CONFLICT, `${key} is at version ${current ?? 'none'}, the operation read version ${ctx.expectVersion}`);
    }
  }

  /** In a prepare hook: stages the new value for this transaction (the key must be write-locked by it). */
  stage(ctx: HookContext, key: string, value: T): void {
    const row = this.#get.get(key);
    if (!row) throw new BusinessRefusal('NOT_FOUND', `no row ${key}`);
    if (row.pending_tx !== null && row.pending_tx !== ctx.txId) throw new Error(`${key} already has a write staged by ${row.pending_tx}: declare it in writeKeys`);
    this.#stage.run(JSON.stringify(value), ctx.txId, key);
  }

  /** The value this transaction staged, else the committed one (for a hook that reads its own write). */
  current(ctx: HookContext, key: string): T | undefined {
    const row = this.#get.get(key);
    if (!row) return undefined;
    return JSON.parse(row.pending_tx === ctx.txId && row.pending_value !== null ? row.pending_value : row.value) as T;
  }

  /** In a commit hook: the staged value becomes the value, one version up. */
  apply(ctx: HookContext, key: string): void {
    this.#apply.run(key, ctx.txId);
  }

  /** In a rollback hook: the staged value is dropped. */
  drop(ctx: HookContext, key: string): void {
    this.#drop.run(key, ctx.txId);
  }
}
