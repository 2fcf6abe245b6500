import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { FaultProxy } from './fault-proxy.ts';

/** A TCP echo server that remembers everything it received. */
async function echoServer(t: TestContext): Promise<{ port: number; received: () => string; connections: () => number }> {
  let received = '';
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      received += chunk.toString();
      socket.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, received: () => received, connections: () => connections };
}

async function startProxy(t: TestContext, port: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ target: `http://127.0.0.1:${port}` });
  t.after(() => proxy.close());
  return proxy;
}

/** A client socket that collects what it reads and records how it ended. */
async function connect(port: number): Promise<{ socket: net.Socket; text: () => string; ended: Promise<string> }> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString()));
  const ended = new Promise<string>((resolve) => {
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    socket.on('close', () => resolve('closed'));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, text: () => text, ended };
}

async function until(probe: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Lets bytes in flight on loopback arrive, so a check that something did NOT happen means something. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 100));

test('pass forwards both ways', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  const c = await connect(proxy.port);
  c.socket.write('hello');
  await until(() => c.text() === 'hello', 'the echo');
  assert.equal(target.received(), 'hello');
  c.socket.destroy();
});

test('delay holds bytes but delivers them in order', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  proxy.delay(2000, 'toClient'); // long enough that a stalled test process still checks before it elapses
  const c = await connect(proxy.port);
  c.socket.write('a');
  c.socket.write('b');
  await until(() => target.received() === 'ab', 'the request to reach the target');
  assert.equal(c.text(), '', 'the answer is held back while the request went through');
  await until(() => c.text() === 'ab', 'the delayed answer');
  assert.equal(proxy.mode, 'delay');
  c.socket.destroy();
});

test('drop toClient: the request reaches the target, the answer is lost; heal cuts the poisoned connection', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  proxy.drop('toClient');
  const c = await connect(proxy.port);
  c.socket.write('lost-answer');
  await until(() => target.received() === 'lost-answer', 'the request to reach the target');
  await settle();
  assert.equal(c.text(), '', 'no answer came back');
  proxy.heal();
  assert.notEqual(await c.ended, undefined, 'the connection that lost bytes is cut on heal');
  const fresh = await connect(proxy.port);
  fresh.socket.write('x');
  await until(() => fresh.text() === 'x', 'a new connection to pass');
  fresh.socket.destroy();
});

test('drop toTarget: nothing reaches the target', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  proxy.drop('toTarget');
  const c = await connect(proxy.port);
  c.socket.write('never');
  await settle();
  assert.equal(target.received(), '');
  assert.equal(c.text(), '');
  proxy.heal();
  await c.ended;
});

test('blackhole accepts and holds connections, forwarding nothing', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  proxy.blackhole();
  const c = await connect(proxy.port);
  c.socket.write('into the void');
  await settle();
  assert.equal(target.received(), '');
  assert.equal(c.text(), '');
  assert.equal(c.socket.destroyed, false, 'the connection is held open');
  assert.equal(proxy.openConnections, 1);
  proxy.heal();
  await c.ended;
  assert.equal(proxy.faultsInjected, 1);
});

test('reset cuts open connections and refuses new ones until healed', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  const open = await connect(proxy.port);
  open.socket.write('1');
  await until(() => open.text() === '1', 'the first echo');
  proxy.reset();
  assert.equal(await open.ended, 'ECONNRESET');
  const refused = net.connect(proxy.port, '127.0.0.1');
  const outcome = await new Promise<string>((resolve) => {
    refused.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    refused.on('close', () => resolve('closed'));
  });
  assert.ok(outcome === 'ECONNRESET' || outcome === 'closed', outcome);
  proxy.heal();
  const after = await connect(proxy.port);
  after.socket.write('2');
  await until(() => after.text() === '2', 'the echo after heal');
  after.socket.destroy();
});

test('a target that is down resets the client, and a target set later is used', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const deadPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const proxy = await startProxy(t, deadPort);
  const c = await connect(proxy.port);
  assert.equal(await c.ended, 'ECONNRESET');

  const target = await echoServer(t);
  proxy.setTarget(`127.0.0.1:${target.port}`);
  const ok = await connect(proxy.port);
  ok.socket.write('back');
  await until(() => ok.text() === 'back', 'the echo from the new target');
  ok.socket.destroy();
});
