/** Shared helpers for the cross-process tests: a cluster with a small catalog, orders, and polling. */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { Cluster, fetchSummaries, sleep, type ClusterOptions } from '@txmesh/lab';
import { orderRequest, type EcommerceService, type ServiceSummary } from '@txmesh/example-ecommerce';
import type { BeginTransactionRequest } from '@txmesh/protocol';

/** The installed `txmesh` command (compiled JavaScript), as a user runs it. */
export const TXMESH_BIN = join(dirname(createRequire(import.meta.url).resolve('txmesh/package.json')), 'bin', 'txmesh.mjs');

export const SMALL_CATALOG = { skus: 5, stockPerSku: 50, accounts: 5, balancePerAccount: 1000 };

/** Starts a cluster with the small catalog; stops it and removes its data when the test ends. */
export async function startTestCluster(t: TestContext, options: ClusterOptions = {}): Promise<Cluster> {
  const cluster = await Cluster.start({ catalog: SMALL_CATALOG, ...options, env: { TXMESH_LOG_LEVEL: 'warn', ...options.env } });
  t.after(async () => {
    await cluster.stop();
    cluster.removeData();
  });
  return cluster;
}

/** An order that commits with the small catalog unless stock or money runs out. */
export function goodOrder(orderId: string, timeoutMs = 2000): BeginTransactionRequest {
  return orderRequest({ orderId, sku: 'sku-1', qty: 1, account: 'acct-1', amount: 10, address: '1 Loop Road' }, timeoutMs);
}

export function serviceUrls(cluster: Cluster): Map<EcommerceService, string> {
  return new Map([...cluster.services].map(([name, member]) => [name, member.url]));
}

export async function summaries(cluster: Cluster): Promise<Map<EcommerceService, ServiceSummary>> {
  return new Map((await fetchSummaries(serviceUrls(cluster))).map((summary) => [summary.service, summary]));
}

/** Polls `probe` until it returns true or the time is up; answers whether it did. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return true;
    } catch {
      // the member may be restarting
    }
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}
