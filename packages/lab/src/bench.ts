/**
 * `txmesh bench`: drives the e-commerce order closed-loop against a real cluster on loopback and
 * measures it against a null baseline (the same client against a fastify endpoint that answers at once),
 * plus what each committed transaction costs in fsyncs, requests between components, CPU and memory.
 * --compare adds a run with batching, group commit and the scheduler off; --slow-service adds a
 * resource-aware / resource-blind comparison with one service slowed. Every run of one invocation uses
 * the same client, concurrency, durations and seed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECOMMERCE_SERVICES, orderRequest, seededRandom, type CatalogOptions, type EcommerceService } from '@txmesh/example-ecommerce';
import { createTxmeshClient, type TxmeshClient } from '@txmesh/client';
import { Outcome, TxmeshError, type BeginTransactionRequest } from '@txmesh/protocol';
import { Cluster, Member, sleep } from './cluster.ts';
import { percentile } from './demo.ts';
import { verifyCluster, type VerifyReport } from './verify.ts';

export interface BenchOptions {
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  shards: number;
  seed: number;
  /** Run the main measurement with batching, group commit and the scheduler off. */
  naive: boolean;
  /** Run both optimised and naive and report the ratios. */
  compare: boolean;
  /** Compare resource-aware with resource-blind scheduling while this service is slow. */
  slowService?: EcommerceService;
  slowMs: number;
  slowCpuMs: number;
  /** Seconds of a concurrency-1 run after the main window (latency when idle); 0 skips it. */
  probeSec: number;
  /** Progress and the human summary. */
  out: NodeJS.WritableStream;
}

/**
 * Big enough that business refusals and lock conflicts stay rare: orders pick skus and accounts
 * uniformly, stock and balances never run out within a benchmark.
 */
export const BENCH_CATALOG: CatalogOptions = { skus: 100_000, stockPerSku: 1_000_000, accounts: 100_000, balancePerAccount: 1_000_000_000 };

/** Read by the coordinator and sidecar commands (and the SDK), each turning one mechanism off. */
const OPTIMISED_ENV = { TXMESH_BATCHING: 'on', TXMESH_GROUP_COMMIT: 'on', TXMESH_SCHEDULER: 'on' };
const NAIVE_ENV = { TXMESH_BATCHING: 'off', TXMESH_GROUP_COMMIT: 'off', TXMESH_SCHEDULER: 'off' };
const BLIND_ENV = { ...OPTIMISED_ENV, TXMESH_SCHEDULER: 'off' };

/** How long the consistency check waits for every commit/rollback to be delivered. */
const QUIESCE_TIMEOUT_MS = 120_000;

