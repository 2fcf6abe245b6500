/**
 * The four-participant order transaction and a random order generator whose mix makes some orders
 * abort for real business reasons (sold-out skus, drained accounts, a missing address).
 */
import type { BeginTransactionRequest } from '@txmesh/protocol';
import { accountName, skuName, type CatalogOptions } from './catalog.ts';

export interface OrderInput {
  orderId: string;
  sku: string;
  qty: number;
  account: string;
  amount: number;
  address: string;
}

/**
 * One order = inventory reserve + payment charge + order create + shipping schedule, all or nothing.
 * The idempotency key is derived from the order id, so resending the same order returns its first
 * outcome instead of running it twice.
 */
export function orderRequest(o: OrderInput, timeoutMs?: number): BeginTransactionRequest {
  const request: BeginTransactionRequest = {
    participants: [
      { service: 'inventory', operations: [{ op: 'reserve', args: { sku: o.sku, qty: o.qty } }] },
      { service: 'payment', operations: [{ op: 'charge', args: { account: o.account, amount: o.amount } }] },
      {
        service: 'order',
        operations: [{ op: 'create', args: { orderId: o.orderId, sku: o.sku, qty: o.qty, account: o.account, amount: o.amount } }],
      },
      { service: 'shipping', operations: [{ op: 'schedule', args: { orderId: o.orderId, address: o.address } }] },
    ],
    idempotencyKey: `order:${o.orderId}`,
  };
  if (timeoutMs !== undefined) request.timeoutMs = timeoutMs;
  return request;
}

/** Share of orders that go to the few best-selling skus, which sell out first. */
const HOT_SKU_SHARE = 0.15;
const HOT_SKU_FRACTION = 0.05;
/** Share of orders paid by a handful of big spenders, whose accounts run dry. */
const BIG_SPENDER_SHARE = 0.04;
const BIG_SPENDER_FRACTION = 0.006;
const UNDELIVERABLE_SHARE = 0.01;

const STREETS = ['Market Street', 'Harbour Road', 'Elm Avenue', 'Station Square', 'Mill Lane', 'Queen Street'];

function pick(rng: () => number, count: number): number {
  return 1 + Math.min(count - 1, Math.floor(rng() * count));
}

function hotCount(total: number, fraction: number): number {
  return Math.max(1, Math.round(total * fraction));
}

export function randomOrder(rng: () => number, catalog: CatalogOptions, orderId: string): OrderInput {
  const skus = Math.max(1, catalog.skus);
  const accounts = Math.max(1, catalog.accounts);
  const sku = rng() < HOT_SKU_SHARE ? pick(rng, hotCount(skus, HOT_SKU_FRACTION)) : pick(rng, skus);
  const qtyRoll = rng();
  const qty = qtyRoll < 0.7 ? 1 : qtyRoll < 0.9 ? 2 : 3;
  const account = rng() < BIG_SPENDER_SHARE ? pick(rng, hotCount(accounts, BIG_SPENDER_FRACTION)) : pick(rng, accounts);
  const amount = 10 + Math.floor(rng() * 111);
  const address =
    rng() < UNDELIVERABLE_SHARE ? '' : `${pick(rng, 200)} ${STREETS[pick(rng, STREETS.length) - 1] ?? STREETS[0]}, Springfield`;
  return { orderId, sku: skuName(sku), qty, account: accountName(account), amount, address };
}

/** A small seeded generator (mulberry32) so a demo run can be replayed exactly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
