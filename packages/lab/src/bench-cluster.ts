/**
 * A benchmark cluster in one mode, kept up between measured windows: its start, one closed-loop window
 * bracketed by snapshots, the consistency check of every outcome it heard, and its stop.
 */
import { join } from 'node:path';
import { createTxmeshClient, type TxmeshClient } from '@txmesh/client';
import type { Outcome } from '@txmesh/protocol';
import { closedLoop, type LoopTally } from './bench-closed-loop.ts';
import { round } from './bench-math.ts';
import { BENCH_CATALOG, QUIESCE_TIMEOUT_MS, clientConnections, shardMaxConnections, type BenchOptions } from './bench-options.ts';
import { cpus } from 'node:os';
import { machineBusyCpuMs, processMemoryMb } from './bench-process.ts';
import { runFigures, type RunFigures, type RunSpec } from './bench-run-figures.ts';
import { members, snapshot, waitForDrain, type Snapshot } from './bench-snapshot.ts';
import type { WorkItem } from './bench-workload.ts';
import { Cluster } from './cluster.ts';
import { verifyCluster } from './verify.ts';

export interface WindowFigures {
  tally: LoopTally;
  figures: RunFigures;
}

export class BenchCluster {
  readonly spec: RunSpec;
  readonly cluster: Cluster;
  readonly client: TxmeshClient;
  /** Every answer's outcome by txId over all windows (warm-ups included), for the check. */
  readonly heard: Map<string, Outcome> | undefined;
  readonly #startupMs: Record<string, number>;
  readonly #options: BenchOptions;

