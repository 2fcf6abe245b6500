/**
 * Shipping: one shipment per order. Prepare books it 'tentative', commit makes it 'scheduled', rollback
 * deletes it. An address that is empty (or only blanks) cannot be delivered to.
 */
import type Database from 'better-sqlite3';
import { BusinessRefusal, defineOperation, type HookContext } from '@txmesh/participant-sdk';
import { TxmeshError } from '@txmesh/protocol';
import { argsObject, stringArg } from './args.ts';
import { checkStatusTable, recordCommittedBranch } from './ledger.ts';
import type { ServiceCheck, ServiceDefinition } from './service-definition.ts';
import { statementCache } from './statement-cache.ts';

interface ScheduleArgs {
  orderId: string;
  address: string;
}

interface ShipmentRow {
  order_id: string;
  tx_id: string;
  status: 'tentative' | 'scheduled';
}

/** As inventory's hooks: the usual path of each is as few statements as it can be (see inventory.ts). */
const statements = statementCache((db) => ({
  byTx: db.prepare(`SELECT order_id, tx_id, status FROM shipments WHERE tx_id = ? AND op_index = ?`),
  full: db.prepare(`SELECT order_id, tx_id, address, status, created_at, scheduled_at FROM shipments WHERE order_id = ?`),
  // Nothing when the order's shipment or this operation's row exists already (either key).
  insert: db.prepare(
    `INSERT INTO shipments (order_id, tx_id, op_index, address, status, created_at) VALUES (?, ?, ?, ?, 'tentative', ?) ON CONFLICT DO NOTHING`,
  ),
  schedule: db.prepare(`UPDATE shipments SET status = 'scheduled', scheduled_at = ? WHERE tx_id = ? AND op_index = ? AND status = 'tentative'`),
  remove: db.prepare(`DELETE FROM shipments WHERE tx_id = ? AND op_index = ? AND status = 'tentative'`),
}));

function shipmentOf(ctx: HookContext): ShipmentRow | undefined {
  return statements(ctx.db).byTx.get(ctx.txId, ctx.opIndex) as ShipmentRow | undefined;
}

const schedule = defineOperation<ScheduleArgs>({
  parseArgs(raw) {
    const args = argsObject(raw, 'schedule');
    // An empty address is well-formed input with a business answer (UNDELIVERABLE), not BAD_ARGS.
    return { orderId: stringArg(args, 'orderId', 'schedule'), address: stringArg(args, 'address', 'schedule', { allowEmpty: true }) };
  },
  lockKeys: (args) => [`shipment:${args.orderId}`],
  prepare(ctx, args) {
    const s = statements(ctx.db);
    if (args.address.trim().length === 0) {
      if (shipmentOf(ctx) !== undefined) return; // this operation already booked its shipment
      throw new BusinessRefusal('UNDELIVERABLE', `Order ${args.orderId} has no delivery address.`);
    }
    if (s.insert.run(args.orderId, ctx.txId, ctx.opIndex, args.address, Date.now()).changes === 1) return;
    if (shipmentOf(ctx) !== undefined) return; // this operation already booked its shipment
    throw new BusinessRefusal('DUPLICATE_SHIPMENT', `Order ${args.orderId} already has a shipment.`);
  },
  commit(ctx) {
    if (statements(ctx.db).schedule.run(Date.now(), ctx.txId, ctx.opIndex).changes === 0) {
      if (shipmentOf(ctx)?.status === 'scheduled') return;
      throw new Error(`shipping: commit of ${ctx.txId}/${ctx.opIndex} finds no tentative shipment`);
    }
    recordCommittedBranch(ctx.db, ctx.txId);
  },
  rollback(ctx) {
    if (statements(ctx.db).remove.run(ctx.txId, ctx.opIndex).changes === 1) return;
    if (shipmentOf(ctx)?.status === 'scheduled') throw new Error(`shipping: rollback of ${ctx.txId}/${ctx.opIndex} after it committed`);
  },
});

function migrate(db: Database.Database): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS shipments (
      order_id TEXT NOT NULL UNIQUE,
      tx_id TEXT NOT NULL,
      op_index INTEGER NOT NULL,
      address TEXT NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      scheduled_at INTEGER,
      PRIMARY KEY (tx_id, op_index)
    ) WITHOUT ROWID;
  `);
}

function check(db: Database.Database, preparedTxIds: ReadonlySet<string>): ServiceCheck {
  return checkStatusTable(db, preparedTxIds, { table: 'shipments', noun: 'shipments', committed: 'scheduled', tentative: 'tentative' });
}

export const shippingService: ServiceDefinition = {
  migrate,
  operations: { schedule },
  check,
  routes(app, db) {
    app.get<{ Params: { orderId: string } }>('/shipments/:orderId', async (req) => {
      const row = statements(db).full.get(req.params.orderId);
      if (row === undefined) throw new TxmeshError('TXM_RESOURCE_NOT_FOUND', `no shipment for order ${req.params.orderId}`);
      return row;
    });
  },
};
