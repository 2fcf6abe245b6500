/** The JSON object that `txmesh bench --json` prints as the last line of stdout. */
import type { NullEchoFigures } from './bench-null-echo.ts';
import type { RunFigures } from './bench-run-figures.ts';

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
  targets: TargetCheck[];
}
