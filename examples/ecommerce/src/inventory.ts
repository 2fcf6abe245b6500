/**
 * Inventory: stock per sku. A prepared reserve holds units (reserved += qty) without selling them; commit
 * sells them (stock -= qty); rollback releases them. Reservation rows keep their tx_id for the summary.
 */
import type Database from 'better-sqlite3';
import { BusinessRefusal, defineOperation, type HookContext } from '@txmesh/participant-sdk';
import { TxmeshError } from '@txmesh/protocol';
import { argsObject, positiveIntArg, stringArg } from './args.ts';
import { skuName, type CatalogOptions } from './catalog.ts';
import { committedBranchIds, compareTxSets, recordCommittedBranch, seedOnce, sortedIds, txIdSet } from './ledger.ts';
import type { ServiceCheck, ServiceDefinition } from './service-definition.ts';
import { statementCache } from './statement-cache.ts';

interface ReserveArgs {
  sku: string;
  qty: number;
}

interface ItemRow {
  sku: string;
  stock: number;
  reserved: number;
}

interface ReservationRow {
  sku: string;
  qty: number;
  status: 'reserved' | 'committed';
}

/**
 * Each hook's usual path is as few statements as it can be (they are most of a service's own CPU under load,
 * docs/benchmarks.md): the reservation's key makes a repeated prepare a no-op, the hold checks the stock in
 * its own UPDATE, and commit and rollback move the row and read it in one. The rare paths (a refusal, a hook
 * run again) read what they need to explain themselves.
 */
const statements = statementCache((db) => ({
  item: db.prepare(`SELECT sku, stock, reserved FROM inventory_items WHERE sku = ?`),
  reservation: db.prepare(`SELECT sku, qty, status FROM inventory_reservations WHERE tx_id = ? AND op_index = ?`),
  holdIfAvailable: db.prepare(`UPDATE inventory_items SET reserved = reserved + ? WHERE sku = ? AND stock - reserved >= ?`),
  insertReservation: db.prepare(
    `INSERT INTO inventory_reservations (tx_id, op_index, sku, qty, status, created_at) VALUES (?, ?, ?, ?, 'reserved', ?)
     ON CONFLICT (tx_id, op_index) DO NOTHING`,
  ),
  sell: db.prepare(`UPDATE inventory_items SET stock = stock - ?, reserved = reserved - ? WHERE sku = ?`),
  markCommitted: db.prepare(
    `UPDATE inventory_reservations SET status = 'committed' WHERE tx_id = ? AND op_index = ? AND status = 'reserved' RETURNING sku, qty`,
  ),
  release: db.prepare(`UPDATE inventory_items SET reserved = reserved - ? WHERE sku = ?`),
  deleteReservation: db.prepare(`DELETE FROM inventory_reservations WHERE tx_id = ? AND op_index = ? AND status = 'reserved' RETURNING sku, qty`),
}));

function reservationOf(ctx: HookContext): ReservationRow | undefined {
  return statements(ctx.db).reservation.get(ctx.txId, ctx.opIndex) as ReservationRow | undefined;
}

const reserve = defineOperation<ReserveArgs>({
  parseArgs(raw) {
    const args = argsObject(raw, 'reserve');
    return { sku: stringArg(args, 'sku', 'reserve'), qty: positiveIntArg(args, 'qty', 'reserve') };
  },
  lockKeys: (args) => [`sku:${args.sku}`],
  prepare(ctx, args) {
    const s = statements(ctx.db);
    // Already there: this operation holds its units. A refusal below undoes the row with the branch's savepoint.
    if (s.insertReservation.run(ctx.txId, ctx.opIndex, args.sku, args.qty, Date.now()).changes === 0) return;
    if (s.holdIfAvailable.run(args.qty, args.sku, args.qty).changes === 1) return;
    const item = s.item.get(args.sku) as ItemRow | undefined;
    if (item === undefined) throw new BusinessRefusal('UNKNOWN_SKU', `There is no sku ${args.sku}.`);
    throw new BusinessRefusal('OUT_OF_STOCK', `${args.sku} has ${item.stock - item.reserved} available, ${args.qty} requested.`);
  },
  commit(ctx) {
    const s = statements(ctx.db);
    // Effects come from the reservation row, not the args: the row is what prepare actually held.
    const row = s.markCommitted.get(ctx.txId, ctx.opIndex) as Pick<ReservationRow, 'sku' | 'qty'> | undefined;
    if (row === undefined) {
      if (reservationOf(ctx)?.status === 'committed') return;
      throw new Error(`inventory: commit of ${ctx.txId}/${ctx.opIndex} finds no reservation`);
    }
    s.sell.run(row.qty, row.qty, row.sku);
    recordCommittedBranch(ctx.db, ctx.txId);
  },
  rollback(ctx) {
    const s = statements(ctx.db);
    const row = s.deleteReservation.get(ctx.txId, ctx.opIndex) as Pick<ReservationRow, 'sku' | 'qty'> | undefined;
    if (row === undefined) {
      if (reservationOf(ctx)?.status === 'committed') throw new Error(`inventory: rollback of ${ctx.txId}/${ctx.opIndex} after it committed`);
      return;
    }
    s.release.run(row.qty, row.sku);
  },
});

