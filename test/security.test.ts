/**
 * Identity on every call, over real processes: a caller with no credential, a wrong one, or another
 * component's tries begin, register, prepare, commit and rollback against every component. Every try is
 * refused with a catalogue code, nothing changes in any service database, and a real order still commits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallerRole, PROTOCOL_VERSION, authorizationHeader, newTxId } from '@txmesh/protocol';
import { branchRowCount, goodOrder, postJson, startTestCluster, summaries } from './helpers.ts';

const WRONG_KEY = 'ab'.repeat(32);


test('no, wrong or misused credentials are refused by every component and change nothing', async (t) => {
  const cluster = await startTestCluster(t);
  const coordinator = cluster.coordinators[0]!.url;
  const inventorySidecar = cluster.sidecars.get('inventory')!.url;
  const inventoryService = cluster.services.get('inventory')!.url;
  const before = await summaries(cluster);
  const rowsBefore = branchRowCount(cluster.dataDir);
  const txId = newTxId(0);
  const items = (action: string) => [{ action, txId, service: 'inventory', deadline: Date.now() + 5_000, operations: [{ op: 'reserve', args: { sku: 'sku-1', qty: 50 } }] }];
  const batch = (action: string) => JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: items(action) });
  const paymentAsService = authorizationHeader(CallerRole.SERVICE, 'payment', cluster.credentials!.serviceKeyFileContent('payment'));
  const asClient = cluster.clientHeaders.authorization!;
  const wrong = (role: CallerRole, name: string) => authorizationHeader(role, name, WRONG_KEY);

  const attempts: { name: string; url: string; body?: string; auth?: string; status: number; code: string }[] = [
    { name: 'begin without credential', url: `${coordinator}/v1/transactions`, body: JSON.stringify(goodOrder('forged-1')), status: 401, code: 'TXM_UNAUTHENTICATED' },
    { name: 'begin with a wrong client key', url: `${coordinator}/v1/transactions`, body: JSON.stringify(goodOrder('forged-2')), auth: wrong(CallerRole.CLIENT, 'lab'), status: 401, code: 'TXM_UNAUTHENTICATED' },
    { name: 'begin as a service', url: `${coordinator}/v1/transactions`, body: JSON.stringify(goodOrder('forged-3')), auth: paymentAsService, status: 403, code: 'TXM_FORBIDDEN' },
    { name: 'register without credential', url: `${coordinator}/v1/services`, body: JSON.stringify({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:9' }), status: 401, code: 'TXM_UNAUTHENTICATED' },
    { name: 'register inventory as payment', url: `${coordinator}/v1/services`, body: JSON.stringify({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:9' }), auth: paymentAsService, status: 403, code: 'TXM_FORBIDDEN' },
    { name: 'register as a client', url: `${coordinator}/v1/services`, body: JSON.stringify({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:9' }), auth: asClient, status: 403, code: 'TXM_FORBIDDEN' },
    ...['prepare', 'commit', 'rollback'].flatMap((action) => [
      { name: `${action} to the sidecar without credential`, url: `${inventorySidecar}/txmesh/v1/batch`, body: batch(action), status: 401, code: 'TXM_UNAUTHENTICATED' },
      { name: `${action} to the sidecar as a client`, url: `${inventorySidecar}/txmesh/v1/batch`, body: batch(action), auth: asClient, status: 403, code: 'TXM_FORBIDDEN' },
      { name: `${action} to the sidecar with a wrong coordinator key`, url: `${inventorySidecar}/txmesh/v1/batch`, body: batch(action), auth: wrong(CallerRole.COORDINATOR, 'inventory'), status: 401, code: 'TXM_UNAUTHENTICATED' },
      { name: `${action} to the sidecar as payment's coordinator`, url: `${inventorySidecar}/txmesh/v1/batch`, body: batch(action), auth: cluster.sidecarControlHeaders('payment').authorization!, status: 403, code: 'TXM_FORBIDDEN' },
      { name: `${action} to the service without credential`, url: `${inventoryService}/txmesh/participant/v1/batch`, body: batch(action), status: 401, code: 'TXM_UNAUTHENTICATED' },
      { name: `${action} to the service as its coordinator`, url: `${inventoryService}/txmesh/participant/v1/batch`, body: batch(action), auth: cluster.sidecarControlHeaders('inventory').authorization!, status: 403, code: 'TXM_FORBIDDEN' },
      { name: `${action} through the sidecar's proxy`, url: `${inventorySidecar}/txmesh/participant/v1/batch`, body: batch(action), auth: cluster.participantHeaders('inventory').authorization!, status: 404, code: 'TXM_NOT_FOUND' },
      { name: `${action} through the proxy, encoded`, url: `${inventorySidecar}/%74xmesh/participant/v1/batch`, body: batch(action), status: 404, code: 'TXM_NOT_FOUND' },
      { name: `${action} through the proxy, dot segments`, url: `${inventorySidecar}/x/..//txmesh/Participant/v1/batch`, body: batch(action), status: 404, code: 'TXM_NOT_FOUND' },
    ]),
  ];
  for (const a of attempts) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (a.auth !== undefined) headers.authorization = a.auth;
    const res = await fetch(a.url, { method: 'POST', headers, body: a.body ?? '{}' });
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    assert.equal(res.status, a.status, `${a.name}: ${JSON.stringify(body)}`);
    assert.equal(body.error?.code, a.code, a.name);
    assert.ok((body.error?.message?.length ?? 0) > 20, a.name);
  }

  const services = (await (await fetch(`${coordinator}/v1/services`, { headers: cluster.clientHeaders })).json()) as { services: { service: string; sidecarUrl: string }[] };
  assert.equal(services.services.find((s) => s.service === 'inventory')?.sidecarUrl, new URL(inventorySidecar).origin, 'the registration is still the real sidecar');
  assert.equal(branchRowCount(cluster.dataDir), rowsBefore, 'no branch row written in any service database');
  assert.deepEqual(await summaries(cluster), before, 'no business change, nothing prepared');

  // Locks unaffected: a real order on the same sku commits.
  const real = await postJson(`${coordinator}/v1/transactions`, goodOrder('real-after-forgeries', 15_000));
  assert.equal(real.body.outcome, 'committed', JSON.stringify(real.body));
});
