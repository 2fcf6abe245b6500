import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROTOCOL_VERSION } from '@txmesh/protocol';
import { buildSidecar } from './sidecar.ts';
import { deadUrl, startFakeService, tempDir, readJson, listenOn } from './test-fakes.ts';

/** A plain node:http service, for answers fastify would not give (broken-off bodies, slow answers). */
async function startRawService(t: TestContext, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** One request through node:http, reporting how it ended instead of throwing. */
function request(url: string, options: http.RequestOptions, body?: string): Promise<{ status?: number; headers?: http.IncomingHttpHeaders; text: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', (err) => resolve({ status: res.statusCode, text, error: err.message }));
    });
    req.on('error', (err) => resolve({ text: '', error: err.message }));
    req.on('timeout', () => req.destroy(new Error('the client gave up waiting')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function startTestSidecar(t: TestContext, serviceUrl: string) {
  const sidecar = await buildSidecar({ service: 'inventory', serviceUrl, coordinatorUrls: [], dataDir: tempDir(t), logLevel: 'silent' });
  t.after(() => sidecar.close());
  const url = await listenOn(sidecar.server);
  return { ...sidecar, url };
}

describe('sidecar proxy', () => {
  it('passes ordinary requests, bodies and txmesh/trace headers through untouched', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const txId = '3-abc123-0123456789abcdef';
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

    const get = await fetch(`${sidecar.url}/echo/items?sku=A-1`, { headers: { 'x-txmesh-tx': txId, traceparent, 'x-custom': 'kept' } });
    assert.equal(get.status, 200);
    assert.deepEqual(await readJson(get), { seen: '/echo/items?sku=A-1', tx: txId, body: null });

    const post = await fetch(`${sidecar.url}/echo/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-txmesh-tx': txId }, body: JSON.stringify({ qty: 3 }) });
    assert.deepEqual(await readJson(post), { seen: '/echo/orders', tx: txId, body: { qty: 3 } });

    assert.equal(service.echoes.length, 2);
    const seen = service.echoes[0]!.headers;
    assert.equal(seen['x-txmesh-tx'], txId);
    assert.equal(seen.traceparent, traceparent);
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen.host, new URL(sidecar.url).host, 'the Host header is not rewritten');
    assert.equal(seen['x-forwarded-for'], undefined, 'no headers are added');
    assert.equal(service.echoes[1]!.method, 'POST');
  });

  it('relays the service’s own status codes, including 404 for routes it does not have', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const res = await fetch(`${sidecar.url}/not-a-service-route`);
    assert.equal(res.status, 404);
    const body = await readJson(res);
    assert.notEqual(body.error?.code, 'TXM_NOT_FOUND', 'the 404 comes from the service, not the sidecar');
  });

  it('answers 502 TXM_SERVICE_UNREACHABLE when the service is down', async (t) => {
    const sidecar = await startTestSidecar(t, await deadUrl());
    const res = await fetch(`${sidecar.url}/echo/anything`, { headers: { 'x-txmesh-tx': '0-abc-0123456789abcdef' } });
    assert.equal(res.status, 502);
    const body = await readJson(res);
    assert.equal(body.error.code, 'TXM_SERVICE_UNREACHABLE');
    assert.equal(typeof body.error.message, 'string');
  });

  it('answers 502 TXM_SERVICE_UNREACHABLE when the service accepts the request but never answers', async (t) => {
    // A hung service (or a link that lost its answers) must not hold the caller's request forever.
    const serviceUrl = await startRawService(t, () => undefined);
    const sidecar = await buildSidecar({ service: 'inventory', serviceUrl, coordinatorUrls: [], dataDir: tempDir(t), logLevel: 'silent', proxyTimeoutMs: 300 });
    t.after(() => sidecar.close());
    const url = await listenOn(sidecar.server);
    const answer = await request(`${url}/hangs`, { timeout: 20_000 });
    assert.equal(answer.error, undefined, 'the sidecar answered instead of leaving the client to give up');
    assert.equal(answer.status, 502);
    assert.equal(JSON.parse(answer.text).error.code, 'TXM_SERVICE_UNREACHABLE');
  });

  it('measures proxied latency and in-flight requests for the resource report', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    for (let i = 0; i < 5; i += 1) await (await fetch(`${sidecar.url}/echo/${i}`)).text();
    // The report rides on every batch answer; an empty batch asks for nothing else.
    const res = await fetch(`${sidecar.url}/txmesh/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [] }) });
    const { results, report } = await readJson(res);
    assert.deepEqual(results, []);
    assert.equal(report.inFlight, 0);
    assert.ok(report.latencyP50Ms > 0 && report.latencyP99Ms >= report.latencyP50Ms, JSON.stringify(report));
    assert.equal(service.batches.length, 0, 'an empty batch is not forwarded');
  });

  it('streams a chunked DELETE body to the service untouched', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const answer = await request(`${sidecar.url}/echo/items/7`, { method: 'DELETE', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, JSON.stringify({ reason: 'gone' }));
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(JSON.parse(answer.text), { seen: '/echo/items/7', tx: null, body: { reason: 'gone' } });
    assert.equal(service.echoes.length, 1);
  });

  it('cuts the client connection when the service breaks off its answer, instead of leaving it hanging', async (t) => {
    const serviceUrl = await startRawService(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
      res.write('the first part');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const sidecar = await startTestSidecar(t, serviceUrl);
    const started = Date.now();
    const answer = await request(`${sidecar.url}/broken`, { timeout: 2000 });
    assert.ok(answer.error !== undefined, 'the client sees the answer end abnormally');
    assert.notEqual(answer.error, 'the client gave up waiting');
    assert.ok(Date.now() - started < 1500, `ended after ${Date.now() - started} ms`);
    const res = await fetch(`${sidecar.url}/txmesh/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [] }) });
    assert.equal((await readJson(res)).report.inFlight, 0, 'the broken request no longer counts as in flight');
  });

  it('closes promptly although a keep-alive client is mid-request, telling it to close the connection', async (t) => {
    const serviceUrl = await startRawService(t, (_req, res) => {
      setTimeout(() => res.end('late'), 150);
    });
    const sidecar = await startTestSidecar(t, serviceUrl);
    const agent = new http.Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    const slow = request(`${sidecar.url}/slow`, { agent });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = Date.now();
    await sidecar.close();
    const answer = await slow;
    assert.equal(answer.text, 'late');
    assert.equal(answer.headers?.connection, 'close');
    assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms: a keep-alive connection held the server open`);
  });
});
