import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commit, getJson, openService, peek, prepare, rollback, txId } from './test-support.ts';

const orderArgs = (orderId: string) => ({ orderId, sku: 'sku-1', qty: 1, account: 'acct-1', amount: 20 });

test('order create: pending on prepare, confirmed on commit, deleted on rollback', async (t) => {
  const order = await openService(t, 'order');
  const db = peek(t, order);
  const status = (id: string) => db.prepare('SELECT status FROM orders WHERE order_id = ?').pluck().get(id);

  const first = txId();
  assert.equal((await prepare(order, first, [{ op: 'create', args: orderArgs('o-1') }])).status, 'ok');
  assert.equal(status('o-1'), 'pending');
  assert.equal((await commit(order, first)).status, 'ok');
  assert.equal(status('o-1'), 'confirmed');
  const shown = await getJson(order, '/orders/o-1');
  assert.equal(shown.body.tx_id, first);
  assert.equal(shown.body.status, 'confirmed');

  const again = await prepare(order, txId(), [{ op: 'create', args: orderArgs('o-1') }]);
  assert.equal(again.status, 'no');
  assert.equal(again.reason, 'DUPLICATE_ORDER');

  const undone = txId();
  assert.equal((await prepare(order, undone, [{ op: 'create', args: orderArgs('o-2') }])).status, 'ok');
  assert.equal(status('o-2'), 'pending');
  assert.equal((await rollback(order, undone)).status, 'ok');
  assert.equal(status('o-2'), undefined);
  // A rolled-back order id is free again.
  assert.equal((await prepare(order, txId(), [{ op: 'create', args: orderArgs('o-2') }])).status, 'ok');

  const bad = await prepare(order, txId(), [{ op: 'create', args: { ...orderArgs('o-3'), qty: 'one' } }]);
  assert.equal(bad.reason, 'BAD_ARGS');
  assert.equal((await getJson(order, '/orders/o-3')).status, 404);
});

test('shipping schedule: tentative on prepare, scheduled on commit, deleted on rollback; refuses UNDELIVERABLE', async (t) => {
  const shipping = await openService(t, 'shipping');
  const db = peek(t, shipping);
  const status = (id: string) => db.prepare('SELECT status FROM shipments WHERE order_id = ?').pluck().get(id);

  const shipped = txId();
  assert.equal((await prepare(shipping, shipped, [{ op: 'schedule', args: { orderId: 'o-1', address: '1 Elm Avenue' } }])).status, 'ok');
  assert.equal(status('o-1'), 'tentative');
  assert.equal((await commit(shipping, shipped)).status, 'ok');
  assert.equal(status('o-1'), 'scheduled');
  assert.equal((await getJson(shipping, '/shipments/o-1')).body.address, '1 Elm Avenue');

  const undone = txId();
  assert.equal((await prepare(shipping, undone, [{ op: 'schedule', args: { orderId: 'o-2', address: '2 Mill Lane' } }])).status, 'ok');
  assert.equal((await rollback(shipping, undone)).status, 'ok');
  assert.equal(status('o-2'), undefined);

  for (const address of ['', '   ']) {
    const refused = await prepare(shipping, txId(), [{ op: 'schedule', args: { orderId: 'o-3', address } }]);
    assert.equal(refused.status, 'no');
    assert.equal(refused.reason, 'UNDELIVERABLE');
  }
  assert.equal(status('o-3'), undefined);

  const twice = await prepare(shipping, txId(), [{ op: 'schedule', args: { orderId: 'o-1', address: '9 Queen Street' } }]);
  assert.equal(twice.reason, 'DUPLICATE_SHIPMENT');
  const bad = await prepare(shipping, txId(), [{ op: 'schedule', args: { orderId: 'o-4' } }]);
  assert.equal(bad.reason, 'BAD_ARGS');
});
