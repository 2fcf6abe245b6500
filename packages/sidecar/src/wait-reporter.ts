/**
 * Relays the service's wait-for edges to every shard, for deadlock detection. The edges come with the
 * service's batch answers; while a batch call is outstanding longer than `pollMs` (its prepares are
 * probably waiting for locks) the reporter also asks the service every `pollMs`, because a waiting
 * batch answers nothing until its waits end. A shard hears a report when the edges changed, and again
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
  #latest: WaitEdge[] = [];
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
  }

  /** The edges a batch answer (or a poll) brought. */
  note(edges: WaitEdge[]): void {
    this.#latest = edges;
    void this.#flush();
  }

  /** A batch call to the service began; call the returned function when it ends. */
  batchStarted(): () => void {
    const call = { at: Date.now() };
    this.#outstanding.add(call);
    this.#schedulePoll();
    return () => {
      this.#outstanding.delete(call);
    };
  }

  stop(): void {
    this.#stopped = true;
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  #schedulePoll(): void {
    if (this.#pollTimer || this.#stopped) return;
    this.#pollTimer = setTimeout(() => void this.#poll(), this.#pollMs);
    this.#pollTimer.unref();
  }

  async #poll(): Promise<void> {
    this.#pollTimer = undefined;
    if (this.#stopped || this.#polling) return;
    // Only a call outstanding for a whole poll interval is probably waiting for locks; standing edges
    // are asked for again so that their end is reported.
    const slowCall = [...this.#outstanding].some((call) => Date.now() - call.at >= this.#pollMs);
    if (slowCall || this.#latest.length > 0) {
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
    const edges = this.#latest;
    const sig = signature(edges);
    const stale = edges.length > 0 && Date.now() - this.#sentAt >= this.#refreshMs;
    if (sig === this.#sentSignature && !stale) return;
    this.#sending = true;
    this.#sentSignature = sig;
    this.#sentAt = Date.now();
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
    if (signature(this.#latest) !== this.#sentSignature) void this.#flush();
    else if (this.#latest.length > 0) this.#schedulePoll();
  }
}
