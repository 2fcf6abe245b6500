import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { closeBesideSilentClient } from '@txmesh/protocol/testing';
import { startCoordinator } from './app.ts';

async function started(t: { after(fn: () => unknown): void }) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-probe-port-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir, probePort: 0, secrets: ['a'.repeat(64)] });
  t.after(() => coordinator.close());
  assert.ok(coordinator.probeUrl && coordinator.probeUrl !== coordinator.url);
  return { ...coordinator, probeUrl: coordinator.probeUrl };
}

test('--probe-port: liveness and readiness answered on a port of their own, nothing else there', async (t) => {
  const coordinator = await started(t);
  const health = await fetch(`${coordinator.probeUrl}/v1/health`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { ok: boolean }).ok, true);
  const ready = await fetch(`${coordinator.probeUrl}/v1/ready`);
  assert.deepEqual([ready.status, await ready.json()], [200, { ready: true, role: 'coordinator shard 0 of 1' }]);
  // The probe port leads nowhere else, with or without a credential.
  const other = await fetch(`${coordinator.probeUrl}/v1/services`);
  assert.equal(other.status, 404);
  assert.equal(((await other.json()) as { error: { code: string } }).error.code, 'TXM_NOT_FOUND');
});

test('close: a connection that never sent a request is closed after a short grace, not waited for', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-silent-close-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir, secrets: ['a'.repeat(64)] });
  const { hostname, port } = new URL(coordinator.url);
  assert.deepEqual(await closeBesideSilentClient(hostname, Number(port), () => coordinator.close()), { closeReturned: true, connectionClosedByServer: true });
});
