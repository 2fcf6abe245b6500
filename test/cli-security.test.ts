/**
 * The operator command's security defaults, as a user runs it: credentials or an explicit --insecure,
 * keys issued by `txmesh credentials`, and one process per decision log, checked against its stamp.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { deriveServiceKey } from '@txmesh/protocol';
import { TXMESH_BIN } from './helpers.ts';

function txmesh(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [TXMESH_BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-cli-sec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a long-running role; resolves with its URL once it prints TXMESH_READY. */
async function startRole(t: TestContext, args: string[]): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [TXMESH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('TXMESH_READY '));
      if (line) resolve(line.slice('TXMESH_READY '.length).trim());
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  return { child, url, stderr: () => err };
}

test('coordinator and sidecar need credentials or an explicit --insecure', (t) => {
  const dir = tempDir(t);
  const coordinator = txmesh(['coordinator', '--data', dir, '--port', '0']);
  assert.equal(coordinator.status, 2, coordinator.stderr);
  assert.match(coordinator.stderr, /--secret-file FILE is required.*--insecure/);
  const sidecar = txmesh(['sidecar', '--service', 'inventory', '--service-url', 'http://127.0.0.1:1', '--coordinator', 'http://127.0.0.1:2', '--data', dir]);
  assert.equal(sidecar.status, 2, sidecar.stderr);
  assert.match(sidecar.stderr, /--key-file FILE is required.*--insecure/);
  const bad = join(dir, 'bad.secret');
  writeFileSync(bad, 'not a key\n');
  const refused = txmesh(['coordinator', '--data', dir, '--secret-file', bad]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /64 hex digits/);
});

test('txmesh credentials issues a secret and the keys derived from it', (t) => {
  const dir = tempDir(t);
  const secret = txmesh(['credentials', 'secret']).stdout.trim();
  assert.match(secret, /^[0-9a-f]{64}$/);
  assert.notEqual(txmesh(['credentials', 'secret']).stdout.trim(), secret, 'fresh every time');
  const file = join(dir, 'cluster.secret');
  writeFileSync(file, `${secret}\n`);
  const key = txmesh(['credentials', 'service', 'inventory', '--secret-file', file]).stdout.trim();
  assert.equal(key, deriveServiceKey(secret, 'inventory'));
  const keyFile = join(dir, 'shop.key');
  writeFileSync(keyFile, `${txmesh(['credentials', 'client', 'shop', '--secret-file', file]).stdout.trim()}\n`);
  assert.match(txmesh(['credentials', 'authorization', 'client', 'shop', '--key-file', keyFile]).stdout.trim(), /^Bearer client:shop:[0-9a-f]{64}$/);
  assert.equal(txmesh(['credentials', 'service', 'bad name!', '--secret-file', file]).status, 2);
});

test('--insecure warns; a second coordinator on the same data is refused; a log stamped for another shard count is refused', async (t) => {
  const dir = tempDir(t);
  const first = await startRole(t, ['coordinator', '--data', dir, '--port', '0', '--insecure']);
  assert.match(first.stderr(), /runs with --insecure/);
  const health = (await (await fetch(`${first.url}/v1/health`)).json()) as { ok: boolean };
  assert.equal(health.ok, true);
  const second = txmesh(['coordinator', '--data', dir, '--port', '0', '--insecure']);
  assert.equal(second.status, 1, second.stderr);
  assert.match(second.stderr, /another process holds the decision log lock/);
  first.child.kill('SIGKILL');
  await new Promise((resolve) => first.child.once('exit', resolve));
  const otherCount = txmesh(['coordinator', '--data', dir, '--port', '0', '--shards', '2', '--insecure']);
  assert.equal(otherCount.status, 1, otherCount.stderr);
  assert.match(otherCount.stderr, /belongs to cluster "txmesh" shard 0 of 1/);
});
