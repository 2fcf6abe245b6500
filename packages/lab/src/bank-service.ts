/**
 * A bank service for the isolation benchmark and tests: accounts as versioned rows (VersionedRows), a
 * client read API that answers value and version, and three operations:
 * - `transfer` {account, delta}: adds delta to the account (never below zero), write-locked; with
 *   `expectVersion` on the operation it votes VERSION_CONFLICT if the row moved since the caller read it.
 * - `read` {account}: reads the account under a shared lock (a read the transaction relies on).
 * - `lock` {write?: string[], read?: string[]}: takes the keys and changes nothing.
 * Every committed read and write is recorded in `history` with the row version it saw, so a checker can
 * rebuild the precedence graph of the committed history.
 */
import type Database from 'better-sqlite3';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  BusinessRefusal,
  VersionedRows,
  createParticipant,
  defineOperation,
  openParticipantDatabase,
  type Participant,
} from '@txmesh/participant-sdk';
import { NO_SCHEMA_COMPILERS, type DeadlockMode } from '@txmesh/protocol';

export interface BankServiceOptions {
  dbPath: string;
  deadlock: DeadlockMode;
  lockWaitMs: number;
  /** Accounts acct-0 … acct-(count-1) created on first start, each with this balance. */
  accounts: { count: number; balance: number };
  /** Default true. false declares no lock keys at all: only for showing what locking prevents. */
  locking?: boolean;
  /** This service's key(s): the participant routes then take only its sidecar. */
  keys?: readonly string[];
  /** Called with the app before the routes are added (tests hold batches back with a hook). */
  beforeRoutes?: (app: FastifyInstance) => void;
  /** false: batches only through the HTTP route (a test whose hook in beforeRoutes must see every batch). */
  batchChannel?: boolean;
}

export interface BankService {
  app: FastifyInstance;
  db: Database.Database;
  participant: Participant;
  close(): Promise<void>;
}

/** One committed read or write and the version it saw (a write: the version it replaced). */
export interface HistoryEntry {
  txId: string;
  key: string;
  kind: 'r' | 'w';
  version: number;
}

export const accountKey = (i: number): string => `acct-${i}`;

function stringList(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new BusinessRefusal('BAD_ARGS', `${field} must be a list of strings`);
  return value as string[];
}

function accountArg(args: unknown): string {
  const value = (args as { account?: unknown } | null)?.account;
  if (typeof value !== 'string') throw new BusinessRefusal('BAD_ARGS', 'account must be a string');
  return value;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS history (tx_id TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS read_versions (tx_id TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (tx_id, key)) WITHOUT ROWID;
`;

function bankOperations(db: Database.Database, rows: VersionedRows<number>, locking: boolean) {
  db.exec(SCHEMA);
  const remember = db.prepare('INSERT OR REPLACE INTO read_versions (tx_id, key, version) VALUES (?, ?, ?)');
  const recalled = db.prepare<[string, string], { version: number }>('SELECT version FROM read_versions WHERE tx_id = ? AND key = ?');
  const forget = db.prepare('DELETE FROM read_versions WHERE tx_id = ?');
  const record = db.prepare('INSERT INTO history (tx_id, key, kind, version) VALUES (?, ?, ?, ?)');
  const declared = (keys: string[]): string[] => (locking ? keys : []);
  return {
    lock: defineOperation<{ write: string[]; read: string[] }>({
      parseArgs: (args) => ({ write: stringList((args as { write?: unknown }).write, 'write'), read: stringList((args as { read?: unknown }).read, 'read') }),
      readKeys: (a) => declared(a.read),
      writeKeys: (a) => declared(a.write),
      prepare() {},
      commit() {},
      rollback() {},
    }),
    transfer: defineOperation<{ account: string; delta: number }>({
      parseArgs(args) {
        const delta = (args as { delta?: unknown }).delta;
        if (typeof delta !== 'number' || !Number.isSafeInteger(delta)) throw new BusinessRefusal('BAD_ARGS', 'delta must be an integer');
        return { account: accountArg(args), delta };
      },
      writeKeys: (a) => declared([a.account]),
      prepare(ctx, a) {
        rows.expect(ctx, a.account);
        const balance = rows.current(ctx, a.account);
        if (balance === undefined) throw new BusinessRefusal('NO_ACCOUNT', `no account ${a.account}`);
        if (balance + a.delta < 0) throw new BusinessRefusal('INSUFFICIENT_FUNDS');
        rows.stage(ctx, a.account, balance + a.delta);
      },
      commit(ctx, a) {
        record.run(ctx.txId, a.account, 'w', rows.get(a.account)!.version);
        rows.apply(ctx, a.account);
      },
      rollback(ctx, a) {
        rows.drop(ctx, a.account);
      },
    }),
    read: defineOperation<{ account: string }>({
      parseArgs: (args) => ({ account: accountArg(args) }),
      readKeys: (a) => declared([a.account]),
      prepare(ctx, a) {
        rows.expect(ctx, a.account);
        remember.run(ctx.txId, a.account, rows.get(a.account)?.version ?? -1);
      },
      commit(ctx, a) {
        record.run(ctx.txId, a.account, 'r', recalled.get(ctx.txId, a.account)?.version ?? -1);
        forget.run(ctx.txId);
      },
      rollback(ctx) {
        forget.run(ctx.txId);
      },
    }),
  };
}

/** Builds the service without listening. */
export function buildBankService(name: string, options: BankServiceOptions): BankService {
  const db = openParticipantDatabase(options.dbPath);
  const rows = new VersionedRows<number>(db, 'accounts');
  db.transaction(() => {
    for (let i = 0; i < options.accounts.count; i++) rows.seed(accountKey(i), options.accounts.balance);
  })();
  const participant = createParticipant({
    service: name,
    db,
    operations: bankOperations(db, rows, options.locking ?? true),
    lockWaitMs: options.lockWaitMs,
    deadlock: options.deadlock,
    log: () => {},
    ...(options.keys !== undefined ? { keys: options.keys } : {}),
    ...(options.batchChannel !== undefined ? { batchChannel: options.batchChannel } : {}),
  });
  const app = Fastify({ logger: false, schemaController: NO_SCHEMA_COMPILERS });
  options.beforeRoutes?.(app);
  // The client read API: the committed balance and its version, so a read-modify-write across services
  // can carry expectVersion instead of holding a lock between the read and the transaction.
  app.get<{ Params: { id: string } }>('/accounts/:id', async (request, reply) => {
    const row = rows.get(request.params.id);
    if (!row) return reply.status(404).send({ error: { code: 'TXM_RESOURCE_NOT_FOUND', message: `no account ${request.params.id}` } });
    return { account: request.params.id, balance: row.value, version: row.version };
  });
  const history = db.prepare<[], { tx_id: string; key: string; kind: 'r' | 'w'; version: number }>('SELECT tx_id, key, kind, version FROM history');
  app.get('/history', async () => ({ entries: history.all().map((r): HistoryEntry => ({ txId: r.tx_id, key: r.key, kind: r.kind, version: r.version })) }));
  app.register(participant.routes);
  return {
    app,
    db,
    participant,
    async close() {
      await app.close();
      participant.close();
      db.close();
    },
  };
}

export async function startBankService(name: string, options: BankServiceOptions & { host?: string; port?: number }): Promise<{ url: string; close(): Promise<void> }> {
  const service = buildBankService(name, options);
  try {
    const url = await service.app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
    return { url, close: service.close };
  } catch (err) {
    await service.close();
    throw err;
  }
}
