/** The JSON object that `txmesh bench --json` prints as the last line of stdout. */
import type { NullEchoFigures } from './bench-null-echo.ts';
import type { ProcessRole } from './bench-roles.ts';
import type { StartupFigures } from './bench-startup.ts';
import type { RunFigures } from './bench-run-figures.ts';
import type { TelemetryComparison } from './bench-telemetry.ts';

export interface TargetCheck {
  target: string;
  value: number;
  limit: number;
  met: boolean;
  /** value / limit: how far over (for an upper bound) or under (for a lower bound) the limit the figure is. */
  ratio: number;
  note?: string;
}

export interface BenchReport {
  machine: { cpus: number; cpuModel: string; loadavg1m: number; node: string };
  /** The checkout whose members ran (TXMESH_MEMBERS_CHECKOUT), when not this one. */
  membersCheckout?: string;
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  shards: number;
  seed: number;
  mode: 'optimised' | 'naive';
  committedTps: number;
  p50Ms: number;
  p99Ms: number;
  nullEchoRps: number;
  efficiency: number;
  coordinatorFsyncsPerTx: number;
  requestsPerTx: number;
  cpuMsPerTx: number;
  coordinatorRssMb: number;
  sidecarRssMb: Record<string, number>;
  /**
   * Per role, spawn → TXMESH_READY in ms: the median of the startup probe's rounds, each role spawned alone
   * (`startupFrom: 'probe'`), or without the probe the median of the main run's members as its cluster started.
   */
  startupMs: Partial<Record<ProcessRole, number>>;
  startupFrom: 'probe' | 'cluster';
  /** Per role, CPU ms (user + system) until TXMESH_READY: the startup probe's median (absent without it). Load-independent. */
  startupCpuMs?: Record<ProcessRole, number>;
  /** Per role, resident memory at the end of the main run's window in MB: the role's largest member. */
  rssMb: Partial<Record<ProcessRole, number>>;
  /** Per role, resident memory after a second idle in MB (the startup probe's median; absent without it). */
  idleRssMb?: Record<ProcessRole, number>;
  /** The startup probe's rounds. */
  startup?: StartupFigures;
  abortedByReason: Record<string, number>;
  /** The consistency check after the 4-service runs (main and naive) passed. */
  invariantsOk: boolean;
  /**
   * The check found a broken outcome or invariant (false when it passed or could not run because delivery
   * was still going on, which `run.verified.quiesced` shows).
   */
  inconsistent: boolean;
  run: RunFigures;
  nullEcho: NullEchoFigures;
  naive?: RunFigures & { efficiency: number };
  compare?: { optimisedOverNaive: Record<string, number> };
  slowService?: {
    service: string;
    slowMs: number;
    slowCpuMsPerItem: number;
    reference: RunFigures;
    aware: RunFigures;
    blind: RunFigures;
  };
  /** `--telemetry`: the runs without an SDK and with every span exported, against the main run. */
  telemetry?: TelemetryComparison;
  targets: TargetCheck[];
}
