/**
 * `txmesh bench-isolation`: the same contended workloads, same seed, under each deadlock mode
 * (detect, wait-die, timeout), on bank services as real processes. Per run: goodput (committed/s),
 * aborts by reason, p50/p99 latency of committed transactions and, for detect, how long cycles stood
 * before their victim was aborted.
 *
 * Workloads (keys drawn Zipf-skewed with exponent theta over `accounts` keys per service):
 * - orders: inventory (stock -1), payment (balance -amount), order and shipping (a fresh key each), four services;
 * - transfers: an amount from an account at one of three banks to an account at another.
 */
import os from 'node:os';
import { DeadlockMode, type BeginTransactionRequest } from '@txmesh/protocol';
import { BankCluster } from './bank-cluster.ts';
import { percentile } from './demo.ts';
import { seededRandom } from '@txmesh/example-ecommerce';

export const ISOLATION_WORKLOADS = ['orders', 'transfers'] as const;
export type IsolationWorkload = (typeof ISOLATION_WORKLOADS)[number];

export const ISOLATION_RETRIES = ['same', 'fresh'] as const;
export type IsolationRetry = (typeof ISOLATION_RETRIES)[number];

export interface IsolationBenchOptions {
  workloads: readonly IsolationWorkload[];
  modes: readonly DeadlockMode[];
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  seed: number;
  shards: number;
  accounts: number;
  theta: number;
  lockWaitMs: number;
  timeoutMs: number;
  /** After a lock-related abort: place the same transaction again (same) or draw the next one (fresh). */
  retry: IsolationRetry;
  out: NodeJS.WritableStream;
}

export interface IsolationRun {
  workload: IsolationWorkload;
  mode: DeadlockMode;
  measuredSec: number;
  /** Transactions committed in the window (a retried one counts once). */
  committed: number;
  /** Requests answered in the window: commits, aborted attempts, refusals and errors. */
  attempts: number;
  goodputPerSec: number;
  aborted: number;
  abortsByReason: Record<string, number>;
  /** LOCK_CONFLICT + LOCK_TIMEOUT + DEADLOCK + TIMEOUT (a vote missing by the deadline: a prepare stuck behind locks). */
  lockAborts: number;
  /** Refused before anything ran (TXM_OVERLOADED: the coordinator's scheduler saw a saturated service). */
  refused: number;
  /** Other failures: an error answer or no answer. */
  errors: number;
  p50Ms: number;
  p99Ms: number;
  /** detect only: victims aborted by the shards, and from a cycle's last wait to its victim's abort. */
  deadlockVictims?: number;
  detectMsP50?: number;
  detectMsP99?: number;
}

export interface IsolationComparison {
  workload: IsolationWorkload;
  /** detect's lock-related aborts ÷ wait-die's (goal ≤ 1/3). */
  lockAbortRatio?: number;
  /** detect's goodput ÷ wait-die's (goal ≥ 1). */
  goodputRatio?: number;
}

export interface IsolationReport {
  machine: { cpus: number; loadAvg1: number };
  options: Omit<IsolationBenchOptions, 'out'>;
  runs: IsolationRun[];
  comparison: IsolationComparison[];
}

/** Pause before a lost transaction is placed again, the same in every mode. */
const RETRY_BACKOFF_MS = 5;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const LOCK_REASONS = new Set(['LOCK_CONFLICT', 'LOCK_TIMEOUT', 'DEADLOCK', 'TIMEOUT']);
const SERVICES: Record<IsolationWorkload, string[]> = {
  orders: ['inventory', 'payment', 'order', 'shipping'],
  transfers: ['bank-a', 'bank-b', 'bank-c'],
};

/** Draws 0…n-1 with probability ∝ 1/(i+1)^theta (Zipf), by binary search over the cumulative weights. */
export class ZipfSampler {
  readonly #cdf: Float64Array;

  constructor(n: number, theta: number) {
    this.#cdf = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) this.#cdf[i] = sum += 1 / Math.pow(i + 1, theta);
    for (let i = 0; i < n; i++) this.#cdf[i]! /= sum;
  }

