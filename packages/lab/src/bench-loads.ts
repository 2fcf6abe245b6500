/**
 * `txmesh bench --loads`: the loads services run at, rather than the 1000-transaction best point.
 *
 * On one fresh cluster (optimised mode): concurrency 1 with a 1-service and with the 4-service order,
 * concurrency 64, and open-loop Poisson arrivals at 50% and 80% of the concurrency-64 peak. Each closed
 * loop is bracketed by snapshots, so CPU per committed transaction is reported per role. Read against:
 * - the null echo at concurrency 1 and 64 (the same client, a fastify endpoint that answers at once);
 * - `physicalPathMs`: the client's null round trip + one null round trip through a sidecar to its service
 *   (the coordinator → sidecar → service hops) + one SQLite FULL commit for each forced write on the
 *   critical path (the service's barrier, with the sidecar's record forced beside it, then the coordinator's decision);
 * - the local baseline: the whole order as one SQLite transaction in one process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTxmeshClient, type TxmeshClient } from '@txmesh/client';
import { seededRandom } from '@txmesh/example-ecommerce';
import { closedLoop } from './bench-closed-loop.ts';
import { measureLocalBaseline, type LocalBaseline } from './bench-local-baseline.ts';
import { round, sum } from './bench-math.ts';
import { runNullEcho, type NullEchoFigures } from './bench-null-echo.ts';
import { openLoop, type OpenLoopFigures } from './bench-open-loop.ts';
import { BENCH_CATALOG, OPTIMISED_ENV, type BenchOptions } from './bench-options.ts';
import { PROCESS_ROLES, type ProcessRole } from './bench-roles.ts';
import type { TargetCheck } from './bench-report.ts';
import { lower, upper } from './bench-targets.ts';
import { runFigures } from './bench-run-figures.ts';
import { members, snapshot, waitForDrain } from './bench-snapshot.ts';
import { makeWorkload, type WorkItem } from './bench-workload.ts';
import { processCpuMs } from './bench-process.ts';
import { Cluster, Member } from './cluster.ts';
import { ClusterCredentials } from './cluster-credentials.ts';
import { percentile } from './demo.ts';

/**
 * Forced writes a commit waits for one after the other: the service's barrier (the sidecar's prepared record is
 * forced at the same time, "recorded ahead"), then the coordinator's decision.
 */
export const FORCED_WRITES_ON_CRITICAL_PATH = 2;
const HIGH_CONCURRENCY = 64;
/** Small batches, many calls: the warm-up exercises the per-call path that concurrency 1 runs on. */
const CLUSTER_WARMUP_CONCURRENCY = 8;
/**
 * How long the paced round trips leave the processes asleep: about one concurrency-1 transaction on an idle
 * machine, and short enough that their timers' background work adds little to the CPU per request.
 */
const PACING_GAP_MS = 10;

export interface LoadRun {
  concurrency: number;
  participants: number;
  committedTps: number;
  p50Ms: number;
  p99Ms: number;
  aborted: number;
  errors: number;
  cpuMsPerTx: number;
  /** CPU per committed transaction of each role (all its members together). */
  cpuMsPerTxByRole: Record<ProcessRole, number>;
  requestsPerTx: number;
}

export interface LoadsReport {
  machine: { cpus: number; loadavg1m: number };
  durationSec: number;
  warmupSec: number;
  /** Unmeasured seconds of orders at concurrency 8 on the fresh cluster before its first load (`--loads-warmup`). */
  clusterWarmupSec: number;
  nullEcho: { c1: Pick<NullEchoFigures, 'nullEchoRps' | 'p50Ms' | 'p99Ms'>; c64: Pick<NullEchoFigures, 'nullEchoRps' | 'p50Ms' | 'p99Ms'> };
  physicalPath: { clientRoundTripP50Ms: number; sidecarToServiceRoundTripP50Ms: number; sqliteFullCommitP50Ms: number; forcedWrites: number; physicalPathMs: number };
  /**
   * The same null sidecar → service round trip, back to back and then with the processes left asleep between
   * requests for about one concurrency-1 transaction (`gapMs`, 10), as they are at concurrency 1: what a request
   * costs a process that was idle, in time and in CPU (sidecar and service together, background timers included).
   */
  pacing: { gapMs: number; backToBack: NullRoundTrips; paced: NullRoundTrips };
  /** What the sidecar's proxy adds to the service's ordinary traffic at concurrency 1 (see ProxyOverhead). */
  proxy: ProxyOverhead;
  localBaseline: LocalBaseline;
  c1: { oneService: LoadRun; fourServices: LoadRun };
  c64: LoadRun & { overNullEcho: number };
  openLoop: { at50: OpenLoopFigures; at80: OpenLoopFigures };
  /** One coordinator whose four services are null participants (one process that votes yes and acks at once). */
  coordinatorAlone: CoordinatorAlone;
  targets: TargetCheck[];
}

