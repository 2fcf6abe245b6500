import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JsonObject } from '@txmesh/protocol';
import type { EcommerceService } from './service-definition.ts';
import { commit, openService, peek, prepare, rollback, summary, txId, type TestService } from './test-support.ts';

/** One valid operation per service; i keeps keys distinct so branches never wait on each other's locks. */
function operationFor(service: EcommerceService, i: number): { op: string; args: JsonObject } {
  switch (service) {
    case 'inventory':
      return { op: 'reserve', args: { sku: `sku-${1 + (i % 5)}`, qty: 1 } };
    case 'payment':
      return { op: 'charge', args: { account: `acct-${1 + (i % 5)}`, amount: 7 } };
    case 'order':
      return { op: 'create', args: { orderId: `o-${i}`, sku: 'sku-1', qty: 1, account: 'acct-1', amount: 7 } };
    case 'shipping':
      return { op: 'schedule', args: { orderId: `o-${i}`, address: `${i} Harbour Road` } };
  }
}

/** Commits three branches, rolls back two, leaves one prepared; returns the committed txIds. */
async function mixedHistory(service: TestService): Promise<{ committed: string[]; undecided: string }> {
  const committed: string[] = [];
  for (let i = 0; i < 5; i += 1) {
    const tx = txId();
    assert.equal((await prepare(service, tx, [operationFor(service.name, i)])).status, 'ok');
    if (i % 2 === 0) {
      assert.equal((await commit(service, tx)).status, 'ok');
      committed.push(tx);
    } else {
      assert.equal((await rollback(service, tx)).status, 'ok');
    }
  }
  const undecided = txId();
  assert.equal((await prepare(service, undecided, [operationFor(service.name, 9)])).status, 'ok');
  return { committed: committed.sort(), undecided };
}

const tampering: Record<EcommerceService, { sql: string; problem: RegExp }> = {
  inventory: { sql: `UPDATE inventory_items SET stock = stock + 1 WHERE sku = 'sku-3'`, problem: /sku-3: initial stock/ },
  payment: { sql: `UPDATE payment_accounts SET held = held + 5 WHERE id = 'acct-4'`, problem: /acct-4: held 5 != live holds 0/ },
  order: { sql: `UPDATE orders SET status = 'pending' WHERE order_id = 'o-0'`, problem: /confirmed orders differ from committed branches/ },
  shipping: { sql: `DELETE FROM shipments WHERE status = 'scheduled' AND order_id = 'o-2'`, problem: /scheduled shipments differ/ },
};

for (const name of ['inventory', 'payment', 'order', 'shipping'] as const) {
  test(`${name} summary: invariants hold after commits and rollbacks and flag a tampered row`, async (t) => {
    const service = await openService(t, name);
    const { committed, undecided } = await mixedHistory(service);

    const clean = await summary(service);
    assert.equal(clean.service, name);
    assert.deepEqual(clean.problems, []);
    assert.equal(clean.ok, true);
    assert.deepEqual(clean.committedTxIds, committed);
    assert.equal(clean.preparedBranches, 1);
    assertInvariants(name, clean.invariants);

    await commit(service, undecided);
    const settled = await summary(service);
    assert.equal(settled.ok, true, settled.problems.join('\n'));
    assert.equal(settled.preparedBranches, 0);
    assert.deepEqual(settled.committedTxIds, [...committed, undecided].sort());

    peek(t, service).exec(tampering[name].sql);
    const tampered = await summary(service);
    assert.equal(tampered.ok, false);
    assert.ok(
      tampered.problems.some((p) => tampering[name].problem.test(p)),
      `expected a problem matching ${tampering[name].problem}, got ${JSON.stringify(tampered.problems)}`,
    );
  });
}

/** Figures after mixedHistory: 3 committed, 2 rolled back, 1 prepared (SMALL_CATALOG: 5 skus x 5, 5 accounts x 100). */
function assertInvariants(name: EcommerceService, inv: Record<string, number>): void {
  switch (name) {
    case 'inventory':
      assert.equal(inv.initialStock, 25);
      assert.equal(inv.stock, 22);
      assert.equal(inv.committedQty, 3);
      assert.equal(inv.reserved, 1);
      assert.equal(inv.liveReservedQty, 1);
      assert.equal(inv.negativeStock, 0);
      break;
    case 'payment':
      assert.equal(inv.initialTotal, 500);
      assert.equal(inv.balances, 479);
      assert.equal(inv.committedCharges, 21);
      assert.equal(inv.held, 7);
      assert.equal(inv.liveHolds, 7);
      assert.equal(inv.negativeBalances, 0);
      break;
    case 'order':
      assert.equal(inv.confirmedOrders, 3);
      assert.equal(inv.pendingOrders, 1);
      assert.equal(inv.committedBranches, 3);
      break;
    case 'shipping':
      assert.equal(inv.scheduledShipments, 3);
      assert.equal(inv.tentativeShipments, 1);
      assert.equal(inv.committedBranches, 3);
      break;
  }
}
