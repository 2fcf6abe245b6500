/**
 * Microbenchmark: the scheduler's per-service lanes (our binary heap) against the same lanes built on p-queue
 * (issue 18, "p-queue for the scheduler's lanes"). Prints one JSON document.
 *
 *   node packages/lab/dist/scheduler-lanes-bench.js [--rounds 5] [--txs 20000]
 *
 * Both are driven with the coordinator's pattern: four service lanes, one prepare per lane per transaction,
 * waiters ordered by the transaction's start time (older first; a share of them retries of older
 * transactions), a concurrency limit that moves with the measured latency (fast and slow phases), and a
 * queue held at a given depth of waiting prepares. One operation is one acquire (an enqueue, unless a slot is
 * free) and one release (which dequeues the next waiter). The two take turns, the order flipping every round;
 * medians are reported. Time is the process's CPU time (user + system, garbage collection included), which a
 * shared machine disturbs far less than wall time; wall time is reported beside it. The script restarts itself
 * with --expose-gc (the retained bytes per waiter are read off the heap after a collection), and counts
 * allocations in a child process whose young generation is large enough that nothing is collected during the
 * pass (a fixed 64 MB young generation costs page faults that would spoil the timings).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { Scheduler, type Release } from '@txmesh/coordinator';
import PQueue from 'p-queue';
import { median, round } from './bench-math.ts';

const SERVICES = ['inventory', 'payment', 'shipping', 'orders'] as const;
const DEPTHS = [1, 64, 1000, 10_000] as const;
const RETRY_SHARES = [0, 0.1] as const;
/** The scheduler's start and ceiling; the floor lowered from 256 so that the limit also moves down. */
const START_LIMIT = 256;
const MIN_LIMIT = 128;
const MAX_LIMIT = 4096;
/**
 * Transactions between two yields to the event loop (grants arrive as promise callbacks). Fewer than the floor,
 * so a lane always has a slot to release; the yield's cost (a setImmediate) is shared by 4 × 64 operations.
 */
const BATCH_TXS = 64;
/** Transactions per latency phase: fast phases grow the limit, slow ones shrink it. */
const PHASE_TXS = 512;
const FAST_MS = 1;
const SLOW_MS = 10;
const ALLOC_TXS = 2000;

/** What both lane implementations offer the driver: the scheduler's acquire, and the limit for the driver's bookkeeping. */
interface LaneSubject {
  acquire(service: string, age: number, withdrawn?: () => boolean): Promise<Release | undefined>;
  limit(service: string): number;
}

const never = (): boolean => false;

function heapSubject(): LaneSubject {
  const scheduler = new Scheduler({ initialLimit: START_LIMIT, minLimit: MIN_LIMIT, maxLimit: MAX_LIMIT });
  return {
    acquire: (service, age, withdrawn) => scheduler.acquire(service, age, withdrawn),
    limit: (service) => scheduler.view(service).limit,
  };
}

/**
 * The lanes on p-queue, as the scheduler would use it: one queue per service, priority = −age (p-queue runs
 * the highest first), the slot held by a task whose promise settles on release, the adaptive limit written to
 * `concurrency` at run time. The limit rule is the scheduler's gradient (without the resource-report check).
 */
class PQueueLane {
  readonly queue = new PQueue({ concurrency: START_LIMIT });
  #best: number | undefined;
  #smoothed: number | undefined;
  #samples = 0;

