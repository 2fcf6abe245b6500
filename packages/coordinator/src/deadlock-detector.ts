/**
 * Finds wait-for cycles across services and shards and aborts the ones this shard owns. No sockets:
 * reports come in through `report`, victims leave through the `abort` callback.
 *
 * A pass runs at the end of the event-loop turn after any report that changed the graph (several
 * reports in a turn share one pass), and at least every `passIntervalMs` while edges exist, so a cycle
 * whose reports all arrived is broken at once. Cost per pass: O(V + E) per round of Tarjan, one round
 * per nesting level of cycles (one round when cycles share no transaction).
 */
import { shardOfTxId, type WaitReport } from '@txmesh/protocol';
import { WaitForGraph } from './wait-for-graph.ts';

export interface DeadlockDetectorOptions {
  shard: number;
  /** Aborts the transaction with reason DEADLOCK if it is still undecided here; true when it did. */
  abort(txId: string): boolean;
  /** A service whose last report is older than this is forgotten (default 5000 ms). */
  reportMaxAgeMs?: number;
  /** Default 50 ms: a pass also runs this often while the graph has edges. */
  passIntervalMs?: number;
}

export interface DeadlockStats {
  /** Cycles whose victim this shard owned and aborted. */
  victims: number;
  /** From the cycle's last wait beginning (participants' clocks) to the victim's abort here. */
  detectMsP50?: number;
  detectMsP99?: number;
  edges: number;
}

/** The last latencies kept for the percentiles. */
const SAMPLE_LIMIT = 4096;

function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export class DeadlockDetector {
  readonly #graph = new WaitForGraph();
  readonly #shard: number;
  readonly #abort: (txId: string) => boolean;
  readonly #reportMaxAgeMs: number;
  readonly #timer: NodeJS.Timeout;
  #scheduled = false;
  #closed = false;
  #victims = 0;
  readonly #latencies: number[] = [];

  constructor(options: DeadlockDetectorOptions) {
    this.#shard = options.shard;
    this.#abort = options.abort;
    this.#reportMaxAgeMs = options.reportMaxAgeMs ?? 5000;
    const passIntervalMs = options.passIntervalMs ?? 50;
    this.#timer = setInterval(() => {
      if (this.#graph.edgeCount > 0) this.runPass();
    }, passIntervalMs);
    this.#timer.unref();
  }

  report(report: WaitReport, now: number = Date.now()): void {
    if (this.#closed) return;
    this.#graph.report(report.service, report.edges, now);
    if (report.edges.length === 0 || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#closed) this.runPass();
    });
  }

  /** Finds the cycles and aborts the victims this shard owns; returns how many it aborted. */
  runPass(now: number = Date.now()): number {
    this.#graph.expire(this.#reportMaxAgeMs, now);
    let aborted = 0;
    for (const cycle of this.#graph.cycles()) {
      if (shardOfTxId(cycle.victim) !== this.#shard || !this.#abort(cycle.victim)) continue;
      aborted += 1;
      this.#victims += 1;
      if (cycle.formedAt !== undefined) {
        this.#latencies.push(Math.max(0, Date.now() - cycle.formedAt));
        if (this.#latencies.length > SAMPLE_LIMIT) this.#latencies.shift();
      }
    }
    return aborted;
  }

  stats(): DeadlockStats {
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const stats: DeadlockStats = { victims: this.#victims, edges: this.#graph.edgeCount };
    const p50 = percentile(sorted, 50);
    const p99 = percentile(sorted, 99);
    if (p50 !== undefined) stats.detectMsP50 = p50;
    if (p99 !== undefined) stats.detectMsP99 = p99;
    return stats;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}
