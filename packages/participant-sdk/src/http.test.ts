import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { PROTOCOL_VERSION } from '@txmesh/protocol';
import { closeBesideSilentClient } from '@txmesh/protocol/testing';
import { addStock, prepare, reserveOp, startParticipant, txId } from './test-support.ts';

async function listen(t: TestContext, app: FastifyInstance): Promise<string> {
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

async function post(url: string, body: string, contentType = 'application/json') {
  const res = await request(url, { method: 'POST', body, headers: { 'content-type': contentType } });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, any> };
}

test('participant routes answer batches and the prepared list, and refuse bad input with TxmeshError bodies', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 5);
  const app = Fastify();
  app.get('/service-route', async () => {
    throw new Error('the service keeps its own error handling');
  });
  f.participant.routes(app);
  const base = await listen(t, app);
  const id = txId();

  const ok = await post(`${base}/txmesh/participant/v1/batch`, JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare(id, [reserveOp('apple', 2)])] }));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.results, [{ txId: id, action: 'prepare', status: 'ok' }]);

  const prepared = await request(`${base}/txmesh/participant/v1/prepared`);
  const list = (await prepared.body.json()) as { service: string; prepared: { txId: string; preparedAt: number }[] };
  assert.equal(list.service, 'inventory');
  assert.deepEqual(list.prepared.map((p) => p.txId), [id]);
  assert.equal(typeof list.prepared[0]!.preparedAt, 'number');

  const version = await post(`${base}/txmesh/participant/v1/batch`, JSON.stringify({ protocolVersion: 99, items: [] }));
  assert.equal(version.status, 400);
  assert.equal(version.body.error.code, 'TXM_PROTOCOL_VERSION');

  const badItem = await post(`${base}/txmesh/participant/v1/batch`, JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [{ action: 'prepare', txId: 'nope' }] }));
  assert.equal(badItem.status, 400);
  assert.equal(badItem.body.error.code, 'TXM_BAD_REQUEST');
  assert.match(badItem.body.error.details, /items\[0\]\.txId/);

  const notJson = await post(`${base}/txmesh/participant/v1/batch`, '{"protocolVersion":');
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.error.code, 'TXM_BAD_REQUEST');

  const wrongType = await post(`${base}/txmesh/participant/v1/batch`, '<batch/>', 'application/xml');
  assert.equal(wrongType.status, 415);
  assert.equal(wrongType.body.error.code, 'TXM_UNSUPPORTED_MEDIA_TYPE');

  const serviceRoute = await request(`${base}/service-route`);
  const serviceBody = (await serviceRoute.body.json()) as Record<string, unknown>;
  assert.equal(serviceRoute.statusCode, 500);
  assert.equal(serviceBody.error, 'Internal Server Error', "the service's own routes keep fastify's default handler");

  f.participant.close();
  const closed = await post(`${base}/txmesh/participant/v1/batch`, JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [] }));
  assert.equal(closed.status, 503);
  assert.equal(closed.body.error.code, 'TXM_SHUTTING_DOWN');
});

test('routes also mount through app.register', async (t) => {
  const f = startParticipant(t);
  const app = Fastify();
  app.register(f.participant.routes);
  const base = await listen(t, app);
  const res = await request(`${base}/txmesh/participant/v1/prepared`);
  assert.equal(res.statusCode, 200);
  assert.deepEqual(await res.body.json(), { service: 'inventory', prepared: [] });
});


test("the service's app.close() closes a connection that never sent a byte after a short grace instead of waiting for it", async (t) => {
  const f = startParticipant(t);
  const app = Fastify();
  f.participant.routes(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  assert.deepEqual(await closeBesideSilentClient('127.0.0.1', port, () => app.close()), { closeReturned: true, connectionClosedByServer: true });
});
