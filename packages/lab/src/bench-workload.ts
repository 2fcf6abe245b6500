/** The benchmark's transactions: e-commerce orders the business accepts, reproducible from a seed. */
import { orderRequest, seededRandom, type CatalogOptions, type EcommerceService } from '@txmesh/example-ecommerce';
import type { BeginTransactionRequest } from '@txmesh/protocol';

/** Transaction classes of the slow-service mix: the full order, and the same order without S. */
export type TxClass = 'all' | 'withoutSlow';

export interface WorkItem {
  request: BeginTransactionRequest;
  cls: TxClass;
}

/** Orders that the business accepts: uniform sku and account, one unit, a small amount, an address. */
export function makeWorkload(seed: number, runLabel: string, catalog: CatalogOptions, withoutService?: EcommerceService): () => WorkItem {
  const rng = seededRandom(seed);
  let n = 0;
  return () => {
    n += 1;
    const orderId = `bench-${runLabel}-${seed}-${n}`;
    const request = orderRequest({
      orderId,
      sku: `sku-${1 + Math.floor(rng() * catalog.skus)}`,
      qty: 1,
      account: `acct-${1 + Math.floor(rng() * catalog.accounts)}`,
      amount: 1 + Math.floor(rng() * 50),
      address: `${1 + Math.floor(rng() * 500)} Bench Road, Springfield`,
    });
    // Half of the mix leaves the slow service out, so its latency shows what the slow service does to others.
    if (withoutService !== undefined && rng() < 0.5) {
      return { request: { ...request, participants: request.participants.filter((p) => p.service !== withoutService) }, cls: 'withoutSlow' };
    }
    return { request, cls: 'all' };
  };
}
