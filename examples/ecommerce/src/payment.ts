/**
 * Payment: account balances. A prepared charge holds money (held += amount) so two concurrent orders
 * cannot spend it twice; commit takes it (balance -= amount); rollback releases the hold.
 */
import type Database from 'better-sqlite3';
import { BusinessRefusal, defineOperation, type HookContext } from '@txmesh/participant-sdk';
import { TxmeshError } from '@txmesh/protocol';
import { argsObject, positiveIntArg, stringArg } from './args.ts';
import { accountName, type CatalogOptions } from './catalog.ts';
import { committedBranchIds, compareTxSets, recordCommittedBranch, seedOnce, sortedIds, txIdSet } from './ledger.ts';
import type { ServiceCheck, ServiceDefinition } from './service-definition.ts';
import { statementCache } from './statement-cache.ts';

interface ChargeArgs {
  account: string;
  amount: number;
}

interface AccountRow {
  id: string;
  balance: number;
  held: number;
}

interface HoldRow {
  account: string;
  amount: number;
  status: 'held' | 'committed';
}

/** As inventory's hooks: the usual path of each is as few statements as it can be (see inventory.ts). */
const statements = statementCache((db) => ({
  account: db.prepare(`SELECT id, balance, held FROM payment_accounts WHERE id = ?`),
  holdRow: db.prepare(`SELECT account, amount, status FROM payment_holds WHERE tx_id = ? AND op_index = ?`),
  holdIfAvailable: db.prepare(`UPDATE payment_accounts SET held = held + ? WHERE id = ? AND balance - held >= ?`),
  insertHold: db.prepare(
    `INSERT INTO payment_holds (tx_id, op_index, account, amount, status, created_at) VALUES (?, ?, ?, ?, 'held', ?)
     ON CONFLICT (tx_id, op_index) DO NOTHING`,
  ),
  take: db.prepare(`UPDATE payment_accounts SET balance = balance - ?, held = held - ? WHERE id = ?`),
  markCommitted: db.prepare(
    `UPDATE payment_holds SET status = 'committed' WHERE tx_id = ? AND op_index = ? AND status = 'held' RETURNING account, amount`,
  ),
  release: db.prepare(`UPDATE payment_accounts SET held = held - ? WHERE id = ?`),
  deleteHold: db.prepare(`DELETE FROM payment_holds WHERE tx_id = ? AND op_index = ? AND status = 'held' RETURNING account, amount`),
}));

function holdOf(ctx: HookContext): HoldRow | undefined {
  return statements(ctx.db).holdRow.get(ctx.txId, ctx.opIndex) as HoldRow | undefined;
}

const charge = defineOperation<ChargeArgs>({
  parseArgs(raw) {
    const args = argsObject(raw, 'charge');
    return { account: stringArg(args, 'account', 'charge'), amount: positiveIntArg(args, 'amount', 'charge') };
  },
  lockKeys: (args) => [`account:${args.account}`],
  prepare(ctx, args) {
    const s = statements(ctx.db);
    // Already there: this operation holds its money. A refusal below undoes the row with the branch's savepoint.
    if (s.insertHold.run(ctx.txId, ctx.opIndex, args.account, args.amount, Date.now()).changes === 0) return;
    if (s.holdIfAvailable.run(args.amount, args.account, args.amount).changes === 1) return;
    const account = s.account.get(args.account) as AccountRow | undefined;
    if (account === undefined) throw new BusinessRefusal('UNKNOWN_ACCOUNT', `There is no account ${args.account}.`);
    throw new BusinessRefusal('INSUFFICIENT_FUNDS', `${args.account} has ${account.balance - account.held} available, ${args.amount} requested.`);
  },
  commit(ctx) {
    const s = statements(ctx.db);
    const row = s.markCommitted.get(ctx.txId, ctx.opIndex) as Pick<HoldRow, 'account' | 'amount'> | undefined;
    if (row === undefined) {
      if (holdOf(ctx)?.status === 'committed') return;
      throw new Error(`payment: commit of ${ctx.txId}/${ctx.opIndex} finds no hold`);
    }
    s.take.run(row.amount, row.amount, row.account);
    recordCommittedBranch(ctx.db, ctx.txId);
  },
  rollback(ctx) {
    const s = statements(ctx.db);
    const row = s.deleteHold.get(ctx.txId, ctx.opIndex) as Pick<HoldRow, 'account' | 'amount'> | undefined;
    if (row === undefined) {
      if (holdOf(ctx)?.status === 'committed') throw new Error(`payment: rollback of ${ctx.txId}/${ctx.opIndex} after it committed`);
      return;
    }
    s.release.run(row.amount, row.account);
  },
});

