/**
 * How much of a busy coordinator's time its event loop spends inside the decision log's forced group commit
 * (issue 18, "take forced writes off the event loop"). Prints one JSON document.
 *
 *   node packages/lab/dist/log-force-bench.js [--concurrency 64,1000] [--duration 8] [--warmup 2] [--modes alone,cluster]
 *
 * `alone`: one coordinator whose four services are null participants (`txmesh null-sidecar`); `cluster`: the
 * bench's cluster (the four example services behind their sidecars). Each closed loop runs the 4-service order;
 * over the measured window the coordinator's own `/metrics` give the time its forced groups took
 * (`txmesh_decision_log_force_duration_seconds`: serialising, writing and fsyncing a group, all on the event
 * loop) and /proc its CPU. `blockedShareOfWall` is that time over the window: what a log writer on another thread
 * could give back to the loop at most; `blockedShareOfCpu` is it over the coordinator's CPU time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTxmeshClient, type TxmeshClient } from '@txmesh/client';
import { CoordinatorMetricNames } from '@txmesh/coordinator';
import { closedLoop } from './bench-closed-loop.ts';
import { round } from './bench-math.ts';
import { BENCH_CATALOG, OPTIMISED_ENV } from './bench-options.ts';
import { processCpuMs } from './bench-process.ts';
import { waitForDrain } from './bench-snapshot.ts';
import { makeWorkload } from './bench-workload.ts';
import { Cluster, Member } from './cluster.ts';
import { ClusterCredentials } from './cluster-credentials.ts';
import { percentile } from './demo.ts';

const FORCE_METRIC = CoordinatorMetricNames.LOG_FORCE_DURATION;
type Mode = 'alone' | 'cluster';

interface ForceCounters {
  seconds: number;
  groups: number;
  cpuMs: number;
}

/** Sums a histogram's _sum and _count over every label set in a Prometheus text page. */
function forceTotals(page: string): { seconds: number; groups: number } {
  let seconds = 0;
  let groups = 0;
  for (const line of page.split('\n')) {
    if (line.startsWith(`${FORCE_METRIC}_sum`)) seconds += Number(line.slice(line.lastIndexOf(' ') + 1));
    else if (line.startsWith(`${FORCE_METRIC}_count`)) groups += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return { seconds, groups };
}

async function readCounters(coordinator: Member): Promise<ForceCounters> {
  const cpuMs = processCpuMs(coordinator.pid) ?? NaN;
  if (!coordinator.metricsUrl) throw new Error('the coordinator serves no /metrics');
  // Its own port: the shard's connection cap and overload refusals do not reach it.
  return { ...forceTotals(await (await fetch(coordinator.metricsUrl)).text()), cpuMs };
}

interface Target {
  coordinator: Member;
  client: TxmeshClient;
  drain: () => Promise<void>;
  stop: () => Promise<void>;
}

async function startAlone(concurrency: number): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-force-'));
  const env = { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV };
  const credentials = new ClusterCredentials(dir);
  const coordinator = new Member('coordinator-0', 'coordinator', (port) => ['--port', String(port), '--data', dir, '--secret-file', credentials.secretFile], join(dir, 'coordinator-0.log'), env);
  const coordinatorUrl = await coordinator.start();
  const participants = new Member('null-sidecar', 'null-sidecar', (port) => ['--port', String(port), '--coordinator', coordinatorUrl, '--secret-file', credentials.secretFile], join(dir, 'null-sidecar.log'), env);
  await participants.start();
  const client = createTxmeshClient({ coordinatorUrls: [coordinatorUrl], connections: concurrency, overloadRetries: 0, credential: credentials.client });
  return {
    coordinator,
    client,
    drain: async () => undefined,
    stop: async () => {
      await client.close().catch(() => undefined);
      await participants.stop();
      await coordinator.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startCluster(concurrency: number): Promise<Target> {
  const cluster = await Cluster.start({ catalog: BENCH_CATALOG, env: { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV } });
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: concurrency, overloadRetries: 0, ...cluster.clientOptions });
  return {
    coordinator: cluster.coordinators[0]!,
    client,
    drain: async () => void (await waitForDrain(cluster, 60_000)),
    stop: async () => {
      await client.close().catch(() => undefined);
      await cluster.stop();
      cluster.removeData();
    },
  };
}

async function measure(mode: Mode, concurrency: number, warmupSec: number, durationSec: number): Promise<Record<string, unknown>> {
  const target = mode === 'alone' ? await startAlone(concurrency) : await startCluster(concurrency);
  try {
    let before: ForceCounters | undefined;
    let after: ForceCounters | undefined;
    const tally = await closedLoop({
      concurrency,
      warmupMs: warmupSec * 1000,
      durationMs: durationSec * 1000,
      client: target.client,
      next: makeWorkload(1, `force-${mode}-${concurrency}`, BENCH_CATALOG),
      onWindowStart: async () => void (before = await readCounters(target.coordinator)),
      onWindowEnd: async () => void (after = await readCounters(target.coordinator)),
    });
    await target.drain();
    if (!before || !after) throw new Error('the window did not produce both readings');
    const forcedSec = after.seconds - before.seconds;
    const groups = after.groups - before.groups;
    const cpuSec = (after.cpuMs - before.cpuMs) / 1000;
    // Every transaction answered committed in the window forced one decision record.
    const committed = tally.committed;
    // Committed transactions without a forced group mean the histogram was not found: a blocked share of 0 would lie.
    if (committed > 0 && groups === 0) throw new Error(`the coordinator's /metrics has no ${FORCE_METRIC} samples`);
    const sorted = [...tally.latencies].sort((a, b) => a - b);
    return {
      mode,
      concurrency,
      committedTps: round(tally.committed / tally.windowSec),
      p50Ms: round(percentile(sorted, 50)),
      forcedGroupsPerSec: round(groups / tally.windowSec),
      recordsPerGroup: round(groups > 0 ? committed / groups : 0),
      meanForceMs: round(groups > 0 ? (forcedSec * 1000) / groups : 0, 3),
      coordinatorCpuShareOfWall: round(cpuSec / tally.windowSec, 3),
      coordinatorCpuMsPerTx: round(committed > 0 ? (cpuSec * 1000) / committed : 0, 3),
      blockedShareOfWall: round(forcedSec / tally.windowSec, 3),
      blockedShareOfCpu: round(cpuSec > 0 ? forcedSec / cpuSec : 0, 3),
    };
  } finally {
    await target.stop();
  }
}

function listFlag(args: string[], name: string, fallback: string): string[] {
  const at = args.indexOf(name);
  return (at >= 0 ? (args[at + 1] ?? '') : fallback).split(',').filter((s) => s.length > 0);
}

const args = process.argv.slice(2);
const concurrencies = listFlag(args, '--concurrency', '64,1000').map(Number);
const modes = listFlag(args, '--modes', 'alone,cluster') as Mode[];
const [durationSec, warmupSec] = [Number(listFlag(args, '--duration', '8')[0]), Number(listFlag(args, '--warmup', '2')[0])];
if (concurrencies.some((c) => !Number.isInteger(c) || c < 1) || modes.some((m) => m !== 'alone' && m !== 'cluster') || !(durationSec > 0 && warmupSec >= 0)) {
  console.error('usage: log-force-bench.js [--concurrency 64,1000] [--modes alone,cluster] [--duration SEC] [--warmup SEC]');
  process.exitCode = 2;
} else {
  const runs = [];
  for (const mode of modes) {
    for (const concurrency of concurrencies) {
      const run = await measure(mode, concurrency, warmupSec, durationSec);
      process.stderr.write(`${JSON.stringify(run)}\n`);
      runs.push(run);
    }
  }
  console.log(JSON.stringify({ bench: 'log-force', node: process.version, durationSec, warmupSec, runs }));
}
