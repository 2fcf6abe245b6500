/**
 * `txmesh bench-isolation` end to end, briefly: bank services started by the lab's cluster harness under two deadlock
 * modes, the same seeded transfers, and a report whose figures agree with each other. The figures themselves are
 * for a quiet machine (docs/benchmarks.md). Its own file: Node 20 bounds each test file's time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TXMESH_BIN } from './helpers.ts';
import { run } from './processes.ts';

test('txmesh bench-isolation: transfers under detect and wait-die, each committing, with a comparison', async () => {
  const args = ['bench-isolation', '--workloads', 'transfers', '--modes', 'detect,wait-die', '--duration', '2', '--warmup', '0', '--concurrency', '4', '--shards', '1', '--accounts', '50', '--json'];
  // The bench exits non-zero when a member fails to start or a run fails; run() then rejects with its output.
  const { stdout } = await run(process.execPath, [TXMESH_BIN, ...args], { cwd: process.cwd(), timeoutMs: 150_000 });
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>;
  assert.deepEqual(report.runs.map((r: any) => `${r.workload}/${r.mode}`), ['transfers/detect', 'transfers/wait-die']);
  for (const r of report.runs) {
    assert.ok(r.committed > 0, `${r.mode}: transfers committed`);
    assert.equal(r.errors, 0, `${r.mode}: no error answers`);
    const aborts = Object.values(r.abortsByReason as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.equal(aborts, r.aborted, `${r.mode}: the aborts by reason add up`);
    assert.ok(r.lockAborts <= r.aborted);
    assert.ok(r.p99Ms >= r.p50Ms && r.p50Ms > 0);
  }
  const [comparison] = report.comparison;
  assert.equal(comparison.workload, 'transfers');
  const [detect, waitDie] = report.runs;
  assert.equal(comparison.goodputRatio, Math.round((detect.goodputPerSec / waitDie.goodputPerSec) * 1000) / 1000);
});
