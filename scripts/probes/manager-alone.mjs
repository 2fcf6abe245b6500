// The coordinator's 2PC core alone, in one process: a TransactionManager with its SQLite decision log and a
// transport that answers every batch yes on the next turn, driven by a closed loop of keyed 4-service orders.
// No sockets, so what it measures is the manager's own work (validation, idempotency hash and look-up, the
// prepares through dispatcher and scheduler, the decision record, the commits) and the garbage it leaves.
// Prints one JSON line per checkout and round: CPU µs per order (process user + system, so the log's fsync
// system time is in), and bytes allocated per order (V8's sampling heap profiler, one sample per 1 KB).
// A probe for docs/benchmarks.md, not part of the product. From a built checkout:
//   node scripts/probes/manager-alone.mjs [orders=20000] [concurrency=64] [rounds=3] [checkout=.] [other-checkout]
// With two checkouts the rounds alternate between them, so both see the same minutes.
import { mkdtempSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [orders = '20000', concurrency = '64', rounds = '3', ...checkouts] = process.argv.slice(2);
if (checkouts.length === 0) checkouts.push('.');
const SERVICES = ['inventory', 'payment', 'order', 'shipping'];

/** Answers every item of a batch ok, on the next turn, as a sidecar that votes yes at once would. */
const transport = {
  send(_url, items) {
    return new Promise((answer) => setImmediate(() => answer({ results: items.map((item) => ({ txId: item.txId, action: item.action, status: 'ok' })) })));
  },
};

const order = (run, i) => ({
  idempotencyKey: `order:${run}-${i}`,
  participants: [
    { service: 'inventory', operations: [{ op: 'reserve', args: { sku: `sku-${i % 200}`, qty: 1 } }] },
    { service: 'payment', operations: [{ op: 'charge', args: { account: `acct-${i % 500}`, amount: 1 + (i % 50) } }] },
    { service: 'order', operations: [{ op: 'create', args: { orderId: `o-${i}`, sku: `sku-${i % 200}`, qty: 1, account: `acct-${i % 500}`, amount: 1 + (i % 50) } }] },
    { service: 'shipping', operations: [{ op: 'schedule', args: { orderId: `o-${i}`, address: `${i % 500} Bench Road, Springfield` } }] },
  ],
});

async function loop(manager, run, total) {
  let next = 0;
  let committed = 0;
  const worker = async () => {
    while (next < total) {
      const result = await manager.begin(order(run, next++));
      if (result.outcome === 'committed') committed += 1;
    }
  };
  await Promise.all(Array.from({ length: Number(concurrency) }, worker));
  return committed;
}

async function measure(checkout, round) {
  const root = resolve(checkout);
  const { TransactionManager, SqliteDecisionLog } = await import(pathToFileURL(join(root, 'packages/coordinator/dist/index.js')).href);
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-manager-alone-'));
  const log = new SqliteDecisionLog(join(dir, 'log.db'));
  const manager = new TransactionManager({ shard: 0, shards: 1, log, transport, pruneIntervalMs: 0, logger: { warn() {}, error() {} } });
  for (const service of SERVICES) manager.registerService({ service, sidecarUrl: `http://127.0.0.1:1/${service}` });
  const run = `${round}-${Math.random().toString(36).slice(2)}`;
  // Warm-up: code optimised, lanes and caches made.
  await loop(manager, `${run}-warm`, 3000);
  await manager.settled();
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const cpu = process.cpuUsage();
  const committed = await loop(manager, run, Number(orders));
  await manager.settled();
  const used = process.cpuUsage(cpu);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  let bytes = 0;
  const walk = (node) => {
    bytes += node.selfSize;
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  manager.close();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return { checkout: root, round, committed, cpuUsPerOrder: Math.round(((used.user + used.system) / committed) * 10) / 10, kbPerOrder: Math.round((bytes / committed / 1024) * 10) / 10 };
}

for (let round = 0; round < Number(rounds); round++) {
  for (const checkout of round % 2 === 0 ? checkouts : [...checkouts].reverse()) console.log(JSON.stringify(await measure(checkout, round)));
}