const ROUND = (x: number, digits = 2): number => {
  if (!Number.isFinite(x)) return 0;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

// ---------------------------------------------------------------------------------------------------
// Workload

/** Transaction classes of the slow-service mix: the full order, and the same order without S. */
type TxClass = 'all' | 'withoutSlow';

interface WorkItem {
  request: BeginTransactionRequest;
  cls: TxClass;
}

/** Orders that the business accepts: uniform sku and account, one unit, a small amount, an address. */
function makeWorkload(seed: number, runLabel: string, catalog: CatalogOptions, withoutService?: EcommerceService): () => WorkItem {
  const rng = seededRandom(seed);
  let n = 0;
  return () => {
    n += 1;
    const orderId = `bench-${runLabel}-${seed}-${n}`;
    const request = orderRequest({
      orderId,
      sku: `sku-${1 + Math.floor(rng() * catalog.skus)}`,
      qty: 1,
      account: `acct-${1 + Math.floor(rng() * catalog.accounts)}`,
      amount: 1 + Math.floor(rng() * 50),
      address: `${1 + Math.floor(rng() * 500)} Bench Road, Springfield`,
    });
    // Half of the mix leaves the slow service out, so its latency shows what the slow service does to others.
    if (withoutService !== undefined && rng() < 0.5) {
      return { request: { ...request, participants: request.participants.filter((p) => p.service !== withoutService) }, cls: 'withoutSlow' };
    }
    return { request, cls: 'all' };
  };
}

/**
 * One connection per concurrent caller, as that many independent clients would have, for the cluster
 * and the null baseline alike: the SDK's default pool (32) would otherwise cap what reaches the server.
 */
function clientConnections(options: BenchOptions): number {
  return options.concurrency;
}

// ---------------------------------------------------------------------------------------------------
// Closed loop

interface ClassTally {
  committed: number;
  refused: number;
  latencies: number[];
}

export interface LoopTally {
  windowSec: number;
  committed: number;
  aborted: number;
  abortedByReason: Record<string, number>;
  /** Refused early with TXM_OVERLOADED (nothing ran); the worker waits and tries again. */
  refused: number;
  errors: number;
  errorsByCode: Record<string, number>;
  latencies: number[];
  byClass: Partial<Record<TxClass, ClassTally>>;
  clientCpuMs: number;
}

interface LoopOptions {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  client: TxmeshClient;
  next: () => WorkItem;
  /** Every answer's outcome by txId (warm-up included), for the consistency check after the run. */
  heard?: Map<string, Outcome>;
  /** Called (not awaited by the workers) when the measured window opens and when it closes. */
  onWindowStart?: () => Promise<void>;
  onWindowEnd?: () => Promise<void>;
}

/**
 * Each of `concurrency` workers sends one transaction, waits for its answer, and sends the next, for
 * warmup + duration. Only answers that arrive inside the measured window count.
 */
async function closedLoop(opts: LoopOptions): Promise<LoopTally> {
  const tally: LoopTally = {
    windowSec: opts.durationMs / 1000,
    committed: 0,
    aborted: 0,
    abortedByReason: {},
    refused: 0,
    errors: 0,
    errorsByCode: {},
    latencies: [],
    byClass: {},
    clientCpuMs: 0,
  };
  const started = performance.now();
  const windowStart = started + opts.warmupMs;
  const windowEnd = windowStart + opts.durationMs;
  let measuring = false;
  let cpuAtStart = process.cpuUsage();
  // A hook that fails (a member died) is reported after the loop, never as an unhandled rejection.
  const hooks: Promise<unknown>[] = [];
  let hookError: unknown;
  const runHook = (hook: () => Promise<void>): void => void hooks.push(hook().catch((err: unknown) => (hookError ??= err)));
  let windowOpened = false;
  let windowClosed = false;
  const openWindow = (): void => {
    if (windowOpened) return;
    windowOpened = true;
    measuring = true;
    cpuAtStart = process.cpuUsage();
    if (opts.onWindowStart) runHook(opts.onWindowStart);
  };
  const closeWindow = (): void => {
    if (windowClosed) return;
    windowClosed = true;
    measuring = false;
    const used = process.cpuUsage(cpuAtStart);
    tally.clientCpuMs = (used.user + used.system) / 1000;
    if (opts.onWindowEnd) runHook(opts.onWindowEnd);
  };
  const startTimer = setTimeout(openWindow, opts.warmupMs);
  const endTimer = setTimeout(closeWindow, opts.warmupMs + opts.durationMs);

  const worker = async (): Promise<void> => {
    let refusedInARow = 0;
    // A refused transaction is sent again after a pause; its latency runs from its first attempt.
    let retrying: { item: WorkItem; t0: number } | undefined;
    while (performance.now() < windowEnd) {
      const { item, t0 } = retrying ?? { item: opts.next(), t0: performance.now() };
      retrying = undefined;
      let outcome: { committed: boolean; reason?: string } | { refused: true } | { error: string };
      try {
        const result = await opts.client.transaction(item.request);
        opts.heard?.set(result.txId, result.outcome);
        outcome = result.outcome === Outcome.COMMITTED ? { committed: true } : { committed: false, reason: result.reason ?? 'UNKNOWN' };
      } catch (err) {
        const code = err instanceof TxmeshError ? err.code : ((err as { code?: string }).code ?? 'CLIENT_ERROR');
        outcome = code === 'TXM_OVERLOADED' ? { refused: true } : { error: code };
      }
      const t1 = performance.now();
      // Counted only while the window is open and when the answer came inside it.
      const counts = measuring && t1 <= windowEnd && t1 >= windowStart;
      if ('refused' in outcome) {
        if (counts) {
          tally.refused += 1;
          (tally.byClass[item.cls] ??= { committed: 0, refused: 0, latencies: [] }).refused += 1;
        }
        // The refusal says to come back later (Retry-After, whole seconds); the bench's client does not wait
        // that out (overloadRetries: 0) but backs off itself: jittered from 25 ms, doubling per refusal in a row, up to 1 s.
        refusedInARow += 1;
        const backoffMs = Math.min(1000, 25 * 2 ** (refusedInARow - 1));
        await sleep(backoffMs / 2 + Math.random() * (backoffMs / 2));
        retrying = { item, t0 };
        continue;
      }
      refusedInARow = 0;
      if ('error' in outcome) {
        if (counts) {
          tally.errors += 1;
          tally.errorsByCode[outcome.error] = (tally.errorsByCode[outcome.error] ?? 0) + 1;
        }
        await sleep(10);
      } else if (counts) {
        const latency = t1 - t0;
        if (outcome.committed) {
          tally.committed += 1;
          tally.latencies.push(latency);
          const cls = (tally.byClass[item.cls] ??= { committed: 0, refused: 0, latencies: [] });
          cls.committed += 1;
          cls.latencies.push(latency);
        } else {
          tally.aborted += 1;
          const reason = outcome.reason ?? 'UNKNOWN';
          tally.abortedByReason[reason] = (tally.abortedByReason[reason] ?? 0) + 1;
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    clearTimeout(startTimer);
    clearTimeout(endTimer);
  }
  // On a loaded machine the workers can see the window end before the timers fire: the snapshots
  // must still be taken, in order.
  openWindow();
  closeWindow();
  await Promise.all(hooks);
  if (hookError !== undefined) throw hookError;
  return tally;
}

// ---------------------------------------------------------------------------------------------------
// Process figures from /proc

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process in ms, or undefined off Linux or when it is gone. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** Resident set (VmRSS) and its peak (VmHWM) in MB. */
export function processMemoryMb(pid: number | undefined): { rssMb: number; peakRssMb: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMb: ROUND(kb('VmRSS') / 1024, 1), peakRssMb: ROUND(kb('VmHWM') / 1024, 1) };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// Stats snapshots

interface CoordinatorStats {
  committed: number;
  aborted: number;
  logFlushes: number;
  batchesSent: number;
  itemsSent: number;
}

interface SidecarStats {
  batchesReceived: number;
  itemsReceived: number;
  serviceCalls: number;
  coordinatorCalls: number;
}

interface Snapshot {
  coordinators: CoordinatorStats[];
  sidecars: Partial<Record<EcommerceService, SidecarStats>>;
  cpuMs: Record<string, number>;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}`);
  return (await res.json()) as T;
}

/**
 * Waits until no shard has a transaction in flight and no sidecar holds a prepared record. Polls the cheap
 * counters only: the services' full audit (`/admin/summary`) would take CPU from the delivery it waits for.
 */
async function waitForDrain(cluster: Cluster, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const shards = await Promise.all(cluster.coordinators.map((c) => getJson<{ inFlight: number }>(`${c.url}/v1/stats`)));
      const sidecars = await Promise.all([...cluster.sidecars.values()].map((m) => getJson<{ prepared: number }>(`${m.url}/txmesh/v1/health`)));
      if (shards.every((s) => s.inFlight === 0) && sidecars.every((s) => s.prepared === 0)) return true;
    } catch {
      // a member is busy or restarting: try again
    }
    if (Date.now() > deadline) return false;
    await sleep(500);
  }
}

function members(cluster: Cluster): Member[] {
  return [...cluster.coordinators, ...cluster.services.values(), ...cluster.sidecars.values()];
}

async function snapshot(cluster: Cluster): Promise<Snapshot> {
  // CPU first: it is what the window boundary is about; the HTTP reads below take a moment under load.
  const cpuMs: Record<string, number> = {};
  for (const m of members(cluster)) cpuMs[m.name] = processCpuMs(m.pid) ?? NaN;
  const coordinators = await Promise.all(cluster.coordinators.map((c) => getJson<CoordinatorStats>(`${c.url}/v1/stats`)));
  const sidecars: Snapshot['sidecars'] = {};
  await Promise.all(
    [...cluster.sidecars].map(async ([service, m]) => {
      try {
        sidecars[service] = await getJson<SidecarStats>(`${m.url}/txmesh/v1/stats`);
      } catch {
        // a sidecar without the stats route: its share of requests is left out and reported as missing
      }
    }),
  );
  return { coordinators, sidecars, cpuMs };
}

// ---------------------------------------------------------------------------------------------------
// One cluster run

/** The outcome counts of a run are the closed loop's, as tallied in its measured window. */
type OutcomeCounts = Pick<LoopTally, 'committed' | 'aborted' | 'abortedByReason' | 'refused' | 'errors' | 'errorsByCode'>;

export interface RunFigures extends OutcomeCounts {
  label: string;
  env: Record<string, string>;
  workload: string;
  slowService?: string;
  committedTps: number;
  /** Committed transactions per second: the work that was worth doing. Same as committedTps here. */
  goodputTps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  byClass?: Record<string, { committed: number; committedTps: number; refused: number; p50Ms: number; p99Ms: number }>;
  coordinatorCommitted: number;
  coordinatorFsyncsPerTx: number;
  requestsPerTx: number;
  requests: {
    coordinatorToSidecarBatches: number;
    sidecarToService: number;
    sidecarToCoordinator: number;
    itemsPerBatch: number;
    sidecarStatsMissing: string[];
  };
  cpuMsPerTx: number;
  cpuMsByMember: Record<string, number>;
  /** Process ids, to match CPU profiles (TXMESH_PROFILE_DIR) to members. */
  pids: Record<string, number>;
  clientCpuMsPerTx: number;
  coordinatorRssMb: number;
  memoryMb: Record<string, { rssMb: number; peakRssMb: number }>;
  /**
   * After the run: every service agrees on every outcome the client heard, nothing is left prepared, stock
   * and money are conserved (4-service runs only: the check expects every transaction at every service).
   */
  verified?: Omit<VerifyReport, 'problems'> & { problems: string[]; quiesced: boolean };
  /** Median latency of a concurrency-1 run after the main window (the idle-path latency). */
  idle?: { concurrency: 1; committed: number; p50Ms: number; p99Ms: number; afterQuiescence: boolean };
}

interface RunSpec {
  label: string;
  env: Record<string, string>;
  slowService?: EcommerceService;
  /** Leave this service out of half the transactions. */
  mixWithout?: EcommerceService;
  probe: boolean;
  verify: boolean;
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

async function runCluster(spec: RunSpec, options: BenchOptions, say: (line: string) => void): Promise<RunFigures> {
  const memberEnv: Record<string, NodeJS.ProcessEnv> = {};
  if (spec.slowService) {
    memberEnv[`service-${spec.slowService}`] = { TXMESH_SLOW_MS: String(options.slowMs), TXMESH_SLOW_CPU_MS: String(options.slowCpuMs) };
  }
  say(`[${spec.label}] starting ${options.shards} shard(s), 4 services, 4 sidecars (${Object.entries(spec.env).map(([k, v]) => `${k}=${v}`).join(' ')})${spec.slowService ? `; ${spec.slowService} slowed by ${options.slowMs} ms + ${options.slowCpuMs} ms CPU per item` : ''}`);
  // TXMESH_PROFILE_DIR=<dir> writes a V8 CPU profile of every member (as for `txmesh demo`).
  const profileDir = process.env.TXMESH_PROFILE_DIR;
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, spec.label)}`] : [];
  const cluster = await Cluster.start({ shards: options.shards, catalog: BENCH_CATALOG, env: { TXMESH_LOG_LEVEL: 'warn', ...spec.env }, memberEnv, nodeArgs });
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: clientConnections(options), overloadRetries: 0 });
  let failed = true;
  try {
    let before: Snapshot | undefined;
    let after: Snapshot | undefined;
    let memory: RunFigures['memoryMb'] = {};
    const heard = spec.verify ? new Map<string, Outcome>() : undefined;
    say(`[${spec.label}] ${options.warmupSec} s warm-up, then ${options.durationSec} s measured at concurrency ${options.concurrency} ...`);
    const tally = await closedLoop({
      concurrency: options.concurrency,
      warmupMs: options.warmupSec * 1000,
      durationMs: options.durationSec * 1000,
      client,
      ...(heard ? { heard } : {}),
      next: makeWorkload(options.seed, spec.label, BENCH_CATALOG, spec.mixWithout),
      onWindowStart: async () => {
        before = await snapshot(cluster);
      },
      onWindowEnd: async () => {
        after = await snapshot(cluster);
        memory = {};
        for (const m of members(cluster)) {
          const mem = processMemoryMb(m.pid);
          if (mem) memory[m.name] = mem;
        }
      },
    });
    if (!before || !after) throw new Error('the measured window did not produce both snapshots');

    const sidecarUrls = new Map([...cluster.sidecars].map(([name, m]) => [name, m.url]));
    // The idle probe and the check both need the main window's commit/rollback backlog delivered first;
    // a backlog (the naive mode at high concurrency) can take minutes, bounded all the same.
    const quiescedAfterRun = spec.probe || heard ? await waitForDrain(cluster, QUIESCE_TIMEOUT_MS) : true;
    let idle: RunFigures['idle'];
    if (spec.probe && options.probeSec > 0) {
      const probe = await closedLoop({
        concurrency: 1,
        warmupMs: 500,
        durationMs: options.probeSec * 1000,
        client,
        ...(heard ? { heard } : {}),
        next: makeWorkload(options.seed + 1, `${spec.label}-idle`, BENCH_CATALOG),
      });
      probe.latencies.sort((a, b) => a - b);
      idle = {
        concurrency: 1,
        committed: probe.committed,
        p50Ms: ROUND(percentile(probe.latencies, 50)),
        p99Ms: ROUND(percentile(probe.latencies, 99)),
        afterQuiescence: quiescedAfterRun,
      };
    }
    const result = figures(spec, tally, before, after, memory, idle);
    if (heard) {
      const quiesced = await waitForDrain(cluster, quiescedAfterRun ? 30_000 : 5_000);
      const report = await verifyCluster(sidecarUrls, heard);
      result.verified = { ...report, quiesced, invariantsOk: report.invariantsOk && quiesced, problems: report.problems.slice(0, 5) };
      say(
        `[${spec.label}] checked ${heard.size} outcomes: ${
          result.verified.invariantsOk
            ? 'every service agrees, nothing left prepared, stock and money conserved'
            : quiesced
              ? `PROBLEMS ${result.verified.problems.join('; ')}`
              : `not checked: commit/rollback delivery still running ${QUIESCE_TIMEOUT_MS / 1000} s after the window (${report.preparedAfterQuiescence} branches prepared)`
        }`,
      );
    }
    result.pids = Object.fromEntries(members(cluster).flatMap((m) => (m.pid === undefined ? [] : [[m.name, m.pid]])));
    failed = false;
    return result;
  } finally {
    const gone = members(cluster).filter((m) => !m.running).map((m) => m.name);
    await client.close().catch(() => undefined);
    await cluster.stop();
    // A failed run keeps its data and member logs for a post-mortem.
    if (failed) say(`[${spec.label}] failed${gone.length > 0 ? ` (${gone.join(', ')} had exited)` : ''}; logs kept in ${cluster.dataDir}`);
    else cluster.removeData();
  }
}

