import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { CallFailure, HttpCallError, JsonHttpClient, describeAnswer } from './json-http-client.ts';

/** A raw node:http server, so a test can stall, cut or flood an answer; counts the connections it accepted. */
async function rawServer(t: TestContext, handler: http.RequestListener): Promise<{ url: string; connections: () => number }> {
  const server = http.createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

function client(t: TestContext, options: Partial<ConstructorParameters<typeof JsonHttpClient>[0]> = {}): JsonHttpClient {
  const c = new JsonHttpClient({ timeoutMs: 2000, ...options });
  t.after(() => c.destroy());
  return c;
}

async function failure(promise: Promise<unknown>): Promise<HttpCallError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof HttpCallError, `expected an HttpCallError, got ${String(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}

test('json client: JSON both ways over one kept-alive connection; error answers are answers, not throws', async (t) => {
  const seen: { method?: string; url?: string; type?: string; body: string }[] = [];
  const server = await rawServer(t, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, type: req.headers['content-type'], body });
      if (req.url === '/prefix/html') {
        res.writeHead(502, { 'content-type': 'text/html' }).end('<html>\n  bad gateway\n</html>');
        return;
      }
      const status = req.url === '/prefix/refuse' ? 409 : 200;
      res.writeHead(status, { 'content-type': 'application/json', 'x-extra': 'yes' }).end(JSON.stringify({ got: body.length > 0 ? JSON.parse(body) : null }));
    });
  });
  const c = client(t);
  const posted = await c.request(`${server.url}/prefix/`, '/things', { body: { a: 1 } });
  assert.deepEqual([posted.status, posted.body, posted.headers['x-extra']], [200, { got: { a: 1 } }, 'yes']);
  assert.deepEqual(seen[0], { method: 'POST', url: '/prefix/things', type: 'application/json', body: '{"a":1}' });

  const refused = await c.request(`${server.url}/prefix`, '/refuse');
  assert.deepEqual([refused.status, refused.body], [409, { got: null }]);
  assert.equal(seen[1]!.method, 'GET');

  const html = await c.request(`${server.url}/prefix`, '/html');
  assert.equal(html.body, undefined);
  assert.equal(describeAnswer(html), 'HTTP 502: <html> bad gateway </html>');
  for (let i = 0; i < 20; i++) await c.request(server.url, '/prefix/again');
  // Without keep-alive every call would open its own connection.
  assert.ok(server.connections() <= 2, `23 sequential calls used ${server.connections()} connections`);
  assert.equal(c.requests, 23);
});

test('json client: a call that gets no answer in time fails TIMEOUT, whether headers or body stall', async (t) => {
  const server = await rawServer(t, (req, res) => {
    if (req.url === '/body') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"partial":');
    }
    // otherwise: never answer
  });
  const c = client(t, { timeoutMs: 150 });
  for (const path of ['/headers', '/body']) {
    const started = Date.now();
    const err = await failure(c.request(server.url, path));
    assert.equal(err.failure, CallFailure.TIMEOUT, path);
    assert.equal(err.nothingSent, false);
    assert.match(err.message, /within 150 ms/);
    assert.ok(Date.now() - started < 5000, `${path} was bounded`);
  }
  // A call may give its own bound.
  assert.equal((await failure(c.request(server.url, '/headers', { timeoutMs: 50 }))).failure, CallFailure.TIMEOUT);
});

test('json client: an answer larger than maxAnswerBytes is cut off, announced or streamed', async (t) => {
  const big = JSON.stringify({ pad: 'x'.repeat(5000) });
  const server = await rawServer(t, (req, res) => {
    if (req.url === '/announced') res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(big)) }).end(big);
    else {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < 10; i++) res.write(big.slice(i * 500, (i + 1) * 500));
      res.end(big.slice(5000));
    }
  });
  const c = client(t, { maxAnswerBytes: 1024 });
  for (const path of ['/announced', '/streamed']) {
    const err = await failure(c.request(server.url, path));
    assert.equal(err.failure, CallFailure.ANSWER_TOO_LARGE, path);
  }
  const roomy = client(t, { maxAnswerBytes: 8192 });
  assert.equal(((await roomy.request(server.url, '/streamed')).body as { pad: string }).pad.length, 5000);
});

test('json client: refused connections say nothing was sent; a connection cut mid-call says it may have been', async (t) => {
  const down = await rawServer(t, () => undefined);
  const downUrl = down.url;
  const c = client(t);
  // Close the server so its port refuses.
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const refusedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const refused = await failure(c.request(refusedUrl, '/x', { body: {} }));
  assert.deepEqual([refused.failure, refused.nothingSent], [CallFailure.UNREACHABLE, true]);
  assert.match(refused.message, /ECONNREFUSED/);

  const cutter = await rawServer(t, (req) => req.socket.destroy());
  const cut = await failure(c.request(cutter.url, '/x', { body: {} }));
  assert.deepEqual([cut.failure, cut.nothingSent], [CallFailure.UNREACHABLE, false]);
  assert.ok(downUrl.startsWith('http://'));
});

test('json client: after close every call fails CLOSED at once', async (t) => {
  const server = await rawServer(t, (_req, res) => res.writeHead(200).end('{}'));
  const c = client(t);
  assert.equal((await c.request(server.url, '/')).status, 200);
  await c.close();
  assert.equal((await failure(c.request(server.url, '/'))).failure, CallFailure.CLOSED);
  assert.throws(() => new JsonHttpClient({ timeoutMs: 0 }), TypeError);
});
