/**
 * Relays the service's wait-for edges to every shard, for deadlock detection. The edges come with the
 * service's batch answers; while a batch call is outstanding longer than `minWaitMs` (its prepares are
 * probably waiting for locks, and only a wait that old is reported) the reporter also asks the service every
 * `pollMs`, because a waiting batch answers nothing until its waits end. A shard hears a report when the edges changed, and again
 * every `refreshMs` while they stand, so a restarted shard learns them and an old report never expires
 * under a wait still going on. One report at a time; a change seen meanwhile is sent next.
 */
import type { WaitEdge, WaitReport } from '@txmesh/protocol';

export interface WaitReporterDeps {
  service: string;
  shards: number;
  send(shard: number, report: WaitReport): Promise<void>;
  /** The service's edges now, or undefined when it cannot say. */
  poll(): Promise<WaitEdge[] | undefined>;
  /** Default 20 ms. */
  pollMs?: number;
  /** Default 1000 ms. */
  refreshMs?: number;
  /**
   * Default 100 ms: a wait younger than this is not reported yet (as PostgreSQL's deadlock_timeout). Most
   * waits end when the holder's commit arrives; only a wait that lasts can be part of a deadlock, and
   * reporting every short one would cost the shards a report per batch under contention.
   */
  minWaitMs?: number;
  now?: () => number;
  onSendFailed?(shard: number, err: unknown): void;
}

const signature = (edges: readonly WaitEdge[]): string =>
  edges
    .map((e) => `${e.waiter}>${e.holder}>${e.key}`)
    .sort()
    .join('|');

export class WaitReporter {
  readonly #deps: WaitReporterDeps;
  readonly #pollMs: number;
  readonly #refreshMs: number;
  readonly #minWaitMs: number;
  /** How long a call is out before the service is asked for its edges. */
  readonly #slowCallMs: number;
  readonly #now: () => number;
  #latest: WaitEdge[] = [];
  /** When the edges were last heard of (a batch answer or a poll). */
  #notedAt = 0;
  #sentSignature = '';
  #sentAt = 0;
  #sending = false;
  /** Start times of the batch calls to the service still outstanding. */
  readonly #outstanding = new Set<{ at: number }>();
  #pollTimer: NodeJS.Timeout | undefined;
  #polling = false;
  #stopped = false;
  /** Reports sent to shards (each shard counts once). */
  reportsSent = 0;

  constructor(deps: WaitReporterDeps) {
    this.#deps = deps;
    this.#pollMs = deps.pollMs ?? 20;
    this.#refreshMs = deps.refreshMs ?? 1000;
    this.#minWaitMs = deps.minWaitMs ?? 100;
    this.#slowCallMs = Math.max(this.#pollMs, this.#minWaitMs);
    this.#now = deps.now ?? Date.now;
  }

  /** The edges worth a report: waits that lasted minWaitMs (an edge without a start time always counts). */
  #lasting(): WaitEdge[] {
    const cutoff = this.#now() - this.#minWaitMs;
    return this.#latest.filter((e) => e.since === undefined || e.since <= cutoff);
  }

  /** The edges a batch answer (or a poll) brought. */
  note(edges: WaitEdge[]): void {
    this.#latest = edges;
    this.#notedAt = this.#now();
    void this.#flush();
  }

  /** A batch call to the service began; call the returned function when it ends. */
  batchStarted(): () => void {
    const call = { at: this.#now() };
    this.#outstanding.add(call);
    this.#schedulePoll();
    return () => {
      this.#outstanding.delete(call);
      // With no call out and no edge standing a poll would do nothing: its timer goes rather than wake the
      // process for nothing (at concurrency 1 that was a wake-up per batch, 20 ms after each).
      if (this.#outstanding.size === 0 && this.#latest.length === 0) this.#cancelPoll();
    };
  }

  #cancelPoll(): void {
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelPoll();
  }

  #schedulePoll(): void {
    if (this.#pollTimer || this.#stopped) return;
    this.#pollTimer = setTimeout(() => void this.#poll(), this.#pollMs);
    this.#pollTimer.unref();
  }

  async #poll(): Promise<void> {
    this.#pollTimer = undefined;
    if (this.#stopped || this.#polling) return;
    // Only a call outstanding for minWaitMs can hold a wait worth a report: a wait inside it began after it
    // did, so it is younger. (A deferred prepare's wait outlives its first call, but that call's answer
    // brought its edge, which then stands.) Standing edges are asked for again so that their end is reported.
    const now = this.#now();
    const slowCall = [...this.#outstanding].some((call) => now - call.at >= this.#slowCallMs);
    // Under load batch answers bring the edges more often than a poll would: ask only when they went quiet.
    const fresh = now - this.#notedAt < this.#pollMs;
    if (!fresh && (slowCall || this.#latest.length > 0)) {
      this.#polling = true;
      try {
        const edges = await this.#deps.poll();
        if (edges) this.note(edges);
      } finally {
        this.#polling = false;
      }
    }
    if (this.#outstanding.size > 0 || this.#latest.length > 0) this.#schedulePoll();
  }

  async #flush(): Promise<void> {
    if (this.#sending || this.#stopped) return;
    const edges = this.#lasting();
    const sig = signature(edges);
    const stale = edges.length > 0 && this.#now() - this.#sentAt >= this.#refreshMs;
    if (sig === this.#sentSignature && !stale) {
      // Waits too young to report (or unchanged) are looked at again, so the ones that last get reported.
      if (this.#latest.length > 0) this.#schedulePoll();
      return;
    }
    this.#sending = true;
    this.#sentSignature = sig;
    this.#sentAt = this.#now();
    const report: WaitReport = { service: this.#deps.service, edges };
    try {
      await Promise.all(
        Array.from({ length: this.#deps.shards }, async (_, shard) => {
          try {
            await this.#deps.send(shard, report);
            this.reportsSent += 1;
          } catch (err) {
            this.#deps.onSendFailed?.(shard, err);
          }
        }),
      );
    } finally {
      this.#sending = false;
    }
    // Edges that changed while this report was on its way go out now.
    if (signature(this.#lasting()) !== this.#sentSignature) void this.#flush();
    else if (this.#latest.length > 0) this.#schedulePoll();
  }
}
