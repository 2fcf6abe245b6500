/**
 * `txmesh bench`: drives the e-commerce order closed-loop against a real cluster on loopback and
 * measures it against a null baseline (the same client against a fastify endpoint that answers at once),
 * plus what each committed transaction costs in fsyncs, requests between components, CPU and memory.
 * --compare adds a run with batching, group commit and the scheduler off; --slow-service adds a
 * resource-aware / resource-blind comparison with one service slowed. Every run of one invocation uses
 * the same client, concurrency, durations and seed. A startup probe first spawns each role alone and
 * reports how soon it is ready and how much memory it holds idle; every run reports its members' memory.
 */
import { cpus, loadavg } from 'node:os';
import { describeRun } from './bench-format.ts';
import { round } from './bench-math.ts';
import { BLIND_ENV, NAIVE_ENV, OPTIMISED_ENV, type BenchOptions } from './bench-options.ts';
import { runCluster } from './bench-cluster-run.ts';
import { runNullEcho } from './bench-null-echo.ts';
import type { BenchReport } from './bench-report.ts';
import { largestPerRole, medianPerRole } from './bench-roles.ts';
import type { RunFigures } from './bench-run-figures.ts';
import { probeStartup } from './bench-startup.ts';
import { benchTargets } from './bench-targets.ts';
import { compareTelemetry } from './bench-telemetry.ts';
import { MEMBERS_CHECKOUT } from './cluster.ts';

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const say = (line: string): void => void options.out.write(`${line}\n`);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', loadavg1m: round(loadavg()[0] ?? 0), node: process.version };
  say(`txmesh bench: ${machine.cpus} CPU(s), load ${machine.loadavg1m}; concurrency ${options.concurrency}, ${options.durationSec} s per run`);
  if (MEMBERS_CHECKOUT) say(`members run from ${MEMBERS_CHECKOUT} (TXMESH_MEMBERS_CHECKOUT)`);

  // Before anything else: the targets on startup are stated for an otherwise idle machine.
  const startup = options.startupRounds > 0 ? await probeStartup(options.startupRounds, say) : undefined;

  // The baseline runs alone, before any cluster exists, so it gets the whole machine as the cluster will.
  const nullEcho = await runNullEcho(options, say);
  say(`[null-echo] ${nullEcho.nullEchoRps} req/s, p50 ${nullEcho.p50Ms} ms, p99 ${nullEcho.p99Ms} ms`);

  const mainNaive = options.naive && !options.compare;
  const main = await runCluster({ label: mainNaive ? 'naive' : 'optimised', env: mainNaive ? NAIVE_ENV : OPTIMISED_ENV, probe: true, verify: true }, options, say);
  say(describeRun(main, nullEcho));
  const efficiency = (tps: number): number => round(nullEcho.nullEchoRps > 0 ? tps / nullEcho.nullEchoRps : 0, 6);

  const report: BenchReport = {
    machine,
    ...(MEMBERS_CHECKOUT ? { membersCheckout: MEMBERS_CHECKOUT } : {}),
    concurrency: options.concurrency,
    durationSec: options.durationSec,
    warmupSec: options.warmupSec,
    shards: options.shards,
    seed: options.seed,
    mode: mainNaive ? 'naive' : 'optimised',
    committedTps: main.committedTps,
    p50Ms: main.p50Ms,
    p99Ms: main.p99Ms,
    nullEchoRps: nullEcho.nullEchoRps,
    efficiency: efficiency(main.committedTps),
    coordinatorFsyncsPerTx: main.coordinatorFsyncsPerTx,
    requestsPerTx: main.requestsPerTx,
    cpuMsPerTx: main.cpuMsPerTx,
    coordinatorRssMb: main.coordinatorRssMb,
    sidecarRssMb: Object.fromEntries(Object.entries(main.memoryMb).filter(([n]) => n.startsWith('sidecar-')).map(([n, m]) => [n.slice('sidecar-'.length), m.rssMb])),
    startupMs: startup?.startupMs ?? medianPerRole(main.startupMs),
    startupFrom: startup ? 'probe' : 'cluster',
    rssMb: largestPerRole(Object.fromEntries(Object.entries(main.memoryMb).map(([name, m]) => [name, m.rssMb]))),
    ...(startup ? { startupCpuMs: startup.startupCpuMs, idleRssMb: startup.idleRssMb, startup } : {}),
    abortedByReason: main.abortedByReason,
    invariantsOk: main.verified?.invariantsOk ?? false,
    inconsistent: isInconsistent(main),
    run: main,
    nullEcho,
    targets: [],
  };

  if (options.compare) {
    const naive = await runCluster({ label: 'naive', env: NAIVE_ENV, probe: true, verify: true }, options, say);
    say(describeRun(naive, nullEcho));
    report.naive = { ...naive, efficiency: efficiency(naive.committedTps) };
    report.invariantsOk &&= naive.verified?.invariantsOk ?? false;
    report.inconsistent ||= isInconsistent(naive);
    // Four significant digits: fsyncs per tx can differ by four orders of magnitude between the modes.
    const ratio = (a: number, b: number): number => (b > 0 ? Number((a / b).toPrecision(4)) : 0);
    report.compare = {
      optimisedOverNaive: {
        committedTps: ratio(main.committedTps, naive.committedTps),
        p50Ms: ratio(main.p50Ms, naive.p50Ms),
        p99Ms: ratio(main.p99Ms, naive.p99Ms),
        coordinatorFsyncsPerTx: ratio(main.coordinatorFsyncsPerTx, naive.coordinatorFsyncsPerTx),
        requestsPerTx: ratio(main.requestsPerTx, naive.requestsPerTx),
        cpuMsPerTx: ratio(main.cpuMsPerTx, naive.cpuMsPerTx),
      },
    };
  }

  if (options.slowService) {
    const s = options.slowService;
    const reference = await runCluster({ label: 'slow-reference', env: OPTIMISED_ENV, mixWithout: s, probe: false, verify: false }, options, say);
    say(describeRun(reference, nullEcho));
    const aware = await runCluster({ label: 'slow-aware', env: OPTIMISED_ENV, mixWithout: s, slowService: s, probe: false, verify: false }, options, say);
    say(describeRun(aware, nullEcho));
    const blind = await runCluster({ label: 'slow-blind', env: BLIND_ENV, mixWithout: s, slowService: s, probe: false, verify: false }, options, say);
    say(describeRun(blind, nullEcho));
    report.slowService = { service: s, slowMs: options.slowMs, slowCpuMsPerItem: options.slowCpuMs, reference, aware, blind };
  }

  if (options.telemetry) {
    const telemetry = await compareTelemetry(options, say);
    const modes = [telemetry.metrics, telemetry.noSdk, telemetry.otlp];
    report.telemetry = telemetry;
    report.invariantsOk &&= modes.every((m) => m.verified?.invariantsOk ?? false);
    report.inconsistent ||= modes.some(isInconsistent);
  }

  report.targets = benchTargets(report, options);
  return report;
}

function isInconsistent(run: Pick<RunFigures, 'verified'>): boolean {
  return run.verified !== undefined && run.verified.quiesced && !run.verified.invariantsOk;
}
