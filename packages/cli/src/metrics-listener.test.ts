import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { closeServer } from './metrics-listener.ts';

test('closeServer: a connection that never sent a request does not hold the metrics port open', async (t) => {
  const server = createServer((_req, res) => res.end('# no metrics\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.closeAllConnections());
  const silent = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  t.after(() => silent.destroy());
  await new Promise<void>((resolve, reject) => silent.once('connect', resolve).once('error', reject));
  const closedByServer = new Promise<void>((resolve) => silent.once('close', () => resolve()));
  let bound: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<'still open'>((resolve) => (bound = setTimeout(() => resolve('still open'), 10_000)));
  try {
    assert.equal(await Promise.race([closeServer(server).then(() => 'closed' as const), gaveUp]), 'closed');
    await closedByServer;
  } finally {
    clearTimeout(bound);
  }
});
