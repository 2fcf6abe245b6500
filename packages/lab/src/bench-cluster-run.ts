/**
 * One cluster run of the benchmark: a fresh cluster in a mode, a warm-up and a measured window of the
 * closed loop, the idle probe, the consistency check, then the cluster stopped and its data removed.
 */
import { closedLoop } from './bench-closed-loop.ts';
import { round } from './bench-math.ts';
import { BENCH_CATALOG, type BenchOptions } from './bench-options.ts';
import { BenchCluster } from './bench-cluster.ts';
import type { RunFigures, RunSpec } from './bench-run-figures.ts';
import { makeWorkload } from './bench-workload.ts';
import { percentile } from './demo.ts';

export async function runCluster(spec: RunSpec, options: BenchOptions, say: (line: string) => void): Promise<RunFigures> {
  const bench = await BenchCluster.start(spec, options, say);
  let failed = true;
  try {
    say(`[${spec.label}] ${options.warmupSec} s warm-up, then ${options.durationSec} s measured at concurrency ${options.concurrency} ...`);
    const { figures: result } = await bench.measure(options.warmupSec * 1000, options.durationSec * 1000, makeWorkload(options.seed, spec.label, BENCH_CATALOG, spec.mixWithout));
    // The idle probe and the check both need the main window's commit/rollback backlog delivered first;
    // a backlog (the naive mode at high concurrency) can take minutes, bounded all the same.
    const quiescedAfterRun = spec.probe || bench.heard ? await bench.drain() : true;
    if (spec.probe && options.probeSec > 0) {
      const probe = await closedLoop({
        concurrency: 1,
        warmupMs: 500,
        durationMs: options.probeSec * 1000,
        client: bench.client,
        ...(bench.heard ? { heard: bench.heard } : {}),
        next: makeWorkload(options.seed + 1, `${spec.label}-idle`, BENCH_CATALOG),
      });
      probe.latencies.sort((a, b) => a - b);
      result.idle = {
        concurrency: 1,
        committed: probe.committed,
        p50Ms: round(percentile(probe.latencies, 50)),
        p99Ms: round(percentile(probe.latencies, 99)),
        afterQuiescence: quiescedAfterRun,
      };
    }
    if (bench.heard) result.verified = await bench.verify(quiescedAfterRun, say);
    failed = false;
    return result;
  } finally {
    await bench.stop(failed, say);
  }
}
