import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { closeBesideSilentClient } from '@txmesh/protocol/testing';
import { closeServer } from './metrics-listener.ts';

test('closeServer: a connection that never sent a request does not hold the metrics port open', async (t) => {
  const server = createServer((_req, res) => res.end('# no metrics\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.closeAllConnections());
  const { port } = server.address() as AddressInfo;
  assert.deepEqual(await closeBesideSilentClient('127.0.0.1', port, () => closeServer(server)), { closeReturned: true, connectionClosedByServer: true });
});
