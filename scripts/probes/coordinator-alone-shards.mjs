// The coordinator alone (null participants) with one shard and with two, run in turn (order alternating per round):
// does a second coordinator process raise the ceiling on this machine? Each run starts its shards (--shards N),
// one null-participants process registered with every shard and a closed loop of 4-service orders spread over the
// shards by the client, measures a window after a warm-up, and stops. Prints one JSON line per run: committed tx/s,
// p50, and the cores used by the shards together, the null participants and this process (the load generator).
// A probe for docs/benchmarks.md, not part of the product. After `npm run build`:
//   node scripts/probes/coordinator-alone-shards.mjs [concurrency=64] [seconds=8] [rounds=2]
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTxmeshClient } from '@txmesh/client';
import { BENCH_CATALOG, ClusterCredentials, Member, OPTIMISED_ENV, closedLoop, makeWorkload, processCpuMs } from '@txmesh/lab';

const [concurrency = '64', seconds = '8', rounds = '2'] = process.argv.slice(2);
const cores = (ms, windowSec) => Math.round(ms / windowSec / 10) / 100;

async function run(shards) {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-alone-shards-'));
  const env = { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV };
  const credentials = new ClusterCredentials(dir);
  const coordinators = [];
  const urls = [];
  let participants;
  let client;
  try {
    for (let shard = 0; shard < shards; shard++) {
      const args = (port) => ['--shard', String(shard), '--shards', String(shards), '--port', String(port), '--data', dir, '--secret-file', credentials.secretFile];
      const member = new Member(`coordinator-${shard}`, 'coordinator', args, join(dir, `coordinator-${shard}.log`), env);
      coordinators.push(member);
      urls.push(await member.start());
    }
    participants = new Member('null-sidecar', 'null-sidecar', (port) => ['--port', String(port), '--coordinator', urls.join(','), '--secret-file', credentials.secretFile], join(dir, 'null-sidecar.log'), env);
    await participants.start();
    client = createTxmeshClient({ coordinatorUrls: urls, connections: Number(concurrency), overloadRetries: 0, credential: credentials.client });
    const shardsCpu = () => coordinators.reduce((sum, m) => sum + processCpuMs(m.pid), 0);
    let before;
    const tally = await closedLoop({
      concurrency: Number(concurrency),
      warmupMs: 2000,
      durationMs: Number(seconds) * 1000,
      client,
      next: makeWorkload(1, `alone-shards-${shards}`, BENCH_CATALOG),
      onWindowStart: async () => {
        before = { shards: shardsCpu(), participants: processCpuMs(participants.pid), self: process.cpuUsage() };
      },
    });
    const self = process.cpuUsage(before.self);
    const sorted = [...tally.latencies].sort((a, b) => a - b);
    return {
      shards,
      committedTps: Math.round(tally.committed / tally.windowSec),
      p50Ms: Math.round(sorted[Math.floor(sorted.length / 2)] * 10) / 10,
      cores: {
        shards: cores(shardsCpu() - before.shards, tally.windowSec),
        nullParticipants: cores(processCpuMs(participants.pid) - before.participants, tally.windowSec),
        loadGenerator: cores((self.user + self.system) / 1000, tally.windowSec),
      },
      loadavg1m: loadavg()[0],
    };
  } finally {
    await client?.close().catch(() => undefined);
    await participants?.stop();
    for (const member of coordinators) await member.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (let round = 0; round < Number(rounds); round++) {
  for (const shards of round % 2 === 0 ? [1, 2] : [2, 1]) console.log(JSON.stringify(await run(shards)));
}
