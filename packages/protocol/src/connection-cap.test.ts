import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { test } from 'node:test';
import { ConnectionCap, closeServer } from './connection-cap.ts';
import { closeBesideSilentClient } from './silent-client.ts';

async function listening(t: { after(fn: () => unknown): void }) {
  const connections = new ConnectionCap(10, () => false);
  const server = connections.attach(http.createServer(connections.wrap((_req, res) => res.end('ok'))), false);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.closeAllConnections());
  return { connections, server, port: (server.address() as net.AddressInfo).port };
}

async function connected(port: number, t: { after(fn: () => unknown): void }): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, closed: new Promise<void>((resolve) => socket.once('close', () => resolve())) };
}

/** Sends one keep-alive request on the socket and waits for its whole answer. */
async function oneRequest(socket: net.Socket): Promise<void> {
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise<void>((resolve) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.endsWith('ok')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
  });
}

test('closeSilent closes only the connections that never sent a byte', async (t) => {
  const { connections, port } = await listening(t);
  const silent = await connected(port, t);
  const spoke = await connected(port, t);
  await oneRequest(spoke.socket);
  // The server has accepted both before it is asked.
  while (connections.stats().open < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(connections.closeSilent(), 1);
  await silent.closed;
  assert.equal(spoke.socket.destroyed, false, 'a keep-alive connection that carried a request is left to the server');
  // The spoken connection is left open; a closed silent one is not counted any more.
  assert.equal(connections.closeSilent(), 0);
});

test('an upgraded connection has spoken: closeSilent leaves it', async (t) => {
  const { connections, server, port } = await listening(t);
  server.on('upgrade', (_req, socket: net.Socket) => {
    // What a server that takes upgrades asks first (the sidecar's channel does).
    assert.equal(connections.refusalOf(socket), undefined);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
  });
  const upgraded = await connected(port, t);
  upgraded.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n');
  await new Promise<void>((resolve) => upgraded.socket.once('data', () => resolve()));
  const silent = await connected(port, t);
  while (connections.stats().open < 2) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(connections.closeSilent(), 1);
  await silent.closed;
  assert.equal(upgraded.socket.destroyed, false);
});

test('closeServer ends while a connection that never sent a request is open', async (t) => {
  const { connections, server, port } = await listening(t);
  assert.deepEqual(await closeBesideSilentClient('127.0.0.1', port, () => closeServer(server, connections)), { closeReturned: true, connectionClosedByServer: true });
});

const TLS_FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url);

async function listeningTls(t: { after(fn: () => unknown): void }) {
  const connections = new ConnectionCap(10, () => false);
  const tls = { key: readFileSync(new URL('loopback.key', TLS_FIXTURES)), cert: readFileSync(new URL('loopback.crt', TLS_FIXTURES)) };
  const server = connections.attach(https.createServer(tls, connections.wrap((_req, res) => res.end('ok'))) as unknown as http.Server, true);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.closeAllConnections());
  return { connections, server, port: (server.address() as net.AddressInfo).port };
}

/** A TCP connection that begins a TLS handshake (a record header, no more) and then stalls. */
async function stalledHandshake(port: number, t: { after(fn: () => unknown): void }) {
  const stalled = await connected(port, t);
  stalled.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x80]));
  return stalled;
}

test('TLS: a connection stalled inside its handshake is closed like a silent one; one that finished its handshake and spoke is left', async (t) => {
  const { connections, port } = await listeningTls(t);
  const stalled = await stalledHandshake(port, t);
  const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
  t.after(() => agent.destroy());
  const answer = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, agent }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  assert.equal(answer, 'ok');
  // The stalled header has reached the server (its TCP socket has read bytes, so bytesRead alone would keep it).
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(connections.closeSilent(), 1, 'only the stalled handshake');
  await stalled.closed;
  const [kept] = Object.values(agent.freeSockets).flat();
  assert.ok(kept && !kept.destroyed, 'the keep-alive TLS connection that carried a request is left to the server');
});

test('TLS: closeServer ends while a client is stalled inside its handshake', async (t) => {
  const { connections, server, port } = await listeningTls(t);
  const stalled = await stalledHandshake(port, t);
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Without the sweep this close would wait for the handshake timeout (120 s), past the test's own limit.
  await closeServer(server, connections);
  await stalled.closed;
});
