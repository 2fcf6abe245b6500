import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateBeginRequest, type BeginTransactionRequest } from '@txmesh/protocol';
import { DEFAULT_CATALOG, type CatalogOptions } from './catalog.ts';
import { orderRequest, randomOrder, seededRandom } from './order-workload.ts';
import type { EcommerceService } from './service-definition.ts';
import { commit, openService, prepare, rollback, summary, tempDir, txId, type TestService } from './test-support.ts';

test('orderRequest is a valid four-participant transaction keyed by the order id', () => {
  const request = orderRequest({ orderId: 'o-7', sku: 'sku-2', qty: 2, account: 'acct-3', amount: 40, address: '1 Mill Lane' }, 5000);
  assert.deepEqual(validateBeginRequest(request), request);
  assert.deepEqual(
    request.participants.map((p) => p.service),
    ['inventory', 'payment', 'order', 'shipping'],
  );
  assert.equal(request.timeoutMs, 5000);
  assert.equal(request.idempotencyKey, 'order:o-7');
  assert.equal(orderRequest({ orderId: 'o-8', sku: 's', qty: 1, account: 'a', amount: 10, address: 'x' }).timeoutMs, undefined);
});

test('randomOrder stays in range and is reproducible from its seed', () => {
  const a = seededRandom(42);
  const b = seededRandom(42);
  for (let i = 0; i < 2000; i += 1) {
    const order = randomOrder(a, DEFAULT_CATALOG, `o-${i}`);
    assert.deepEqual(randomOrder(b, DEFAULT_CATALOG, `o-${i}`), order);
    assert.match(order.sku, /^sku-([1-9]\d*)$/);
    assert.ok(Number(order.sku.slice(4)) <= DEFAULT_CATALOG.skus);
    assert.ok(Number(order.account.slice(5)) <= DEFAULT_CATALOG.accounts && Number(order.account.slice(5)) >= 1);
    assert.ok(order.qty >= 1 && order.qty <= 3 && Number.isInteger(order.qty));
    assert.ok(order.amount >= 10 && order.amount <= 120 && Number.isInteger(order.amount));
  }
});

/** Applies orders one by one against the default catalogue's rules, as the services would decide them. */
function simulate(count: number, seed: number, catalog: CatalogOptions): Record<string, number> {
  const stock = new Map<string, number>();
  const balance = new Map<string, number>();
  const rng = seededRandom(seed);
  const outcomes: Record<string, number> = { COMMITTED: 0, OUT_OF_STOCK: 0, INSUFFICIENT_FUNDS: 0, UNDELIVERABLE: 0 };
  for (let i = 0; i < count; i += 1) {
    const o = randomOrder(rng, catalog, `o-${i}`);
    const units = stock.get(o.sku) ?? catalog.stockPerSku;
    const money = balance.get(o.account) ?? catalog.balancePerAccount;
    const reason = units < o.qty ? 'OUT_OF_STOCK' : money < o.amount ? 'INSUFFICIENT_FUNDS' : o.address === '' ? 'UNDELIVERABLE' : 'COMMITTED';
    if (reason === 'COMMITTED') {
      stock.set(o.sku, units - o.qty);
      balance.set(o.account, money - o.amount);
    }
    outcomes[reason] = (outcomes[reason] ?? 0) + 1;
  }
  return outcomes;
}

test('with the default catalogue a few thousand random orders mostly commit and some fail for each business reason', () => {
  for (const seed of [1, 2, 3]) {
    const outcomes = simulate(2000, seed, DEFAULT_CATALOG);
    assert.ok((outcomes.COMMITTED ?? 0) > 1400, JSON.stringify(outcomes));
    assert.ok((outcomes.OUT_OF_STOCK ?? 0) > 20, JSON.stringify(outcomes));
    assert.ok((outcomes.INSUFFICIENT_FUNDS ?? 0) > 5, JSON.stringify(outcomes));
    assert.ok((outcomes.UNDELIVERABLE ?? 0) > 0, JSON.stringify(outcomes));
  }
});

/** A minimal two-phase commit without a coordinator: prepare everywhere, then commit or roll back everywhere. */
async function runOrder(services: Record<EcommerceService, TestService>, request: BeginTransactionRequest): Promise<{ tx: string; reasons: string[] }> {
  const tx = txId();
  const votes = await Promise.all(
    request.participants.map(async (p) => {
      const service = services[p.service as EcommerceService];
      return { service, result: await prepare(service, tx, p.operations.map((o) => ({ op: o.op, args: o.args ?? {} }))) };
    }),
  );
  const reasons = votes.filter((v) => v.result.status !== 'ok').map((v) => v.result.reason ?? v.result.status);
  for (const v of votes) {
    const outcome = reasons.length === 0 ? await commit(v.service, tx) : await rollback(v.service, tx);
    assert.equal(outcome.status, 'ok');
  }
  return { tx, reasons };
}

test('random orders through all four services keep every invariant and commit the same txIds everywhere', async (t) => {
  const dir = tempDir(t);
  const catalog: CatalogOptions = { skus: 20, stockPerSku: 6, accounts: 30, balancePerAccount: 150 };
  const services = {} as Record<EcommerceService, TestService>;
  for (const name of ['inventory', 'payment', 'order', 'shipping'] as const) services[name] = await openService(t, name, { dir, catalog });

  const rng = seededRandom(7);
  const committed: string[] = [];
  const reasons = new Set<string>();
  for (let i = 0; i < 150; i += 1) {
    const outcome = await runOrder(services, orderRequest(randomOrder(rng, catalog, `o-${i}`)));
    if (outcome.reasons.length === 0) committed.push(outcome.tx);
    for (const r of outcome.reasons) reasons.add(r);
  }
  assert.ok(committed.length > 50, `${committed.length} committed`);
  assert.ok(reasons.has('OUT_OF_STOCK'), [...reasons].join(','));
  assert.ok(reasons.has('INSUFFICIENT_FUNDS'), [...reasons].join(','));

  for (const service of Object.values(services)) {
    const s = await summary(service);
    assert.equal(s.ok, true, `${s.service}: ${s.problems.join('; ')}`);
    assert.equal(s.preparedBranches, 0);
    assert.deepEqual(s.committedTxIds, [...committed].sort(), s.service);
  }
  const inventory = (await summary(services.inventory)).invariants;
  assert.equal(inventory.reserved, 0);
  assert.equal(inventory.negativeStock, 0);
  const payment = (await summary(services.payment)).invariants;
  assert.equal(payment.held, 0);
});