function figures(spec: RunSpec, tally: LoopTally, before: Snapshot, after: Snapshot, memory: RunFigures['memoryMb'], idle: RunFigures['idle']): RunFigures {
  const delta = (pick: (s: CoordinatorStats) => number): number => sum(after.coordinators.map(pick)) - sum(before.coordinators.map(pick));
  const coordinatorCommitted = delta((s) => s.committed);
  const per = (x: number): number => (coordinatorCommitted > 0 ? x / coordinatorCommitted : 0);
  const batches = delta((s) => s.batchesSent);
  const items = delta((s) => s.itemsSent);
  let sidecarToService = 0;
  let sidecarToCoordinator = 0;
  const missing: string[] = [];
  for (const service of ECOMMERCE_SERVICES) {
    const a = after.sidecars[service];
    const b = before.sidecars[service];
    if (!a || !b) {
      missing.push(service);
      continue;
    }
    sidecarToService += a.serviceCalls - b.serviceCalls;
    sidecarToCoordinator += a.coordinatorCalls - b.coordinatorCalls;
  }
  const cpuMsByMember: Record<string, number> = {};
  for (const [name, end] of Object.entries(after.cpuMs)) cpuMsByMember[name] = ROUND(end - (before.cpuMs[name] ?? NaN), 0);
  const clusterCpuMs = sum(Object.values(cpuMsByMember).filter(Number.isFinite));

  const sorted = [...tally.latencies].sort((a, b) => a - b);
  const byClass: RunFigures['byClass'] = {};
  for (const [cls, t] of Object.entries(tally.byClass)) {
    const s = [...t.latencies].sort((a, b) => a - b);
    byClass[cls] = { committed: t.committed, committedTps: ROUND(t.committed / tally.windowSec), refused: t.refused, p50Ms: ROUND(percentile(s, 50)), p99Ms: ROUND(percentile(s, 99)) };
  }
  const committedTps = ROUND(tally.committed / tally.windowSec);
  const coordinatorRss = sum(Object.entries(memory).filter(([n]) => n.startsWith('coordinator-')).map(([, m]) => m.rssMb));
  const result: RunFigures = {
    label: spec.label,
    env: spec.env,
    workload: spec.mixWithout ? `half 4-service orders, half the order without ${spec.mixWithout}` : '4-service order (inventory, payment, order, shipping)',
    committed: tally.committed,
    aborted: tally.aborted,
    abortedByReason: tally.abortedByReason,
    refused: tally.refused,
    errors: tally.errors,
    errorsByCode: tally.errorsByCode,
    committedTps,
    goodputTps: committedTps,
    p50Ms: ROUND(percentile(sorted, 50)),
    p99Ms: ROUND(percentile(sorted, 99)),
    maxMs: ROUND(sorted.at(-1) ?? 0),
    coordinatorCommitted,
    coordinatorFsyncsPerTx: ROUND(per(delta((s) => s.logFlushes)), 4),
    requestsPerTx: ROUND(per(batches + sidecarToService + sidecarToCoordinator), 5),
    requests: {
      coordinatorToSidecarBatches: batches,
      sidecarToService,
      sidecarToCoordinator,
      itemsPerBatch: ROUND(batches > 0 ? items / batches : 0, 1),
      sidecarStatsMissing: missing,
    },
    cpuMsPerTx: ROUND(per(clusterCpuMs), 3),
    cpuMsByMember,
    pids: {},
    clientCpuMsPerTx: ROUND(per(tally.clientCpuMs), 3),
    coordinatorRssMb: ROUND(coordinatorRss, 1),
    memoryMb: memory,
  };
  if (spec.slowService) result.slowService = spec.slowService;
  if (spec.mixWithout) result.byClass = byClass;
  if (idle) result.idle = idle;
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Null baseline

export interface NullEchoFigures {
  nullEchoRps: number;
  p50Ms: number;
  p99Ms: number;
  answered: number;
  /** CPU of the null-echo server and of the load generator per answer. */
  cpuMsPerRequest: number;
  clientCpuMsPerRequest: number;
}

async function runNullEcho(options: BenchOptions, say: (line: string) => void): Promise<NullEchoFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-null-'));
  const echo = new Member('null-echo', 'null-echo', (port) => ['--port', String(port)], join(dir, 'null-echo.log'), {});
  try {
    const url = await echo.start();
    say(`[null-echo] ${url}: ${options.warmupSec} s warm-up, then ${options.durationSec} s at concurrency ${options.concurrency} ...`);
    const client = createTxmeshClient({ coordinatorUrls: [url], connections: clientConnections(options) });
    let cpuBefore = 0;
    let cpuAfter = 0;
    try {
      const tally = await closedLoop({
        concurrency: options.concurrency,
        warmupMs: options.warmupSec * 1000,
        durationMs: options.durationSec * 1000,
        client,
        next: makeWorkload(options.seed, 'null', BENCH_CATALOG),
        onWindowStart: async () => void (cpuBefore = processCpuMs(echo.pid) ?? NaN),
        onWindowEnd: async () => void (cpuAfter = processCpuMs(echo.pid) ?? NaN),
      });
      const sorted = tally.latencies.sort((a, b) => a - b);
      return {
        nullEchoRps: ROUND(tally.committed / tally.windowSec),
        p50Ms: ROUND(percentile(sorted, 50)),
        p99Ms: ROUND(percentile(sorted, 99)),
        answered: tally.committed,
        cpuMsPerRequest: ROUND(tally.committed > 0 ? (cpuAfter - cpuBefore) / tally.committed : 0, 4),
        clientCpuMsPerRequest: ROUND(tally.committed > 0 ? tally.clientCpuMs / tally.committed : 0, 4),
      };
    } finally {
      await client.close().catch(() => undefined);
    }
  } finally {
    await echo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// The whole benchmark

export interface TargetCheck {
  target: string;
  value: number;
  limit: number;
  met: boolean;
  /** value / limit: how far over (for an upper bound) or under (for a lower bound) the limit the figure is. */
  ratio: number;
  note?: string;
}

export interface BenchReport {
  machine: { cpus: number; cpuModel: string; loadavg1m: number; node: string };
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  shards: number;
  seed: number;
  mode: 'optimised' | 'naive';
  committedTps: number;
  p50Ms: number;
  p99Ms: number;
  nullEchoRps: number;
  efficiency: number;
  coordinatorFsyncsPerTx: number;
  requestsPerTx: number;
  cpuMsPerTx: number;
  coordinatorRssMb: number;
  sidecarRssMb: Record<string, number>;
  abortedByReason: Record<string, number>;
  /** The consistency check after the 4-service runs (main and naive) passed. */
  invariantsOk: boolean;
  /**
   * The check found a broken outcome or invariant (false when it passed or could not run because delivery
   * was still going on, which `run.verified.quiesced` shows).
   */
  inconsistent: boolean;
  run: RunFigures;
  nullEcho: NullEchoFigures;
  naive?: RunFigures & { efficiency: number };
  compare?: { optimisedOverNaive: Record<string, number> };
  slowService?: {
    service: string;
    slowMs: number;
    slowCpuMsPerItem: number;
    reference: RunFigures;
    aware: RunFigures;
    blind: RunFigures;
  };
  targets: TargetCheck[];
}

function upper(target: string, value: number, limit: number, note?: string): TargetCheck {
  return { target, value, limit, met: value <= limit, ratio: ROUND(limit > 0 ? value / limit : 0, 3), ...(note ? { note } : {}) };
}
function lower(target: string, value: number, limit: number, note?: string): TargetCheck {
  return { target, value, limit, met: value >= limit, ratio: ROUND(limit > 0 ? value / limit : 0, 3), ...(note ? { note } : {}) };
}

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const say = (line: string): void => void options.out.write(`${line}\n`);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadavg1m: ROUND(loadavg()[0] ?? 0), node: process.version };
  say(`txmesh bench: ${machine.cpus} CPU(s), load ${machine.loadavg1m}; concurrency ${options.concurrency}, ${options.durationSec} s per run`);

  // The baseline runs alone, before any cluster exists, so it gets the whole machine as the cluster will.
  const nullEcho = await runNullEcho(options, say);
  say(`[null-echo] ${nullEcho.nullEchoRps} req/s, p50 ${nullEcho.p50Ms} ms, p99 ${nullEcho.p99Ms} ms`);

  const mainNaive = options.naive && !options.compare;
  const main = await runCluster({ label: mainNaive ? 'naive' : 'optimised', env: mainNaive ? NAIVE_ENV : OPTIMISED_ENV, probe: true, verify: true }, options, say);
  say(describe(main, nullEcho));
  const efficiency = (tps: number): number => ROUND(nullEcho.nullEchoRps > 0 ? tps / nullEcho.nullEchoRps : 0, 6);

  const report: BenchReport = {
    machine,
    concurrency: options.concurrency,
    durationSec: options.durationSec,
    warmupSec: options.warmupSec,
    shards: options.shards,
    seed: options.seed,
    mode: mainNaive ? 'naive' : 'optimised',
    committedTps: main.committedTps,
    p50Ms: main.p50Ms,
    p99Ms: main.p99Ms,
    nullEchoRps: nullEcho.nullEchoRps,
    efficiency: efficiency(main.committedTps),
    coordinatorFsyncsPerTx: main.coordinatorFsyncsPerTx,
    requestsPerTx: main.requestsPerTx,
    cpuMsPerTx: main.cpuMsPerTx,
    coordinatorRssMb: main.coordinatorRssMb,
    sidecarRssMb: Object.fromEntries(Object.entries(main.memoryMb).filter(([n]) => n.startsWith('sidecar-')).map(([n, m]) => [n.slice('sidecar-'.length), m.rssMb])),
    abortedByReason: main.abortedByReason,
    invariantsOk: main.verified?.invariantsOk ?? false,
    inconsistent: isInconsistent(main),
    run: main,
    nullEcho,
    targets: [],
  };

  if (options.compare) {
    const naive = await runCluster({ label: 'naive', env: NAIVE_ENV, probe: true, verify: true }, options, say);
    say(describe(naive, nullEcho));
    report.naive = { ...naive, efficiency: efficiency(naive.committedTps) };
    report.invariantsOk &&= naive.verified?.invariantsOk ?? false;
    report.inconsistent ||= isInconsistent(naive);
    // Four significant digits: fsyncs per tx can differ by four orders of magnitude between the modes.
    const ratio = (a: number, b: number): number => (b > 0 ? Number((a / b).toPrecision(4)) : 0);
    report.compare = {
      optimisedOverNaive: {
        committedTps: ratio(main.committedTps, naive.committedTps),
        p50Ms: ratio(main.p50Ms, naive.p50Ms),
        p99Ms: ratio(main.p99Ms, naive.p99Ms),
        coordinatorFsyncsPerTx: ratio(main.coordinatorFsyncsPerTx, naive.coordinatorFsyncsPerTx),
        requestsPerTx: ratio(main.requestsPerTx, naive.requestsPerTx),
        cpuMsPerTx: ratio(main.cpuMsPerTx, naive.cpuMsPerTx),
      },
    };
  }

  if (options.slowService) {
    const s = options.slowService;
    const reference = await runCluster({ label: 'slow-reference', env: OPTIMISED_ENV, mixWithout: s, probe: false, verify: false }, options, say);
    say(describe(reference, nullEcho));
    const aware = await runCluster({ label: 'slow-aware', env: OPTIMISED_ENV, mixWithout: s, slowService: s, probe: false, verify: false }, options, say);
    say(describe(aware, nullEcho));
    const blind = await runCluster({ label: 'slow-blind', env: BLIND_ENV, mixWithout: s, slowService: s, probe: false, verify: false }, options, say);
    say(describe(blind, nullEcho));
    report.slowService = { service: s, slowMs: options.slowMs, slowCpuMsPerItem: options.slowCpuMs, reference, aware, blind };
  }

  report.targets = targets(report, options);
  return report;
}

