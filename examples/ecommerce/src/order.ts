/**
 * Order: the order record itself. Prepare writes it 'pending' (invisible as a confirmed order), commit
 * confirms it, rollback deletes it so the order id can be used again.
 */
import type Database from 'better-sqlite3';
import { BusinessRefusal, defineOperation, type HookContext } from '@txmesh/participant-sdk';
import { TxmeshError } from '@txmesh/protocol';
import { argsObject, positiveIntArg, stringArg } from './args.ts';
import { checkStatusTable, recordCommittedBranch } from './ledger.ts';
import type { ServiceCheck, ServiceDefinition } from './service-definition.ts';
import { statementCache } from './statement-cache.ts';

interface CreateArgs {
  orderId: string;
  sku: string;
  qty: number;
  account: string;
  amount: number;
}

interface OrderRow {
  order_id: string;
  tx_id: string;
  status: 'pending' | 'confirmed';
}

/** As inventory's hooks: the usual path of each is as few statements as it can be (see inventory.ts). */
const statements = statementCache((db) => ({
  byTx: db.prepare(`SELECT order_id, tx_id, status FROM orders WHERE tx_id = ? AND op_index = ?`),
  full: db.prepare(`SELECT order_id, tx_id, sku, qty, account, amount, status, created_at, confirmed_at FROM orders WHERE order_id = ?`),
  // Nothing when the order id or this operation's row exists already (either key).
  insert: db.prepare(
    `INSERT INTO orders (order_id, tx_id, op_index, sku, qty, account, amount, status, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING`,
  ),
  confirm: db.prepare(`UPDATE orders SET status = 'confirmed', confirmed_at = ? WHERE tx_id = ? AND op_index = ? AND status = 'pending'`),
  remove: db.prepare(`DELETE FROM orders WHERE tx_id = ? AND op_index = ? AND status = 'pending'`),
}));

function orderOf(ctx: HookContext): OrderRow | undefined {
  return statements(ctx.db).byTx.get(ctx.txId, ctx.opIndex) as OrderRow | undefined;
}

const create = defineOperation<CreateArgs>({
  parseArgs(raw) {
    const args = argsObject(raw, 'create');
    return {
      orderId: stringArg(args, 'orderId', 'create'),
      sku: stringArg(args, 'sku', 'create'),
      qty: positiveIntArg(args, 'qty', 'create'),
      account: stringArg(args, 'account', 'create'),
      amount: positiveIntArg(args, 'amount', 'create'),
    };
  },
  lockKeys: (args) => [`order:${args.orderId}`],
  prepare(ctx, args) {
    const s = statements(ctx.db);
    if (s.insert.run(args.orderId, ctx.txId, ctx.opIndex, args.sku, args.qty, args.account, args.amount, Date.now()).changes === 1) return;
    if (orderOf(ctx) !== undefined) return; // this operation already wrote its order
    throw new BusinessRefusal('DUPLICATE_ORDER', `Order ${args.orderId} already exists.`);
  },
  commit(ctx) {
    if (statements(ctx.db).confirm.run(Date.now(), ctx.txId, ctx.opIndex).changes === 0) {
      if (orderOf(ctx)?.status === 'confirmed') return;
      throw new Error(`order: commit of ${ctx.txId}/${ctx.opIndex} finds no pending order`);
    }
    recordCommittedBranch(ctx.db, ctx.txId);
  },
  rollback(ctx) {
    if (statements(ctx.db).remove.run(ctx.txId, ctx.opIndex).changes === 1) return;
    if (orderOf(ctx)?.status === 'confirmed') throw new Error(`order: rollback of ${ctx.txId}/${ctx.opIndex} after it committed`);
  },
});

function migrate(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS orders (
      order_id TEXT NOT NULL UNIQUE,
      tx_id TEXT NOT NULL,
      op_index INTEGER NOT NULL,
      sku TEXT NOT NULL,
      qty INTEGER NOT NULL,
      account TEXT NOT NULL,
      amount INTEGER NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      confirmed_at INTEGER,
      PRIMARY KEY (tx_id, op_index)
    ) WITHOUT ROWID;
  `);
}

function check(db: Database.Database, preparedTxIds: ReadonlySet<string>): ServiceCheck {
  return checkStatusTable(db, preparedTxIds, { table: 'orders', noun: 'orders', committed: 'confirmed', tentative: 'pending' });
}

export const orderService: ServiceDefinition = {
  migrate,
  operations: { create },
  check,
  routes(app, db) {
    app.get<{ Params: { orderId: string } }>('/orders/:orderId', async (req) => {
      const row = statements(db).full.get(req.params.orderId);
      if (row === undefined) throw new TxmeshError('TXM_RESOURCE_NOT_FOUND', `no order ${req.params.orderId}`);
      return row;
    });
  },
};
