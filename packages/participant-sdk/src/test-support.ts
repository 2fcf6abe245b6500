/**
 * Shared fixtures for this package's tests: a temp database and a small inventory service whose hooks
 * count their calls, so tests can assert "ran exactly once" and "never ran".
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type Database from 'better-sqlite3';
import {
  BranchAction,
  PROTOCOL_VERSION,
  newTxId,
  type BranchBatchRequest,
  type BranchItem,
  type BranchItemResult,
  type OperationSpec,
} from '@txmesh/protocol';
import { openParticipantDatabase } from './database.ts';
import { BusinessRefusal, defineOperation, type OperationHandlers } from './operation.ts';
import { createParticipant, type Participant } from './participant.ts';
import { sqliteWriteChannel, type SqliteWriteEvent } from './sqlite-storage.ts';

export const SERVICE = 'inventory';

export function tempDatabasePath(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txm-sdk-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'inventory.db');
}

export function openTempDatabase(t: TestContext, file = tempDatabasePath(t)): Database.Database {
  const db = openParticipantDatabase(file);
  t.after(() => {
    if (db.open) db.close();
  });
  return db;
}

export interface HookCalls {
  prepare: string[];
  commit: string[];
  rollback: string[];
}

interface ReserveArgs {
  sku: string;
  qty: number;
}

/** stock(sku, qty, reserved): prepare reserves, commit takes, rollback un-reserves. */
export function inventoryOperations(db: Database.Database, calls: HookCalls): Record<string, OperationHandlers<any>> {
  db.exec(`CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0);
           CREATE TABLE IF NOT EXISTS notes (tx_id TEXT NOT NULL, text TEXT NOT NULL)`);
  const reserve = defineOperation<ReserveArgs>({
    parseArgs(args) {
      const a = args as Partial<ReserveArgs>;
      if (typeof a.sku !== 'string' || !Number.isInteger(a.qty) || (a.qty ?? 0) <= 0) throw new BusinessRefusal('BAD_ARGS', 'sku and a positive qty');
      return { sku: a.sku, qty: a.qty! };
    },
    lockKeys: (a) => [`sku:${a.sku}`],
    prepare(ctx, a) {
      calls.prepare.push(`${ctx.txId}#${ctx.opIndex}`);
      const row = ctx.db.prepare('SELECT qty - reserved AS free FROM stock WHERE sku = ?').get(a.sku) as { free: number } | undefined;
      if (!row || row.free < a.qty) throw new BusinessRefusal('OUT_OF_STOCK', `not enough ${a.sku}`);
      ctx.db.prepare('UPDATE stock SET reserved = reserved + ? WHERE sku = ?').run(a.qty, a.sku);
    },
    commit(ctx, a) {
      calls.commit.push(`${ctx.txId}#${ctx.opIndex}`);
      ctx.db.prepare('UPDATE stock SET qty = qty - ?, reserved = reserved - ? WHERE sku = ?').run(a.qty, a.qty, a.sku);
    },
    rollback(ctx, a) {
      calls.rollback.push(`${ctx.txId}#${ctx.opIndex}`);
      ctx.db.prepare('UPDATE stock SET reserved = reserved - ? WHERE sku = ?').run(a.qty, a.sku);
    },
  });
  const note = defineOperation<{ text: string; keys: string[]; fail?: string }>({
    parseArgs(args) {
      const a = args as { text?: unknown; keys?: unknown; fail?: unknown };
      return {
        text: String(a.text ?? ''),
        keys: Array.isArray(a.keys) ? a.keys.map(String) : [],
        ...(typeof a.fail === 'string' ? { fail: a.fail } : {}),
      };
    },
    lockKeys: (a) => a.keys,
    prepare(ctx, a) {
      calls.prepare.push(`${ctx.txId}#${ctx.opIndex}`);
      ctx.db.prepare('INSERT INTO notes (tx_id, text) VALUES (?, ?)').run(ctx.txId, a.text);
      if (a.fail === 'refuse') throw new BusinessRefusal('NOTE_REFUSED');
      if (a.fail === 'crash') throw new Error('disk gremlin');
      if (a.fail === 'free-text') throw new BusinessRefusal('note refused by 127.0.0.1:80');
    },
    commit(ctx) {
      calls.commit.push(`${ctx.txId}#${ctx.opIndex}`);
    },
    rollback(ctx) {
      calls.rollback.push(`${ctx.txId}#${ctx.opIndex}`);
      ctx.db.prepare('DELETE FROM notes WHERE tx_id = ?').run(ctx.txId);
    },
  });
  // Reads keys (shared locks) and changes nothing.
  const peek = defineOperation<{ keys: string[] }>({
    parseArgs: (args) => ({ keys: Array.isArray((args as { keys?: unknown }).keys) ? ((args as { keys: unknown[] }).keys).map(String) : [] }),
    readKeys: (a) => a.keys,
    prepare(ctx) {
      calls.prepare.push(`${ctx.txId}#${ctx.opIndex}`);
    },
    commit(ctx) {
      calls.commit.push(`${ctx.txId}#${ctx.opIndex}`);
    },
    rollback(ctx) {
      calls.rollback.push(`${ctx.txId}#${ctx.opIndex}`);
    },
  });
  return { reserve, note, peek };
}

