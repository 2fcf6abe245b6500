import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decision, KEEP_ALIVE_TIMEOUT_MS, REQUEST_TIMEOUT_MS, TxmeshError, newTxId } from '@txmesh/protocol';
import { closeBesideSilentClient } from '@txmesh/protocol/testing';
import { buildSidecar, startSidecar } from './sidecar.ts';
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
    // Alive, but not ready while shard 1 has never accepted the registration.
    const dead = (await readJson(await fetch(`${sidecar.url}/txmesh/v1/health`))) as { ready: boolean };
    assert.deepEqual(dead, { ok: true, service: 'inventory', ready: false, prepared: 0 });
    const ready = await fetch(`${sidecar.url}/txmesh/v1/ready`);
    assert.equal(ready.status, 503);
    const refusal = (await readJson(ready)) as { error: { code: string; details: string } };
    assert.equal(refusal.error.code, 'TXM_NOT_READY');
    assert.match(refusal.error.details, /shard 1 \(http:\/\/127\.0\.0\.1:\d+\) refused or did not answer: .*ECONNREFUSED/);
    assert.doesNotMatch(refusal.error.details, /shard [02]/, 'only the shard it waits for is named');
    await assert.rejects(sidecar.whenReady(50), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_NOT_READY' && /not ready after 50 ms.*shard 1/.test(err.details ?? ''));

    await sidecar.close();
    // A beat already on the wire when close aborted it may still be read by the shard a moment later (on a
    // loaded machine, after close resolved): count from once that has settled, then no new beat may come.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const after = shard0.registrations.length;
    await new Promise((resolve) => setTimeout(resolve, 150)); // five heartbeat periods
    assert.equal(shard0.registrations.length, after, 'heartbeats stop on close');
  });

  it('is ready only once every shard accepted the registration, and stays ready when a shard goes away', async (t) => {
    const [shard0, shard1] = [await startFakeCoordinator(t, 0), await startFakeCoordinator(t, 1)];
    shard1.accepting = false;
    const service = await startFakeService(t);
    const sidecar = await startSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [shard0.url, shard1.url], dataDir: tempDir(t), heartbeatMs: 20, logLevel: 'silent' });
    t.after(() => sidecar.close());
    await waitFor(() => shard1.registrations.length >= 2, 3000, 'refused registrations');
    const notReady = await fetch(`${sidecar.url}/txmesh/v1/ready`);
    assert.equal(notReady.status, 503);
    assert.match(((await readJson(notReady)) as { error: { details: string } }).error.details, /shard 1 .*TXM_WRONG_SHARD \(this is shard 1\)/);

    shard1.accepting = true;
    await sidecar.whenReady(3000);
    const ready = await fetch(`${sidecar.url}/txmesh/v1/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await readJson(ready), { ready: true, role: 'sidecar of inventory' });

    shard1.accepting = false;
    const refusedSoFar = shard1.registrations.length;
    await waitFor(() => shard1.registrations.length >= refusedSoFar + 2, 3000, 'refused heartbeats');
    assert.equal((await fetch(`${sidecar.url}/txmesh/v1/ready`)).status, 200, 'a shard lost after readiness does not take the service out of rotation');
  });

  it('whenReady gives up with TXM_SHUTTING_DOWN when the sidecar closes first', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [await deadUrl()], dataDir: tempDir(t), logLevel: 'silent' });
    const waiting = sidecar.whenReady();
    await sidecar.close();
    await assert.rejects(waiting, (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_SHUTTING_DOWN');
  });

  it('closes a connection that never sent a request instead of waiting for it without bound', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [await deadUrl()], dataDir: tempDir(t), logLevel: 'silent' });
    const { hostname, port } = new URL(sidecar.url);
    assert.deepEqual(await closeBesideSilentClient(hostname, Number(port), () => sidecar.close()), { closeReturned: true, connectionClosedByServer: true });
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

  it('serves its probes on --probe-port too (the same answers as its routes), and nothing else there', async (t) => {
    const [shard0, shard1] = [await startFakeCoordinator(t, 0), await startFakeCoordinator(t, 1)];
    shard1.accepting = false;
    const service = await startFakeService(t);
    const sidecar = await startSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [shard0.url, shard1.url], dataDir: tempDir(t), heartbeatMs: 20, logLevel: 'silent', probePort: 0 });
    t.after(() => sidecar.close());
    assert.ok(sidecar.probeUrl && sidecar.probeUrl !== sidecar.url);
    await waitFor(() => shard1.registrations.length >= 2, 3000, 'refused registrations');
    await new Promise((resolve) => setTimeout(resolve, 150));
    const notReady = await fetch(`${sidecar.probeUrl}/txmesh/v1/ready`);
    assert.equal(notReady.status, 503);
    assert.match(((await readJson(notReady)) as { error: { code: string; details: string } }).error.details, /shard 1 /);
    assert.deepEqual(await readJson(await fetch(`${sidecar.probeUrl}/txmesh/v1/health`)), { ok: true, service: 'inventory', ready: false, prepared: 0 });
    shard1.accepting = true;
    await sidecar.whenReady(3000);
    // The probe thread has the main thread's answer within a beat (100 ms).
    await new Promise((resolve) => setTimeout(resolve, 250));
    const ready = await fetch(`${sidecar.probeUrl}/txmesh/v1/ready`);
    assert.deepEqual([ready.status, await readJson(ready)], [200, { ready: true, role: 'sidecar of inventory' }]);
    // Neither the batch route nor the proxy is reachable there.
    for (const path of ['/txmesh/v1/batch', '/anything']) assert.equal((await fetch(`${sidecar.probeUrl}${path}`)).status, 404);
    await assert.rejects(startSidecar({ service: 'ok', serviceUrl: service.url, coordinatorUrls: [], dataDir: tempDir(t), probePort: 70000 }), /probePort must be an integer from 0 to 65535/);
  });

  it('its server takes txmesh\'s socket timeouts (fastify leaves Node\'s defaults behind a serverFactory)', async (t) => {
    const sidecar = await buildSidecar({ service: 'inventory', serviceUrl: 'http://127.0.0.1:1', coordinatorUrls: [], dataDir: tempDir(t), logLevel: 'silent' });
    t.after(() => sidecar.close());
    const { requestTimeout, headersTimeout, keepAliveTimeout } = sidecar.server;
    assert.deepEqual({ requestTimeout, headersTimeout, keepAliveTimeout }, { requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS });
  });

  it('refuses bad options with a TxmeshError', async (t) => {
    await assert.rejects(startSidecar({ service: 'bad name!', serviceUrl: 'http://127.0.0.1:1', coordinatorUrls: [], dataDir: tempDir(t) }), { name: 'TxmeshError', code: 'TXM_BAD_REQUEST' });
    await assert.rejects(startSidecar({ service: 'ok', serviceUrl: 'ftp://x', coordinatorUrls: [], dataDir: tempDir(t) }), { code: 'TXM_BAD_REQUEST' });
    await assert.rejects(startSidecar({ service: 'ok', serviceUrl: 'http://127.0.0.1:1', coordinatorUrls: [], dataDir: tempDir(t), logLevel: 'loud' }), /logLevel must be one of fatal, error, warn/);
  });
});
