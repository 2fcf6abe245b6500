// What a coordinator's heap policy (TXMESH_HEAP_GROWING_PERCENT, TXMESH_SEMI_SPACE_MB) does at concurrency 1000, as one measurement:
// two shards side by side, each with null participants (one process answering every batch at once) and its own
// closed loop of 4-service orders, one started with each setting, so both see the same machine at the same time.
// Prints one JSON line: per setting, committed tx/s, the coordinator's CPU per committed transaction, its RSS
// at the end and its peak in the window, and its garbage collections (count and pause ms, by kind). A probe for
// docs/benchmarks.md, not part of the product. After `npm run build`:
//   node scripts/probes/coordinator-heap.mjs [percentA=0] [percentB=50] [concurrency=1000] [seconds=15] [warmup=3] [semiA=4] [semiB=4]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTxmeshClient } from '@txmesh/client';
import { BENCH_CATALOG, ClusterCredentials, Member, OPTIMISED_ENV, closedLoop, makeWorkload, processCpuMs, processMemoryMb } from '@txmesh/lab';

const [percentA = '0', percentB = '50', concurrency = '1000', seconds = '15', warmup = '3', semiA = '4', semiB = '4'] = process.argv.slice(2);
const GC_PRELOAD = fileURLToPath(new URL('gc-totals.mjs', import.meta.url));

async function start(percent, semi) {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-heap-probe-'));
  const env = { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV, TXMESH_HEAP_GROWING_PERCENT: percent, TXMESH_SEMI_SPACE_MB: semi, NODE_OPTIONS: `--import ${GC_PRELOAD}` };
  const credentials = new ClusterCredentials(dir);
  // Room for the loop's connections and the stats calls beside them.
  const coordinator = new Member('coordinator-0', 'coordinator', (port) => ['--port', String(port), '--data', dir, '--secret-file', credentials.secretFile, '--max-connections', String(Number(concurrency) * 2)], join(dir, 'coordinator.log'), env);
  const url = await coordinator.start();
  const participants = new Member('null-sidecar', 'null-sidecar', (port) => ['--port', String(port), '--coordinator', url, '--secret-file', credentials.secretFile], join(dir, 'null-sidecar.log'), env);
  await participants.start();
  const client = createTxmeshClient({ coordinatorUrls: [url], connections: Number(concurrency), overloadRetries: 0, credential: credentials.client });
  const committed = async () => (await (await fetch(`${url}/v1/stats`)).json()).committed;
  return { dir, percent, semi, coordinator, participants, client, committed, peakRssMb: 0, inWindow: false };
}

async function measure(shard) {
  const cpuBefore = processCpuMs(shard.coordinator.pid);
  const committedBefore = await shard.committed();
  const tally = await closedLoop({
    concurrency: Number(concurrency),
    warmupMs: Number(warmup) * 1000,
    durationMs: Number(seconds) * 1000,
    client: shard.client,
    next: makeWorkload(1, `heap-${shard.percent}`, BENCH_CATALOG),
    onWindowStart: async () => void (shard.inWindow = true),
  });
  shard.inWindow = false;
  const cpuMs = processCpuMs(shard.coordinator.pid) - cpuBefore;
  const committed = (await shard.committed()) - committedBefore;
  return {
    heapGrowingPercent: Number(shard.percent),
    semiSpaceMb: Number(shard.semi),
    committedTps: Math.round((tally.committed / tally.windowSec) * 10) / 10,
    coordinatorCpuMsPerTx: Math.round((cpuMs / committed) * 1000) / 1000,
    rssEndMb: processMemoryMb(shard.coordinator.pid)?.rssMb,
    peakRssInWindowMb: shard.peakRssMb,
  };
}

const shards = [await start(percentA, semiA), await start(percentB, semiB)];
const sampler = setInterval(() => {
  for (const s of shards) if (s.inWindow) s.peakRssMb = Math.max(s.peakRssMb, processMemoryMb(s.coordinator.pid)?.rssMb ?? 0);
}, 250);
const results = await Promise.all(shards.map(measure));
clearInterval(sampler);
for (const [i, s] of shards.entries()) {
  await s.client.close().catch(() => undefined);
  await s.participants.stop();
  await s.coordinator.stop();
  const line = readFileSync(join(s.dir, 'coordinator.log'), 'utf8').match(/^TXMESH_GC_TOTALS (.*)$/m);
  results[i].gc = line ? JSON.parse(line[1]) : undefined;
  rmSync(s.dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ loadavg1m: Math.round(loadavg()[0] * 10) / 10, concurrency: Number(concurrency), seconds: Number(seconds), results }));
