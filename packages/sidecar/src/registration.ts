/**
 * Registers the sidecar with every shard and repeats it as a heartbeat carrying the resource report (the
 * report also rides on every batch answer, so heartbeats matter most when the service is idle). A
 * failure is retried at the next beat and never stops the loop.
 *
 * The sidecar is ready once every shard has accepted a registration: before that a transaction naming
 * its service may be refused with TXM_UNKNOWN_SERVICE. Ready stays ready when a shard later goes away:
 * that shard remembers the registration (it is in its log), and a readiness probe that failed on every
 * shard hiccup would take the whole service out of its load balancer.
 */
import type { Logger } from 'pino';
import { TxmeshError } from '@txmesh/protocol';
import type { CoordinatorClient } from './coordinator-client.ts';
import type { ResourceMonitor } from './resource-monitor.ts';

export interface RegistrationDeps {
  service: string;
  sidecarUrl: string;
  heartbeatMs: number;
  coordinator: CoordinatorClient;
  monitor: ResourceMonitor;
  /** Asked for the service's usage figures when no batch answer brought them within a heartbeat. */
  refreshUsage?: () => Promise<void>;
  log: Logger;
}

export class Registration {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Shards that accepted at least one registration since start. */
  readonly #accepted = new Set<number>();
  /** Why each shard's last registration failed: a shard that stays down is logged once, not every beat. */
  readonly #failing = new Map<number, string>();
  readonly #ready: Promise<void>;
  #becomeReady: () => void = () => undefined;

  readonly #deps: RegistrationDeps;
  constructor(deps: RegistrationDeps) {
    this.#deps = deps;
    this.#ready = new Promise((resolve) => (this.#becomeReady = resolve));
  }

  start(): void {
    void this.#beat();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  get ready(): boolean {
    return this.#accepted.size === this.#deps.coordinator.shards;
  }

  /** Resolves once every shard has accepted a registration (never rejects; race it with a bound). */
  whenReady(): Promise<void> {
    return this.#ready;
  }

  /** What readiness waits for, in a sentence naming each shard and its last error; undefined when ready. */
  notReadyReason(): string | undefined {
    if (this.ready) return undefined;
    const { coordinator } = this.#deps;
    const waiting: string[] = [];
    for (let shard = 0; shard < coordinator.shards; shard++) {
      if (this.#accepted.has(shard)) continue;
      waiting.push(`shard ${shard} (${coordinator.url(shard)}) ${this.#failing.has(shard) ? `refused or did not answer: ${this.#failing.get(shard)}` : 'has not answered yet'}`);
    }
    return `waiting for every shard to accept the registration of ${this.#deps.service}: ${waiting.join('; ')}`;
  }

  async #beat(): Promise<void> {
    const { coordinator, monitor, service, sidecarUrl } = this.#deps;
    // Under load the figures ride on batch answers; an idle service is asked, so the report stays current.
    // Not before the first registrations: readiness must not wait for a slow service.
    if (this.ready && this.#deps.refreshUsage && monitor.usageAgeMs() >= this.#deps.heartbeatMs) await this.#deps.refreshUsage();
    if (this.#stopped) return;
    const report = monitor.report();
    await Promise.all(
      Array.from({ length: coordinator.shards }, async (_, shard) => {
        try {
          await coordinator.register(shard, { service, sidecarUrl, report, shard, shards: coordinator.shards });
          const again = this.#accepted.has(shard);
          this.#accepted.add(shard);
          if (this.#failing.delete(shard)) this.#deps.log.warn({ shard }, `shard ${shard} accepted the registration${again ? ' again' : ''}`);
        } catch (err) {
          if (!this.#stopped) this.#failed(shard, err);
        }
      }),
    );
    if (this.#stopped) return;
    if (this.ready) this.#becomeReady();
    // Chained timeouts rather than an interval: a slow shard never makes beats pile up.
    this.#timer = setTimeout(() => void this.#beat(), this.#deps.heartbeatMs);
    this.#timer.unref();
  }

  #failed(shard: number, err: unknown): void {
    const { log, heartbeatMs, coordinator } = this.#deps;
    const cause = err instanceof TxmeshError ? `${err.code}${err.details ? ` (${err.details})` : ''}` : err instanceof Error ? err.message : String(err);
    const known = this.#failing.has(shard);
    this.#failing.set(shard, cause);
    if (known) {
      log.debug({ shard, cause }, 'registration with shard failed again');
    } else if (!this.#accepted.has(shard)) {
      log.warn({ shard, url: coordinator.url(shard), cause }, `not ready: shard ${shard} at ${coordinator.url(shard)} has not accepted the registration (${cause}); retrying every ${heartbeatMs} ms, TXMESH_READY waits for every shard`);
    } else {
      log.warn({ shard, url: coordinator.url(shard), cause }, `registration heartbeat to shard ${shard} failed (${cause}); retrying every ${heartbeatMs} ms`);
    }
  }
}
