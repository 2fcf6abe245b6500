/** The targets the benchmark checks its figures against: each with its value, limit, and met or missed. */
import { round } from './bench-math.ts';
import type { BenchOptions } from './bench-options.ts';
import type { BenchReport, TargetCheck } from './bench-report.ts';
import { PROCESS_ROLES, type ProcessRole } from './bench-roles.ts';

/** Issue 17: every role ready this soon after its spawn on an idle machine (median of the probe's rounds). */
const READY_WITHIN_MS = 400;
/** Issue 17: resident memory at concurrency 1000, and of an idle sidecar. */
const RSS_LIMIT_MB = { sidecar: 100, coordinator: 150, idleSidecar: 75 };

/** A figure that must stay at or below its limit. */
export function upper(target: string, value: number, limit: number, note?: string): TargetCheck {
  return { target, value, limit, met: value <= limit, ratio: round(limit > 0 ? value / limit : 0, 3), ...(note ? { note } : {}) };
}
/** A figure that must reach at least its limit. */
export function lower(target: string, value: number, limit: number, note?: string): TargetCheck {
  return { target, value, limit, met: value >= limit, ratio: round(limit > 0 ? value / limit : 0, 3), ...(note ? { note } : {}) };
}

export function benchTargets(report: BenchReport, options: BenchOptions): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const atFull = options.concurrency >= 1000 ? undefined : `measured at concurrency ${options.concurrency}; the target is stated for 1000`;
  checks.push(lower('efficiency >= 0.35 at concurrency 1000', report.efficiency, 0.35, atFull));
  checks.push(upper('coordinator fsyncs per committed tx <= 0.1', report.coordinatorFsyncsPerTx, 0.1));
  checks.push(upper('requests between components per committed tx <= 0.5', report.requestsPerTx, 0.5));
  // A concurrency-1 main run measures it directly; otherwise the idle probe after the main window does.
  if (options.concurrency === 1) checks.push(upper('p50 <= 5 ms at concurrency 1', report.p50Ms, 5));
  else if (report.run.idle && report.run.idle.committed > 0) checks.push(upper('p50 <= 5 ms at concurrency 1', report.run.idle.p50Ms, 5, 'from the idle probe after the main window'));
  const slow = report.slowService;
  if (slow) {
    const refP99 = slow.reference.byClass?.withoutSlow?.p99Ms ?? 0;
    const awareP99 = slow.aware.byClass?.withoutSlow?.p99Ms ?? 0;
    checks.push(upper(`p99 of txs without ${slow.service}, aware vs no slow service <= 1.5x`, round(refP99 > 0 ? awareP99 / refP99 : 0, 3), 1.5));
    checks.push(lower('goodput aware / blind > 1', round(slow.blind.goodputTps > 0 ? slow.aware.goodputTps / slow.blind.goodputTps : 0, 3), 1.000001));
  }
  const startupNote =
    report.startupFrom === 'probe'
      ? `median of ${report.startup?.rounds ?? 0} spawns, each role alone`
      : 'from the main run\'s cluster start (members of a tier start together); the target is stated for a role spawned alone';
  checks.push(...startupTargets(report.startupMs, startupNote));
  if (report.rssMb.sidecar !== undefined) checks.push(upper(`sidecar RSS <= ${RSS_LIMIT_MB.sidecar} MB at concurrency 1000`, report.rssMb.sidecar, RSS_LIMIT_MB.sidecar, atFull ?? 'the largest sidecar at the end of the main window'));
  if (report.rssMb.coordinator !== undefined) checks.push(upper(`coordinator RSS <= ${RSS_LIMIT_MB.coordinator} MB at concurrency 1000`, report.rssMb.coordinator, RSS_LIMIT_MB.coordinator, atFull ?? 'the largest shard at the end of the main window'));
  if (report.telemetry) {
    const roundsNote = `median of ${report.telemetry.rounds} rounds of alternating ${report.telemetry.windowSec} s windows`;
    // The target is stated for every span; a sampled run's ratio is reported, not checked.
    if ((options.traceSamplePercent ?? 100) >= 100) checks.push(lower('throughput with every span exported over OTLP >= 0.85x without tracing', report.telemetry.otlpOverMetrics, 0.85, roundsNote));
    checks.push(lower('throughput with no OpenTelemetry SDK >= 0.98x without tracing', report.telemetry.noSdkOverMetrics, 0.98, roundsNote));
  }
  if (report.idleRssMb) checks.push(idleSidecarTarget(report.idleRssMb));
  return checks;
}

/** The startup targets of issue 17, per role present. */
export function startupTargets(startupMs: Partial<Record<ProcessRole, number>>, note: string): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const role of PROCESS_ROLES) {
    const ms = startupMs[role];
    if (ms !== undefined) checks.push(upper(`${role} prints TXMESH_READY <= ${READY_WITHIN_MS} ms after its spawn`, ms, READY_WITHIN_MS, note));
  }
  return checks;
}

export function idleSidecarTarget(idleRssMb: Record<ProcessRole, number>): TargetCheck {
  return upper(`idle sidecar RSS <= ${RSS_LIMIT_MB.idleSidecar} MB`, idleRssMb.sidecar, RSS_LIMIT_MB.idleSidecar, 'a second after ready, from the startup probe');
}
