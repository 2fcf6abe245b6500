import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decision, newTxId } from '@txmesh/protocol';
import { startSidecar } from './sidecar.ts';
import { SqlitePreparedStore } from './sqlite-prepared-store.ts';
import { deadUrl, startFakeCoordinator, startFakeService, tempDir, waitFor, readJson } from './test-fakes.ts';

describe('startSidecar', () => {
  it('registers with every shard, heartbeats with a resource report, and survives a shard that is down', async (t) => {
    const [shard0, shard2] = [await startFakeCoordinator(t, 0), await startFakeCoordinator(t, 2)];
    const service = await startFakeService(t);
    const sidecar = await startSidecar({
      service: 'inventory',
      serviceUrl: service.url,
      coordinatorUrls: [shard0.url, await deadUrl(), shard2.url],
      dataDir: tempDir(t),
      heartbeatMs: 30,
      logLevel: 'silent',
    });
    t.after(() => sidecar.close());

    await waitFor(() => shard0.registrations.length >= 3 && shard2.registrations.length >= 3, 3000, 'three heartbeats on both live shards');
    for (const registration of [...shard0.registrations, ...shard2.registrations]) {
      assert.equal(registration.service, 'inventory');
      assert.equal(registration.sidecarUrl, sidecar.url);
      assert.equal(typeof registration.report?.at, 'number');
      assert.equal(registration.report?.inFlight, 0);
    }
    const health = await readJson(await fetch(`${sidecar.url}/txmesh/v1/health`));
    assert.deepEqual(health, { ok: true, service: 'inventory', prepared: 0 });

    await sidecar.close();
    const after = shard0.registrations.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(shard0.registrations.length, after, 'heartbeats stop on close');
  });

  it('advertises advertiseUrl when given', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const sidecar = await startSidecar({ service: 'payment', serviceUrl: service.url, coordinatorUrls: [shard0.url], dataDir: tempDir(t), advertiseUrl: 'http://payment-sidecar:7000', logLevel: 'silent' });
    t.after(() => sidecar.close());
    await waitFor(() => shard0.registrations.length >= 1, 3000, 'a registration');
    assert.equal(shard0.registrations[0]!.sidecarUrl, 'http://payment-sidecar:7000');
  });

  it('resolves branches left in doubt by a crash right after it starts', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const tx = newTxId(0);
    const seed = SqlitePreparedStore.forService(dataDir, 'inventory');
    seed.put([{ txId: tx, service: 'inventory', operations: [{ op: 'reserve' }], preparedAt: Date.now() }]);
    seed.close();
    shard0.decisions.set(tx, Decision.COMMIT);

    const sidecar = await startSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [shard0.url], dataDir, logLevel: 'silent' });
    t.after(() => sidecar.close());
    await waitFor(() => service.batches.length === 1, 3000, 'the commit to reach the service');
    assert.deepEqual(service.batches[0]!.items, [{ action: 'commit', txId: tx, service: 'inventory' }]);
    // The record goes once the service acknowledged; poll the health count rather than sleeping.
    let prepared = -1;
    const until = Date.now() + 3000;
    while (prepared !== 0 && Date.now() < until) {
      prepared = ((await readJson(await fetch(`${sidecar.url}/txmesh/v1/health`))) as { prepared: number }).prepared;
      if (prepared !== 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(prepared, 0);
  });

  it('refuses bad options with a TxmeshError', async (t) => {
    await assert.rejects(startSidecar({ service: 'bad name!', serviceUrl: 'http://127.0.0.1:1', coordinatorUrls: [], dataDir: tempDir(t) }), { name: 'TxmeshError', code: 'TXM_BAD_REQUEST' });
    await assert.rejects(startSidecar({ service: 'ok', serviceUrl: 'ftp://x', coordinatorUrls: [], dataDir: tempDir(t) }), { code: 'TXM_BAD_REQUEST' });
  });
});
