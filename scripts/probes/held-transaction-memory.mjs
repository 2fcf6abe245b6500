// How many bytes of a coordinator's heap one transaction holds while its commits are being delivered: a
// TransactionManager (memory log, no sockets) whose transport answers every prepare yes at once and holds every
// commit unanswered, so each decided transaction stays in delivery. Prints one JSON line: live heap per held
// 4-branch transaction after a full collection (the recent map stays empty: nothing finishes). Run from a built
// checkout: node --expose-gc scripts/probes/held-transaction-memory.mjs [transactions=5000] [checkout=.]
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [count = '5000', checkout = '.'] = process.argv.slice(2);
const root = resolve(checkout);
const { TransactionManager, MemoryDecisionLog, MemoryLogStore } = await import(pathToFileURL(join(root, 'packages/coordinator/dist/index.js')).href);
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

const SERVICES = ['inventory', 'payment', 'order', 'shipping'];
const held = [];
const transport = {
  send(_url, items) {
    if (items.every((item) => item.action === 'prepare')) return Promise.resolve({ results: items.map((item) => ({ txId: item.txId, service: item.service, action: item.action, status: 'ok' })) });
    return new Promise((answer) => held.push({ items, answer }));
  },
};
const log = new MemoryDecisionLog(new MemoryLogStore());
// One item per call (batching off), so a held commit never holds a prepare that rode in its batch; no admission limits.
const manager = new TransactionManager({ shard: 0, shards: 1, log, transport, batching: false, scheduler: false, pruneIntervalMs: 0, logger: { warn() {}, error() {} } });
for (const service of SERVICES) manager.registerService({ service, sidecarUrl: `http://127.0.0.1:1/${service}` });

const order = (i) => ({
  idempotencyKey: `held-${i}`,
  timeoutMs: 60_000,
  participants: SERVICES.map((service) => ({ service, operations: [{ op: 'reserve', args: { sku: `sku-${i % 200}`, qty: 1, account: `acct-${i % 500}` } }] })),
});
const settle = () => new Promise((done) => setTimeout(done, 50));
// Warm up (code, lanes, caches), then measure the difference that N held transactions make.
for (let i = 0; i < 200; i++) await manager.begin(order(-1 - i));
await settle();
globalThis.gc();
const before = process.memoryUsage().heapUsed;
const n = Number(count);
let committed = 0;
for (let i = 0; i < n; i += 100) {
  const results = await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => manager.begin(order(i + j))));
  committed += results.filter((r) => r.outcome === 'committed').length;
}
await settle();
globalThis.gc();
const after = process.memoryUsage().heapUsed;
console.log(JSON.stringify({ checkout: root, transactions: n, committed, inDelivery: manager.inFlight, heldBatches: held.length, bytesPerHeldTransaction: Math.round((after - before) / n) }));
for (const batch of held) batch.answer({ results: batch.items.map((item) => ({ txId: item.txId, service: item.service, action: item.action, status: 'ok' })) });
manager.close();
await log.close();
