/**
 * The benchmark's null baseline: the same client at the same concurrency against `txmesh null-echo`, a
 * fastify endpoint in its own process that answers at once. It shows what the machine, Node and HTTP cost
 * before any transaction work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTxmeshClient } from '@txmesh/client';
import { closedLoop } from './bench-closed-loop.ts';
import { round } from './bench-math.ts';
import { BENCH_CATALOG, clientConnections, type BenchOptions } from './bench-options.ts';
import { processCpuMs } from './bench-process.ts';
import { makeWorkload } from './bench-workload.ts';
import { Member } from './cluster.ts';
import { percentile } from './demo.ts';

export interface NullEchoFigures {
  nullEchoRps: number;
  p50Ms: number;
  p99Ms: number;
  answered: number;
  /** CPU of the null-echo server and of the load generator per answer. */
  cpuMsPerRequest: number;
  clientCpuMsPerRequest: number;
}

export async function runNullEcho(options: BenchOptions, say: (line: string) => void): Promise<NullEchoFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-null-'));
  const echo = new Member('null-echo', 'null-echo', (port) => ['--port', String(port)], join(dir, 'null-echo.log'), {});
  try {
    const url = await echo.start();
    say(`[null-echo] ${url}: ${options.warmupSec} s warm-up, then ${options.durationSec} s at concurrency ${options.concurrency} ...`);
    const client = createTxmeshClient({ coordinatorUrls: [url], connections: clientConnections(options) });
    let cpuBefore = 0;
    let cpuAfter = 0;
    try {
      const tally = await closedLoop({
        concurrency: options.concurrency,
        warmupMs: options.warmupSec * 1000,
        durationMs: options.durationSec * 1000,
        client,
        next: makeWorkload(options.seed, 'null', BENCH_CATALOG),
        onWindowStart: async () => void (cpuBefore = processCpuMs(echo.pid) ?? NaN),
        onWindowEnd: async () => void (cpuAfter = processCpuMs(echo.pid) ?? NaN),
      });
      const sorted = tally.latencies.sort((a, b) => a - b);
      return {
        nullEchoRps: round(tally.committed / tally.windowSec),
        p50Ms: round(percentile(sorted, 50)),
        p99Ms: round(percentile(sorted, 99)),
        answered: tally.committed,
        cpuMsPerRequest: round(tally.committed > 0 ? (cpuAfter - cpuBefore) / tally.committed : 0, 4),
        clientCpuMsPerRequest: round(tally.committed > 0 ? tally.clientCpuMs / tally.committed : 0, 4),
      };
    } finally {
      await client.close().catch(() => undefined);
    }
  } finally {
    await echo.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
