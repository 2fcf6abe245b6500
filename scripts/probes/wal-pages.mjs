// Which pages a service's SQLite transaction writes to its WAL, per batch of [commit the previous transaction,
// prepare the next] (a probe for docs/benchmarks.md, not part of the product): one example service's
// participant in this process, no HTTP, the WAL not checkpointed while it runs; then every frame's page is
// named by the b-tree (table or index) it belongs to (SQLite's dbstat table).
//   node scripts/probes/wal-pages.mjs [SERVICE=inventory] [N=400]
// PROBE_ITEMS=K (1) puts K transactions in each batch. Prints a JSON line: frames per batch, and per b-tree,
// and the process's CPU per batch while they were written (the SDK's and SQLite's share of a batch, no HTTP).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PROTOCOL_VERSION, newTxId } from '@txmesh/protocol';

const service = process.argv[2] ?? 'inventory';
const batches = Number(process.argv[3] ?? 400);
const ITEMS = Math.max(1, Number(process.env.PROBE_ITEMS ?? 1));
const WARMUP = 200;
const checkout = process.env.TXMESH_MEMBERS_CHECKOUT || join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { createParticipant, openParticipantDatabase } = await import(pathToFileURL(join(checkout, 'packages', 'participant-sdk', 'dist', 'index.js')).href);
const module = await import(pathToFileURL(join(checkout, 'examples', 'ecommerce', 'dist', `${service}.js`)).href);
const { migrateShared } = await import(pathToFileURL(join(checkout, 'examples', 'ecommerce', 'dist', 'ledger.js')).href);
const definition = module[`${service}Service`];
const { resolveCatalog } = await import(pathToFileURL(join(checkout, 'examples', 'ecommerce', 'dist', 'catalog.js')).href);
const { orderRequest, randomOrder, seededRandom } = await import(pathToFileURL(join(checkout, 'examples', 'ecommerce', 'dist', 'order-workload.js')).href);

const dir = mkdtempSync(join(tmpdir(), 'txmesh-wal-pages-'));
const file = join(dir, `${service}.db`);
const db = openParticipantDatabase(file);
// Stock and money enough that no prepare is refused (as in the bench's catalogue).
const catalog = resolveCatalog({ skus: 1000, stockPerSku: 1_000_000, accounts: 1000, balancePerAccount: 1_000_000_000 });
db.transaction(() => {
  migrateShared(db);
  definition.migrate(db, catalog);
})();
const participant = createParticipant({ service, db, operations: definition.operations, log: () => {} });
const random = seededRandom(7);
/** This service's operations of a random order, as the bench's workload sends them. */
let orders = 0;
const operationsOf = () => {
  for (;;) {
    const order = randomOrder(random, catalog, `order-${++orders}`);
    // An order without an address is refused by shipping; the probe measures votes of yes.
    if (order.address !== '') return orderRequest(order).participants.find((p) => p.service === service).operations;
  }
};

let previous = [];
const batch = async () => {
  const items = previous.map((txId) => ({ action: 'commit', txId, service }));
  previous = [];
  for (let k = 0; k < ITEMS; k++) {
    const txId = newTxId(0);
    previous.push(txId);
    items.push({ action: 'prepare', txId, service, deadline: Date.now() + 5000, operations: operationsOf() });
  }
  const { results } = await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items });
  const bad = results.find((r) => r.status !== 'ok');
  if (bad) throw new Error(`batch answered ${JSON.stringify(bad)}`);
};

try {
  for (let i = 0; i < WARMUP; i++) await batch();
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('wal_checkpoint(TRUNCATE)');
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < batches; i++) await batch();
  const cpu = process.cpuUsage(cpuBefore);
  const wal = readFileSync(`${file}-wal`);
  const pageSize = wal.readUInt32BE(8);
  const frames = [];
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    frames.push(wal.readUInt32BE(at));
    if (wal.readUInt32BE(at + 4) !== 0) commits += 1;
  }
  const owner = new Map(db.prepare('SELECT name, pageno FROM dbstat').all().map((row) => [row.pageno, row.name]));
  const byTree = {};
  for (const page of frames) {
    const name = owner.get(page) ?? (page === 1 ? 'header (page 1)' : 'free or new');
    byTree[name] = (byTree[name] ?? 0) + 1;
  }
  const per = (n) => Number((n / batches).toFixed(2));
  const sorted = Object.fromEntries(Object.entries(byTree).sort((a, b) => b[1] - a[1]).map(([name, n]) => [name, per(n)]));
  console.log(JSON.stringify({ checkout, service, batches, itemsPerBatch: ITEMS, commitsPerBatch: per(commits), framesPerBatch: per(frames.length), cpuMsPerBatch: per((cpu.user + cpu.system) / 1000), bytesPerBatch: Math.round((frames.length * (24 + pageSize)) / batches), byTree: sorted }));
} finally {
  participant.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
}
