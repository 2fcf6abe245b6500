/**
 * Deadlock generator: pairs and rings of transactions that lock keys at two or three services in
 * opposite orders, begun at different shards, over real HTTP (shards, sidecars, services with SQLite).
 * A transaction's second prepare is held back at its service until the key it wants is held by the
 * next transaction of the ring (`afterHeld`): every cycle is certain, not a matter of timing luck.
 *
 * Bound: lock waits may last lockWaitMs = 10 s, so a cycle ended well below that was broken by the
 * detector: every transaction of a cycle must have finished within CYCLE_BOUND_MS (half the lock wait)
 * of its start, and the shards' own figure, from the cycle's last wait to the victim's abort, must stay
 * below DETECT_BOUND_MS (it is tens of ms on a quiet machine; the bound leaves room for a loaded one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareTxAge, DeadlockMode } from '@txmesh/protocol';
import { begin, startLedgerCluster, type TxOutcome } from './ledger-cluster.ts';

const CYCLE_BOUND_MS = 5_000;
const DETECT_BOUND_MS = 2_000;

/** One transaction: at its first service it locks at once, at its second once the key is held by another. */
function crossing(first: [string, string], second: [string, string]): unknown {
  return {
    timeoutMs: 20_000,
    participants: [
      { service: first[0], operations: [{ op: 'lock', args: { write: [first[1]] } }] },
      { service: second[0], operations: [{ op: 'lock', args: { write: [second[1]], afterHeld: true } }] },
    ],
  };
}

/**
 * Runs a ring: key k lives at service k mod S; transaction i locks key i at once, then key i+1 (late).
 * Transaction i begins at shard i: a shard batches what it sends to one sidecar, and a late prepare must
 * not share a batch (and so its delay) with another transaction's first one.
 */
async function ring(urls: string[], services: string[], tag: string, size: number, startAfterMs = 0): Promise<TxOutcome[]> {
  await new Promise((resolve) => setTimeout(resolve, startAfterMs));
  const at = (k: number): [string, string] => [services[k % services.length]!, `${tag}-${k}`];
  return Promise.all(Array.from({ length: size }, (_, i) => begin(urls[i % urls.length]!, crossing(at(i), at((i + 1) % size)))));
}

function checkOneVictim(outcomes: TxOutcome[], label: string): void {
  const victims = outcomes.filter((o) => o.outcome === 'aborted');
  assert.equal(victims.length, 1, `${label}: exactly one victim, got ${JSON.stringify(outcomes)}`);
  assert.equal(victims[0]!.reason, 'DEADLOCK', `${label}: the victim was aborted as a deadlock`);
  const youngest = [...outcomes].sort((a, b) => compareTxAge(a.txId, b.txId)).at(-1)!;
  assert.equal(victims[0]!.txId, youngest.txId, `${label}: the victim is the youngest of the cycle`);
  for (const o of outcomes) if (o !== victims[0]) assert.equal(o.outcome, 'committed', `${label}: survivors commit`);
  // Each transaction began at most a few ms before its cycle closed, so its whole life bounds the cycle's.
  for (const o of outcomes) assert.ok(o.durationMs < CYCLE_BOUND_MS, `${label}: ${o.durationMs} ms is within the bound`);
}

test('deadlock detection: pairs and rings across services and shards lose exactly their youngest, within the bound', async (t) => {
  const services = ['ledger-a', 'ledger-b', 'ledger-c'];
  const cluster = await startLedgerCluster(t, { shards: 4, services, deadlock: DeadlockMode.DETECT, lockWaitMs: 10_000 });
  const urls = cluster.coordinatorUrls;

  // A pair across two services, begun at two shards.
  checkOneVictim(await ring(urls, services.slice(0, 2), 'pair', 2), 'pair');
  // A ring over three services and three shards.
  checkOneVictim(await ring(urls, services, 'ring3', 3), 'ring of three');
  // Several independent cycles standing at the same time: each loses one.
  const [p1, p2, r1, r2] = await Promise.all([
    ring(urls, services.slice(0, 2), 'many-p1', 2),
    ring(urls, services.slice(1, 3), 'many-p2', 2, 100),
    ring(urls, services, 'many-r1', 3, 200),
    ring(urls, [...services].reverse(), 'many-r2', 3, 300),
  ]);
  checkOneVictim(p1!, 'concurrent pair 1');
  checkOneVictim(p2!, 'concurrent pair 2');
  checkOneVictim(r1!, 'concurrent ring of three');
  checkOneVictim(r2!, 'concurrent ring of three, the other way round');

  const stats = await Promise.all(urls.map(async (u) => (await (await fetch(`${u}/v1/stats`)).json()) as { deadlocks: { victims: number; detectMsP99?: number } }));
  assert.equal(stats.reduce((n, s) => n + s.deadlocks.victims, 0), 6, 'the shards together aborted one victim per cycle');
  for (const s of stats) if (s.deadlocks.detectMsP99 !== undefined) assert.ok(s.deadlocks.detectMsP99 < DETECT_BOUND_MS, `cycle to abort ${s.deadlocks.detectMsP99} ms`);
  t.diagnostic(`cycle formed → victim aborted, p99 per shard: ${stats.map((s) => s.deadlocks.detectMsP99 ?? '-').join(', ')} ms`);
});

test('deadlock detection: a transaction behind an older one waits (no cycle, no abort)', async (t) => {
  const services = ['ledger-a', 'ledger-b'];
  const cluster = await startLedgerCluster(t, { shards: 2, services, deadlock: DeadlockMode.DETECT, lockWaitMs: 10_000 });
  const [urlA, urlB] = cluster.coordinatorUrls as [string, string];
  const hold = { timeoutMs: 20_000, participants: [{ service: 'ledger-a', operations: [{ op: 'lock', args: { write: ['k'] } }] }, { service: 'ledger-b', operations: [{ op: 'lock', args: { write: ['j'], delayMs: 300 } }] }] };
  const first = begin(urlA, hold);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const second = begin(urlB, { timeoutMs: 20_000, participants: [{ service: 'ledger-a', operations: [{ op: 'lock', args: { write: ['k'] } }] }] });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.outcome, 'committed');
  assert.equal(b.outcome, 'committed', 'the younger waited for the older instead of dying');
  assert.ok(b.durationMs >= 200, `it waited for the holder (${b.durationMs} ms)`);
});

test('without detection (timeout mode) the same pair stays deadlocked until a lock wait times out', async (t) => {
  const services = ['ledger-a', 'ledger-b'];
  const cluster = await startLedgerCluster(t, { shards: 2, services, deadlock: DeadlockMode.TIMEOUT, lockWaitMs: 800 });
  const outcomes = await ring(cluster.coordinatorUrls, services, 'pair', 2);
  const aborted = outcomes.filter((o) => o.outcome === 'aborted');
  assert.ok(aborted.length >= 1, 'someone must give up');
  for (const o of aborted) assert.equal(o.reason, 'LOCK_TIMEOUT');
  assert.ok(Math.max(...outcomes.map((o) => o.durationMs)) >= 800, 'the cycle lasted the whole lock wait');
});