  sample(rng: () => number): number {
    const u = rng();
    let lo = 0;
    let hi = this.#cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** One transaction's drawn keys and amount; an attempt turns it into a request with its own fresh keys. */
type Draw = (attempt: string) => BeginTransactionRequest;

function draw(workload: IsolationWorkload, rng: () => number, zipf: ZipfSampler, timeoutMs: number): Draw {
  const account = (): string => `acct-${zipf.sample(rng)}`;
  const amount = 1 + Math.floor(rng() * 100);
  if (workload === 'orders') {
    const stock = account();
    const payer = account();
    return (id) => ({
      timeoutMs,
      participants: [
        { service: 'inventory', operations: [{ op: 'transfer', args: { account: stock, delta: -1 } }] },
        { service: 'payment', operations: [{ op: 'transfer', args: { account: payer, delta: -amount } }] },
        { service: 'order', operations: [{ op: 'lock', args: { write: [`order-${id}`] } }] },
        { service: 'shipping', operations: [{ op: 'lock', args: { write: [`shipment-${id}`] } }] },
      ],
    });
  }
  const banks = SERVICES.transfers;
  const from = Math.floor(rng() * banks.length);
  const to = (from + 1 + Math.floor(rng() * (banks.length - 1))) % banks.length;
  const source = account();
  const target = account();
  return () => ({
    timeoutMs,
    participants: [
      { service: banks[from]!, operations: [{ op: 'transfer', args: { account: source, delta: -amount } }] },
      { service: banks[to]!, operations: [{ op: 'transfer', args: { account: target, delta: amount } }] },
    ],
  });
}

interface ShardStats {
  deadlocks: { victims: number; detectMsP50?: number; detectMsP99?: number };
}

async function runOne(workload: IsolationWorkload, mode: DeadlockMode, o: IsolationBenchOptions): Promise<IsolationRun> {
  o.out.write(`[${workload}/${mode}] starting ${o.shards} shard(s), ${SERVICES[workload].length} bank services\n`);
  const cluster = await BankCluster.start({
    shards: o.shards,
    services: SERVICES[workload],
    deadlock: mode,
    lockWaitMs: o.lockWaitMs,
    accounts: { count: o.accounts, balance: 1_000_000_000 },
  });
  try {
    const zipf = new ZipfSampler(o.accounts, o.theta);
    const urls = cluster.coordinatorUrls;
    const startAt = Date.now();
    const measureFrom = startAt + o.warmupSec * 1000;
    const stopAt = measureFrom + o.durationSec * 1000;
    const latencies: number[] = [];
    const reasons: Record<string, number> = {};
    let committed = 0;
    let aborted = 0;
    let errors = 0;
    let refused = 0;
    let attempts = 0;
    o.out.write(`[${workload}/${mode}] ${o.warmupSec} s warm-up, then ${o.durationSec} s at concurrency ${o.concurrency}, theta ${o.theta} over ${o.accounts} keys\n`);
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, worker) => {
        // Each worker draws from its own seeded stream, so every mode sees the same sequence of requests.
        const rng = seededRandom(o.seed * 1_000_003 + worker);
        for (let n = 0; Date.now() < stopAt; n++) {
          const next = draw(workload, rng, zipf, o.timeoutMs);
          const began = Date.now();
          // retry=same: a transaction that lost a lock (any lock-related abort) is placed again with the same
          // keys, as a user would place the same order again, until it commits or the run ends; latency counts
          // from its first attempt. retry=fresh: the next transaction is drawn instead.
          for (let attempt = 0; Date.now() < stopAt; attempt++) {
            const body = next(`${worker}-${n}-${attempt}`);
            let outcome: { outcome?: string; reason?: string; error?: { code?: string } } | undefined;
            try {
              const res = await fetch(`${urls[(worker + n + attempt) % urls.length]}/v1/transactions`, { method: 'POST', headers: { 'content-type': 'application/json', ...cluster.credentials.clientHeaders }, body: JSON.stringify(body) });
              outcome = (await res.json()) as typeof outcome;
            } catch {
              outcome = undefined;
            }
            const ended = Date.now();
            // Goodput counts what completed inside the window, whenever it began (closed loop).
            const inWindow = ended >= measureFrom && ended <= stopAt;
            if (inWindow) attempts += 1;
            if (outcome?.outcome === 'committed') {
              if (inWindow) {
                committed += 1;
                latencies.push(ended - began);
              }
              break;
            }
            if (outcome?.outcome === 'aborted') {
              const reason = outcome.reason ?? 'UNKNOWN';
              if (inWindow) {
                aborted += 1;
                reasons[reason] = (reasons[reason] ?? 0) + 1;
              }
              if (o.retry === 'same' && LOCK_REASONS.has(reason)) {
                await sleep(RETRY_BACKOFF_MS);
                continue;
              }
              break;
            }
            if (inWindow && outcome?.error?.code === 'TXM_OVERLOADED') refused += 1;
            else if (inWindow) errors += 1;
            break;
          }
        }
      }),
    );
    latencies.sort((a, b) => a - b);
    const lockAborts = Object.entries(reasons).reduce((n, [reason, count]) => n + (LOCK_REASONS.has(reason) ? count : 0), 0);
    const run: IsolationRun = {
      workload,
      mode,
      measuredSec: o.durationSec,
      committed,
      attempts,
      goodputPerSec: Math.round((committed / o.durationSec) * 10) / 10,
      aborted,
      abortsByReason: reasons,
      lockAborts,
      refused,
      errors,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
    };
    if (mode === DeadlockMode.DETECT) {
      const stats = await Promise.all(urls.map(async (u) => (await (await fetch(`${u}/v1/stats`)).json()) as ShardStats));
      run.deadlockVictims = stats.reduce((n, s) => n + s.deadlocks.victims, 0);
      // Per-shard percentiles: the median is weighted by victims, the p99 is the worst shard's.
      const withVictims = stats.filter((s) => s.deadlocks.victims > 0 && s.deadlocks.detectMsP50 !== undefined);
      if (withVictims.length > 0) {
        run.detectMsP50 = Math.round(withVictims.reduce((n, s) => n + s.deadlocks.detectMsP50! * s.deadlocks.victims, 0) / run.deadlockVictims);
        run.detectMsP99 = Math.max(...withVictims.map((s) => s.deadlocks.detectMsP99 ?? 0));
      }
    }
    o.out.write(
      `[${workload}/${mode}] goodput ${run.goodputPerSec}/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, aborts ${JSON.stringify(reasons)}, lock-related ${lockAborts}, refused ${refused}, errors ${errors}` +
        (run.deadlockVictims !== undefined ? `, victims ${run.deadlockVictims}, cycle→abort p50 ${run.detectMsP50 ?? '-'} ms p99 ${run.detectMsP99 ?? '-'} ms` : '') +
        '\n',
    );
    return run;
  } finally {
    await cluster.stop();
  }
}

export async function runIsolationBench(o: IsolationBenchOptions): Promise<IsolationReport> {
  const runs: IsolationRun[] = [];
  for (const workload of o.workloads) for (const mode of o.modes) runs.push(await runOne(workload, mode, o));
  const comparison = o.workloads.map((workload): IsolationComparison => {
    const detect = runs.find((r) => r.workload === workload && r.mode === DeadlockMode.DETECT);
    const waitDie = runs.find((r) => r.workload === workload && r.mode === DeadlockMode.WAIT_DIE);
    const c: IsolationComparison = { workload };
    if (detect && waitDie) {
      if (waitDie.lockAborts > 0) c.lockAbortRatio = Math.round((detect.lockAborts / waitDie.lockAborts) * 1000) / 1000;
      if (waitDie.goodputPerSec > 0) c.goodputRatio = Math.round((detect.goodputPerSec / waitDie.goodputPerSec) * 1000) / 1000;
    }
    return c;
  });
  const { out: _out, ...options } = o;
  return { machine: { cpus: os.availableParallelism(), loadAvg1: Math.round(os.loadavg()[0]! * 10) / 10 }, options, runs, comparison };
}
