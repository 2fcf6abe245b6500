/**
 * The null participants answer a coordinator's batches on both of a sidecar's paths: the batch channel (an
 * upgraded connection, a frame per batch) and POST /txmesh/v1/batch. A fake shard takes their registrations.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { BatchChannel, DEFAULT_MAX_ANSWER_BYTES } from '@txmesh/client';
import { PROTOCOL_VERSION, Paths, type BranchBatchResponse, type BranchItem } from '@txmesh/protocol';
import { startNullSidecar } from './null-sidecar.ts';

async function fakeShard(t: TestContext): Promise<{ url: string; registered: string[] }> {
  const registered: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      registered.push((JSON.parse(body) as { service: string }).service);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ heartbeatMs: 60_000 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, registered };
}

const items = (n: number): BranchItem[] =>
  Array.from({ length: n }, (_, i) => ({ txId: `tx-${i}`, service: 'inventory', action: 'prepare', operations: [] }) as unknown as BranchItem);

test('null sidecar: answers batches over the batch channel and over HTTP, every item ok', async (t) => {
  const shard = await fakeShard(t);
  const sidecar = await startNullSidecar({ coordinatorUrls: [shard.url], services: ['inventory', 'payment'], logLevel: 'silent' });
  t.after(() => sidecar.close());
  assert.deepEqual(shard.registered, ['inventory', 'payment']);

  const channel = new BatchChannel({ url: sidecar.url, path: Paths.SIDECAR_CHANNEL, maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES });
  t.after(() => channel.destroy());
  const body = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: items(3) });
  assert.equal(await channel.call(body, 5_000), undefined, 'the first call opens the channel and goes over HTTP');
  assert.equal(await channel.settled(), true, 'the null sidecar took the upgrade');
  const answer = await channel.call(body, 5_000);
  assert.equal(answer?.status, 200);
  const results = (answer?.body as BranchBatchResponse).results;
  assert.deepEqual(results.map((r) => [r.txId, r.status]), [['tx-0', 'ok'], ['tx-1', 'ok'], ['tx-2', 'ok']]);

  const res = await fetch(`${sidecar.url}${Paths.SIDECAR_BATCH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: items(2) }) });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as BranchBatchResponse).results.length, 2);
  assert.equal(sidecar.answered(), 5);
});
