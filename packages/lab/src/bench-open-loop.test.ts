import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TxmeshClient } from '@txmesh/client';
import { Outcome, type BeginTransactionRequest, type TransactionResult } from '@txmesh/protocol';
import { seededRandom } from '@txmesh/example-ecommerce';
import { openLoop } from './bench-open-loop.ts';

/** A client whose every transaction takes `serviceMs` behind a single server: arrivals queue behind each other. */
function serialClient(serviceMs: number): TxmeshClient & { maxInFlight: number } {
  let busyUntil = 0;
  let inFlight = 0;
  const client = {
    maxInFlight: 0,
    async transaction(_req: BeginTransactionRequest): Promise<TransactionResult> {
      inFlight += 1;
      client.maxInFlight = Math.max(client.maxInFlight, inFlight);
      const start = Math.max(performance.now(), busyUntil);
      busyUntil = start + serviceMs;
      await new Promise((resolve) => setTimeout(resolve, busyUntil - performance.now()));
      inFlight -= 1;
      return { txId: 'x', outcome: Outcome.COMMITTED } as TransactionResult;
    },
    status: () => Promise.reject(new Error('unused')),
    inDoubt: () => Promise.reject(new Error('unused')),
    services: () => Promise.reject(new Error('unused')),
    close: () => Promise.resolve(),
  };
  return client;
}

const next = () => ({ request: { participants: [] } as unknown as BeginTransactionRequest, cls: 'all' as const });

test('open loop: arrivals keep their Poisson rate whatever the answers take', async () => {
  const client = serialClient(1);
  const figures = await openLoop({ ratePerSec: 200, warmupMs: 0, durationMs: 1000, client, next, random: seededRandom(7) });
  // 200/s for 1 s: a Poisson count has standard deviation ~14; 120..280 is far outside chance.
  assert.ok(figures.offered > 120 && figures.offered < 280, `offered ${figures.offered}`);
  assert.equal(figures.dropped, 0);
  assert.ok(figures.p50Ms >= 1, 'latency includes the service time');
});

test('open loop: latency runs from the due time, so queueing behind a slow server shows (no coordinated omission)', async () => {
  // The server takes 20 ms per transaction but 100 arrive per second: twice its capacity. A closed loop of one
  // would report 20 ms; here later arrivals wait behind earlier ones and the p99 grows far beyond that.
  const client = serialClient(20);
  const figures = await openLoop({ ratePerSec: 100, warmupMs: 0, durationMs: 1000, client, next, random: seededRandom(3) });
  assert.ok(client.maxInFlight > 5, `arrivals did not wait for answers (max in flight ${client.maxInFlight})`);
  assert.ok(figures.p99Ms > 200, `p99 ${figures.p99Ms} ms hides the queue`);
});

test('open loop: beyond maxOutstanding arrivals are dropped and counted, never piled up', async () => {
  const client = serialClient(50);
  const figures = await openLoop({ ratePerSec: 500, warmupMs: 0, durationMs: 500, client, next, random: seededRandom(5), maxOutstanding: 4 });
  assert.ok(client.maxInFlight <= 4);
  assert.ok(figures.dropped > 0);
});
