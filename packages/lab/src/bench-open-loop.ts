/**
 * Open-loop load: transactions arrive as a Poisson process at a fixed rate whether or not earlier ones have
 * finished, and each latency runs from the instant the transaction was due, not from when it could be
 * sent. A closed loop slows its own arrivals when the system slows down and so hides queueing (coordinated
 * omission); this does not.
 */
import type { TxmeshClient } from '@txmesh/client';
import { Outcome } from '@txmesh/protocol';
import { round } from './bench-math.ts';
import type { WorkItem } from './bench-workload.ts';
import { sleep } from './cluster.ts';
import { percentile } from './demo.ts';

export interface OpenLoopFigures {
  targetTps: number;
  /** Arrivals due inside the window. */
  offered: number;
  committedTps: number;
  aborted: number;
  errors: number;
  /** Arrivals dropped because `maxOutstanding` were still unanswered (counted, never sent). */
  dropped: number;
  p50Ms: number;
  p99Ms: number;
}

export interface OpenLoopOptions {
  ratePerSec: number;
  warmupMs: number;
  durationMs: number;
  client: TxmeshClient;
  next: () => WorkItem;
  /** Seeded uniform source in [0, 1) for the inter-arrival gaps. */
  random: () => number;
  /** Bounds the transactions in flight, so an overloaded system cannot make the generator grow without end. */
  maxOutstanding?: number;
}

export async function openLoop(opts: OpenLoopOptions): Promise<OpenLoopFigures> {
  const maxOutstanding = opts.maxOutstanding ?? 4096;
  const start = performance.now();
  const windowStart = start + opts.warmupMs;
  const windowEnd = windowStart + opts.durationMs;
  const latencies: number[] = [];
  let offered = 0;
  let committed = 0;
  let aborted = 0;
  let errors = 0;
  let dropped = 0;
  let outstanding = 0;
  const pending = new Set<Promise<void>>();

  const fire = (dueAt: number): void => {
    const inWindow = dueAt >= windowStart && dueAt < windowEnd;
    if (inWindow) offered += 1;
    if (outstanding >= maxOutstanding) {
      if (inWindow) dropped += 1;
      return;
    }
    outstanding += 1;
    const done = opts.client
      .transaction(opts.next().request)
      .then(
        (result) => {
          if (!inWindow) return;
          if (result.outcome === Outcome.COMMITTED) {
            committed += 1;
            latencies.push(performance.now() - dueAt);
          } else {
            aborted += 1;
          }
        },
        () => {
          if (inWindow) errors += 1;
        },
      )
      .finally(() => {
        outstanding -= 1;
        pending.delete(done);
      });
    pending.add(done);
  };

  // Exponential gaps: -ln(1 - u) / rate. Every arrival that fell due while the loop slept is sent at once,
  // with its own due time, so a late timer never thins out the arrivals.
  let nextDue = start;
  while (nextDue < windowEnd) {
    const now = performance.now();
    while (nextDue <= now && nextDue < windowEnd) {
      fire(nextDue);
      nextDue += (-Math.log(1 - opts.random()) / opts.ratePerSec) * 1000;
    }
    if (nextDue < windowEnd) await sleep(Math.max(0, Math.min(nextDue - performance.now(), 50)));
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  const windowSec = opts.durationMs / 1000;
  return {
    targetTps: round(opts.ratePerSec),
    offered,
    committedTps: round(committed / windowSec),
    aborted,
    errors,
    dropped,
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
  };
}
