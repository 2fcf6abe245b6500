import assert from 'node:assert/strict';
import http from 'node:http';
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
