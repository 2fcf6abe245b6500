import assert from 'node:assert/strict';
import type { JsonObject } from '@txmesh/protocol';
import { test } from 'node:test';
import { commit, getJson, openService, peek, prepare, rollback, summary, txId } from './test-support.ts';

test('inventory reserve: prepare holds units, commit sells them, rollback releases them', async (t) => {
  const inventory = await openService(t, 'inventory');
  const db = peek(t, inventory);
  const item = (sku: string) => db.prepare('SELECT stock, reserved FROM inventory_items WHERE sku = ?').get(sku);
  const reservations = (tx: string) => db.prepare('SELECT sku, qty, status FROM inventory_reservations WHERE tx_id = ?').all(tx);

  const sold = txId();
  assert.equal((await prepare(inventory, sold, [{ op: 'reserve', args: { sku: 'sku-1', qty: 2 } }])).status, 'ok');
  assert.deepEqual(item('sku-1'), { stock: 5, reserved: 2 });
  assert.deepEqual(reservations(sold), [{ sku: 'sku-1', qty: 2, status: 'reserved' }]);
  assert.deepEqual((await getJson(inventory, '/stock/sku-1')).body, { sku: 'sku-1', stock: 5, reserved: 2, available: 3 });

  assert.equal((await commit(inventory, sold)).status, 'ok');
  assert.deepEqual(item('sku-1'), { stock: 3, reserved: 0 });
  assert.deepEqual(reservations(sold), [{ sku: 'sku-1', qty: 2, status: 'committed' }]);

  const released = txId();
  assert.equal((await prepare(inventory, released, [{ op: 'reserve', args: { sku: 'sku-2', qty: 4 } }])).status, 'ok');
  assert.deepEqual(item('sku-2'), { stock: 5, reserved: 4 });
  assert.equal((await rollback(inventory, released)).status, 'ok');
  assert.deepEqual(item('sku-2'), { stock: 5, reserved: 0 });
  assert.deepEqual(reservations(released), []);

  // A repeated commit is acknowledged and sells nothing twice.
  assert.equal((await commit(inventory, sold)).status, 'ok');
  assert.deepEqual(item('sku-1'), { stock: 3, reserved: 0 });
  assert.deepEqual((await summary(inventory)).committedTxIds, [sold]);
});

test('inventory refuses OUT_OF_STOCK counting units already reserved, and changes nothing', async (t) => {
  const inventory = await openService(t, 'inventory');
  const db = peek(t, inventory);

  const tooMany = await prepare(inventory, txId(), [{ op: 'reserve', args: { sku: 'sku-1', qty: 6 } }]);
  assert.equal(tooMany.status, 'no');
  assert.equal(tooMany.reason, 'OUT_OF_STOCK');

  // Two reservations in one branch: the second sees the first one's hold (5 - 3 < 3).
  const split = await prepare(inventory, txId(), [
    { op: 'reserve', args: { sku: 'sku-1', qty: 3 } },
    { op: 'reserve', args: { sku: 'sku-1', qty: 3 } },
  ]);
  assert.equal(split.status, 'no');
  assert.equal(split.reason, 'OUT_OF_STOCK');
  assert.deepEqual(db.prepare(`SELECT stock, reserved FROM inventory_items WHERE sku = 'sku-1'`).get(), { stock: 5, reserved: 0 });
  assert.equal(db.prepare('SELECT COUNT(*) FROM inventory_reservations').pluck().get(), 0);

  const unknown = await prepare(inventory, txId(), [{ op: 'reserve', args: { sku: 'sku-99', qty: 1 } }]);
  assert.equal(unknown.status, 'no');
  assert.equal(unknown.reason, 'UNKNOWN_SKU');

  const badArgs: JsonObject[] = [{ sku: 'sku-1', qty: 0 }, { sku: 'sku-1', qty: 1.5 }, { sku: 'sku-1', qty: '2' }, { sku: 7, qty: 1 }, { qty: 1 }];
  for (const args of badArgs) {
    const bad = await prepare(inventory, txId(), [{ op: 'reserve', args }]);
    assert.equal(bad.status, 'no', JSON.stringify(args));
    assert.equal(bad.reason, 'BAD_ARGS', JSON.stringify(args));
  }
  assert.equal((await summary(inventory)).ok, true);
});

test('inventory locks the sku from prepare to outcome', async (t) => {
  const inventory = await openService(t, 'inventory');
  const holder = txId();
  assert.equal((await prepare(inventory, holder, [{ op: 'reserve', args: { sku: 'sku-1', qty: 1 } }])).status, 'ok');

  const blocked = await prepare(inventory, txId(), [{ op: 'reserve', args: { sku: 'sku-1', qty: 1 } }]);
  assert.equal(blocked.status, 'no');
  assert.equal(blocked.reason, 'LOCK_TIMEOUT');
  const otherSku = await prepare(inventory, txId(), [{ op: 'reserve', args: { sku: 'sku-2', qty: 1 } }]);
  assert.equal(otherSku.status, 'ok');

  await commit(inventory, holder);
  const after = await prepare(inventory, txId(), [{ op: 'reserve', args: { sku: 'sku-1', qty: 1 } }]);
  assert.equal(after.status, 'ok');
});

test('inventory stock route answers 404 with a txmesh error for an unknown sku', async (t) => {
  const inventory = await openService(t, 'inventory');
  const res = await getJson(inventory, '/stock/nope');
  assert.equal(res.status, 404);
  assert.equal(res.body.error.code, 'TXM_RESOURCE_NOT_FOUND');
  assert.deepEqual((await getJson(inventory, '/health')).body, { ok: true });
});
