/**
 * The coordinator over real sockets: a fake sidecar on 127.0.0.1, the HTTP branch transport, and
 * startCoordinator's recovery-before-listen.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatchChannelServer, COMPACT_OK, PROTOCOL_VERSION, Paths, type BatchChannelRequest, type BranchBatchRequest, type BranchItemResult } from '@txmesh/protocol';
import { decisionLogPath, startCoordinator } from './app.ts';
import { DispatcherClosedError, SidecarHttpError, TransportTimeoutError } from './branch-errors.ts';
import { HttpBranchTransport } from './http-transport.ts';
import { SqliteDecisionLog } from './sqlite-decision-log.ts';
import { eventually } from './testing/fake-transport.ts';

/** A sidecar stand-in: records every batch and answers each item with answer(item). */
async function fakeSidecar(t: TestContext, answer: (item: BranchBatchRequest['items'][number]) => BranchItemResult['status'] = () => 'ok', delayMs = 0) {
  const batches: BranchBatchRequest[] = [];
  const app = Fastify();
  app.post('/txmesh/v1/batch', async (request, reply) => {
    const body = request.body as BranchBatchRequest;
    batches.push(body);
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (body.items.some((i) => i.service === 'broken')) return reply.status(500).send({ error: { code: 'TXM_INTERNAL' } });
    return { protocolVersion: PROTOCOL_VERSION, results: body.items.map((i) => ({ txId: i.txId, action: i.action, status: answer(i) })) };
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  return { url, batches };
}

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-coord-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('HttpBranchTransport', () => {
  it('posts {protocolVersion, items} to the sidecar batch route and returns its results', async (t) => {
    const sidecar = await fakeSidecar(t, (i) => (i.action === 'prepare' ? 'no' : 'ok'));
    const transport = new HttpBranchTransport();
    t.after(() => transport.close());
    const items = [
      { action: 'prepare' as const, txId: '0-abc-0000000000000001', service: 'inv', operations: [{ op: 'reserve' }], deadline: Date.now() + 1000 },
      { action: 'commit' as const, txId: '0-abc-0000000000000002', service: 'inv' },
    ];
    const response = await transport.send(sidecar.url, items, 2000);
    assert.deepEqual(response.results.map((r) => r.status), ['no', 'ok']);
    assert.deepEqual(sidecar.batches, [{ protocolVersion: PROTOCOL_VERSION, items }]);
    // This sidecar has no batch channel (an older release): its 404 to the upgrade sends the batches over
    // HTTP, and the upgrade is not asked for again on every batch.
    await transport.send(sidecar.url, items, 2000);
    assert.equal(sidecar.batches.length, 2);
    assert.deepEqual(transport.channelStats(), { calls: 0, open: 0, refusals: 1 });
  });

  it('asks a sidecar on the batch channel for compact results and reads them as the items\' own results', async (t) => {
    const bodies: BatchChannelRequest[] = [];
    const channels = new BatchChannelServer({
      path: Paths.SIDECAR_CHANNEL,
      maxPayloadBytes: 1 << 20,
      admit: () => undefined,
      // A plain ok as COMPACT_OK, the no in full, as a sidecar answers a request that asks for it.
      answer: async (body) => {
        const request = body as BatchChannelRequest;
        bodies.push(request);
        return { protocolVersion: PROTOCOL_VERSION, results: request.items.map((i) => (i.action === 'commit' ? COMPACT_OK : { txId: i.txId, action: i.action, status: 'no', reason: 'OUT_OF_STOCK' })) };
      },
      onInternalError: () => undefined,
    });
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    server.on('upgrade', (req, socket, head) => void channels.handleUpgrade(req, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      channels.close();
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const transport = new HttpBranchTransport();
    t.after(() => transport.close());
    const items = [
      { action: 'prepare' as const, txId: '0-abc-0000000000000001', service: 'inv', operations: [{ op: 'reserve' }], deadline: Date.now() + 1000 },
      { action: 'commit' as const, txId: '0-abc-0000000000000002', service: 'inv' },
    ];
    // The first batch goes over HTTP (404 here) while the channel opens.
    await assert.rejects(transport.send(url, items, 2000), SidecarHttpError);
    await eventually(() => transport.channelStats().open === 1, 'the channel opened');
    const response = await transport.send(url, items, 2000);
    assert.equal(bodies[0]?.compactResults, true);
    assert.deepEqual(response.results, [
      { txId: items[0]!.txId, action: 'prepare', status: 'no', reason: 'OUT_OF_STOCK' },
      { txId: items[1]!.txId, action: 'commit', status: 'ok' },
    ]);
    assert.equal(transport.channelStats().calls, 1);
  });

  it('rejects on a non-200 answer and on a timeout', async (t) => {
    const slow = await fakeSidecar(t, () => 'ok', 500);
    const transport = new HttpBranchTransport();
    t.after(() => transport.close());
    await assert.rejects(transport.send(slow.url, [{ action: 'commit', txId: '0-abc-0000000000000001', service: 'broken' }], 2000), SidecarHttpError);
    const started = Date.now();
    await assert.rejects(transport.send(slow.url, [{ action: 'commit', txId: '0-abc-0000000000000001', service: 'inv' }], 50), (err: unknown) => err instanceof TransportTimeoutError && err.reason === 'TIMEOUT');
    assert.ok(Date.now() - started < 400);
    await transport.close();
    await assert.rejects(transport.send(slow.url, [{ action: 'commit', txId: '0-abc-0000000000000001', service: 'inv' }], 2000), (err: unknown) => err instanceof DispatcherClosedError && err.reason === 'TXM_SHUTTING_DOWN');
  });
});

describe('startCoordinator', () => {
  it('runs transactions over HTTP with batched prepares and commits', async (t) => {
    const sidecar = await fakeSidecar(t);
    const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir: tempDir(t) });
    t.after(() => coordinator.close());
    const registered = await fetch(`${coordinator.url}/v1/services`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service: 'inventory', sidecarUrl: sidecar.url }),
    });
    assert.equal(registered.status, 200);
    const begin = () =>
      fetch(`${coordinator.url}/v1/transactions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ participants: [{ service: 'inventory', operations: [{ op: 'reserve' }] }] }),
      }).then((r) => r.json() as Promise<{ outcome: string; txId: string }>);
    const results = await Promise.all(Array.from({ length: 8 }, begin));
    assert.ok(results.every((r) => r.outcome === 'committed'));
    await eventually(() => sidecar.batches.flatMap((b) => b.items).filter((i) => i.action === 'commit').length === 8, 'all commits delivered');
    const items = sidecar.batches.flatMap((b) => b.items);
    assert.equal(items.filter((i) => i.action === 'prepare').length, 8);
    assert.ok(sidecar.batches.length < 16, `batched: ${sidecar.batches.length} requests for 16 items`);
  });

  it('recovers before it listens: a logged COMMITTING decision is delivered before any sidecar re-registers', async (t) => {
    const sidecar = await fakeSidecar(t);
    const dataDir = tempDir(t);
    const txId = '0-abc-00000000000000cc';
    const previous = new SqliteDecisionLog(decisionLogPath(dataDir, 0));
    await previous.append({
      txId,
      state: 'COMMITTING',
      participants: [{ service: 'inventory', operations: [{ op: 'reserve' }], vote: 'yes' }],
      result: { txId, outcome: 'committed', participants: [{ service: 'inventory', vote: 'yes' }], durationMs: 2 },
      createdAt: 1,
      decidedAt: 2,
    });
    previous.saveService({ service: 'inventory', sidecarUrl: sidecar.url, registeredAt: 1 });
    await previous.close();

    const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir });
    let closed = false;
    t.after(() => (closed ? undefined : coordinator.close()));
    await eventually(() => sidecar.batches.some((b) => b.items.some((i) => i.action === 'commit' && i.txId === txId)), 'commit redelivered');
    const decision = await fetch(`${coordinator.url}/v1/transactions/${txId}/decision`).then((r) => r.json());
    assert.deepEqual(decision, { txId, decision: 'commit' });
    const stats = (await fetch(`${coordinator.url}/v1/stats`).then((r) => r.json())) as { recovered: number };
    assert.equal(stats.recovered, 1);
    // The running coordinator holds its log exclusively: its own view first, then the file once it has closed.
    const deadline = Date.now() + 3000;
    const stateOf = async (): Promise<unknown> => ((await fetch(`${coordinator.url}/v1/transactions/${txId}`).then((r) => r.json())) as { state?: unknown }).state;
    while ((await stateOf()) !== 'COMMITTED') {
      assert.ok(Date.now() < deadline, 'timed out waiting: marked done in the log');
      await new Promise((r) => setTimeout(r, 5));
    }
    closed = true;
    await coordinator.close();
    const db = new Database(decisionLogPath(dataDir, 0), { readonly: true });
    try {
      assert.equal((db.prepare('SELECT state FROM decisions WHERE tx_id = ?').get(txId) as { state: string } | undefined)?.state, 'COMMITTED');
    } finally {
      db.close();
    }
  });
});
