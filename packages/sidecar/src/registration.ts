/**
 * Registers the sidecar with every shard and repeats it as a heartbeat carrying the resource report (the
 * report also rides on every batch answer, so heartbeats matter most when the service is idle). A
 * failure is retried at the next beat and never stops the loop.
 */
import type { FastifyBaseLogger } from 'fastify';
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
  log: FastifyBaseLogger;
}

export class Registration {
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Shards whose last registration failed: a shard that stays down is logged at warn once, not every beat. */
  readonly #failing = new Set<number>();

  readonly #deps: RegistrationDeps;
  constructor(deps: RegistrationDeps) {
    this.#deps = deps;
  }

  start(): void {
    void this.#beat();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #beat(): Promise<void> {
    const { coordinator, monitor, log, service, sidecarUrl } = this.#deps;
    // Under load the figures ride on batch answers; an idle service is asked, so the report stays current.
    if (this.#deps.refreshUsage && monitor.usageAgeMs() >= this.#deps.heartbeatMs) await this.#deps.refreshUsage();
    if (this.#stopped) return;
    const report = monitor.report();
    await Promise.all(
      Array.from({ length: coordinator.shards }, async (_, shard) => {
        try {
          await coordinator.register(shard, { service, sidecarUrl, report, shard, shards: coordinator.shards });
          if (this.#failing.delete(shard)) log.warn({ shard }, 'registration with shard succeeded again');
        } catch (err) {
          if (this.#stopped) return;
          if (!this.#failing.has(shard)) log.warn({ err, shard }, 'registration with shard failed; retrying every heartbeat');
          else log.debug({ err, shard }, 'registration with shard failed again');
          this.#failing.add(shard);
        }
      }),
    );
    if (this.#stopped) return;
    // Chained timeouts rather than an interval: a slow shard never makes beats pile up.
    this.#timer = setTimeout(() => void this.#beat(), this.#deps.heartbeatMs);
    this.#timer.unref();
  }
}
