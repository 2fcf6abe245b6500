/**
 * Real crashes: the coordinator runs as a child process armed with a crash point (SIGKILL, no cleanup),
 * then a fresh process on the same data directory must finish what the dead one decided.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { PROTOCOL_VERSION, type BranchBatchRequest, type BranchItem } from '@txmesh/protocol';
import { CoordinatorSteps } from './steps.ts';
import { eventually } from './testing/fake-transport.ts';

const SCRIPT = fileURLToPath(new URL('./testing/coordinator-process.js', import.meta.url));
/** Arms the crash points named in TXMESH_CRASH_AT (see @txmesh/lab's crash-on-step). */
const CRASH_PRELOAD = fileURLToPath(import.meta.resolve('@txmesh/lab/crash-on-step'));


interface Running {
  url: string;
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | null>;
}

async function spawnCoordinator(t: TestContext, dataDir: string, crashAt?: string): Promise<Running> {
  const env = { ...process.env };
  delete env.TXMESH_CRASH_AT;
  delete env.TXMESH_CRASH_AFTER;
  if (crashAt) env.TXMESH_CRASH_AT = crashAt;
  const child = spawn(process.execPath, ['--import', CRASH_PRELOAD, SCRIPT, JSON.stringify({ shard: 0, shards: 1, dataDir })], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`coordinator did not start: ${err}`)), 20_000);
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('http://'));
      if (line) {
        clearTimeout(timer);
        resolve(line.trim());
      }
    });
    child.once('exit', () => reject(new Error(`coordinator exited before listening: ${err}`)));
  });
  return { url, child, exited };
}

async function fakeSidecar(t: TestContext) {
  const items: BranchItem[] = [];
  const app = Fastify();
  app.post('/txmesh/v1/batch', async (request) => {
    const body = request.body as BranchBatchRequest;
    items.push(...body.items);
    return { protocolVersion: PROTOCOL_VERSION, results: body.items.map((i) => ({ txId: i.txId, action: i.action, status: 'ok' })) };
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  return { url, items };
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe('coordinator crash recovery', { timeout: 60_000 }, () => {
  it('a crash right after the COMMIT record is durable still commits every branch after restart', async (t) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-crash-'));
    t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const sidecar = await fakeSidecar(t);
    const first = await spawnCoordinator(t, dataDir, CoordinatorSteps.AFTER_COMMIT_LOGGED);
    assert.equal((await post(`${first.url}/v1/services`, { service: 'inventory', sidecarUrl: sidecar.url })).status, 200);
    await assert.rejects(post(`${first.url}/v1/transactions`, { participants: [{ service: 'inventory', operations: [{ op: 'reserve' }] }] }));
    assert.equal(await first.exited, 'SIGKILL');
    const prepared = sidecar.items.filter((i) => i.action === 'prepare');
    assert.equal(prepared.length, 1);
    assert.equal(sidecar.items.filter((i) => i.action === 'commit').length, 0, 'the dead process sent no commit');
    const txId = prepared[0]!.txId;

    // The restarted process knows the sidecar from its log, before any re-registration.
    const second = await spawnCoordinator(t, dataDir);
    await eventually(() => sidecar.items.some((i) => i.action === 'commit' && i.txId === txId), 'commit delivered after restart', 10_000);
    assert.deepEqual(await (await fetch(`${second.url}/v1/transactions/${txId}/decision`)).json(), { txId, decision: 'commit' });
    second.child.kill('SIGTERM');
    await second.exited;
  });

  it('a crash after prepares went out, before the decision, is a presumed abort', async (t) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-crash-'));
    t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const sidecar = await fakeSidecar(t);
    const first = await spawnCoordinator(t, dataDir, CoordinatorSteps.AFTER_PREPARES_SENT);
    await post(`${first.url}/v1/services`, { service: 'inventory', sidecarUrl: sidecar.url });
    await assert.rejects(post(`${first.url}/v1/transactions`, { participants: [{ service: 'inventory', operations: [{ op: 'reserve' }] }] }));
    assert.equal(await first.exited, 'SIGKILL');
    const txId = sidecar.items.find((i) => i.action === 'prepare')?.txId;
    assert.ok(txId, 'the prepare reached the sidecar before the crash');

    const second = await spawnCoordinator(t, dataDir);
    assert.deepEqual(await (await fetch(`${second.url}/v1/transactions/${txId}/decision`)).json(), { txId, decision: 'abort' });
    const stats = (await (await fetch(`${second.url}/v1/stats`)).json()) as { recovered: number };
    assert.equal(stats.recovered, 0, 'nothing was logged, nothing to recover');
    assert.equal(sidecar.items.filter((i) => i.action === 'commit').length, 0);
    second.child.kill('SIGTERM');
    await second.exited;
  });
});
