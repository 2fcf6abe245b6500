import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { startEcommerceService } from './app.ts';

test('close: a connection that never sent a byte is closed after a short grace, not waited for', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-example-close-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const service = await startEcommerceService('inventory', { dbPath: path.join(dir, 'inventory.db'), logLevel: 'silent' });
  const { hostname, port } = new URL(service.url);
  const silent = net.connect(Number(port), hostname);
  t.after(() => silent.destroy());
  await new Promise<void>((resolve, reject) => silent.once('connect', resolve).once('error', reject));
  const closedByServer = new Promise<void>((resolve) => silent.once('close', () => resolve()));
  let bound: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<'still open'>((resolve) => (bound = setTimeout(() => resolve('still open'), 10_000)));
  try {
    assert.equal(await Promise.race([service.close().then(() => 'closed' as const), gaveUp]), 'closed', 'the service closed while a silent connection was open');
    await closedByServer;
  } finally {
    clearTimeout(bound);
  }
});
