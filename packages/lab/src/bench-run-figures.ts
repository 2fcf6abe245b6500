/**
 * What one cluster run of the benchmark found: its outcome counts and latencies, and what each committed
 * transaction cost in fsyncs, requests between components, CPU and memory, from the snapshots taken at the
 * edges of the measured window.
 */
import { ECOMMERCE_SERVICES, type EcommerceService } from '@txmesh/example-ecommerce';
import type { LoopTally } from './bench-closed-loop.ts';
import { round, sum } from './bench-math.ts';
import type { CoordinatorStats, Snapshot } from './bench-snapshot.ts';
import { percentile } from './demo.ts';
import type { VerifyReport } from './verify.ts';

/** The outcome counts of a run are the closed loop's, as tallied in its measured window. */
type OutcomeCounts = Pick<LoopTally, 'committed' | 'aborted' | 'abortedByReason' | 'refused' | 'errors' | 'errorsByCode'>;

export interface RunFigures extends OutcomeCounts {
  label: string;
  env: Record<string, string>;
  workload: string;
  slowService?: string;
  committedTps: number;
  /** Committed transactions per second: the work that was worth doing. Same as committedTps here. */
  goodputTps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  byClass?: Record<string, { committed: number; committedTps: number; refused: number; p50Ms: number; p99Ms: number }>;
  coordinatorCommitted: number;
  coordinatorFsyncsPerTx: number;
  requestsPerTx: number;
  requests: {
    coordinatorToSidecarBatches: number;
    sidecarToService: number;
    sidecarToCoordinator: number;
    itemsPerBatch: number;
    sidecarStatsMissing: string[];
  };
  cpuMsPerTx: number;
  cpuMsByMember: Record<string, number>;
  /** Process ids, to match CPU profiles (TXMESH_PROFILE_DIR) to members. */
  pids: Record<string, number>;
  clientCpuMsPerTx: number;
  coordinatorRssMb: number;
  /** Every member's resident memory (VmRSS) and its peak (VmHWM) at the end of the window, MB. */
  memoryMb: Record<string, { rssMb: number; peakRssMb: number }>;
  /** Every member's spawn → TXMESH_READY as this run started its cluster, ms (tiers start in parallel). */
  startupMs: Record<string, number>;
  /**
   * After the run: every service agrees on every outcome the client heard, nothing is left prepared, stock
   * and money are conserved (4-service runs only: the check expects every transaction at every service).
   */
  verified?: Omit<VerifyReport, 'problems'> & { problems: string[]; quiesced: boolean };
  /** Spans the members exported during the window (runs that export to the benchmark's OTLP receiver). */
  spans?: { inWindow: number; perCommittedTx: number };
  /**
   * CPU the machine spent during the window on anything but this cluster's members and the benchmark process
   * (other sessions' work, idle clusters' heartbeats, exports still leaving the previous window's cluster), % of
   * all its cores: how disturbed the window was. Windows of `txmesh bench --telemetry` only.
   */
  otherCpuPercent?: number;
  /** Median latency of a concurrency-1 run after the main window (the idle-path latency). */
  idle?: { concurrency: 1; committed: number; p50Ms: number; p99Ms: number; afterQuiescence: boolean };
}

export interface RunSpec {
  label: string;
  env: Record<string, string>;
  slowService?: EcommerceService;
  /** Leave this service out of half the transactions. */
  mixWithout?: EcommerceService;
  probe: boolean;
  verify: boolean;
  /** Spans received so far by the OTLP receiver the members export to, read at the window's edges. */
  spansReceived?: () => number;
}

/** What the run read from its members' processes: memory at the end of the window, and each one's start. */
export interface ProcessReadings {
  memoryMb: RunFigures['memoryMb'];
  startupMs: RunFigures['startupMs'];
}

export function runFigures(spec: RunSpec, tally: LoopTally, before: Snapshot, after: Snapshot, processes: ProcessReadings, idle: RunFigures['idle']): RunFigures {
  const delta = (pick: (s: CoordinatorStats) => number): number => sum(after.coordinators.map(pick)) - sum(before.coordinators.map(pick));
  const coordinatorCommitted = delta((s) => s.committed);
  const per = (x: number): number => (coordinatorCommitted > 0 ? x / coordinatorCommitted : 0);
  const batches = delta((s) => s.batchesSent);
  const items = delta((s) => s.itemsSent);
  let sidecarToService = 0;
  let sidecarToCoordinator = 0;
  const missing: string[] = [];
  for (const service of ECOMMERCE_SERVICES) {
    const a = after.sidecars[service];
    const b = before.sidecars[service];
    if (!a || !b) {
      missing.push(service);
      continue;
    }
    sidecarToService += a.serviceCalls - b.serviceCalls;
    sidecarToCoordinator += a.coordinatorCalls - b.coordinatorCalls;
  }
  const cpuMsByMember: Record<string, number> = {};
  for (const [name, end] of Object.entries(after.cpuMs)) cpuMsByMember[name] = round(end - (before.cpuMs[name] ?? NaN), 0);
  const clusterCpuMs = sum(Object.values(cpuMsByMember).filter(Number.isFinite));

  const sorted = [...tally.latencies].sort((a, b) => a - b);
  const byClass: RunFigures['byClass'] = {};
  for (const [cls, t] of Object.entries(tally.byClass)) {
    const s = [...t.latencies].sort((a, b) => a - b);
    byClass[cls] = { committed: t.committed, committedTps: round(t.committed / tally.windowSec), refused: t.refused, p50Ms: round(percentile(s, 50)), p99Ms: round(percentile(s, 99)) };
  }
  const committedTps = round(tally.committed / tally.windowSec);
  const coordinatorRss = sum(Object.entries(processes.memoryMb).filter(([n]) => n.startsWith('coordinator-')).map(([, m]) => m.rssMb));
  const result: RunFigures = {
    label: spec.label,
    env: spec.env,
    workload: spec.mixWithout ? `half 4-service orders, half the order without ${spec.mixWithout}` : '4-service order (inventory, payment, order, shipping)',
    committed: tally.committed,
    aborted: tally.aborted,
    abortedByReason: tally.abortedByReason,
    refused: tally.refused,
    errors: tally.errors,
    errorsByCode: tally.errorsByCode,
    committedTps,
    goodputTps: committedTps,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted.at(-1) ?? 0),
    coordinatorCommitted,
    coordinatorFsyncsPerTx: round(per(delta((s) => s.logFlushes)), 4),
    requestsPerTx: round(per(batches + sidecarToService + sidecarToCoordinator), 5),
    requests: {
      coordinatorToSidecarBatches: batches,
      sidecarToService,
      sidecarToCoordinator,
      itemsPerBatch: round(batches > 0 ? items / batches : 0, 1),
      sidecarStatsMissing: missing,
    },
    cpuMsPerTx: round(per(clusterCpuMs), 3),
    cpuMsByMember,
    pids: {},
    clientCpuMsPerTx: round(per(tally.clientCpuMs), 3),
    coordinatorRssMb: round(coordinatorRss, 1),
    memoryMb: processes.memoryMb,
    startupMs: processes.startupMs,
  };
  if (spec.slowService) result.slowService = spec.slowService;
  if (spec.mixWithout) result.byClass = byClass;
  if (idle) result.idle = idle;
  return result;
}