function isInconsistent(run: RunFigures): boolean {
  return run.verified !== undefined && run.verified.quiesced && !run.verified.invariantsOk;
}

function targets(report: BenchReport, options: BenchOptions): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const atFull = options.concurrency >= 1000 ? undefined : `measured at concurrency ${options.concurrency}; the target is stated for 1000`;
  checks.push(lower('efficiency >= 0.35 at concurrency 1000', report.efficiency, 0.35, atFull));
  checks.push(upper('coordinator fsyncs per committed tx <= 0.1', report.coordinatorFsyncsPerTx, 0.1));
  checks.push(upper('requests between components per committed tx <= 0.5', report.requestsPerTx, 0.5));
  // A concurrency-1 main run measures it directly; otherwise the idle probe after the main window does.
  if (options.concurrency === 1) checks.push(upper('p50 <= 5 ms at concurrency 1', report.p50Ms, 5));
  else if (report.run.idle && report.run.idle.committed > 0) checks.push(upper('p50 <= 5 ms at concurrency 1', report.run.idle.p50Ms, 5, 'from the idle probe after the main window'));
  const slow = report.slowService;
  if (slow) {
    const refP99 = slow.reference.byClass?.withoutSlow?.p99Ms ?? 0;
    const awareP99 = slow.aware.byClass?.withoutSlow?.p99Ms ?? 0;
    checks.push(upper(`p99 of txs without ${slow.service}, aware vs no slow service <= 1.5x`, ROUND(refP99 > 0 ? awareP99 / refP99 : 0, 3), 1.5));
    checks.push(lower('goodput aware / blind > 1', ROUND(slow.blind.goodputTps > 0 ? slow.aware.goodputTps / slow.blind.goodputTps : 0, 3), 1.000001));
  }
  return checks;
}

