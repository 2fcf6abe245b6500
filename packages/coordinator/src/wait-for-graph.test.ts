import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newTxId, type WaitEdge } from '@txmesh/protocol';
import { DeadlockDetector } from './deadlock-detector.ts';
import { WaitForGraph } from './wait-for-graph.ts';

/** Transactions of increasing age order: tx(0) is the oldest. Shard from the argument. */
const tx = (order: number, shard = 0): string => newTxId(shard, 1_700_000_000_000 + order * 1000);
const edge = (waiter: string, holder: string, key = 'k', since?: number): WaitEdge => (since === undefined ? { waiter, holder, key } : { waiter, holder, key, since });

test('wait-for graph: a pair across two services is one cycle whose victim is the younger', () => {
  const [a, b] = [tx(1), tx(2)];
  const graph = new WaitForGraph();
  graph.report('inventory', [edge(a, b, 'sku:1')]);
  assert.deepEqual(graph.cycles(), [], 'one edge is no cycle');
  graph.report('payment', [edge(b, a, 'account:1')]);
  const cycles = graph.cycles();
  assert.equal(cycles.length, 1);
  assert.equal(cycles[0]!.victim, b);
  assert.deepEqual(cycles[0]!.members, [a, b]);
});

test('wait-for graph: rings over three services lose exactly their youngest member; chains lose nobody', () => {
  const [a, b, c, d] = [tx(1), tx(4), tx(2), tx(3)];
  const graph = new WaitForGraph();
  graph.report('s1', [edge(a, b), edge(d, a)]);
  graph.report('s2', [edge(b, c)]);
  graph.report('s3', [edge(c, a)]);
  const cycles = graph.cycles();
  assert.deepEqual(cycles.map((c) => c.victim), [b], 'b is the youngest of the ring a→b→c→a; d only waits');
  assert.deepEqual(cycles[0]!.members, [a, c, b]);
});

test('wait-for graph: independent cycles each lose one; a figure eight loses one per remaining cycle', () => {
  const [a, b, c, d] = [tx(1), tx(2), tx(3), tx(4)];
  const graph = new WaitForGraph();
  graph.report('s1', [edge(a, b), edge(b, a), edge(c, d), edge(d, c)]);
  assert.deepEqual(graph.cycles().map((c) => c.victim).sort(), [b, d].sort());

  // a↔c and b↔c share c (the youngest): removing c breaks both, so one victim for the component.
  const shared = new WaitForGraph();
  shared.report('s1', [edge(a, c), edge(c, a), edge(b, c), edge(c, b)]);
  assert.deepEqual(shared.cycles().map((x) => x.victim), [c]);
  // a↔b and b↔c... with c the youngest but a↔b still a cycle after c leaves: two victims, c then b.
  const eight = new WaitForGraph();
  eight.report('s1', [edge(a, b), edge(b, a), edge(b, c), edge(c, b)]);
  assert.deepEqual(eight.cycles().map((x) => x.victim), [c, b]);
});

test('wait-for graph: a report replaces the service\'s edges, an empty one clears them, old ones expire', () => {
  const [a, b] = [tx(1), tx(2)];
  const graph = new WaitForGraph();
  graph.report('s1', [edge(a, b)], 1000);
  graph.report('s2', [edge(b, a)], 1000);
  assert.equal(graph.cycles().length, 1);
  graph.report('s1', [], 1100); // a got its key
  assert.equal(graph.cycles().length, 0);
  graph.report('s1', [edge(a, b)], 1200);
  graph.expire(500, 1600); // s2's report is 600 ms old
  assert.equal(graph.cycles().length, 0);
  assert.equal(graph.edgeCount, 1);
});

test('wait-for graph: the cycle formed when its last wait began; transactions already going are left out', () => {
  const [a, b] = [tx(1), tx(2)];
  const graph = new WaitForGraph();
  graph.report('s1', [edge(a, b, 'x', 5_000)]);
  graph.report('s2', [edge(b, a, 'y', 5_040), edge(b, a, 'z', 5_010)]);
  assert.equal(graph.cycles()[0]!.formedAt, 5_010, 'b waits for a since its first wait on a');
  assert.deepEqual(graph.cycles(new Set([b])), []);
});

test('wait-for graph: a long chain and a large ring are handled without recursion', () => {
  const n = 20_000;
  const ids = Array.from({ length: n }, (_, i) => tx(i));
  const chain = ids.slice(1).map((id, i) => edge(ids[i]!, id));
  const graph = new WaitForGraph();
  graph.report('s1', chain);
  assert.deepEqual(graph.cycles(), []);
  graph.report('s2', [edge(ids[n - 1]!, ids[0]!)]);
  assert.deepEqual(graph.cycles().map((c) => c.victim), [ids[n - 1]]);
});

test('deadlock detector: shards see the same cycle across shards and only the victim\'s owner aborts it', async () => {
  const older = tx(1, 0);
  const younger = tx(2, 1);
  const aborted: string[][] = [[], []];
  const detectors = [0, 1].map((shard) => new DeadlockDetector({ shard, abort: (id) => (aborted[shard]!.push(id), true) }));
  for (const d of detectors) {
    d.report({ service: 'inventory', edges: [edge(older, younger, 'sku:1', Date.now())] });
    d.report({ service: 'payment', edges: [edge(younger, older, 'account:1', Date.now())] });
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(aborted, [[], [younger]], 'shard 1 owns the younger transaction');
  assert.equal(detectors[1]!.stats().victims, 1);
  assert.ok(detectors[1]!.stats().detectMsP99! < 1_000);
  assert.equal(detectors[0]!.stats().victims, 0);
  for (const d of detectors) d.close();
});

test('deadlock detector: a victim already decided is not counted', () => {
  const [a, b] = [tx(1), tx(2)];
  const detector = new DeadlockDetector({ shard: 0, abort: () => false });
  detector.report({ service: 's', edges: [edge(a, b), edge(b, a)] });
  assert.equal(detector.runPass(), 0);
  assert.equal(detector.stats().victims, 0);
  detector.close();
});
