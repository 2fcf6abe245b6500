/**
 * Refusals that happen before any route runs, over a real socket (inject skips the parser and the socket):
 * a URL too long for the parser, and an upload far over the body limit. Each must reach the caller as a
 * catalogue answer, not as fastify's own body or a connection reset.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { startCoordinator } from './app.ts';

async function coordinatorUrl(t: TestContext): Promise<URL> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-wire-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir, logLevel: 'silent' });
  t.after(() => coordinator.close());
  return new URL(coordinator.url);
}

test('a 20 KB URL is answered 431 TXM_HEADERS_TOO_LARGE', async (t) => {
  const url = await coordinatorUrl(t);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(`GET /v1/transactions/${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`));
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 431 /);
  assert.equal((JSON.parse(answer.split('\r\n\r\n')[1] ?? '') as { error: { code: string } }).error.code, 'TXM_HEADERS_TOO_LARGE');
});

test('an upload of 5 MB is answered 413 TXM_BODY_TOO_LARGE, which the caller reads, rather than reset', async (t) => {
  const url = await coordinatorUrl(t);
  const size = 5 * 1024 * 1024;
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(new URL('/v1/transactions', url), { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(size) } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    // The rest of the upload may meet a closed connection once the answer is sent: that is the server's right.
    req.on('error', (err) => reject(err));
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const pump = (): void => {
      while (sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.equal(answer.status, 413);
  assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, 'TXM_BODY_TOO_LARGE');
});

test('the socket timeouts are txmesh\'s, not Node\'s defaults: an idle keep-alive connection outlives 5 s', async (t) => {
  const url = await coordinatorUrl(t);
  const socket = net.connect(Number(url.port), url.hostname);
  t.after(() => socket.destroy());
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const ask = async (): Promise<void> => {
    const before = text.length;
    socket.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    const deadline = Date.now() + 5000;
    while (!text.slice(before).includes('"ok":true') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(text.slice(before), /^HTTP\/1\.1 200 /);
  };
  await ask();
  assert.match(text, /Keep-Alive: timeout=72/i, 'the server tells pooled clients how long it keeps an idle connection');
  // Node's default (5 s) closed idle connections under clients that were about to reuse them: a reset request.
  await new Promise((resolve) => setTimeout(resolve, 5500));
  assert.equal(socket.destroyed || socket.readableEnded, false, 'still open after 5.5 s idle');
  await ask();
});

test('past --max-connections a client is refused, but a sidecar\'s heartbeat and decision look-up are served', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-wire-'));
  t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir, logLevel: 'silent', maxConnections: 1 });
  t.after(() => coordinator.close());
  // The one connection the cap allows stays open and busy with nothing.
  const holder = net.connect(Number(new URL(coordinator.url).port), '127.0.0.1');
  t.after(() => holder.destroy());
  await new Promise((resolve) => holder.once('connect', resolve));
  await new Promise((resolve) => setTimeout(resolve, 50));
  const call = (path: string, body?: object) =>
    fetch(`${coordinator.url}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { 'content-type': 'application/json', connection: 'close' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const begin = await call('/v1/transactions', { participants: [{ service: 'inventory', operations: [{ op: 'x' }] }] });
  assert.equal(begin.status, 429);
  assert.equal(((await begin.json()) as { error: { code: string } }).error.code, 'TXM_OVERLOADED');
  const heartbeat = await call('/v1/services', { service: 'inventory', sidecarUrl: 'http://127.0.0.1:1' });
  assert.equal(heartbeat.status, 200, 'a registration lapsing under a crowd of clients would refuse every begin');
  const decision = await call('/v1/transactions/0-mwzbkvan-4490bc58b3d242c1/decision');
  assert.notEqual(decision.status, 429);
  // Before the coordinator closes: it waits for its open connections.
  holder.destroy();
});