function migrate(db: Database.Database, catalog: CatalogOptions): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS inventory_items (
      sku TEXT PRIMARY KEY,
      initial_stock INTEGER NOT NULL,
      stock INTEGER NOT NULL,
      reserved INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS inventory_reservations (
      tx_id TEXT NOT NULL,
      op_index INTEGER NOT NULL,
      sku TEXT NOT NULL,
      qty INTEGER NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (tx_id, op_index)
    ) WITHOUT ROWID;
  `);
  seedOnce(db, () => {
    const insert = db.prepare(`INSERT INTO inventory_items (sku, initial_stock, stock, reserved) VALUES (?, ?, ?, 0)`);
    for (let i = 1; i <= catalog.skus; i += 1) insert.run(skuName(i), catalog.stockPerSku, catalog.stockPerSku);
  });
}

interface SkuAudit {
  sku: string;
  initial_stock: number;
  stock: number;
  reserved: number;
  committed_qty: number;
  live_qty: number;
}

function check(db: Database.Database, preparedTxIds: ReadonlySet<string>): ServiceCheck {
  const rows = db
    .prepare(
      `SELECT i.sku, i.initial_stock, i.stock, i.reserved,
              COALESCE(SUM(CASE WHEN r.status = 'committed' THEN r.qty END), 0) AS committed_qty,
              COALESCE(SUM(CASE WHEN r.status = 'reserved' THEN r.qty END), 0) AS live_qty
         FROM inventory_items i LEFT JOIN inventory_reservations r ON r.sku = i.sku
        GROUP BY i.sku`,
    )
    .all() as SkuAudit[];
  const problems: string[] = [];
  const totals = { initialStock: 0, stock: 0, committedQty: 0, reserved: 0, liveReservedQty: 0 };
  let stockMismatches = 0;
  let reservedMismatches = 0;
  let negativeStock = 0;
  let oversold = 0;
  for (const row of rows) {
    totals.initialStock += row.initial_stock;
    totals.stock += row.stock;
    totals.committedQty += row.committed_qty;
    totals.reserved += row.reserved;
    totals.liveReservedQty += row.live_qty;
    if (row.initial_stock !== row.stock + row.committed_qty) {
      stockMismatches += 1;
      problems.push(`${row.sku}: initial stock ${row.initial_stock} != stock ${row.stock} + committed ${row.committed_qty}`);
    }
    if (row.reserved !== row.live_qty) {
      reservedMismatches += 1;
      problems.push(`${row.sku}: reserved ${row.reserved} != live reservations ${row.live_qty}`);
    }
    if (row.stock < 0) {
      negativeStock += 1;
      problems.push(`${row.sku}: stock ${row.stock} is negative`);
    }
    if (row.stock - row.reserved < 0) {
      oversold += 1;
      problems.push(`${row.sku}: reserved ${row.reserved} exceeds stock ${row.stock}`);
    }
  }
  const orphans = db.prepare(`SELECT COUNT(*) FROM inventory_reservations WHERE sku NOT IN (SELECT sku FROM inventory_items)`).pluck().get() as number;
  if (orphans > 0) problems.push(`${orphans} reservations name an unknown sku`);
  const committed = txIdSet(db, `SELECT DISTINCT tx_id FROM inventory_reservations WHERE status = 'committed'`);
  const live = txIdSet(db, `SELECT DISTINCT tx_id FROM inventory_reservations WHERE status = 'reserved'`);
  compareTxSets(problems, 'committed reservations', committed, committedBranchIds(db), 'committed branches');
  compareTxSets(problems, 'live reservations', live, preparedTxIds, 'prepared branches');
  return {
    committedTxIds: sortedIds(committed),
    invariants: { skus: rows.length, ...totals, stockMismatches, reservedMismatches, negativeStock, oversold, orphanReservations: orphans },
    problems,
  };
}

export const inventoryService: ServiceDefinition = {
  migrate,
  operations: { reserve },
  check,
  routes(app, db) {
    app.get<{ Params: { sku: string } }>('/stock/:sku', async (req) => {
      const item = statements(db).item.get(req.params.sku) as ItemRow | undefined;
      if (item === undefined) throw new TxmeshError('TXM_RESOURCE_NOT_FOUND', `no sku ${req.params.sku}`);
      return { sku: item.sku, stock: item.stock, reserved: item.reserved, available: item.stock - item.reserved };
    });
  },
};
