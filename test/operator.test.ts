/**
 * The pieces started by hand as README's tour does, as real processes of the `txmesh` command: a sidecar
 * is ready only once every shard accepted it (so a begin right after its TXMESH_READY commits), the
 * operator commands route by key and id so nobody guesses a shard, and every role logs JSON on stderr.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ClusterCredentials, LAB_CLIENT } from '@txmesh/lab';
import { shardForIdempotencyKey, shardOfTxId } from '@txmesh/protocol';
import { eventually, freePort, logLines, runTxmesh, spawnTxmesh, waitReady } from './helpers.ts';

function dataDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-operator-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A key owned by `shard` of `shards`. */
function keyOwnedBy(shard: number, shards: number, prefix: string): string {
  for (let i = 0; ; i++) if (shardForIdempotencyKey(`${prefix}-${i}`, shards) === shard) return `${prefix}-${i}`;
}

const reserve = (key: string, qty = 1, service = 'inventory'): string =>
  JSON.stringify({ participants: [{ service, operations: [{ op: 'reserve', args: { sku: 'sku-1', qty } }] }], timeoutMs: 5000, idempotencyKey: key });

test('a sidecar is ready only once every shard accepted it; the operator commands route by key and id', async (t) => {
  const dir = dataDir(t);
  // As the tour does: a cluster secret for the shards, a key per service, a client key for the commands.
  const credentials = new ClusterCredentials(dir);
  const secret = ['--secret-file', credentials.secretFile];
  const inventoryKey = ['--key-file', credentials.serviceKeyFile('inventory')];
  const me = ['--client', LAB_CLIENT, '--key-file', credentials.clientKeyFile()];
  const shard1Port = await freePort();
  const sidecarPort = await freePort();
  const shard0 = spawnTxmesh(t, ['coordinator', '--shard', '0', '--shards', '2', '--port', '0', '--data', dir, '--metrics-port', '0', ...secret]);
  const service = spawnTxmesh(t, ['service', 'inventory', '--port', '0', '--db', join(dir, 'inventory.db'), '--metrics-port', '0', ...inventoryKey]);
  const [url0, serviceUrl] = await Promise.all([waitReady(shard0), waitReady(service)]);
  const url1 = `http://127.0.0.1:${shard1Port}`;
  const coordinators = `${url0},${url1}`;
  const sidecarUrl = `http://127.0.0.1:${sidecarPort}`;
  const sidecar = spawnTxmesh(t, ['sidecar', '--service', 'inventory', '--service-url', serviceUrl, '--coordinator', coordinators, '--port', String(sidecarPort), '--data', dir, '--log-level', 'info', '--metrics-port', '0', ...inventoryKey]);

  // Shard 1 is down: the sidecar is alive and says what it waits for, but does not claim to be ready.
  const warned = await eventually(async () => logLines(sidecar.stderr()).some((l) => l.level === 40 && String(l.msg).includes(`shard 1 at ${url1} has not accepted`)), 15_000, 50);
  assert.ok(warned, `a warn line names the shard it waits for; stderr:\n${sidecar.stderr()}`);
  const health = await fetch(`${sidecarUrl}/txmesh/v1/health`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { ready: boolean }).ready, false);
  const notReady = await fetch(`${sidecarUrl}/txmesh/v1/ready`);
  assert.equal(notReady.status, 503);
  const refusal = (await notReady.json()) as { error: { code: string; details: string } };
  assert.equal(refusal.error.code, 'TXM_NOT_READY');
  assert.match(refusal.error.details, new RegExp(`shard 1 \\(${url1}\\) refused or did not answer`));
  assert.equal(sidecar.readyUrl(), undefined, 'no TXMESH_READY while a shard has not accepted the registration');

  // Shard 1 comes up: the sidecar becomes ready, and a transaction on that shard right after commits.
  const shard1 = spawnTxmesh(t, ['coordinator', '--shard', '1', '--shards', '2', '--port', String(shard1Port), '--data', dir, '--metrics-port', '0', ...secret]);
  await waitReady(shard1);
  assert.equal(await waitReady(sidecar), sidecarUrl);
  const keys = [keyOwnedBy(1, 2, 'order'), keyOwnedBy(0, 2, 'order')];
  for (const key of keys) {
    const begun = await runTxmesh(t, ['begin', '--coordinator', coordinators, ...me], reserve(key));
    assert.equal(begun.code, 0, `${key}: ${begun.stderr}`);
    const result = JSON.parse(begun.stdout) as { txId: string; outcome: string };
    assert.equal(result.outcome, 'committed');
    assert.equal(shardOfTxId(result.txId), shardForIdempotencyKey(key, 2), 'the client picked the shard that owns the key');
  }
  assert.equal((await fetch(`${sidecarUrl}/txmesh/v1/ready`)).status, 200);
  const logs = logLines(sidecar.stderr());
  assert.ok(logs.length > 0 && logs.every((l) => l.name === 'sidecar-inventory'), 'every sidecar log line is JSON naming its role');
  assert.ok(logs.some((l) => l.level === 30 && String(l.msg).startsWith('sidecar of inventory ready')), 'a startup line says what became ready');

  // The same key again answers the first outcome; status asks the shard the id names.
  const again = JSON.parse((await runTxmesh(t, ['begin', '--coordinator', coordinators, ...me], reserve(keys[0]!))).stdout) as { txId: string };
  const status = await runTxmesh(t, ['status', again.txId, '--coordinator', coordinators, ...me]);
  assert.equal(status.code, 0, status.stderr);
  assert.deepEqual(
    (({ txId, shard, state }) => ({ txId, shard, state }))(JSON.parse(status.stdout) as { txId: string; shard: number; state: string }),
    { txId: again.txId, shard: 1, state: 'COMMITTED' },
  );

  // A business refusal aborts (exit 3); a refusal of the request itself prints its error body (exit 1).
  const aborted = await runTxmesh(t, ['begin', '--coordinator', coordinators, ...me], reserve('too-many', 1_000_000));
  assert.equal(aborted.code, 3);
  assert.equal((JSON.parse(aborted.stdout) as { reason: string }).reason, 'OUT_OF_STOCK');
  const unknown = await runTxmesh(t, ['begin', '--coordinator', coordinators, ...me], reserve('warehouse-1', 1, 'warehouse'));
  assert.equal(unknown.code, 1);
  assert.equal((JSON.parse(unknown.stderr) as { error: { code: string } }).error.code, 'TXM_UNKNOWN_SERVICE');
  const garbled = await runTxmesh(t, ['begin', '--coordinator', coordinators, ...me], '{"participants": [');
  assert.equal((JSON.parse(garbled.stderr) as { error: { code: string } }).error.code, 'TXM_BAD_REQUEST');
  const oneShardOnly = await runTxmesh(t, ['status', again.txId, '--coordinator', url0, ...me]);
  assert.equal(oneShardOnly.code, 1);
  assert.match((JSON.parse(oneShardOnly.stderr) as { error: { code: string; details: string } }).error.details, /belongs to shard 1/);

  // Every shard's view in one command.
  const services = await runTxmesh(t, ['services', '--coordinator', coordinators, ...me]);
  assert.equal(services.code, 0, services.stderr);
  const listed = JSON.parse(services.stdout) as { shards: { shard: number; services: { service: string; sidecarUrl: string }[] }[] };
  assert.deepEqual(listed.shards.map((s) => [s.shard, s.services.map((v) => `${v.service} ${v.sidecarUrl}`)]), [[0, [`inventory ${sidecarUrl}`]], [1, [`inventory ${sidecarUrl}`]]]);
  const inDoubt = await runTxmesh(t, ['in-doubt', '--coordinator', coordinators, '--older-than', '0', ...me]);
  assert.equal(inDoubt.code, 0, inDoubt.stderr);
  assert.deepEqual((JSON.parse(inDoubt.stdout) as { shards: { shard: number; branches: unknown[] }[] }).shards.map((s) => [s.shard, s.branches.length]), [[0, 0], [1, 0]]);

  // Whoever guesses a shard by hand is told which one owns the key.
  const wrong = await fetch(`${url0}/v1/transactions`, { method: 'POST', headers: { 'content-type': 'application/json', ...credentials.clientHeaders }, body: reserve(keys[0]!) });
  assert.equal(wrong.status, 421);
  const wrongBody = (await wrong.json()) as { error: { code: string; details: string } };
  assert.equal(wrongBody.error.code, 'TXM_WRONG_SHARD');
  assert.match(wrongBody.error.details, /belongs to shard 1/);

  // One shard down: the listing says so in place and exits 1.
  shard1.child.kill('SIGTERM');
  await shard1.exited;
  const partial = await runTxmesh(t, ['in-doubt', '--coordinator', coordinators, ...me]);
  assert.equal(partial.code, 1);
  const shards = (JSON.parse(partial.stdout) as { shards: { shard: number; error?: { code: string } }[] }).shards;
  assert.deepEqual(shards.map((s) => s.error?.code ?? 'answered'), ['answered', 'TXM_COORDINATOR_UNREACHABLE']);
});

