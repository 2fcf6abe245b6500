/**
 * The benchmark's load generator: `concurrency` workers, each sending one transaction, waiting for its
 * answer and sending the next; only answers inside the measured window count.
 */
import type { TxmeshClient } from '@txmesh/client';
import { Outcome, TxmeshError } from '@txmesh/protocol';
import type { TxClass, WorkItem } from './bench-workload.ts';
import { sleep } from './cluster.ts';

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

export interface LoopOptions {
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
export async function closedLoop(opts: LoopOptions): Promise<LoopTally> {
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