  observe(latencyMs: number): void {
    const sample = Math.max(0.01, latencyMs);
    this.#best = this.#best === undefined ? sample : Math.min(sample, this.#best * 1.002);
    this.#smoothed = this.#smoothed === undefined ? sample : this.#smoothed + 0.2 * (sample - this.#smoothed);
    const limit = this.queue.concurrency;
    this.#samples += 1;
    if (this.#samples < Math.max(1, Math.floor(limit / 2))) return;
    this.#samples = 0;
    const gradient = (4 * this.#best) / this.#smoothed;
    let next = limit;
    if (gradient < 1) next = limit * Math.max(0.9, gradient);
    else if (this.queue.pending + this.queue.size >= limit / 2) next = limit + Math.sqrt(limit);
    const bounded = Math.min(MAX_LIMIT, Math.max(MIN_LIMIT, Math.round(next)));
    if (bounded !== limit) this.queue.concurrency = bounded;
  }
}

function pQueueSubject(): LaneSubject {
  const lanes = new Map<string, PQueueLane>();
  const laneOf = (service: string): PQueueLane => {
    let lane = lanes.get(service);
    if (!lane) {
      lane = new PQueueLane();
      lanes.set(service, lane);
    }
    return lane;
  };
  return {
    acquire(service, age, withdrawn) {
      const lane = laneOf(service);
      return new Promise((resolve) => {
        const task = (): Promise<void> =>
          new Promise<void>((done) => {
            if (withdrawn?.()) {
              resolve(undefined);
              done();
              return;
            }
            let released = false;
            resolve((latencyMs, answered) => {
              if (released) return;
              released = true;
              if (answered) lane.observe(latencyMs);
              done();
            });
          });
        void lane.queue.add(task, { priority: -age });
      });
    },
    limit: (service) => laneOf(service).queue.concurrency,
  };
}

/** No lane at all: every acquire granted at once. What the driver and its promises cost by themselves. */
function bareSubject(): LaneSubject {
  const release: Release = () => undefined;
  return { acquire: () => Promise.resolve(release), limit: () => START_LIMIT };
}

const SUBJECTS = { heap: heapSubject, pQueue: pQueueSubject, bare: bareSubject } as const;
type SubjectName = keyof typeof SUBJECTS;

/** A deterministic generator, so both implementations see the same ages. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const heapUsed = (): number => process.memoryUsage().heapUsed;

interface LaneState {
  name: string;
  held: Release[];
  waiting: number;
  onGrant: (release: Release | undefined) => void;
}

interface PassResult {
  cpuNsPerOp: number;
  wallNsPerOp: number;
  ops: number;
  /** Bytes allocated per operation (allocation pass only: no collection ran during it). */
  bytesPerOp?: number;
  /** Live heap per prepare held or waiting right after filling the lanes. */
  retainedBytesPerItem: number;
  minLimit: number;
  maxLimit: number;
}

/** Drives one implementation at one depth; `txs` transactions after the lanes are filled. */
async function pass(name: SubjectName, depth: number, retryShare: number, txs: number, countAllocations: boolean): Promise<PassResult> {
  const gc = globalThis.gc!;
  gc();
  const base = heapUsed();
  const subject = SUBJECTS[name]();
  const random = xorshift(depth * 7919 + Math.round(retryShare * 1000));
  let clock = 1_700_000_000_000;
  let ops = 0;
  const lanes: LaneState[] = SERVICES.map((service) => {
    const lane: LaneState = { name: service, held: [], waiting: 0, onGrant: () => undefined };
    lane.onGrant = (release) => {
      lane.waiting -= 1;
      if (release) lane.held.push(release);
    };
    return lane;
  });
  const enqueue = (lane: LaneState, age: number): void => {
    lane.waiting += 1;
    ops += 1;
    void subject.acquire(lane.name, age, never).then(lane.onGrant);
  };
  let minLimit = Infinity;
  let maxLimit = 0;
  // Every lane holds `limit` slots and `depth` waiters, whatever the limit has become.
  const rebalance = (latencyMs: number): void => {
    for (const lane of lanes) {
      const limit = subject.limit(lane.name);
      minLimit = Math.min(minLimit, limit);
      maxLimit = Math.max(maxLimit, limit);
      let missing = limit + depth - (lane.held.length + lane.waiting);
      for (; missing > 0; missing--) enqueue(lane, clock++);
      for (; missing < 0 && lane.held.length > 0; missing++) lane.held.pop()!(latencyMs, true);
    }
  };
  rebalance(FAST_MS);
  await yieldToLoop();
  gc();
  const items = lanes.reduce((n, lane) => n + lane.held.length + lane.waiting, 0);
  const retainedBytesPerItem = (heapUsed() - base) / items;
  ops = 0;
  // The explicit collections above are reported to the observer on a later turn: let them arrive first.
  await yieldToLoop();
  await yieldToLoop();
  const gcsBefore = collections;
  const heapBefore = countAllocations ? heapUsed() : 0;
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let t = 0; t < txs; t++) {
    const latencyMs = Math.floor(t / PHASE_TXS) % 2 === 0 ? FAST_MS : SLOW_MS;
    // A retry of an older transaction, still inside the window the queue spans; otherwise a new one.
    const age = random() < retryShare ? clock - 1 - Math.floor(random() * (depth + START_LIMIT)) : clock++;
    for (const lane of lanes) {
      lane.held.pop()?.(latencyMs, true);
      enqueue(lane, age);
    }
    if ((t + 1) % BATCH_TXS === 0) {
      await yieldToLoop();
      rebalance(latencyMs);
    }
  }
  await yieldToLoop();
  const wallNs = Number(process.hrtime.bigint() - started);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuNs = (cpu.user + cpu.system) * 1000;
  const result: PassResult = { cpuNsPerOp: cpuNs / ops, wallNsPerOp: wallNs / ops, ops, retainedBytesPerItem, minLimit, maxLimit };
  if (countAllocations) {
    const grown = heapUsed() - heapBefore;
    await yieldToLoop(); // let the gc observer report
    if (collections === gcsBefore) result.bytesPerOp = grown / ops;
  }
  // Drain: release everything so nothing is left waiting.
  while (lanes.some((lane) => lane.held.length > 0 || lane.waiting > 0)) {
    for (const lane of lanes) while (lane.held.length > 0) lane.held.pop()!(FAST_MS, true);
    await yieldToLoop();
  }
  return result;
}

let collections = 0;

