import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { closeBesideSilentClient } from '@txmesh/protocol/testing';
import { startEcommerceService } from './app.ts';

test('close: a connection that never sent a byte is closed after a short grace, not waited for', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-example-close-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const service = await startEcommerceService('inventory', { dbPath: path.join(dir, 'inventory.db'), logLevel: 'silent' });
  const { hostname, port } = new URL(service.url);
  assert.deepEqual(await closeBesideSilentClient(hostname, Number(port), () => service.close()), { closeReturned: true, connectionClosedByServer: true });
});
