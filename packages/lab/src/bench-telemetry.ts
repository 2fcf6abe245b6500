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
  /** Each window's share of the machine's cores that went to other work (RunFigures.otherCpuPercent). */
  otherCpuPercent: Record<TelemetryMode, number | undefined>;
}

/** Members' CPU per committed transaction over all of a mode's windows, by role, and the benchmark process's. */
export type RoleCpu = Record<string, number>;

export interface TelemetryComparison {
  rounds: number;
  windowSec: number;
  /** Medians of the rounds' ratios of committed tx/s (otlp ÷ metrics, no-sdk ÷ metrics). */
  otlpOverMetrics: number;
  noSdkOverMetrics: number;
  /**
   * The same ratios taken the other way: each mode's median committed/s over all its windows, divided. Reported
   * beside the medians of the rounds so that neither way of reading the windows is the only one shown.
   */
  ofMedians: { otlpOverMetrics: number; noSdkOverMetrics: number };
  /** Medians of the rounds' ratios of cluster CPU per committed transaction. */
  cpuPerTx: { otlpOverMetrics: number; noSdkOverMetrics: number };
  /**
   * Where each mode's CPU went, ms per committed transaction summed over its windows: coordinator, services, sidecars
   * (the members by role) and bench (the load generator and, with otlp, the receiver), so what tracing adds can be
   * read per role.
   */
  cpuMsPerTxByRole: Record<TelemetryMode, RoleCpu>;
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
    const round_: TelemetryRound = {
      order,
      committedTps: { metrics: figures.metrics.committedTps, noSdk: figures.noSdk.committedTps, otlp: figures.otlp.committedTps },
      otlpOverMetrics: ratio(figures.otlp.committedTps, figures.metrics.committedTps),
      noSdkOverMetrics: ratio(figures.noSdk.committedTps, figures.metrics.committedTps),
      otherCpuPercent: { metrics: figures.metrics.otherCpuPercent, noSdk: figures.noSdk.otherCpuPercent, otlp: figures.otlp.otherCpuPercent },
    };
    perRound.push(round_);
    cpuRatios.otlp.push(ratio(figures.otlp.cpuMsPerTx, figures.metrics.cpuMsPerTx));
    cpuRatios.noSdk.push(ratio(figures.noSdk.cpuMsPerTx, figures.metrics.cpuMsPerTx));
    say(
      `[telemetry round ${r + 1}/${options.telemetryRounds}] ${order.map((m) => `${LABELS[m]} ${figures[m].committedTps} tx/s (${figures[m].cpuMsPerTx} ms CPU/tx, other work ${figures[m].otherCpuPercent ?? '?'} % of the cores)`).join(', ')}: otlp/metrics ${round_.otlpOverMetrics}, no-sdk/metrics ${round_.noSdkOverMetrics}`,
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
    ofMedians: {
      otlpOverMetrics: ratio(summary.otlp.committedTps, summary.metrics.committedTps),
      noSdkOverMetrics: ratio(summary.noSdk.committedTps, summary.metrics.committedTps),
    },
    cpuPerTx: { otlpOverMetrics: median(cpuRatios.otlp), noSdkOverMetrics: median(cpuRatios.noSdk) },
    cpuMsPerTxByRole: { metrics: roleCpu(windows.metrics), noSdk: roleCpu(windows.noSdk), otlp: roleCpu(windows.otlp) },
    perRound,
    ...summary,
    receiver: { spans: 0, requests: 0 },
  };
  const spans = summary.otlp.spans;
  const roles = (mode: TelemetryMode): string => Object.entries(comparison.cpuMsPerTxByRole[mode]).map(([role, ms]) => `${role} ${ms}`).join(', ');
  say(`[telemetry] CPU ms per committed tx by role: metrics ${roles('metrics')}; otlp ${roles('otlp')}; no-sdk ${roles('noSdk')}`);
  say(`[telemetry] ratios of the modes' medians: otlp/metrics ${comparison.ofMedians.otlpOverMetrics}, no-sdk/metrics ${comparison.ofMedians.noSdkOverMetrics}`);
  say(`[telemetry] medians of ${perRound.length} rounds: otlp/metrics ${comparison.otlpOverMetrics}, no-sdk/metrics ${comparison.noSdkOverMetrics}; CPU per tx otlp/metrics ${comparison.cpuPerTx.otlpOverMetrics}, no-sdk/metrics ${comparison.cpuPerTx.noSdkOverMetrics}${spans ? `; ${spans.perCommittedTx} spans exported per committed transaction` : ''}`);
  return comparison;
}

const ratio = (a: number, b: number): number => (b > 0 ? Number((a / b).toPrecision(4)) : 0);

/** A member's role is its name's first word (coordinator-0, service-payment, sidecar-payment). */
function roleCpu(windows: RunFigures[]): RoleCpu {
  const committed = sum(windows.map((w) => w.coordinatorCommitted));
  const totals: Record<string, number> = {};
  for (const w of windows) {
    for (const [member, ms] of Object.entries(w.cpuMsByMember)) {
      if (!Number.isFinite(ms)) continue;
      const role = `${member.split('-')[0]}s`;
      totals[role] = (totals[role] ?? 0) + ms;
    }
    totals.bench = (totals.bench ?? 0) + w.clientCpuMsPerTx * w.coordinatorCommitted;
  }
  return Object.fromEntries(Object.entries(totals).map(([role, ms]) => [role, round(committed > 0 ? ms / committed : 0, 3)]));
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