function describe(r: RunFigures, nullEcho: NullEchoFigures): string {
  const reasons = Object.entries(r.abortedByReason).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const classes = r.byClass
    ? `\n    ${Object.entries(r.byClass).map(([k, c]) => `${k}: ${c.committedTps} tx/s p50 ${c.p50Ms} ms p99 ${c.p99Ms} ms, ${c.refused} refusals`).join('; ')}`
    : '';
  return [
    `[${r.label}] committed ${r.committedTps} tx/s (efficiency ${ROUND(nullEcho.nullEchoRps > 0 ? r.committedTps / nullEcho.nullEchoRps : 0, 3)}), p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms${r.idle ? `; idle p50 ${r.idle.p50Ms} ms` : ''}`,
    `    aborted ${r.aborted} (${reasons}), refused ${r.refused}, errors ${r.errors}`,
    `    per tx: ${r.coordinatorFsyncsPerTx} coordinator fsyncs, ${r.requestsPerTx} requests (${r.requests.itemsPerBatch} items/batch), ${r.cpuMsPerTx} ms cluster CPU; coordinator RSS ${r.coordinatorRssMb} MB${classes}`,
  ].join('\n');
}

export function formatTargets(report: BenchReport): string {
  return report.targets
    .map((t) => `  ${t.met ? 'MET   ' : 'MISSED'} ${t.target}: ${t.value} (limit ${t.limit}, ratio ${t.ratio})${t.note ? ` [${t.note}]` : ''}`)
    .join('\n');
}
