/**
 * `txmesh bench --loads` end to end, at two seconds per load after one of warm-up: every figure present and consistent with its
 * parts (the figures themselves are for a quiet machine; see docs/benchmarks.md). Its own file: Node 20 bounds
 * each test file's time, and this run starts two clusters after the null echo.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TXMESH_BIN } from './helpers.ts';
import { run } from './processes.ts';

const ROLES = ['coordinator', 'service', 'sidecar'];

test('txmesh bench --loads: concurrency 1 (1 and 4 services), 64, open loop, the coordinator alone, against the null echo, the physical path and a local baseline', async () => {
  // The bench exits non-zero on a failure; run() then rejects with its output.
  const { stdout } = await run(process.execPath, [TXMESH_BIN, 'bench', '--loads', '--duration', '2', '--warmup', '1', '--loads-warmup', '2', '--json'], { cwd: process.cwd(), timeoutMs: 200_000 });
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>;
  const path = r.physicalPath;
  assert.ok(path.clientRoundTripP50Ms > 0 && path.sidecarToServiceRoundTripP50Ms > 0 && path.sqliteFullCommitP50Ms > 0);
  assert.equal(path.forcedWrites, 2, 'the service\'s barrier (the sidecar records beside it), then the decision');
  assert.ok(Math.abs(path.physicalPathMs - (path.clientRoundTripP50Ms + path.sidecarToServiceRoundTripP50Ms + path.forcedWrites * path.sqliteFullCommitP50Ms)) < 0.01, 'the physical path is the sum of its parts');
  const pacing = r.pacing;
  assert.equal(pacing.gapMs, 10, 'asleep for about one concurrency-1 transaction');
  for (const trips of [pacing.backToBack, pacing.paced]) assert.ok(trips.p50Ms > 0 && trips.cpuMsPerRequest >= 0);
  const proxy = r.proxy;
  assert.ok(proxy.directP50Ms > 0 && proxy.throughSidecarP50Ms > 0 && proxy.sidecarCpuMsPerRequest > 0, 'both ways measured, and the proxied one costs the sidecar CPU');
  assert.ok(Math.abs(proxy.addedP50Ms - (proxy.throughSidecarP50Ms - proxy.directP50Ms)) < 0.002, 'what the proxy adds is the difference of the two');
  assert.equal(r.clusterWarmupSec, 2);
  assert.ok(r.localBaseline.perCommit.ordersPerSec > 0 && r.localBaseline.batched64.ordersPerSec > 0);
  for (const [name, load, participants, concurrency] of [['c1 one', r.c1.oneService, 1, 1], ['c1 four', r.c1.fourServices, 4, 1], ['c64', r.c64, 4, 64]] as const) {
    assert.equal(load.participants, participants, name);
    assert.equal(load.concurrency, concurrency, name);
    assert.ok(load.committedTps > 0 && load.p50Ms > 0, `${name}: transactions committed`);
    assert.equal(load.errors, 0, `${name}: no errors`);
    for (const role of ROLES) assert.ok(load.cpuMsPerTxByRole[role] > 0, `${name}: CPU per tx of ${role}`);
  }
  assert.ok(r.c1.oneService.requestsPerTx < r.c1.fourServices.requestsPerTx, 'one participant means fewer calls between components');
  assert.equal(r.c64.overNullEcho, Math.round((r.c64.committedTps / r.nullEcho.c64.nullEchoRps) * 10_000) / 10_000);
  for (const open of [r.openLoop.at50, r.openLoop.at80]) assert.ok(open.offered > 0 && open.committedTps > 0 && open.p99Ms >= open.p50Ms);
  assert.ok(r.openLoop.at80.targetTps > r.openLoop.at50.targetTps);
  const alone = r.coordinatorAlone;
  assert.ok(alone.committedTps > 0 && alone.p50Ms > 0 && alone.coordinatorCpuMsPerTx > 0, 'the coordinator alone committed, with null participants');
  assert.equal(alone.overNullEcho, Math.round((alone.committedTps / r.nullEcho.c64.nullEchoRps) * 10_000) / 10_000);
  const targets = new Map((r.targets as { target: string; value: number; met: boolean }[]).map((t) => [t.target, t]));
  assert.equal(targets.get('concurrency 1, 4-service commit: p50 <= 3 ms')?.value, r.c1.fourServices.p50Ms);
  assert.equal(targets.get('concurrency 64: p50 <= 20 ms')?.met, r.c64.p50Ms <= 20);
});

