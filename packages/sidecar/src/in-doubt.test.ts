import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { BranchAction, DEFAULT_LIMITS, Decision, ItemStatus, newTxId, PROTOCOL_VERSION, type BranchItem } from '@txmesh/protocol';
import { buildSidecar } from './sidecar.ts';
import { SqlitePreparedStore } from './sqlite-prepared-store.ts';
import { deadUrl, listenOn, readJson, startFakeCoordinator, startFakeService, tempDir, waitFor, type FakeService } from './test-fakes.ts';

const ops = [{ op: 'reserve', args: { sku: 'A-1' } }];

/** Writes records as a sidecar that crashed would have left them. */
function seedRecords(dataDir: string, txIds: string[], preparedAt = Date.now()): void {
  const store = SqlitePreparedStore.forService(dataDir, 'inventory');
  store.put(txIds.map((txId) => ({ txId, service: 'inventory', operations: ops, preparedAt })));
  store.close();
}

function recorded(dataDir: string): string[] {
  const store = SqlitePreparedStore.forService(dataDir, 'inventory');
  try {
    return store.list().map((r) => r.txId).sort();
  } finally {
    store.close();
  }
}

async function build(t: TestContext, serviceUrl: string, coordinatorUrls: string[], dataDir: string, inDoubtAfterMs = 3000, coordinatorTimeoutMs = 2000) {
  const sidecar = await buildSidecar({ service: 'inventory', serviceUrl, coordinatorUrls, dataDir, inDoubtAfterMs, logLevel: 'silent', serviceTimeoutMs: 2000, coordinatorTimeoutMs });
  t.after(() => sidecar.close());
  const url = await listenOn(sidecar.server);
  return { ...sidecar, url };
}

