/**
 * The service process measuring itself, for the sidecar's resource report: CPU as a share of what it may
 * use (its cgroup quota, else all cores), resident memory and the container's memory limit, and event-loop
 * delay (loop-delay-gauge.ts). The figures are recomputed at most every `minIntervalMs` (CPU use needs an
 * interval anyway), so attaching them to every batch answer costs nothing under load.
 */
import { availableParallelism } from 'node:os';
import type { ServiceUsage } from '@txmesh/protocol';
import { CgroupReader, type CgroupReaderOptions } from './cgroup.ts';
import { LoopDelayGauge, type LoopDelayGaugeOptions } from './loop-delay-gauge.ts';

export interface ResourceUsageOptions {
  cgroup?: CgroupReaderOptions;
  minIntervalMs?: number;
  now?: () => number;
  /** For tests: process CPU time (user + system) in microseconds. */
  processCpuMicros?: () => number;
  rssBytes?: () => number;
  cores?: number;
  loopDelay?: LoopDelayGaugeOptions;
}

export class ResourceUsageMeter {
  readonly #cgroup: CgroupReader;
  readonly #cpuLimitCores: number;
  readonly #quotaFromCgroup: boolean;
  readonly #memoryLimitBytes: number | undefined;
  readonly #minIntervalMs: number;
  readonly #now: () => number;
  readonly #processCpuMicros: () => number;
  readonly #rssBytes: () => number;
  readonly #loopDelay: LoopDelayGauge;
  #lastAt: number;
  #lastCpuMicros: number;
  #cached: ServiceUsage | undefined;

  constructor(options: ResourceUsageOptions = {}) {
    this.#cgroup = new CgroupReader(options.cgroup);
    const limits = this.#cgroup.limits();
    this.#quotaFromCgroup = limits.cpuLimitCores !== undefined && this.#cgroup.cpuUsageMicros() !== undefined;
    this.#cpuLimitCores = limits.cpuLimitCores ?? options.cores ?? availableParallelism();
    this.#memoryLimitBytes = limits.memoryLimitBytes;
    this.#minIntervalMs = options.minIntervalMs ?? 250;
    this.#now = options.now ?? Date.now;
    this.#processCpuMicros =
      options.processCpuMicros ??
      (() => {
        const u = process.cpuUsage();
        return u.user + u.system;
      });
    this.#rssBytes = options.rssBytes ?? (() => process.memoryUsage.rss());
    this.#loopDelay = new LoopDelayGauge(options.loopDelay);
    this.#lastAt = this.#now();
    this.#lastCpuMicros = this.#cpuMicros();
  }

  /** Under a quota the cgroup's own counter (all processes of the container); otherwise this process's. */
  #cpuMicros(): number {
    return (this.#quotaFromCgroup ? this.#cgroup.cpuUsageMicros() : undefined) ?? this.#processCpuMicros();
  }

  get cpuLimitCores(): number {
    return this.#cpuLimitCores;
  }

  sample(): ServiceUsage {
    const now = this.#now();
    if (this.#cached && now - this.#lastAt < this.#minIntervalMs) return this.#cached;
    const cpuMicros = this.#cpuMicros();
    const usage: ServiceUsage = { at: now, cpuLimitCores: round(this.#cpuLimitCores), rssBytes: this.#rssBytes() };
    const elapsedMicros = (now - this.#lastAt) * 1000;
    if (elapsedMicros > 0) {
      const share = (cpuMicros - this.#lastCpuMicros) / (elapsedMicros * this.#cpuLimitCores);
      usage.cpuPercent = round(Math.max(0, share * 100));
    }
    if (this.#memoryLimitBytes !== undefined) usage.memoryLimitBytes = this.#memoryLimitBytes;
    // Each sample describes the interval since the previous one.
    const delayMs = this.#loopDelay.take();
    if (delayMs !== undefined) usage.eventLoopDelayMs = round(delayMs);
    this.#lastAt = now;
    this.#lastCpuMicros = cpuMicros;
    this.#cached = usage;
    return usage;
  }

  close(): void {
    this.#loopDelay.close();
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