/**
 * The inventory service's GET /health straight to the service and through its sidecar's proxy (every path outside
 * /txmesh/ is proxied), back to back on one kept-alive connection, in alternating blocks: the latency the proxy adds
 * to a service's ordinary requests, and the sidecar's CPU per proxied request.
 */
export interface ProxyOverhead {
  directP50Ms: number;
  throughSidecarP50Ms: number;
  /** throughSidecarP50Ms − directP50Ms. */
  addedP50Ms: number;
  sidecarCpuMsPerRequest: number;
}

export interface CoordinatorAlone {
  concurrency: number;
  committedTps: number;
  p50Ms: number;
  p99Ms: number;
  /** committed/s ÷ the null echo's req/s at the same concurrency. */
  overNullEcho: number;
  coordinatorCpuMsPerTx: number;
}

export async function runLoadsBench(options: BenchOptions, say: (line: string) => void): Promise<LoadsReport> {
  const { cpus, loadavg } = await import('node:os');
  const machine = { cpus: cpus().length, loadavg1m: round(loadavg()[0] ?? 0) };
  say(`txmesh bench --loads: ${machine.cpus} CPU(s), load ${machine.loadavg1m}; ${options.warmupSec} s warm-up + ${options.durationSec} s per load`);

  const localBaseline = measureLocalBaseline(Math.min(options.durationSec, 5) * 1000);
  say(`[local] FULL commit p50 ${localBaseline.sqliteFullCommitP50Ms} ms; the order as one local transaction: ${localBaseline.perCommit.ordersPerSec}/s (p50 ${localBaseline.perCommit.p50Ms} ms), 64 per commit: ${localBaseline.batched64.ordersPerSec}/s`);

  const nullAt = async (concurrency: number): Promise<Pick<NullEchoFigures, 'nullEchoRps' | 'p50Ms' | 'p99Ms'>> => {
    const { nullEchoRps, p50Ms, p99Ms } = await runNullEcho({ ...options, concurrency }, say);
    say(`[null-echo] concurrency ${concurrency}: ${nullEchoRps} req/s, p50 ${p50Ms} ms`);
    return { nullEchoRps, p50Ms, p99Ms };
  };
  const nullEcho = { c1: await nullAt(1), c64: await nullAt(HIGH_CONCURRENCY) };
  const alone = await runCoordinatorAlone(options, HIGH_CONCURRENCY, say);
  const coordinatorAlone = { ...alone, overNullEcho: round(nullEcho.c64.nullEchoRps > 0 ? alone.committedTps / nullEcho.c64.nullEchoRps : 0, 4) };
  say(`[loads] coordinator alone at ${HIGH_CONCURRENCY}: ${alone.committedTps} committed/s (${coordinatorAlone.overNullEcho}x the null echo), p50 ${alone.p50Ms} ms, coordinator CPU ${alone.coordinatorCpuMsPerTx} ms/tx`);

  say(`[loads] starting 1 shard, 4 services, 4 sidecars (optimised)`);
  const cluster = await Cluster.start({ shards: 1, catalog: BENCH_CATALOG, env: { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV } });
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: HIGH_CONCURRENCY, overloadRetries: 0, ...cluster.clientOptions });
  let failed = true;
  try {
    if (options.loadsWarmupSec > 0) {
      say(`[loads] warming the cluster: ${options.loadsWarmupSec} s of 4-service orders at concurrency ${CLUSTER_WARMUP_CONCURRENCY}, not measured`);
      await closedLoop({ concurrency: CLUSTER_WARMUP_CONCURRENCY, warmupMs: 0, durationMs: options.loadsWarmupSec * 1000, client, next: makeWorkload(options.seed, 'cluster-warmup', BENCH_CATALOG) });
      await waitForDrain(cluster, 60_000);
    }
    const sidecarToService = (await nullRoundTrips(`${cluster.sidecars.get('inventory')!.url}/health`, 300)).p50Ms;
    const physicalPathMs = round(nullEcho.c1.p50Ms + sidecarToService + FORCED_WRITES_ON_CRITICAL_PATH * localBaseline.sqliteFullCommitP50Ms, 3);
    const physicalPath = {
      clientRoundTripP50Ms: nullEcho.c1.p50Ms,
      sidecarToServiceRoundTripP50Ms: sidecarToService,
      sqliteFullCommitP50Ms: localBaseline.sqliteFullCommitP50Ms,
      forcedWrites: FORCED_WRITES_ON_CRITICAL_PATH,
      physicalPathMs,
    };
    say(`[loads] physical path ${physicalPathMs} ms (client ${nullEcho.c1.p50Ms} + sidecar→service ${sidecarToService} + ${FORCED_WRITES_ON_CRITICAL_PATH} × FULL commit ${localBaseline.sqliteFullCommitP50Ms})`);

    const closed = async (label: string, concurrency: number, onlyInventory: boolean): Promise<LoadRun> => {
      const orders = makeWorkload(options.seed, label, BENCH_CATALOG);
      const next = onlyInventory ? (): WorkItem => inventoryOnly(orders()) : orders;
      const run = await measuredClosedLoop(cluster, client, label, concurrency, onlyInventory ? 1 : 4, next, options);
      say(`[loads] ${label}: ${run.committedTps} committed/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, CPU ${run.cpuMsPerTx} ms/tx (${PROCESS_ROLES.map((r) => `${r} ${run.cpuMsPerTxByRole[r]}`).join(', ')})`);
      return run;
    };
    const oneService = await closed('c1-1svc', 1, true);
    const fourServices = await closed('c1-4svc', 1, false);
    const pacing = await measurePacing(cluster, PACING_GAP_MS);
    say(
      `[loads] sidecar→service null round trip back to back: p50 ${pacing.backToBack.p50Ms} ms, ${pacing.backToBack.cpuMsPerRequest} ms CPU; ` +
        `${pacing.gapMs} ms apart: p50 ${pacing.paced.p50Ms} ms, ${pacing.paced.cpuMsPerRequest} ms CPU`,
    );
    const proxy = await measureProxy(cluster);
    say(`[loads] the sidecar's proxy at concurrency 1: p50 ${proxy.directP50Ms} ms straight to the service, ${proxy.throughSidecarP50Ms} ms through the sidecar (+${proxy.addedP50Ms} ms), sidecar CPU ${proxy.sidecarCpuMsPerRequest} ms per request`);
    const high = await closed(`c${HIGH_CONCURRENCY}-4svc`, HIGH_CONCURRENCY, false);
    const c64 = { ...high, overNullEcho: round(nullEcho.c64.nullEchoRps > 0 ? high.committedTps / nullEcho.c64.nullEchoRps : 0, 4) };

    const open = async (share: number): Promise<OpenLoopFigures> => {
      await waitForDrain(cluster, 60_000);
      const figures = await openLoop({
        ratePerSec: Math.max(1, high.committedTps * share),
        warmupMs: options.warmupSec * 1000,
        durationMs: options.durationSec * 1000,
        client,
        next: makeWorkload(options.seed, `open-${share}`, BENCH_CATALOG),
        random: seededRandom(options.seed + Math.round(share * 100)),
      });
      say(`[loads] open loop at ${Math.round(share * 100)}% of the c${HIGH_CONCURRENCY} peak (${figures.targetTps}/s): ${figures.committedTps} committed/s, p50 ${figures.p50Ms} ms, p99 ${figures.p99Ms} ms, dropped ${figures.dropped}`);
      return figures;
    };
    const openLoopFigures = { at50: await open(0.5), at80: await open(0.8) };

    const report: LoadsReport = {
      machine,
      durationSec: options.durationSec,
      warmupSec: options.warmupSec,
      clusterWarmupSec: options.loadsWarmupSec,
      nullEcho,
      physicalPath,
      pacing,
      proxy,
      localBaseline,
      c1: { oneService, fourServices },
      c64,
      openLoop: openLoopFigures,
      coordinatorAlone,
      targets: [],
    };
    report.targets = loadsTargets(report);
    failed = false;
    return report;
  } finally {
    await client.close().catch(() => undefined);
    await cluster.stop();
    if (failed) say(`[loads] failed; logs kept in ${cluster.dataDir}`);
    else cluster.removeData();
  }
}

