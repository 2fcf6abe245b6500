/**
 * Running `txmesh bench` from the tests and checking one run's figures against each other (bench.test.ts,
 * bench-telemetry.test.ts). Speed is not checked (shared machines); the benchmark itself prints it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { TXMESH_BIN } from './helpers.ts';

export function run(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TXMESH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Equal up to `relative` of b, plus the rounding of the printed figures. */
export const close = (a: number, b: number, relative: number, rounding = 1e-6): boolean => Math.abs(a - b) <= relative * Math.abs(b) + rounding;

/** Checks one run's figures against each other. */
export function checkRun(name: string, r: Record<string, any>, durationSec: number): void {
  assert.ok(r.committed > 0, `${name}: some transactions commit`);
  assert.ok(close(r.committedTps, r.committed / durationSec, 0.001, 0.01), `${name}: committedTps = committed / duration`);
  assert.equal(r.goodputTps, r.committedTps, `${name}: goodput is committed per second`);
  assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.maxMs >= r.p99Ms, `${name}: 0 < p50 <= p99 <= max`);
  assert.ok(r.coordinatorCommitted > 0, `${name}: the coordinator counted commits in the window`);
  assert.ok(r.coordinatorFsyncsPerTx > 0, `${name}: a commit needs a forced record`);
  const { coordinatorToSidecarBatches: batches, sidecarToService, sidecarToCoordinator, sidecarStatsMissing } = r.requests;
  assert.deepEqual(sidecarStatsMissing, [], `${name}: every sidecar answers its stats`);
  assert.ok(batches > 0 && sidecarToService > 0, `${name}: batches went out and reached the services`);
  assert.ok(
    close(r.requestsPerTx, (batches + sidecarToService + sidecarToCoordinator) / r.coordinatorCommitted, 0.001, 1e-4),
    `${name}: requestsPerTx is the sum of the counted requests over committed`,
  );
  assert.ok(r.cpuMsPerTx > 0, `${name}: the cluster used CPU`);
  const cpuSum = Object.values(r.cpuMsByMember as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.ok(close(r.cpuMsPerTx, cpuSum / r.coordinatorCommitted, 0.01, 1e-3), `${name}: cpuMsPerTx is the members' CPU over committed`);
  assert.equal(Object.keys(r.cpuMsByMember).length, 9, `${name}: 1 coordinator, 4 services, 4 sidecars`);
  assert.ok(r.coordinatorRssMb > 0, `${name}: coordinator memory read`);
  for (const service of ['inventory', 'payment', 'order', 'shipping']) {
    assert.ok(r.memoryMb[`sidecar-${service}`]?.rssMb > 0, `${name}: sidecar-${service} memory read`);
  }
  assert.deepEqual(Object.keys(r.startupMs).sort(), Object.keys(r.cpuMsByMember).sort(), `${name}: every member's start was timed`);
  for (const [member, ms] of Object.entries(r.startupMs as Record<string, number>)) assert.ok(ms > 0, `${name}: ${member} took time to start`);
}

export const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