function readFlag(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name);
  const value = at >= 0 ? Number(args[at + 1]) : fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} needs a positive integer`);
  return value;
}

type Names = readonly SubjectName[];
const NAMES = Object.keys(SUBJECTS) as Names;

/** Child mode: one allocation pass per implementation and case, nothing collected during it. */
async function allocations(): Promise<void> {
  const figures: Record<string, number | null> = {};
  for (const retryShare of RETRY_SHARES) {
    for (const depth of DEPTHS) {
      for (const name of NAMES) await pass(name, depth, retryShare, Math.min(ALLOC_TXS, 500), false);
      for (const name of NAMES) {
        const bytes = (await pass(name, depth, retryShare, ALLOC_TXS, true)).bytesPerOp;
        figures[`${name}/${depth}/${retryShare}`] = bytes === undefined ? null : round(bytes, 0);
      }
    }
  }
  console.log(JSON.stringify(figures));
}

function allocationsInChild(): Record<string, number | null> {
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64', process.argv[1]!, '--allocations'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (child.status !== 0) throw new Error(`the allocation pass failed (exit ${child.status})`);
  return JSON.parse(child.stdout.trim().split('\n').pop()!) as Record<string, number | null>;
}

function pQueueVersion(): string {
  const manifest = new URL('../package.json', import.meta.resolve('p-queue'));
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

async function timings(args: string[]): Promise<void> {
  const rounds = readFlag(args, '--rounds', 5);
  const txs = readFlag(args, '--txs', 20_000);
  const results = [];
  for (const retryShare of RETRY_SHARES) {
    for (const depth of DEPTHS) {
      // Warm the JIT on both before anything is kept.
      for (const name of NAMES) await pass(name, depth, retryShare, Math.min(txs, 2000), false);
      const timed: Record<SubjectName, PassResult[]> = { heap: [], pQueue: [], bare: [] };
      for (let r = 0; r < rounds; r++) {
        for (const name of r % 2 === 0 ? NAMES : [...NAMES].reverse()) timed[name].push(await pass(name, depth, retryShare, txs, false));
      }
      const summary = (name: SubjectName): Record<string, number> => ({
        cpuNsPerOp: round(median(timed[name].map((p) => p.cpuNsPerOp)), 0),
        wallNsPerOp: round(median(timed[name].map((p) => p.wallNsPerOp)), 0),
        retainedBytesPerItem: round(median(timed[name].map((p) => p.retainedBytesPerItem)), 0),
        limitMin: Math.min(...timed[name].map((p) => p.minLimit)),
        limitMax: Math.max(...timed[name].map((p) => p.maxLimit)),
      });
      const heap = summary('heap');
      const pQueue = summary('pQueue');
      const driver = summary('bare');
      // Per round, so both share the machine's state of that moment; the driver's own cost taken off both.
      const ratios = timed.heap.map((p, i) => timed.pQueue[i]!.cpuNsPerOp / p.cpuNsPerOp);
      const netRatios = timed.heap.map((p, i) => (timed.pQueue[i]!.cpuNsPerOp - timed.bare[i]!.cpuNsPerOp) / (p.cpuNsPerOp - timed.bare[i]!.cpuNsPerOp));
      results.push({
        depth,
        retryShare,
        heap,
        pQueue,
        driverCpuNsPerOp: driver.cpuNsPerOp,
        pQueueOverHeapCpu: round(median(ratios), 2),
        pQueueOverHeapCpuNet: round(median(netRatios), 2),
      });
      process.stderr.write(`depth ${depth} retries ${retryShare}: heap ${heap.cpuNsPerOp} ns/op, p-queue ${pQueue.cpuNsPerOp} ns/op (CPU)\n`);
    }
  }
  const allocated = allocationsInChild();
  for (const r of results) {
    Object.assign(r.heap, { bytesPerOp: allocated[`heap/${r.depth}/${r.retryShare}`] });
    Object.assign(r.pQueue, { bytesPerOp: allocated[`pQueue/${r.depth}/${r.retryShare}`] });
    Object.assign(r, { driverBytesPerOp: allocated[`bare/${r.depth}/${r.retryShare}`] });
  }
  console.log(
    JSON.stringify({
      bench: 'scheduler-lanes',
      node: process.version,
      pQueueVersion: pQueueVersion(),
      rounds,
      txsPerPass: txs,
      lanes: SERVICES.length,
      limit: { start: START_LIMIT, min: MIN_LIMIT, max: MAX_LIMIT },
      results,
    }),
  );
}

const args = process.argv.slice(2);
if (typeof globalThis.gc !== 'function') {
  // Restart with the flag the retained-heap figures need.
  const child = spawnSync(process.execPath, ['--expose-gc', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exitCode = child.status ?? 1;
} else {
  new PerformanceObserver((list) => {
    collections += list.getEntries().length;
  }).observe({ entryTypes: ['gc'] });
  if (args.includes('--allocations')) await allocations();
  else await timings(args);
}