  private constructor(spec: RunSpec, options: BenchOptions, cluster: Cluster) {
    this.spec = spec;
    this.cluster = cluster;
    this.#options = options;
    this.#startupMs = Object.fromEntries(members(cluster).map((m) => [m.name, round(m.startupMs ?? NaN, 0)]));
    this.client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: clientConnections(options), overloadRetries: 0, ...cluster.clientOptions });
    this.heard = spec.verify ? new Map() : undefined;
  }

  static async start(spec: RunSpec, options: BenchOptions, say: (line: string) => void): Promise<BenchCluster> {
    const memberEnv: Record<string, NodeJS.ProcessEnv> = {};
    if (spec.slowService) {
      memberEnv[`service-${spec.slowService}`] = { TXMESH_SLOW_MS: String(options.slowMs), TXMESH_SLOW_CPU_MS: String(options.slowCpuMs) };
    }
    say(`[${spec.label}] starting ${options.shards} shard(s), 4 services, 4 sidecars (${Object.entries(spec.env).map(([k, v]) => `${k}=${v}`).join(' ')})${spec.slowService ? `; ${spec.slowService} slowed by ${options.slowMs} ms + ${options.slowCpuMs} ms CPU per item` : ''}`);
    // TXMESH_PROFILE_DIR=<dir> writes a V8 CPU profile of every member (as for `txmesh demo`).
    const profileDir = process.env.TXMESH_PROFILE_DIR;
    const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, spec.label)}`] : [];
    const coordinatorArgs = ['--max-connections', String(shardMaxConnections(options))];
    const cluster = await Cluster.start({ shards: options.shards, catalog: BENCH_CATALOG, env: { TXMESH_LOG_LEVEL: 'warn', ...spec.env }, memberEnv, nodeArgs, coordinatorArgs });
    return new BenchCluster(spec, options, cluster);
  }

  /** A closed loop with nothing measured: to warm a cluster up before its first window. */
  async warm(ms: number, next: () => WorkItem): Promise<void> {
    await closedLoop({ concurrency: this.#options.concurrency, warmupMs: 0, durationMs: ms, client: this.client, ...(this.heard ? { heard: this.heard } : {}), next });
  }

  /** A closed loop of warmup + duration; the figures are those of the measured window. */
  async measure(warmupMs: number, durationMs: number, next: () => WorkItem): Promise<WindowFigures> {
    let before: Snapshot | undefined;
    let after: Snapshot | undefined;
    let spansBefore = 0;
    let spansAfter = 0;
    const machine = { before: 0, after: 0, benchBefore: process.cpuUsage(), benchMs: 0, startedAt: 0, wallMs: 0 };
    let memory: RunFigures['memoryMb'] = {};
    const tally = await closedLoop({
      concurrency: this.#options.concurrency,
      warmupMs,
      durationMs,
      client: this.client,
      ...(this.heard ? { heard: this.heard } : {}),
      next,
      onWindowStart: async () => {
        spansBefore = this.spec.spansReceived?.() ?? 0;
        before = await snapshot(this.cluster);
        machine.before = machineBusyCpuMs() ?? NaN;
        machine.benchBefore = process.cpuUsage();
        machine.startedAt = performance.now();
      },
      onWindowEnd: async () => {
        machine.after = machineBusyCpuMs() ?? NaN;
        const bench = process.cpuUsage(machine.benchBefore);
        machine.benchMs = (bench.user + bench.system) / 1000;
        machine.wallMs = performance.now() - machine.startedAt;
        spansAfter = this.spec.spansReceived?.() ?? 0;
        after = await snapshot(this.cluster);
        memory = {};
        for (const m of members(this.cluster)) {
          const mem = processMemoryMb(m.pid);
          if (mem) memory[m.name] = mem;
        }
      },
    });
    if (!before || !after) throw new Error('the measured window did not produce both snapshots');
    const figures = runFigures(this.spec, tally, before, after, { memoryMb: memory, startupMs: this.#startupMs }, undefined);
    if (this.spec.spansReceived) {
      // Exports lag the work by a batch or so at both edges of the window, which roughly cancels out.
      const inWindow = spansAfter - spansBefore;
      figures.spans = { inWindow, perCommittedTx: round(figures.coordinatorCommitted > 0 ? inWindow / figures.coordinatorCommitted : 0, 2) };
    }
    const membersMs = Object.values(figures.cpuMsByMember).filter(Number.isFinite).reduce((total, ms) => total + ms, 0);
    const other = machine.after - machine.before - membersMs - machine.benchMs;
    if (Number.isFinite(other) && machine.wallMs > 0) figures.otherCpuPercent = round(Math.max(0, (100 * other) / (machine.wallMs * cpus().length)), 1);
    figures.pids = Object.fromEntries(members(this.cluster).flatMap((m) => (m.pid === undefined ? [] : [[m.name, m.pid]])));
    return { tally, figures };
  }

  /** Until no shard has a transaction in flight and no sidecar a prepared record, at most `timeoutMs`. */
  drain(timeoutMs = QUIESCE_TIMEOUT_MS): Promise<boolean> {
    return waitForDrain(this.cluster, timeoutMs);
  }

  /** Every service agrees on every outcome heard, nothing is left prepared, stock and money are conserved. */
  async verify(quiescedBefore: boolean, say: (line: string) => void): Promise<NonNullable<RunFigures['verified']>> {
    const heard = this.heard ?? new Map<string, Outcome>();
    const quiesced = await this.drain(quiescedBefore ? 30_000 : 5_000);
    const sidecarUrls = new Map([...this.cluster.sidecars].map(([name, m]) => [name, m.url]));
    const report = await verifyCluster(sidecarUrls, heard);
    const verified = { ...report, quiesced, invariantsOk: report.invariantsOk && quiesced, problems: report.problems.slice(0, 5) };
    say(
      `[${this.spec.label}] checked ${heard.size} outcomes: ${
        verified.invariantsOk
          ? 'every service agrees, nothing left prepared, stock and money conserved'
          : quiesced
            ? `PROBLEMS ${verified.problems.join('; ')}`
            : `not checked: commit/rollback delivery still running ${QUIESCE_TIMEOUT_MS / 1000} s after the window (${report.preparedAfterQuiescence} branches prepared)`
      }`,
    );
    return verified;
  }

  /** Stops every member; a failed run keeps its data and member logs for a post-mortem. */
  async stop(failed: boolean, say: (line: string) => void): Promise<void> {
    const gone = members(this.cluster).filter((m) => !m.running).map((m) => m.name);
    await this.client.close().catch(() => undefined);
    await this.cluster.stop();
    if (failed) say(`[${this.spec.label}] failed${gone.length > 0 ? ` (${gone.join(', ')} had exited)` : ''}; logs kept in ${this.cluster.dataDir}`);
    else this.cluster.removeData();
  }
}
