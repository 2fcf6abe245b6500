import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { CallFailure, HttpCallError, JsonHttpClient, describeAnswer, type HttpStack, type JsonHttpClientOptions } from './json-http-client.ts';

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


async function failure(promise: Promise<unknown>): Promise<HttpCallError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof HttpCallError, `expected an HttpCallError, got ${String(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}

// Both stacks keep the same contract.
const STACKS: HttpStack[] = ['node:http', 'undici'];

for (const stack of STACKS) {
  const client = (t: TestContext, options: Partial<JsonHttpClientOptions> = {}): JsonHttpClient => {
    const c = new JsonHttpClient({ timeoutMs: 2000, stack, ...options });
    t.after(() => c.destroy());
    return c;
  };

  test(`json client (${stack}): JSON both ways over one kept-alive connection; error answers are answers, not throws`, async (t) => {
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

  test(`json client (${stack}): a call that gets no answer in time fails TIMEOUT, whether headers or body stall`, async (t) => {
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

  test(`json client (${stack}): an answer larger than maxAnswerBytes is cut off, announced or streamed`, async (t) => {
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

  test(`json client (${stack}): refused connections say nothing was sent; a connection cut mid-call says it may have been`, async (t) => {
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

  test(`json client (${stack}): after close every call fails CLOSED at once`, async (t) => {
    const server = await rawServer(t, (_req, res) => res.writeHead(200).end('{}'));
    const c = client(t);
    assert.equal((await c.request(server.url, '/')).status, 200);
    await c.close();
    assert.equal((await failure(c.request(server.url, '/'))).failure, CallFailure.CLOSED);
    assert.throws(() => new JsonHttpClient({ timeoutMs: 0 }), TypeError);
  });

  test(`json client (${stack}): a call in flight when the client is destroyed fails CLOSED, not TIMEOUT`, async (t) => {
    const server = await rawServer(t, () => undefined);
    const c = client(t, { timeoutMs: 5000 });
    const pending = failure(c.request(server.url, '/stalls'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await c.destroy();
    const err = await pending;
    assert.deepEqual([err.failure, err.nothingSent], [CallFailure.CLOSED, false]);
    assert.ok(Date.now() - started < 2000, 'the call ended with the client, not at its time bound');
  });

  test(`json client (${stack}): an origin idle for idleOriginMs loses its connections and its entry; one with a call in flight keeps them`, async (t) => {
    let stalled: http.ServerResponse | undefined;
    const gone = await rawServer(t, (_req, res) => res.writeHead(200).end('{}'));
    const busy = await rawServer(t, (req, res) => {
      if (req.url === '/stall') stalled = res;
      else res.writeHead(200).end('{}');
    });
    const c = client(t, { idleOriginMs: 50 });
    assert.equal((await c.request(gone.url, '/')).status, 200);
    const pending = c.request(busy.url, '/stall');
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(c.origins, 2);
    // The next call sweeps: the idle origin goes, the one with a call in flight stays.
    assert.equal((await c.request(busy.url, '/')).status, 200);
    assert.equal(c.origins, 1, 'the idle origin was forgotten');
    stalled?.writeHead(200).end('{}');
    assert.equal((await pending).status, 200);
    // A forgotten origin is simply dialled again.
    assert.equal((await c.request(gone.url, '/')).status, 200);
    assert.equal(gone.connections(), 2, 'its kept-alive connection was closed, so a new one was opened');
  });
}

test('json client: the node:http stack (the default) never loads undici; the undici stack loads it on its first call', () => {
  const index = new URL('./index.js', import.meta.url).href;
  const probe = (stack: HttpStack): string[] => {
    const script = `
      import http from 'node:http';
      import { createRequire } from 'node:module';
      import { JsonHttpClient } from ${JSON.stringify(index)};
      const server = http.createServer((_req, res) => res.end('{}')).listen(0, '127.0.0.1', async () => {
        const c = new JsonHttpClient({ timeoutMs: 2000, stack: ${JSON.stringify(stack)} });
        const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/node_modules/undici/'));
        const before = loaded();
        await c.request('http://127.0.0.1:' + server.address().port, '/');
        console.log(JSON.stringify([before, loaded()]));
        await c.close();
        server.close();
      });`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    return JSON.parse(run.stdout.trim()) as string[];
  };
  assert.deepEqual(probe('node:http'), [false, false]);
  assert.deepEqual(probe('undici'), [false, true]);
  assert.throws(() => new JsonHttpClient({ timeoutMs: 10, stack: 'fetch' as HttpStack }), TypeError);
});
