import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { TxmeshError } from '@txmesh/protocol';
import { ControlRoutes, type ControlRequest } from './control-routes.ts';

const LIMIT = 1024;

/** Routes on a real socket: POST /echo answers its body, GET /boom throws, GET /refused refuses. */
async function serve(t: TestContext): Promise<{ url: string; seen: ControlRequest[] }> {
  const seen: ControlRequest[] = [];
  const routes = new ControlRoutes({
    bodyLimit: LIMIT,
    log: pino({ level: 'silent' }),
    onRequest: (_route, headers) => {
      if (headers['x-refuse'] !== undefined) throw new TxmeshError('TXM_SHUTTING_DOWN', 'closing');
    },
  });
  routes.post('/echo', (request) => {
    seen.push(request);
    return { body: request.body ?? null };
  });
  routes.get('/boom', () => {
    throw new Error('a bug');
  });
  const server = http.createServer((req, res) => routes.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; code?: string; body: Record<string, unknown> }> {
  const res = await fetch(url, init);
  const body = (await res.json()) as Record<string, unknown>;
  return { status: res.status, code: (body.error as { code?: string } | undefined)?.code, body };
}

const json = (body: string): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('sidecar control routes', () => {
  it('answers a JSON body with the handler\'s answer, a charset or upper case in the media type included', async (t) => {
    const { url } = await serve(t);
    assert.deepEqual((await call(`${url}/echo`, json('{"a":[1,2]}'))).body, { body: { a: [1, 2] } });
    const withCharset = await call(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: '{"b":1}' });
    assert.deepEqual(withCharset.body, { body: { b: 1 } });
    assert.deepEqual((await call(`${url}/echo?x=1`, { method: 'POST' })).body, { body: null }, 'no body at all reaches the handler as undefined');
  });

  it('refuses, without running the handler, what is not JSON, past the limit, malformed, empty or holds a prototype key', async (t) => {
    const { url, seen } = await serve(t);
    const cases: [string, RequestInit, number, string][] = [
      ['text/plain', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' }, 415, 'TXM_UNSUPPORTED_MEDIA_TYPE'],
      ['a body without a type', { method: 'POST', body: new Uint8Array([123, 125]) }, 415, 'TXM_UNSUPPORTED_MEDIA_TYPE'],
      ['past the limit (Content-Length)', json(`"${'x'.repeat(LIMIT)}"`), 413, 'TXM_BODY_TOO_LARGE'],
      ['malformed', json('{"a":'), 400, 'TXM_BAD_REQUEST'],
      ['empty', { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '0' } }, 400, 'TXM_BAD_REQUEST'],
      ['__proto__', json('{"__proto__":{"admin":true}}'), 400, 'TXM_BAD_REQUEST'],
      ['escaped __proto__', json('{"\\u005f_proto__":{"admin":true}}'), 400, 'TXM_BAD_REQUEST'],
      ['constructor.prototype', json('{"constructor":{"prototype":{"admin":true}}}'), 400, 'TXM_BAD_REQUEST'],
    ];
    for (const [what, init, status, code] of cases) {
      const answer = await call(`${url}/echo`, init);
      assert.deepEqual([answer.status, answer.code], [status, code], what);
    }
    assert.deepEqual(seen, []);
    assert.deepEqual((await call(`${url}/echo`, json('{"constructor":"a name"}'))).body, { body: { constructor: 'a name' } }, 'a key named constructor alone is data');
  });

  it('stops reading a chunked body as soon as it passes the limit', async (t) => {
    const { url } = await serve(t);
    const answer = await new Promise<{ status?: number; text: string }>((resolve, reject) => {
      const req = http.request(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      req.write(`"${'x'.repeat(LIMIT)}`);
      // The rest of the body is never sent: the answer must not wait for it.
    });
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.text).error.code, 'TXM_BODY_TOO_LARGE');
  });

  it('gives unknown routes and methods TXM_NOT_FOUND, a thrown bug TXM_INTERNAL, a hook refusal its own code, HEAD the GET answer', async (t) => {
    const { url } = await serve(t);
    assert.deepEqual((await call(`${url}/nothing`)).body.error, { code: 'TXM_NOT_FOUND', message: new TxmeshError('TXM_NOT_FOUND').message, details: 'GET /nothing' });
    assert.equal((await call(`${url}/echo`)).code, 'TXM_NOT_FOUND', 'GET of a POST route');
    assert.equal((await call(`${url}/boom`)).status, 500);
    assert.equal((await call(`${url}/boom`)).code, 'TXM_INTERNAL');
    const refused = await call(`${url}/echo`, { ...json('{}'), headers: { 'content-type': 'application/json', 'x-refuse': '1' } });
    assert.deepEqual([refused.status, refused.code], [503, 'TXM_SHUTTING_DOWN']);
    const head = await fetch(`${url}/boom`, { method: 'HEAD' });
    assert.equal(head.status, 500);
    assert.equal(await head.text(), '');
  });
});
