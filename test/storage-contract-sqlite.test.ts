/** The storage adapter contract on better-sqlite3 with synchronous hooks (tentative state). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { BusinessRefusal, createParticipant, defineOperation, openParticipantDatabase } from '@txmesh/participant-sdk';
import { LEDGER, START_BALANCE, creditKeys, parseCredit, storageContract, type CreditArgs } from './storage-contract.ts';

/** Tentative state: a prepare parks the amount in pending (a debit counts against the balance at once). */
function ledgerOperations(db: Database.Database) {
  db.exec(`CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL);
           CREATE TABLE IF NOT EXISTS pending (tx_id TEXT NOT NULL, op_index INTEGER NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL, PRIMARY KEY (tx_id, op_index))`);
  const available = db.prepare<[string], { free: number }>(
    'SELECT balance + COALESCE((SELECT SUM(amount) FROM pending WHERE account = id AND amount < 0), 0) AS free FROM accounts WHERE id = ?',
  );
  const credit = defineOperation<CreditArgs>({
    parseArgs: parseCredit,
    writeKeys: creditKeys,
    prepare(ctx, a) {
      const row = available.get(a.account);
      if (!row) throw new BusinessRefusal('NO_ACCOUNT');
      if (row.free + a.amount < 0) throw new BusinessRefusal('INSUFFICIENT_FUNDS');
      db.prepare('INSERT INTO pending (tx_id, op_index, account, amount) VALUES (?, ?, ?, ?)').run(ctx.txId, ctx.opIndex, a.account, a.amount);
    },
    commit(ctx, a) {
      db.prepare('UPDATE accounts SET balance = balance + ? WHERE id = ?').run(a.amount, a.account);
      db.prepare('DELETE FROM pending WHERE tx_id = ? AND op_index = ?').run(ctx.txId, ctx.opIndex);
    },
    rollback(ctx) {
      db.prepare('DELETE FROM pending WHERE tx_id = ? AND op_index = ?').run(ctx.txId, ctx.opIndex);
    },
  });
  return { credit };
}

storageContract({
  name: 'sqlite',
  async create(t) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txm-contract-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'ledger.db');
    const setup = openParticipantDatabase(file);
    ledgerOperations(setup);
    setup.prepare("INSERT INTO accounts (id, balance) VALUES ('a', ?), ('b', ?)").run(START_BALANCE, START_BALANCE);
    setup.close();
    return async ({ lockWaitMs }) => {
      const db = openParticipantDatabase(file);
      const participant = createParticipant({ service: LEDGER, db, operations: ledgerOperations(db), log: () => {}, ...(lockWaitMs === undefined ? {} : { lockWaitMs }) });
      let open = true;
      return {
        handleBatch: (req) => participant.handleBatch(req),
        preparedIds: async () => participant.preparedList().prepared.map((b) => b.txId),
        prune: async (now) => participant.pruneFinishedBranches(now),
        balance: async (account) => (db.prepare('SELECT balance FROM accounts WHERE id = ?').get(account) as { balance: number }).balance,
        async close() {
          if (!open) return;
          open = false;
          participant.close();
          db.close();
        },
      };
    };
  },
});