/** One batch to the sidecar's control route; the parsed answer. */
async function postBatch(url: string, items: BranchItem[]) {
  const res = await fetch(`${url}/txmesh/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items }) });
  return readJson(res);
}

function outcomesSent(service: FakeService): [string, string][] {
  return service.batches.flatMap((b) => b.items.map((i): [string, string] => [i.txId, i.action])).sort();
}

describe('in-doubt resolution', () => {
  it('asks the shard each txId names and finishes committed and aborted branches, leaving pending ones', async (t) => {
    const [shard0, shard1] = [await startFakeCoordinator(t, 0), await startFakeCoordinator(t, 1)];
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const [committed, aborted, pending] = [newTxId(0), newTxId(1), newTxId(0)];
    const [serviceOnly, serviceOnlyPending] = [newTxId(1), newTxId(1)];
    seedRecords(dataDir, [committed, aborted, pending]);
    // The service holds a branch the sidecar never recorded (crash between its yes and the sidecar's write).
    service.prepared = [{ txId: serviceOnly, preparedAt: Date.now() }, { txId: serviceOnlyPending, preparedAt: Date.now() }, { txId: committed, preparedAt: Date.now() }];
    shard0.decisions.set(committed, Decision.COMMIT);
    shard1.decisions.set(aborted, Decision.ABORT);
    shard1.decisions.set(serviceOnly, Decision.COMMIT);

    const sidecar = await build(t, service.url, [shard0.url, shard1.url], dataDir);
    assert.equal(await sidecar.resolveInDoubt(), 3);

    assert.equal(service.batches.length, 1, 'all outcomes go to the service in one batch');
    assert.deepEqual(outcomesSent(service), [[aborted, 'rollback'], [committed, 'commit'], [serviceOnly, 'commit']].sort());
    assert.deepEqual(shard0.decisionQueries.sort(), [committed, pending].sort());
    assert.deepEqual(shard1.decisionQueries.sort(), [aborted, serviceOnly, serviceOnlyPending].sort());
    await sidecar.close();
    assert.deepEqual(recorded(dataDir), [pending]);
  });

  it('leaves every branch alone while the owning shard is unreachable', async (t) => {
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const tx = newTxId(0);
    seedRecords(dataDir, [tx]);
    const sidecar = await build(t, service.url, [await deadUrl()], dataDir);
    assert.equal(await sidecar.resolveInDoubt(), 0);
    assert.equal(service.batches.length, 0);
    await sidecar.close();
    assert.deepEqual(recorded(dataDir), [tx]);
  });

  it('keeps the record when the service does not acknowledge the outcome', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    service.answer = (item) => ({ txId: item.txId, action: item.action, status: ItemStatus.ERROR, reason: 'DB_BUSY' });
    const dataDir = tempDir(t);
    const tx = newTxId(0);
    seedRecords(dataDir, [tx]);
    shard0.decisions.set(tx, Decision.COMMIT);
    const sidecar = await build(t, service.url, [shard0.url], dataDir);
    assert.equal(await sidecar.resolveInDoubt(), 0);
    assert.equal(service.batches.length, 1);
    await sidecar.close();
    assert.deepEqual(recorded(dataDir), [tx]);
  });

  it('after the first round only considers branches older than inDoubtAfterMs', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const sidecar = await build(t, service.url, [shard0.url], dataDir, 150);
    assert.equal(await sidecar.resolveInDoubt(), 0, 'first round: nothing in doubt');

    const tx = newTxId(0);
    const prepare: BranchItem = { action: BranchAction.PREPARE, txId: tx, service: 'inventory', operations: ops };
    const answer = await postBatch(sidecar.url, [prepare]);
    assert.equal(answer.results[0].status, 'ok');
    service.prepared = [{ txId: tx, preparedAt: Date.now() }];
    shard0.decisions.set(tx, Decision.COMMIT);

    assert.equal(await sidecar.resolveInDoubt(), 0, 'a fresh branch belongs to a live transaction');
    assert.deepEqual(shard0.decisionQueries, []);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await sidecar.resolveInDoubt(), 1);
    assert.deepEqual(shard0.decisionQueries, [tx]);
    assert.deepEqual(service.batches.at(-1)!.items, [{ action: 'commit', txId: tx, service: 'inventory' }]);
  });

  it('never runs two rounds at once', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const tx = newTxId(0);
    seedRecords(dataDir, [tx]);
    shard0.decisions.set(tx, Decision.ABORT);
    const sidecar = await build(t, service.url, [shard0.url], dataDir);
    const [first, second] = await Promise.all([sidecar.resolveInDoubt(), sidecar.resolveInDoubt()]);
    assert.deepEqual([first, second], [1, 1], 'the second call joins the running round');
    assert.deepEqual(shard0.decisionQueries, [tx]);
    assert.equal(service.batches.length, 1);
  });

  it('leaves no record behind when a yes vote arrives after the round acknowledged the outcome', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const tx = newTxId(0);
    seedRecords(dataDir, [tx], Date.now() - 60_000);
    shard0.decisions.set(tx, Decision.COMMIT);
    const sidecar = await build(t, service.url, [shard0.url], dataDir);
    // A late duplicate prepare from the coordinator is held at the service while the round commits the branch.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    service.before = (batch) => (batch.items[0]?.action === 'prepare' ? held : undefined);
    const prepare: BranchItem = { action: BranchAction.PREPARE, txId: tx, service: 'inventory', operations: ops };
    const late = postBatch(sidecar.url, [prepare]);
    await waitFor(() => service.batches.length === 1, 3000, 'the prepare to reach the service');

    assert.equal(await sidecar.resolveInDoubt(), 1);
    release();
    assert.equal((await late).results[0].status, 'ok');
    await sidecar.close();
    assert.deepEqual(recorded(dataDir), []);
  });

  it('treats TXM_TX_NOT_FOUND from the owning shard as abort (presumed abort)', async (t) => {
    const Fastify = (await import('fastify')).default;
    const shard = Fastify();
    shard.get('/v1/transactions/:txId/decision', async (_req, reply) => reply.status(404).send({ error: { code: 'TXM_TX_NOT_FOUND', message: 'unknown' } }));
    t.after(() => shard.close());
    const shardUrl = await shard.listen({ host: '127.0.0.1', port: 0 });
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const tx = newTxId(0);
    seedRecords(dataDir, [tx]);
    const sidecar = await build(t, service.url, [shardUrl], dataDir);
    assert.equal(await sidecar.resolveInDoubt(), 1);
    assert.deepEqual(outcomesSent(service), [[tx, 'rollback']]);
  });
});

describe('in-doubt resolution in pages', () => {
  it('resolves more branches than one service batch may carry, in batches under the item limit', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const txIds = Array.from({ length: DEFAULT_LIMITS.maxBatchItems + 900 }, () => newTxId(0));
    seedRecords(dataDir, txIds);
    for (const txId of txIds) shard0.decisions.set(txId, Decision.COMMIT);
    const sidecar = await build(t, service.url, [shard0.url], dataDir);
    assert.equal(await sidecar.resolveInDoubt(), txIds.length);
    assert.ok(service.batches.length >= 2, `${service.batches.length} batches`);
    assert.ok(service.batches.every((b) => b.items.length <= DEFAULT_LIMITS.maxBatchItems), 'no batch above the limit');
    await sidecar.close();
    assert.deepEqual(recorded(dataDir), []);
  });

  it('looks decisions up a few at a time, so a busy shard does not time out the end of a long page', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    // 200 look-ups issued at once would queue 50 deep on each of the client's 4 connections: 1.5 s at 30 ms
    // an answer, well past the 400 ms timeout. Issued a few at a time, each waits for at most a couple.
    shard0.decisionDelayMs = 30;
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const txIds = Array.from({ length: 200 }, () => newTxId(0));
    seedRecords(dataDir, txIds);
    for (const txId of txIds) shard0.decisions.set(txId, Decision.COMMIT);
    const sidecar = await build(t, service.url, [shard0.url], dataDir, 3000, 400);
    assert.equal(await sidecar.resolveInDoubt(), txIds.length);
    assert.deepEqual(outcomesSent(service), txIds.map((txId): [string, string] => [txId, 'commit']).sort());
  });
});
