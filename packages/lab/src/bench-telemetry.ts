/**
 * `txmesh bench --telemetry`: what observing transactions costs. Three clusters of the same workload stay up
 * side by side: **metrics** (what every process does by default: `/metrics` served, no tracing), **no-sdk**
 * (no OpenTelemetry SDK in any member) and **otlp** (every span exported, always_on, over OTLP/HTTP protobuf to
 * a receiver in this process, with the SDK's default batching). Only one of them is under load at a time:
 * the modes take turns in short windows, round after round, each round in a rotated order, and each ratio is
 * the median of its per-round ratios. One long window per mode measured whatever the neighbours did during
 * it (a no-sdk run came out at 0.83x in one run and 1.01x in the next); windows of the modes interleaved
 * within seconds of each other see the same machine. The load generator registers no provider in any
 * cluster, so the figures are txmesh's own cost.
 */
import { BenchCluster } from './bench-cluster.ts';
import { median, round, sum } from './bench-math.ts';
import { BENCH_CATALOG, NO_SDK_ENV, OPTIMISED_ENV, type BenchOptions } from './bench-options.ts';
import type { RunFigures, RunSpec } from './bench-run-figures.ts';
import { makeWorkload, type WorkItem } from './bench-workload.ts';
import { OtlpReceiver } from './otlp-receiver.ts';

/** How long a cluster runs at full concurrency before each of its windows opens (the previous one's load is off). */
const RAMP_MS = 1000;
/** At most this long for the previous window's commit/rollback backlog before the next cluster's turn. */
const DRAIN_BETWEEN_MS = 30_000;

export type TelemetryMode = 'metrics' | 'noSdk' | 'otlp';
const MODES: readonly TelemetryMode[] = ['metrics', 'noSdk', 'otlp'];
const LABELS: Record<TelemetryMode, string> = { metrics: 'metrics', noSdk: 'no-sdk', otlp: 'otlp' };

/** One mode over all its windows: medians of the per-window figures, every window's figures, the check. */
export interface TelemetryModeFigures {
  label: string;
  env: Record<string, string>;
  committedTps: number;
  cpuMsPerTx: number;
  p50Ms: number;
  p99Ms: number;
  windows: RunFigures[];
  /** Spans received over all windows of the otlp mode, and per transaction the shard committed in them. */
  spans?: { inWindows: number; perCommittedTx: number };
  verified?: RunFigures['verified'];
}

export interface TelemetryRound {
  /** The order the modes ran in this round. */
  order: TelemetryMode[];
  committedTps: Record<TelemetryMode, number>;
  otlpOverMetrics: number;
  noSdkOverMetrics: number;
}

export interface TelemetryComparison {
  rounds: number;
  windowSec: number;
  /** Medians of the rounds' ratios of committed tx/s (otlp ÷ metrics, no-sdk ÷ metrics). */
  otlpOverMetrics: number;
  noSdkOverMetrics: number;
  /** Medians of the rounds' ratios of cluster CPU per committed transaction. */
  cpuPerTx: { otlpOverMetrics: number; noSdkOverMetrics: number };
  perRound: TelemetryRound[];
  metrics: TelemetryModeFigures;
  noSdk: TelemetryModeFigures;
  otlp: TelemetryModeFigures;
  /** What the receiver got over the whole otlp cluster's life (warm-ups and idle included). */
  receiver: { spans: number; requests: number };
}

/** Each mode gets `--telemetry-rounds` windows that together last `--duration` (at least 1 s each). */
export function telemetryWindowMs(options: BenchOptions): number {
  return Math.max(1000, Math.round((options.durationSec * 1000) / options.telemetryRounds));
}

export async function compareTelemetry(options: BenchOptions, say: (line: string) => void): Promise<TelemetryComparison> {
  const receiver = await OtlpReceiver.start({ keepSpans: false });
  const specs: Record<TelemetryMode, RunSpec> = {
    metrics: { label: LABELS.metrics, env: OPTIMISED_ENV, probe: false, verify: true },
    noSdk: { label: LABELS.noSdk, env: NO_SDK_ENV, probe: false, verify: true },
    otlp: {
      label: LABELS.otlp,
      env: { ...OPTIMISED_ENV, ...(receiver.benchmarkEnv((options.traceSamplePercent ?? 100) / 100) as Record<string, string>) },
      probe: false,
      verify: true,
      spansReceived: () => receiver.count,
    },
  };
  const clusters = new Map<TelemetryMode, BenchCluster>();
  let failed = true;
  try {
    for (const mode of MODES) clusters.set(mode, await BenchCluster.start(specs[mode], options, say));
    const comparison = await alternate(clusters, options, say);
    comparison.receiver = { spans: receiver.count, requests: receiver.requests };
    failed = false;
    return comparison;
  } finally {
    for (const bench of clusters.values()) await bench.stop(failed, say);
    await receiver.close();
  }
}