/** A coordinator with null participants: its own ceiling, before any participant does any work. */
async function runCoordinatorAlone(options: BenchOptions, concurrency: number, say: (line: string) => void): Promise<Omit<CoordinatorAlone, 'overNullEcho'>> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-alone-'));
  const env = { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV };
  // With credentials, as every cluster runs: verifying each caller is part of the coordinator's own work.
  const credentials = new ClusterCredentials(dir);
  const coordinator = new Member('coordinator-0', 'coordinator', (port) => ['--port', String(port), '--data', dir, '--secret-file', credentials.secretFile], join(dir, 'coordinator-0.log'), env);
  const started: Member[] = [coordinator];
  let failed = true;
  try {
    const coordinatorUrl = await coordinator.start();
    const participants = new Member('null-sidecar', 'null-sidecar', (port) => ['--port', String(port), '--coordinator', coordinatorUrl, '--secret-file', credentials.secretFile], join(dir, 'null-sidecar.log'), env);
    started.push(participants);
    await participants.start();
    say(`[loads] coordinator alone: 1 shard, 4 null participants in one process, ${options.warmupSec} s warm-up + ${options.durationSec} s at concurrency ${concurrency}`);
    const client = createTxmeshClient({ coordinatorUrls: [coordinatorUrl], connections: concurrency, overloadRetries: 0, credential: credentials.client });
    let cpuBefore = NaN;
    let cpuAfter = NaN;
    let committedBefore = 0;
    let committedAfter = 0;
    const committedNow = async (): Promise<number> => ((await (await fetch(`${coordinatorUrl}/v1/stats`)).json()) as { committed: number }).committed;
    try {
      const tally = await closedLoop({
        concurrency,
        warmupMs: options.warmupSec * 1000,
        durationMs: options.durationSec * 1000,
        client,
        next: makeWorkload(options.seed, 'alone', BENCH_CATALOG),
        onWindowStart: async () => {
          cpuBefore = processCpuMs(coordinator.pid) ?? NaN;
          committedBefore = await committedNow();
        },
        onWindowEnd: async () => {
          cpuAfter = processCpuMs(coordinator.pid) ?? NaN;
          committedAfter = await committedNow();
        },
      });
      const sorted = [...tally.latencies].sort((a, b) => a - b);
      const committed = committedAfter - committedBefore;
      failed = false;
      return {
        concurrency,
        committedTps: round(tally.committed / tally.windowSec),
        p50Ms: round(percentile(sorted, 50)),
        p99Ms: round(percentile(sorted, 99)),
        coordinatorCpuMsPerTx: round(committed > 0 ? (cpuAfter - cpuBefore) / committed : 0, 3),
      };
    } finally {
      await client.close().catch(() => undefined);
    }
  } finally {
    for (const m of started.reverse()) await m.stop();
    if (failed) say(`[loads] coordinator alone failed; logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

async function measuredClosedLoop(cluster: Cluster, client: TxmeshClient, label: string, concurrency: number, participants: number, next: () => WorkItem, options: BenchOptions): Promise<LoadRun> {
  // Each load starts from a drained cluster: the previous load's commit backlog must not be billed to it.
  await waitForDrain(cluster, 60_000);
  let before: Awaited<ReturnType<typeof snapshot>> | undefined;
  let after: Awaited<ReturnType<typeof snapshot>> | undefined;
  const tally = await closedLoop({
    concurrency,
    warmupMs: options.warmupSec * 1000,
    durationMs: options.durationSec * 1000,
    client,
    next,
    onWindowStart: async () => void (before = await snapshot(cluster)),
    onWindowEnd: async () => void (after = await snapshot(cluster)),
  });
  if (!before || !after) throw new Error(`${label}: the window did not produce both snapshots`);
  const figures = runFigures({ label, env: OPTIMISED_ENV, probe: false, verify: false }, tally, before, after, { memoryMb: {}, startupMs: {} }, undefined);
  const byRole = {} as Record<ProcessRole, number>;
  for (const role of PROCESS_ROLES) {
    const cpu = sum(members(cluster).filter((m) => m.name.startsWith(`${role}-`)).map((m) => figures.cpuMsByMember[m.name] ?? 0));
    byRole[role] = round(figures.coordinatorCommitted > 0 ? cpu / figures.coordinatorCommitted : 0, 3);
  }
  return {
    concurrency,
    participants,
    committedTps: figures.committedTps,
    p50Ms: figures.p50Ms,
    p99Ms: figures.p99Ms,
    aborted: figures.aborted,
    errors: figures.errors,
    cpuMsPerTx: figures.cpuMsPerTx,
    cpuMsPerTxByRole: byRole,
    requestsPerTx: figures.requestsPerTx,
  };
}

function inventoryOnly(item: WorkItem): WorkItem {
  return { ...item, request: { ...item.request, participants: item.request.participants.filter((p) => p.service === 'inventory') } };
}

/** p50 of `count` sequential GETs on one keep-alive connection. */
export interface NullRoundTrips {
  p50Ms: number;
  /** CPU of the measured processes per request (from /proc: 10 ms ticks, so only a few hundred requests are meaningful). */
  cpuMsPerRequest: number;
}

/** `count` GETs of `url` one after another, `gapMs` apart (0: back to back), on one kept-alive connection. */
async function nullRoundTrips(url: string, count: number, gapMs = 0, pids: readonly (number | undefined)[] = []): Promise<NullRoundTrips> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const samples: number[] = [];
  const cpu = (): number => sum(pids.map((pid) => processCpuMs(pid) ?? NaN));
  let cpuBefore = NaN;
  try {
    for (let i = 0; i < count; i++) {
      if (i === 1) cpuBefore = cpu(); // the first request opens the connection
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const req = request(url, { agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url}: ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end();
      });
      if (i > 0) samples.push(performance.now() - t0);
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  } finally {
    agent.destroy();
  }
  const cpuMs = cpu() - cpuBefore;
  samples.sort((a, b) => a - b);
  return { p50Ms: round(percentile(samples, 50), 3), cpuMsPerRequest: round(samples.length > 0 ? cpuMs / samples.length : 0, 3) };
}

/** The sidecar → service null round trip of inventory back to back, then `gapMs` apart (see LoadsReport.pacing). */
async function measurePacing(cluster: Cluster, gapMs: number): Promise<LoadsReport['pacing']> {
  const sidecar = cluster.sidecars.get('inventory')!;
  const pids = [sidecar.pid, cluster.services.get('inventory')!.pid];
  const url = `${sidecar.url}/health`;
  const backToBack = await nullRoundTrips(url, 400, 0, pids);
  const paced = await nullRoundTrips(url, 300, gapMs, pids);
  return { gapMs, backToBack, paced };
}

/** Blocks of each way, alternating, after one unmeasured block each (both sides then run compiled code). */
const PROXY_BLOCKS = 4;
const PROXY_REQUESTS_PER_BLOCK = 300;

async function measureProxy(cluster: Cluster): Promise<ProxyOverhead> {
  const sidecar = cluster.sidecars.get('inventory')!;
  const ways = { direct: `${cluster.services.get('inventory')!.url}/health`, throughSidecar: `${sidecar.url}/health` };
  const p50s: Record<keyof typeof ways, number[]> = { direct: [], throughSidecar: [] };
  const sidecarCpu: number[] = [];
  for (const url of Object.values(ways)) await nullRoundTrips(url, PROXY_REQUESTS_PER_BLOCK);
  for (let block = 0; block < PROXY_BLOCKS; block++) {
    for (const way of block % 2 === 0 ? (['direct', 'throughSidecar'] as const) : (['throughSidecar', 'direct'] as const)) {
      const trips = await nullRoundTrips(ways[way], PROXY_REQUESTS_PER_BLOCK, 0, way === 'throughSidecar' ? [sidecar.pid] : []);
      p50s[way].push(trips.p50Ms);
      if (way === 'throughSidecar') sidecarCpu.push(trips.cpuMsPerRequest);
    }
  }
  const median = (values: number[]): number => round(percentile([...values].sort((a, b) => a - b), 50), 3);
  const directP50Ms = median(p50s.direct);
  const throughSidecarP50Ms = median(p50s.throughSidecar);
  return { directP50Ms, throughSidecarP50Ms, addedP50Ms: round(throughSidecarP50Ms - directP50Ms, 3), sidecarCpuMsPerRequest: median(sidecarCpu) };
}

/** The targets of issue 18 that these loads measure (the concurrency-1000 ones stay in the main bench). */
export function loadsTargets(r: LoadsReport): TargetCheck[] {
  const four = r.c1.fourServices;
  return [
    upper('concurrency 1, 4-service commit: p50 <= 3 ms', four.p50Ms, 3),
    upper('concurrency 1, 4-service commit: p50 <= 3x physicalPathMs', round(r.physicalPath.physicalPathMs > 0 ? four.p50Ms / r.physicalPath.physicalPathMs : 0, 3), 3, `physicalPathMs ${r.physicalPath.physicalPathMs}`),
    lower(`concurrency ${HIGH_CONCURRENCY}: committed/s >= 0.3x the null echo`, r.c64.overNullEcho, 0.3, `${r.c64.committedTps} committed/s, null echo ${r.nullEcho.c64.nullEchoRps} req/s`),
    upper(`concurrency ${HIGH_CONCURRENCY}: p50 <= 20 ms`, r.c64.p50Ms, 20),
    lower(`coordinator alone (null participants) at ${HIGH_CONCURRENCY}: committed/s >= 0.5x the null echo`, r.coordinatorAlone.overNullEcho, 0.5, `${r.coordinatorAlone.committedTps} committed/s`),
  ];
}