test('a sidecar that no shard accepts within --ready-timeout stops with exit 1, naming the shard', async (t) => {
  const dir = dataDir(t);
  const deadShard = `http://127.0.0.1:${await freePort()}`;
  const sidecar = spawnTxmesh(t, ['sidecar', '--service', 'payment', '--service-url', 'http://127.0.0.1:9', '--coordinator', deadShard, '--data', dir, '--ready-timeout', '300', '--metrics-port', '0', '--insecure']);
  assert.equal(await sidecar.exited, 1);
  assert.equal(sidecar.readyUrl(), undefined);
  assert.match(sidecar.stderr(), new RegExp(`txmesh: the sidecar of payment is not ready, stopping: not ready after 300 ms: .*shard 0 \\(${deadShard}\\)`));
});

test('every role takes --log-level and logs JSON lines naming itself on stderr', async (t) => {
  const dir = dataDir(t);
  const service = spawnTxmesh(t, ['service', 'payment', '--port', '0', '--db', join(dir, 'payment.db'), '--log-level', 'info', '--metrics-port', '0']);
  const url = await waitReady(service);
  await fetch(`${url}/health`);
  const lines = await eventually(async () => logLines(service.stderr()).some((l) => l.msg === 'request completed'), 5000, 20);
  assert.ok(lines, `the service logs its requests at info; stderr:\n${service.stderr()}`);
  const logs = logLines(service.stderr());
  assert.ok(logs.every((l) => l.name === 'service-payment'));
  assert.ok(logs.some((l) => l.msg === 'service payment ready'));
  assert.match(service.stdout(), new RegExp(`^TXMESH_METRICS http://127\\.0\\.0\\.1:\\d+/metrics\nTXMESH_READY ${url}\n$`), 'stdout carries only the harness lines: where /metrics and the role listen');

  const coordinator = spawnTxmesh(t, ['coordinator', '--port', '0', '--data', dir, '--log-level', 'info', '--metrics-port', '0', '--insecure']);
  const coordinatorUrl = await waitReady(coordinator);
  const ready = await fetch(`${coordinatorUrl}/v1/ready`);
  assert.equal(ready.status, 200, 'ready as soon as it says so: recovery ran before it listened');
  assert.deepEqual(await ready.json(), { ready: true, role: 'coordinator shard 0 of 1' });
  const coordinatorLogs = logLines(coordinator.stderr());
  assert.ok(coordinatorLogs.length > 0 && coordinatorLogs.every((l) => l.name === 'coordinator-0'), coordinator.stderr());
  assert.ok(coordinatorLogs.some((l) => l.msg === 'coordinator shard 0 of 1 ready' && l.url === coordinatorUrl));
  assert.ok(coordinatorLogs.some((l) => l.level === 40 && String(l.msg).startsWith('coordinator-0 runs with --insecure')), 'running without credentials is said, once, at start');
  assert.match(coordinator.stdout(), new RegExp(`^TXMESH_METRICS http://127\\.0\\.0\\.1:\\d+/metrics\nTXMESH_READY ${coordinatorUrl}\n$`));

  for (const role of [['coordinator', '--data', dir], ['sidecar', '--service', 'x', '--service-url', url, '--coordinator', url, '--data', dir], ['service', 'payment', '--db', join(dir, 'p.db')], ['null-echo']]) {
    const refused = await runTxmesh(t, [...role, '--log-level', 'chatty']);
    assert.equal(refused.code, 2, role[0]);
    assert.match(refused.stderr, /--log-level \(or TXMESH_LOG_LEVEL\) must be one of fatal, error, warn, info, debug, trace, silent, got "chatty"/, role[0]);
  }
});