export function newCalls(): HookCalls {
  return { prepare: [], commit: [], rollback: [] };
}

export function stock(db: Database.Database, sku: string): { qty: number; reserved: number } | undefined {
  return db.prepare('SELECT qty, reserved FROM stock WHERE sku = ?').get(sku) as { qty: number; reserved: number } | undefined;
}

export function addStock(db: Database.Database, sku: string, qty: number): void {
  db.prepare('INSERT INTO stock (sku, qty) VALUES (?, ?)').run(sku, qty);
}

export const txId = (): string => newTxId(0);

/** A prepare as the coordinator sends it: with a deadline (5 s from now unless given). */
export function prepare(id: string, operations: OperationSpec[], deadline: number = Date.now() + 5_000): BranchItem {
  return { action: BranchAction.PREPARE, txId: id, service: SERVICE, operations, deadline };
}
export const commit = (id: string): BranchItem => ({ action: BranchAction.COMMIT, txId: id, service: SERVICE });
export const rollback = (id: string): BranchItem => ({ action: BranchAction.ROLLBACK, txId: id, service: SERVICE });
export const reserveOp = (sku: string, qty: number): OperationSpec => ({ op: 'reserve', args: { sku, qty } });
export const peekOp = (...keys: string[]): OperationSpec => ({ op: 'peek', args: { keys } });
export const writeOp = (...keys: string[]): OperationSpec => ({ op: 'note', args: { text: 'w', keys } });

export function batch(...items: BranchItem[]): BranchBatchRequest {
  return { protocolVersion: PROTOCOL_VERSION, items };
}

/** Resolves to 'pending' when the promise has not settled within ms. */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([promise, pending]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Fixture {
  db: Database.Database;
  participant: Participant;
  calls: HookCalls;
  logs: Record<string, unknown>[];
  /** One item's result, for one-item batches. */
  one(item: BranchItem): Promise<BranchItemResult>;
}

export function startParticipant(t: TestContext, options: { file?: string; lockWaitMs?: number; lockGraceMs?: number } = {}): Fixture {
  const db = openTempDatabase(t, options.file ?? tempDatabasePath(t));
  const calls = newCalls();
  const logs: Record<string, unknown>[] = [];
  const participant = createParticipant({
    service: SERVICE,
    db,
    operations: inventoryOperations(db, calls),
    log: (entry) => logs.push(entry),
    ...(options.lockWaitMs !== undefined ? { lockWaitMs: options.lockWaitMs } : {}),
    ...(options.lockGraceMs !== undefined ? { lockGraceMs: options.lockGraceMs } : {}),
  });
  t.after(() => participant.close());
  return {
    db,
    participant,
    calls,
    logs,
    async one(item) {
      const response = await participant.handleBatch(batch(item));
      return response.results[0]!;
    },
  };
}

export function countRows(db: Database.Database, table: string): number {
  return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
}

/** The SQLite write transactions the SDK runs from now on until the test ends (kind, synchronous level). */
export function recordWrites(t: TestContext): SqliteWriteEvent[] {
  const writes: SqliteWriteEvent[] = [];
  const listener = (message: unknown): void => void writes.push(message as SqliteWriteEvent);
  subscribe(sqliteWriteChannel.name, listener);
  t.after(() => unsubscribe(sqliteWriteChannel.name, listener));
  return writes;
}