async function alternate(clusters: Map<TelemetryMode, BenchCluster>, options: BenchOptions, say: (line: string) => void): Promise<TelemetryComparison> {
  const cluster = (mode: TelemetryMode): BenchCluster => clusters.get(mode)!;
  const workloads = new Map<TelemetryMode, () => WorkItem>(MODES.map((m) => [m, makeWorkload(options.seed, LABELS[m], BENCH_CATALOG)]));
  const next = (mode: TelemetryMode): (() => WorkItem) => workloads.get(mode)!;
  const windowMs = telemetryWindowMs(options);
  say(`[telemetry] ${options.warmupSec} s warm-up per cluster, then ${options.telemetryRounds} rounds of one ${windowMs / 1000} s window per mode (each after ${RAMP_MS / 1000} s at load), the order rotating`);
  for (const mode of MODES) {
    await cluster(mode).warm(options.warmupSec * 1000, next(mode));
    await cluster(mode).drain(DRAIN_BETWEEN_MS);
  }
  const windows: Record<TelemetryMode, RunFigures[]> = { metrics: [], noSdk: [], otlp: [] };
  const perRound: TelemetryRound[] = [];
  const cpuRatios: { otlp: number[]; noSdk: number[] } = { otlp: [], noSdk: [] };
  for (let r = 0; r < options.telemetryRounds; r++) {
    const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]!);
    const figures = {} as Record<TelemetryMode, RunFigures>;
    for (const mode of order) {
      figures[mode] = (await cluster(mode).measure(RAMP_MS, windowMs, next(mode))).figures;
      windows[mode].push(figures[mode]);
      await cluster(mode).drain(DRAIN_BETWEEN_MS);
    }
    const over = (a: number, b: number): number => (b > 0 ? Number((a / b).toPrecision(4)) : 0);
    const round_: TelemetryRound = {
      order,
      committedTps: { metrics: figures.metrics.committedTps, noSdk: figures.noSdk.committedTps, otlp: figures.otlp.committedTps },
      otlpOverMetrics: over(figures.otlp.committedTps, figures.metrics.committedTps),
      noSdkOverMetrics: over(figures.noSdk.committedTps, figures.metrics.committedTps),
    };
    perRound.push(round_);
    cpuRatios.otlp.push(over(figures.otlp.cpuMsPerTx, figures.metrics.cpuMsPerTx));
    cpuRatios.noSdk.push(over(figures.noSdk.cpuMsPerTx, figures.metrics.cpuMsPerTx));
    say(
      `[telemetry round ${r + 1}/${options.telemetryRounds}] ${order.map((m) => `${LABELS[m]} ${figures[m].committedTps} tx/s (${figures[m].cpuMsPerTx} ms CPU/tx)`).join(', ')}: otlp/metrics ${round_.otlpOverMetrics}, no-sdk/metrics ${round_.noSdkOverMetrics}`,
    );
  }
  const summary = {} as Record<TelemetryMode, TelemetryModeFigures>;
  for (const mode of MODES) {
    const bench = cluster(mode);
    summary[mode] = summarise(bench, windows[mode]);
    summary[mode].verified = await bench.verify(true, say);
  }
  const comparison: TelemetryComparison = {
    rounds: options.telemetryRounds,
    windowSec: windowMs / 1000,
    otlpOverMetrics: median(perRound.map((r) => r.otlpOverMetrics)),
    noSdkOverMetrics: median(perRound.map((r) => r.noSdkOverMetrics)),
    cpuPerTx: { otlpOverMetrics: median(cpuRatios.otlp), noSdkOverMetrics: median(cpuRatios.noSdk) },
    perRound,
    ...summary,
    receiver: { spans: 0, requests: 0 },
  };
  const spans = summary.otlp.spans;
  say(`[telemetry] medians of ${perRound.length} rounds: otlp/metrics ${comparison.otlpOverMetrics}, no-sdk/metrics ${comparison.noSdkOverMetrics}; CPU per tx otlp/metrics ${comparison.cpuPerTx.otlpOverMetrics}, no-sdk/metrics ${comparison.cpuPerTx.noSdkOverMetrics}${spans ? `; ${spans.perCommittedTx} spans exported per committed transaction` : ''}`);
  return comparison;
}

function summarise(bench: BenchCluster, windows: RunFigures[]): TelemetryModeFigures {
  const figures: TelemetryModeFigures = {
    label: bench.spec.label,
    env: bench.spec.env,
    committedTps: median(windows.map((w) => w.committedTps)),
    cpuMsPerTx: median(windows.map((w) => w.cpuMsPerTx)),
    p50Ms: median(windows.map((w) => w.p50Ms)),
    p99Ms: median(windows.map((w) => w.p99Ms)),
    windows,
  };
  if (bench.spec.spansReceived) {
    const inWindows = sum(windows.map((w) => w.spans?.inWindow ?? 0));
    const committed = sum(windows.map((w) => w.coordinatorCommitted));
    figures.spans = { inWindows, perCommittedTx: round(committed > 0 ? inWindows / committed : 0, 2) };
  }
  return figures;
}
