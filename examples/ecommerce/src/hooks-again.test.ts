/**
 * The example hooks called straight, twice, outside the SDK (which never runs a phase twice): a hook run
 * again changes nothing more, and a rollback after a commit is refused. Their usual paths skip the reads
 * that used to guard this, so the guards are now the rows' keys and the statements' WHERE clauses.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import type { HookContext, OperationHandlers } from '@txmesh/participant-sdk';
import { inventoryService } from './inventory.ts';
import { migrateShared } from './ledger.ts';
import { orderService } from './order.ts';
import { paymentService } from './payment.ts';
import type { ServiceDefinition } from './service-definition.ts';
import { shippingService } from './shipping.ts';
import { SMALL_CATALOG, txId } from './test-support.ts';

function open(definition: ServiceDefinition): Database.Database {
  const db = new Database(':memory:');
  migrateShared(db);
  definition.migrate(db, SMALL_CATALOG);
  return db;
}

const cases: { name: string; definition: ServiceDefinition; op: string; args: object; state: (db: Database.Database) => unknown }[] = [
  {
    name: 'inventory reserve',
    definition: inventoryService,
    op: 'reserve',
    args: { sku: 'sku-1', qty: 2 },
    state: (db) => [db.prepare(`SELECT stock, reserved FROM inventory_items WHERE sku = 'sku-1'`).get(), db.prepare('SELECT qty, status FROM inventory_reservations').all()],
  },
  {
    name: 'payment charge',
    definition: paymentService,
    op: 'charge',
    args: { account: 'acct-1', amount: 30 },
    state: (db) => [db.prepare(`SELECT balance, held FROM payment_accounts WHERE id = 'acct-1'`).get(), db.prepare('SELECT amount, status FROM payment_holds').all()],
  },
  {
    name: 'order create',
    definition: orderService,
    op: 'create',
    args: { orderId: 'o-1', sku: 'sku-1', qty: 1, account: 'acct-1', amount: 10 },
    state: (db) => db.prepare('SELECT order_id, status FROM orders').all(),
  },
  {
    name: 'shipping schedule',
    definition: shippingService,
    op: 'schedule',
    args: { orderId: 'o-1', address: '1 Main St' },
    state: (db) => db.prepare('SELECT order_id, status FROM shipments').all(),
  },
];

for (const c of cases) {
  test(`${c.name}: each hook run again changes nothing more; a rollback after the commit is refused`, () => {
    const db = open(c.definition);
    const handlers = c.definition.operations[c.op] as OperationHandlers<unknown>;
    const args = handlers.parseArgs(c.args as never);
    const ctx = (tx: string): HookContext => ({ db, txId: tx, opIndex: 0, service: c.name.split(' ')[0]! });
    const ledger = () => db.prepare('SELECT COUNT(*) FROM shop_committed_branches').pluck().get();

    const committed = txId();
    handlers.prepare(ctx(committed), args);
    const prepared = c.state(db);
    handlers.prepare(ctx(committed), args);
    assert.deepEqual(c.state(db), prepared, 'a second prepare holds nothing more');
    handlers.commit(ctx(committed), args);
    const done = c.state(db);
    assert.notDeepEqual(done, prepared, 'the commit applied');
    handlers.commit(ctx(committed), args);
    assert.deepEqual([c.state(db), ledger()], [done, 1], 'a second commit applies nothing more');
    assert.throws(() => handlers.rollback(ctx(committed), args), /after it committed/);
    assert.deepEqual(c.state(db), done);

    const rolledBack = txId();
    const fresh = c.name.startsWith('order') || c.name.startsWith('shipping') ? { ...args as object, orderId: 'o-2' } : args;
    handlers.prepare(ctx(rolledBack), fresh);
    handlers.rollback(ctx(rolledBack), fresh);
    const after = c.state(db);
    assert.deepEqual(after, done, 'the rollback released everything its prepare held');
    handlers.rollback(ctx(rolledBack), fresh);
    handlers.rollback(ctx(txId()), fresh);
    assert.deepEqual(c.state(db), done, 'a second rollback, and one of a branch never prepared, change nothing');
    assert.throws(() => handlers.commit(ctx(rolledBack), fresh), /finds no/);
    db.close();
  });
}
