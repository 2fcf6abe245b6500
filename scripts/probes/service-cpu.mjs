// What an example service's participant costs per transaction at a given batch size (a probe for
// docs/benchmarks.md, not part of the product): one example service's participant in this process, fed batches
// of [outcomes of the previous batch, K new prepares] as a coordinator sends them under load (K about 14 at
// concurrency 64 with the 4-service order, 150 or more at 1000), each batch through what the batch channel does
// with it (the request's JSON parsed and checked, the answer serialised). Deferred prepares are asked again in
// the next batch, as the coordinator does; a no is rolled back, a yes committed.
//   node scripts/probes/service-cpu.mjs [SERVICES=inventory,payment,order,shipping] [N=1500] [K=14]
// Prints one JSON line per service: CPU per transaction and per batch (process.cpuUsage), wall per batch;
// PROBE_FRAMES=1 adds the WAL frames written per batch, by b-tree.
// TXMESH_MEMBERS_CHECKOUT=<a built checkout> runs that checkout's SDK and examples (before/after pairs).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PROTOCOL_VERSION, newTxId, parseJsonRefusingPrototypeKeys, validateBatchRequest } from '@txmesh/protocol';

const services = (process.argv[2] ?? 'inventory,payment,order,shipping').split(',');
const batches = Number(process.argv[3] ?? 1500);
const K = Math.max(1, Number(process.argv[4] ?? 14));
const FRAMES = process.env.PROBE_FRAMES === '1';
// PROBE_LAG=L (1): a batch's outcomes go out L batches later, so about L x K branches are prepared and undecided
// at any time and hold their keys, as at concurrency 1000 (L about 6 with K 150).
const LAG = Math.max(1, Number(process.env.PROBE_LAG ?? 1));
const WARMUP = Math.max(200, Math.round(4000 / K));
const checkout = process.env.TXMESH_MEMBERS_CHECKOUT || join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const load = (path) => import(pathToFileURL(join(checkout, path)).href);
const { createParticipant, openParticipantDatabase } = await load('packages/participant-sdk/dist/index.js');
const { migrateShared } = await load('examples/ecommerce/dist/ledger.js');
const { resolveCatalog } = await load('examples/ecommerce/dist/catalog.js');
const { orderRequest, randomOrder, seededRandom } = await load('examples/ecommerce/dist/order-workload.js');
// The bench's catalogue (packages/lab/src/bench-options.ts): conflicts rare, refusals rarer.
const catalog = resolveCatalog({ skus: 100_000, stockPerSku: 1_000_000, accounts: 100_000, balancePerAccount: 1_000_000_000 });

/** The WAL's frames, each named by the b-tree its page belongs to (SQLite's dbstat). */
function walFrames(db, walFile) {
  const wal = readFileSync(walFile);
  const pageSize = wal.readUInt32BE(8);
  const owner = new Map(db.prepare('SELECT name, pageno FROM dbstat').all().map((row) => [row.pageno, row.name]));
  const byTree = {};
  let count = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    const page = wal.readUInt32BE(at);
    const name = owner.get(page) ?? (page === 1 ? 'header (page 1)' : 'free or new');
    byTree[name] = (byTree[name] ?? 0) + 1;
    count += 1;
  }
  return { count, byTree };
}

