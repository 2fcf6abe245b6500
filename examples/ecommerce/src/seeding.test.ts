import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CATALOG } from './catalog.ts';
import { commit, getJson, openService, prepare, summary, tempDir, txId } from './test-support.ts';

test('seeding is deterministic and happens on first open only', async (t) => {
  const dir = tempDir(t);
  const first = await openService(t, 'inventory', { dir, catalog: { skus: 3, stockPerSku: 4 } });
  const firstPayment = await openService(t, 'payment', { dir, catalog: { accounts: 2, balancePerAccount: 50 } });
  assert.deepEqual((await getJson(first, '/stock/sku-3')).body, { sku: 'sku-3', stock: 4, reserved: 0, available: 4 });
  assert.equal((await getJson(first, '/stock/sku-4')).status, 404);
  assert.equal((await getJson(firstPayment, '/accounts/acct-2')).body.balance, 50);

  const sold = txId();
  assert.equal((await prepare(first, sold, [{ op: 'reserve', args: { sku: 'sku-1', qty: 3 } }])).status, 'ok');
  await commit(first, sold);
  const undecided = txId();
  assert.equal((await prepare(first, undecided, [{ op: 'reserve', args: { sku: 'sku-2', qty: 1 } }])).status, 'ok');
  await first.close();
  await firstPayment.close();

  // Reopened with another catalog: the rows stay as they were and nothing is added.
  const reopened = await openService(t, 'inventory', { dir, catalog: { skus: 10, stockPerSku: 99 } });
  const reopenedPayment = await openService(t, 'payment', { dir, catalog: { accounts: 9, balancePerAccount: 999 } });
  assert.deepEqual((await getJson(reopened, '/stock/sku-1')).body, { sku: 'sku-1', stock: 1, reserved: 0, available: 1 });
  assert.deepEqual((await getJson(reopened, '/stock/sku-2')).body, { sku: 'sku-2', stock: 4, reserved: 1, available: 3 });
  assert.equal((await getJson(reopened, '/stock/sku-4')).status, 404);
  assert.equal((await getJson(reopenedPayment, '/accounts/acct-2')).body.balance, 50);
  assert.equal((await getJson(reopenedPayment, '/accounts/acct-3')).status, 404);

  // The undecided branch survived the restart and still lines up with its reservation.
  const after = await summary(reopened);
  assert.equal(after.ok, true, after.problems.join('\n'));
  assert.equal(after.preparedBranches, 1);
  assert.deepEqual(after.committedTxIds, [sold]);
  assert.equal((await commit(reopened, undecided)).status, 'ok');
  assert.equal((await getJson(reopened, '/stock/sku-2')).body.stock, 3);
});

test('the default catalogue seeds sku-1..sku-200 and acct-1..acct-500', async (t) => {
  const dir = tempDir(t);
  const inventory = await openService(t, 'inventory', { dir, catalog: {} });
  const payment = await openService(t, 'payment', { dir, catalog: {} });
  const inv = (await summary(inventory)).invariants;
  assert.equal(inv.skus, DEFAULT_CATALOG.skus);
  assert.equal(inv.initialStock, DEFAULT_CATALOG.skus * DEFAULT_CATALOG.stockPerSku);
  assert.equal((await getJson(inventory, '/stock/sku-200')).status, 200);
  const pay = (await summary(payment)).invariants;
  assert.equal(pay.accounts, DEFAULT_CATALOG.accounts);
  assert.equal(pay.initialTotal, DEFAULT_CATALOG.accounts * DEFAULT_CATALOG.balancePerAccount);
  assert.equal((await getJson(payment, '/accounts/acct-500')).status, 200);
});
