// What the sidecar's proxy adds to a service's ordinary traffic: GET /health of the inventory example service,
// straight to the service and through its sidecar, in alternating blocks on a running cluster (nothing else
// loading it). Concurrency 1: sequential requests on one kept-alive connection, p50/p99 of each way and the
// sidecar's CPU per proxied request (/proc). Concurrency 64: a closed loop on 64 kept-alive connections for a
// few seconds each way, requests/s and p50. Prints one JSON object.
// A probe for docs/benchmarks.md, not part of the product. After `npm run build`:
//   node scripts/probes/proxy-overhead.mjs [requests-per-block=1500] [blocks=4] [seconds-at-64=3]
import { Agent, request } from 'node:http';
import { BENCH_CATALOG, Cluster, processCpuMs } from '@txmesh/lab';

const [perBlock = '1500', blocks = '4', secondsAt64 = '3'] = process.argv.slice(2);

function get(url, agent) {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function sequential(url, count, pid) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples = [];
  await get(url, agent);
  const cpuBefore = processCpuMs(pid);
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await get(url, agent);
    samples.push(performance.now() - t0);
  }
  const cpuMs = processCpuMs(pid) - cpuBefore;
  agent.destroy();
  return { samples, cpuMs };
}

async function closedLoopAt(url, concurrency, ms) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const samples = [];
  const end = performance.now() + ms;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await get(url, agent);
      samples.push(performance.now() - t0);
    }
  }));
  agent.destroy();
  return { rps: Math.round(samples.length / (ms / 1000)), p50Ms: quantile(samples, 0.5) };
}

function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] * 1000) / 1000;
}

const cluster = await Cluster.start({ shards: 1, catalog: BENCH_CATALOG, env: { TXMESH_LOG_LEVEL: 'warn' } });
try {
  const sidecar = cluster.sidecars.get('inventory');
  const service = cluster.services.get('inventory');
  const ways = { direct: `${service.url}/health`, throughSidecar: `${sidecar.url}/health` };
  const at1 = { direct: { samples: [], cpuMs: 0 }, throughSidecar: { samples: [], cpuMs: 0 } };
  // Warm both paths first (compiled code on both sides), then alternate blocks.
  for (const url of Object.values(ways)) await sequential(url, 2000, sidecar.pid);
  for (let block = 0; block < Number(blocks); block++) {
    for (const way of block % 2 === 0 ? ['direct', 'throughSidecar'] : ['throughSidecar', 'direct']) {
      const run = await sequential(ways[way], Number(perBlock), sidecar.pid);
      at1[way].samples.push(...run.samples);
      at1[way].cpuMs += run.cpuMs;
    }
  }
  const at64 = {};
  for (const way of ['direct', 'throughSidecar', 'direct', 'throughSidecar']) {
    const run = await closedLoopAt(ways[way], 64, Number(secondsAt64) * 1000);
    (at64[way] ??= []).push(run);
  }
  const summary = (way) => ({ p50Ms: quantile(at1[way].samples, 0.5), p99Ms: quantile(at1[way].samples, 0.99), sidecarCpuMsPerRequest: Math.round((at1[way].cpuMs / at1[way].samples.length) * 1000) / 1000 });
  const direct = summary('direct');
  const through = summary('throughSidecar');
  console.log(JSON.stringify({
    concurrency1: { direct, throughSidecar: through, addedP50Ms: Math.round((through.p50Ms - direct.p50Ms) * 1000) / 1000 },
    concurrency64: at64,
  }, null, 1));
} finally {
  await cluster.stop();
  cluster.removeData();
}