function migrate(db: Database.Database, catalog: CatalogOptions): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS payment_accounts (
      id TEXT PRIMARY KEY,
      initial_balance INTEGER NOT NULL,
      balance INTEGER NOT NULL,
      held INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS payment_holds (
      tx_id TEXT NOT NULL,
      op_index INTEGER NOT NULL,
      account TEXT NOT NULL,
      amount INTEGER NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (tx_id, op_index)
    ) WITHOUT ROWID;
  `);
  seedOnce(db, () => {
    const insert = db.prepare(`INSERT INTO payment_accounts (id, initial_balance, balance, held) VALUES (?, ?, ?, 0)`);
    for (let i = 1; i <= catalog.accounts; i += 1) insert.run(accountName(i), catalog.balancePerAccount, catalog.balancePerAccount);
  });
}

interface AccountAudit {
  id: string;
  initial_balance: number;
  balance: number;
  held: number;
  committed_amount: number;
  live_amount: number;
}

function check(db: Database.Database, preparedTxIds: ReadonlySet<string>): ServiceCheck {
  const rows = db
    .prepare(
      `SELECT a.id, a.initial_balance, a.balance, a.held,
              COALESCE(SUM(CASE WHEN h.status = 'committed' THEN h.amount END), 0) AS committed_amount,
              COALESCE(SUM(CASE WHEN h.status = 'held' THEN h.amount END), 0) AS live_amount
         FROM payment_accounts a LEFT JOIN payment_holds h ON h.account = a.id
        GROUP BY a.id`,
    )
    .all() as AccountAudit[];
  const problems: string[] = [];
  const totals = { initialTotal: 0, balances: 0, committedCharges: 0, held: 0, liveHolds: 0 };
  let balanceMismatches = 0;
  let heldMismatches = 0;
  let negativeBalances = 0;
  let overdrawn = 0;
  for (const row of rows) {
    totals.initialTotal += row.initial_balance;
    totals.balances += row.balance;
    totals.committedCharges += row.committed_amount;
    totals.held += row.held;
    totals.liveHolds += row.live_amount;
    if (row.initial_balance !== row.balance + row.committed_amount) {
      balanceMismatches += 1;
      problems.push(`${row.id}: initial balance ${row.initial_balance} != balance ${row.balance} + committed ${row.committed_amount}`);
    }
    if (row.held !== row.live_amount) {
      heldMismatches += 1;
      problems.push(`${row.id}: held ${row.held} != live holds ${row.live_amount}`);
    }
    if (row.balance < 0) {
      negativeBalances += 1;
      problems.push(`${row.id}: balance ${row.balance} is negative`);
    }
    if (row.balance - row.held < 0) {
      overdrawn += 1;
      problems.push(`${row.id}: held ${row.held} exceeds balance ${row.balance}`);
    }
  }
  const orphans = db.prepare(`SELECT COUNT(*) FROM payment_holds WHERE account NOT IN (SELECT id FROM payment_accounts)`).pluck().get() as number;
  if (orphans > 0) problems.push(`${orphans} holds name an unknown account`);
  const committed = txIdSet(db, `SELECT DISTINCT tx_id FROM payment_holds WHERE status = 'committed'`);
  const live = txIdSet(db, `SELECT DISTINCT tx_id FROM payment_holds WHERE status = 'held'`);
  compareTxSets(problems, 'committed charges', committed, committedBranchIds(db), 'committed branches');
  compareTxSets(problems, 'live holds', live, preparedTxIds, 'prepared branches');
  return {
    committedTxIds: sortedIds(committed),
    invariants: { accounts: rows.length, ...totals, balanceMismatches, heldMismatches, negativeBalances, overdrawn, orphanHolds: orphans },
    problems,
  };
}

export const paymentService: ServiceDefinition = {
  migrate,
  operations: { charge },
  check,
  routes(app, db) {
    app.get<{ Params: { id: string } }>('/accounts/:id', async (req) => {
      const account = statements(db).account.get(req.params.id) as AccountRow | undefined;
      if (account === undefined) throw new TxmeshError('TXM_RESOURCE_NOT_FOUND', `no account ${req.params.id}`);
      return { account: account.id, balance: account.balance, held: account.held, available: account.balance - account.held };
    });
  },
};