async function measure(service) {
  const definition = (await load(`examples/ecommerce/dist/${service}.js`))[`${service}Service`];
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-service-cpu-'));
  const db = openParticipantDatabase(join(dir, `${service}.db`));
  if (process.env.PROBE_PAGE_SIZE) db.pragma(`page_size = ${process.env.PROBE_PAGE_SIZE}`);
  db.transaction(() => {
    migrateShared(db);
    definition.migrate(db, catalog);
  })();
  // PROBE_SYNCHRONOUS=NORMAL (never for a measurement of the product): how much of a batch is the fsync.
  if (process.env.PROBE_SYNCHRONOUS) db.pragma(`synchronous = ${process.env.PROBE_SYNCHRONOUS}`);
  // PROBE_AUTOCHECKPOINT=N: the WAL is checkpointed every N pages instead of SQLite's (or the SDK's) default.
  if (process.env.PROBE_AUTOCHECKPOINT) db.pragma(`wal_autocheckpoint = ${process.env.PROBE_AUTOCHECKPOINT}`);
  const participant = createParticipant({ service, db, operations: definition.operations, log: () => {} });
  const random = seededRandom(7);
  let orders = 0;
  const operationsOf = () => orderRequest(randomOrder(random, catalog, `order-${++orders}`)).participants.find((p) => p.service === service).operations;
  // The outcomes of each batch's votes, sent LAG batches later.
  const lagging = [];
  let again = [];
  const counts = { yes: 0, no: 0, deferred: 0 };
  const batch = async () => {
    const items = lagging.length >= LAG ? lagging.shift() : [];
    const outcomes = [];
    const prepares = again;
    again = [];
    while (prepares.length < K) {
      prepares.push({ action: 'prepare', txId: newTxId(0), service, deadline: Date.now() + 10_000, operations: operationsOf() });
    }
    items.push(...prepares);
    const wire = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items });
    const response = await participant.handleBatch(validateBatchRequest(parseJsonRefusingPrototypeKeys(Buffer.from(wire))));
    JSON.stringify(response);
    response.results.forEach((r, i) => {
      const item = items[i];
      if (item.action !== 'prepare') {
        if (r.status !== 'ok') throw new Error(`outcome answered ${JSON.stringify(r)}`);
        return;
      }
      if (r.status === 'ok') {
        counts.yes += 1;
        outcomes.push({ action: 'commit', txId: item.txId, service });
      } else if (r.status === 'no') {
        counts.no += 1;
        outcomes.push({ action: 'rollback', txId: item.txId, service });
      } else if (r.reason === 'PREPARE_DEFERRED') {
        counts.deferred += 1;
        again.push(item);
      } else throw new Error(`prepare answered ${JSON.stringify(r)}`);
    });
    lagging.push(outcomes);
  };
  try {
    for (let i = 0; i < WARMUP; i++) await batch();
    Object.assign(counts, { yes: 0, no: 0, deferred: 0 });
    // PROBE_FRAMES=1: the WAL is left to grow while the batches run, so its frames count the pages they wrote
    // (its CPU is then not a service's: writing past the WAL's end allocates blocks a checkpointed WAL reuses).
    if (FRAMES) {
      db.pragma('wal_autocheckpoint = 0');
      db.pragma('wal_checkpoint(TRUNCATE)');
    }
    const stats = participant.stats();
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    for (let i = 0; i < batches; i++) await batch();
    const cpu = process.cpuUsage(cpuBefore);
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const after = participant.stats();
    const frames = FRAMES ? walFrames(db, join(dir, `${service}.db-wal`)) : undefined;
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const round = (n) => Number(n.toFixed(4));
    return {
      service,
      checkout,
      batches,
      preparesPerBatch: K,
      lag: LAG,
      cpuMsPerTx: round(cpuMs / (batches * K)),
      cpuMsPerBatch: round(cpuMs / batches),
      wallMsPerBatch: round(wallMs / batches),
      ...(frames === undefined
        ? {}
        : {
            walFramesPerBatch: round(frames.count / batches),
            walFramesPerBatchByTree: Object.fromEntries(Object.entries(frames.byTree).sort((a, b) => b[1] - a[1]).map(([name, n]) => [name, round(n / batches)])),
          }),
      votes: counts,
      batchTransactionsPerBatch: round((after.batchTransactions - stats.batchTransactions) / batches),
      prepareTransactionsPerBatch: round((after.prepareTransactions - stats.prepareTransactions) / batches),
      decisionTransactionsPerBatch: round((after.decisionTransactions - stats.decisionTransactions) / batches),
    };
  } finally {
    participant.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const all = [];
for (const service of services) {
  const result = await measure(service);
  all.push(result);
  console.log(JSON.stringify(result));
}
if (all.length > 1) {
  const sum = all.reduce((s, r) => s + r.cpuMsPerTx, 0);
  console.log(JSON.stringify({ services: services.join(','), preparesPerBatch: K, cpuMsPerTxAllServices: Number(sum.toFixed(4)) }));
}
