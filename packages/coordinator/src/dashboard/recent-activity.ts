/**
 * What the dashboard shows of the last minutes: decided transactions per second, latency percentiles
 * over the last minute and the latest aborts with their reasons. Fixed-size rings: memory does not grow
 * with traffic, and noting one transaction is a few array writes.
 */
import { Outcome, type TransactionResult } from '@txmesh/protocol';

export const HISTORY_SECONDS = 300;
export const LATENCY_WINDOW_MS = 60_000;
const LATENCY_SAMPLES = 8192;
const RECENT_ABORTS = 50;

export interface SecondCounts {
  /** Epoch second. */
  t: number;
  committed: number;
  aborted: number;
}

export interface RecentAbort {
  txId: string;
  reason: string;
  at: number;
}

export interface ActivitySnapshot {
  perSecond: SecondCounts[];
  latency: { windowMs: number; samples: number; p50Ms?: number; p99Ms?: number };
  recentAborts: RecentAbort[];
  /** Aborts by reason over the history window. */
  abortsByReason: Record<string, number>;
}

interface Bucket extends SecondCounts {
  reasons: Map<string, number> | undefined;
}

export class RecentActivity {
  readonly #buckets: Bucket[] = Array.from({ length: HISTORY_SECONDS }, () => ({ t: -1, committed: 0, aborted: 0, reasons: undefined }));
  readonly #durations = new Float64Array(LATENCY_SAMPLES);
  readonly #durationAt = new Float64Array(LATENCY_SAMPLES);
  #durationCount = 0;
  readonly #aborts: RecentAbort[] = [];

  note(result: TransactionResult, now: number = Date.now()): void {
    const bucket = this.#bucket(Math.floor(now / 1000));
    const slot = this.#durationCount++ % LATENCY_SAMPLES;
    this.#durations[slot] = result.durationMs;
    this.#durationAt[slot] = now;
    if (result.outcome === Outcome.COMMITTED) {
      bucket.committed += 1;
      return;
    }
    bucket.aborted += 1;
    const reason = result.reason ?? 'UNKNOWN';
    bucket.reasons ??= new Map();
    bucket.reasons.set(reason, (bucket.reasons.get(reason) ?? 0) + 1);
    this.#aborts.push({ txId: result.txId, reason, at: now });
    if (this.#aborts.length > RECENT_ABORTS) this.#aborts.shift();
  }

  snapshot(now: number = Date.now()): ActivitySnapshot {
    const current = Math.floor(now / 1000);
    const perSecond: SecondCounts[] = [];
    const abortsByReason: Record<string, number> = {};
    for (let t = current - HISTORY_SECONDS + 1; t <= current; t++) {
      const bucket = this.#buckets[t % HISTORY_SECONDS]!;
      const live = bucket.t === t;
      perSecond.push({ t, committed: live ? bucket.committed : 0, aborted: live ? bucket.aborted : 0 });
      if (live && bucket.reasons) for (const [reason, n] of bucket.reasons) abortsByReason[reason] = (abortsByReason[reason] ?? 0) + n;
    }
    const recent: number[] = [];
    const filled = Math.min(this.#durationCount, LATENCY_SAMPLES);
    for (let i = 0; i < filled; i++) if (now - this.#durationAt[i]! <= LATENCY_WINDOW_MS) recent.push(this.#durations[i]!);
    recent.sort((a, b) => a - b);
    const latency: ActivitySnapshot['latency'] = { windowMs: LATENCY_WINDOW_MS, samples: recent.length };
    if (recent.length > 0) {
      latency.p50Ms = percentile(recent, 0.5);
      latency.p99Ms = percentile(recent, 0.99);
    }
    return { perSecond, latency, recentAborts: [...this.#aborts].reverse(), abortsByReason };
  }

  #bucket(second: number): Bucket {
    const bucket = this.#buckets[second % HISTORY_SECONDS]!;
    if (bucket.t !== second) {
      bucket.t = second;
      bucket.committed = 0;
      bucket.aborted = 0;
      bucket.reasons = undefined;
    }
    return bucket;
  }
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
