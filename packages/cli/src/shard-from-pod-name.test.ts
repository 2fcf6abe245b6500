import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { shardFromPodName } from './shard-from-pod-name.ts';
import { awaitReady } from './await-ready.ts';

const BIN = fileURLToPath(new URL('../bin/txmesh.mjs', import.meta.url));

describe('shard from the StatefulSet pod name', () => {
  it('takes the ordinal after the last dash', () => {
    assert.equal(shardFromPodName('txmesh-coordinator-0'), 0);
    assert.equal(shardFromPodName('prod-txmesh-coordinator-12'), 12);
  });

  it('refuses a name without an ordinal', () => {
    for (const name of ['txmesh-coordinator', 'txmesh-coordinator-', 'coordinator-x1', '']) {
      assert.throws(() => shardFromPodName(name), { name: 'UsageError', message: /ending in -<ordinal>/ }, name);
    }
  });

  it('`txmesh coordinator --shard-from-pod-name` serves that shard; a pod past --shards is refused at start', async (t) => {
    const data = mkdtempSync(join(tmpdir(), 'txmesh-pod-name-'));
    t.after(() => rmSync(data, { recursive: true, force: true }));
    const child = spawn(process.execPath, [BIN, 'coordinator', '--shard-from-pod-name', 'txmesh-coordinator-2', '--shards', '3', '--port', '0', '--metrics-port', '0', '--data', data, '--insecure'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL'));
    const url = await awaitReady(child);
    const health = (await (await fetch(`${url}/v1/health`)).json()) as { shard: number; shards: number };
    assert.deepEqual([health.shard, health.shards], [2, 3]);

    const refused = spawn(process.execPath, [BIN, 'coordinator', '--shard-from-pod-name', 'txmesh-coordinator-3', '--shards', '3', '--data', data, '--insecure'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    refused.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => refused.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(stderr, /--shard must be less than --shards/);
  });
});
