/**
 * One cluster run of the benchmark: a fresh cluster in a mode, a warm-up and a measured window of the
 * closed loop, the idle probe, the consistency check, then the cluster stopped and its data removed.
 */
import { join } from 'node:path';
import { createTxmeshClient } from '@txmesh/client';
import type { Outcome } from '@txmesh/protocol';
import { closedLoop } from './bench-closed-loop.ts';
import { round } from './bench-math.ts';
import { BENCH_CATALOG, QUIESCE_TIMEOUT_MS, clientConnections, shardMaxConnections, type BenchOptions } from './bench-options.ts';
import { processMemoryMb } from './bench-process.ts';
import { runFigures, type RunFigures, type RunSpec } from './bench-run-figures.ts';
import { members, snapshot, waitForDrain, type Snapshot } from './bench-snapshot.ts';
import { makeWorkload } from './bench-workload.ts';
import { Cluster } from './cluster.ts';
import { percentile } from './demo.ts';
import { verifyCluster } from './verify.ts';

export async function runCluster(spec: RunSpec, options: BenchOptions, say: (line: string) => void): Promise<RunFigures> {
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
  const startupMs = Object.fromEntries(members(cluster).map((m) => [m.name, round(m.startupMs ?? NaN, 0)]));
  const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: clientConnections(options), overloadRetries: 0, ...cluster.clientOptions });
  let failed = true;
  try {
    let before: Snapshot | undefined;
    let after: Snapshot | undefined;
    let spansBefore = 0;
    let spansAfter = 0;
    let memory: RunFigures['memoryMb'] = {};
    const heard = spec.verify ? new Map<string, Outcome>() : undefined;
    say(`[${spec.label}] ${options.warmupSec} s warm-up, then ${options.durationSec} s measured at concurrency ${options.concurrency} ...`);
    const tally = await closedLoop({
      concurrency: options.concurrency,
      warmupMs: options.warmupSec * 1000,
      durationMs: options.durationSec * 1000,
      client,
      ...(heard ? { heard } : {}),
      next: makeWorkload(options.seed, spec.label, BENCH_CATALOG, spec.mixWithout),
      onWindowStart: async () => {
        spansBefore = spec.spansReceived?.() ?? 0;
        before = await snapshot(cluster);
      },
      onWindowEnd: async () => {
        spansAfter = spec.spansReceived?.() ?? 0;
        after = await snapshot(cluster);
        memory = {};
        for (const m of members(cluster)) {
          const mem = processMemoryMb(m.pid);
          if (mem) memory[m.name] = mem;
        }
      },
    });
    if (!before || !after) throw new Error('the measured window did not produce both snapshots');

    const sidecarUrls = new Map([...cluster.sidecars].map(([name, m]) => [name, m.url]));
    // The idle probe and the check both need the main window's commit/rollback backlog delivered first;
    // a backlog (the naive mode at high concurrency) can take minutes, bounded all the same.
    const quiescedAfterRun = spec.probe || heard ? await waitForDrain(cluster, QUIESCE_TIMEOUT_MS) : true;
    let idle: RunFigures['idle'];
    if (spec.probe && options.probeSec > 0) {
      const probe = await closedLoop({
        concurrency: 1,
        warmupMs: 500,
        durationMs: options.probeSec * 1000,
        client,
        ...(heard ? { heard } : {}),
        next: makeWorkload(options.seed + 1, `${spec.label}-idle`, BENCH_CATALOG),
      });
      probe.latencies.sort((a, b) => a - b);
      idle = {
        concurrency: 1,
        committed: probe.committed,
        p50Ms: round(percentile(probe.latencies, 50)),
        p99Ms: round(percentile(probe.latencies, 99)),
        afterQuiescence: quiescedAfterRun,
      };
    }
    const result = runFigures(spec, tally, before, after, { memoryMb: memory, startupMs }, idle);
    if (spec.spansReceived) {
      // Exports lag the work by a batch or so at both edges of the window, which roughly cancels out.
      const inWindow = spansAfter - spansBefore;
      result.spans = { inWindow, perCommittedTx: round(result.coordinatorCommitted > 0 ? inWindow / result.coordinatorCommitted : 0, 2) };
    }
    if (heard) {
      const quiesced = await waitForDrain(cluster, quiescedAfterRun ? 30_000 : 5_000);
      const report = await verifyCluster(sidecarUrls, heard);
      result.verified = { ...report, quiesced, invariantsOk: report.invariantsOk && quiesced, problems: report.problems.slice(0, 5) };
      say(
        `[${spec.label}] checked ${heard.size} outcomes: ${
          result.verified.invariantsOk
            ? 'every service agrees, nothing left prepared, stock and money conserved'
            : quiesced
              ? `PROBLEMS ${result.verified.problems.join('; ')}`
              : `not checked: commit/rollback delivery still running ${QUIESCE_TIMEOUT_MS / 1000} s after the window (${report.preparedAfterQuiescence} branches prepared)`
        }`,
      );
    }
    result.pids = Object.fromEntries(members(cluster).flatMap((m) => (m.pid === undefined ? [] : [[m.name, m.pid]])));
    failed = false;
    return result;
  } finally {
    const gone = members(cluster).filter((m) => !m.running).map((m) => m.name);
    await client.close().catch(() => undefined);
    await cluster.stop();
    // A failed run keeps its data and member logs for a post-mortem.
    if (failed) say(`[${spec.label}] failed${gone.length > 0 ? ` (${gone.join(', ')} had exited)` : ''}; logs kept in ${cluster.dataDir}`);
    else cluster.removeData();
  }
}
