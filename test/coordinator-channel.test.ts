/**
 * The coordinator → sidecar batch channel end to end: a real coordinator and a real sidecar over 127.0.0.1,
 * with a stand-in service behind the sidecar. A channel broken mid-batch fails the batch at once and the
 * coordinator's retry commits the transaction; TXMESH_COORDINATOR_CHANNEL=off (sidecarChannel: false) keeps
 * every batch on HTTP.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { startCoordinator } from '@txmesh/coordinator';
import { ItemStatus, PROTOCOL_VERSION, Paths, type BranchBatchRequest } from '@txmesh/protocol';
import { buildSidecar } from '@txmesh/sidecar';

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-channel-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface StandInService {
  url: string;
  batches: BranchBatchRequest[];
  /** Awaited before a batch is answered. */
  before: (batch: BranchBatchRequest) => Promise<void>;
}

/** A participant stand-in over plain HTTP (no channel of its own): every item ok. */
async function startService(t: TestContext): Promise<StandInService> {
  const fake: StandInService = { url: '', batches: [], before: async () => undefined };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.url !== Paths.PARTICIPANT_BATCH) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"TXM_NOT_FOUND"}}');
        return;
      }
      const batch = JSON.parse(body) as BranchBatchRequest;
      fake.batches.push(batch);
      void fake.before(batch).then(() => {
        const answer = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, results: batch.items.map((i) => ({ txId: i.txId, action: i.action, status: ItemStatus.OK })) });
        res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** A sidecar whose upgraded sockets the test can reach, registered with the coordinator by hand. */
async function startSidecarFor(t: TestContext, coordinatorUrl: string, serviceUrl: string) {
  const sidecar = await buildSidecar({ service: 'inventory', serviceUrl, coordinatorUrls: [coordinatorUrl], dataDir: tempDir(t), logLevel: 'silent', serviceTimeoutMs: 60_000, batchChannel: false });
  const sockets: Duplex[] = [];
  sidecar.server.prependListener('upgrade', (_req: http.IncomingMessage, socket: Duplex) => sockets.push(socket));
  await new Promise<void>((resolve) => sidecar.server.listen(0, '127.0.0.1', resolve));
  t.after(() => sidecar.close());
  const url = `http://127.0.0.1:${(sidecar.server.address() as AddressInfo).port}`;
  const registered = await fetch(`${coordinatorUrl}/v1/services`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ service: 'inventory', sidecarUrl: url }) });
  assert.equal(registered.status, 200);
  const stats = async () => (await (await fetch(`${url}${Paths.SIDECAR_STATS}`)).json()) as { batchesReceived: number; batchesOverChannel: number; coordinatorChannels: number };
  return { url, sockets, stats };
}

const begin = (coordinatorUrl: string, timeoutMs: number) =>
  fetch(`${coordinatorUrl}/v1/transactions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ participants: [{ service: 'inventory', operations: [{ op: 'reserve' }] }], timeoutMs }),
  }).then((r) => r.json() as Promise<{ outcome: string; txId: string; participants: { vote: string }[] }>);

test('a channel broken while a prepare is in flight fails it at once, and the retry over a new channel commits', async (t) => {
  const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir: tempDir(t), logLevel: 'silent' });
  t.after(() => coordinator.close());
  const service = await startService(t);
  const sidecar = await startSidecarFor(t, coordinator.url, service.url);
  // The first transaction's batches go over HTTP while the channel is opened beside them.
  const warm = await begin(coordinator.url, 5_000);
  assert.equal(warm.outcome, 'committed');
  const deadline = Date.now() + 10_000;
  const warmCommitted = () => service.batches.some((b) => b.items.some((i) => i.action === 'commit' && i.txId === warm.txId));
  while ((await sidecar.stats()).coordinatorChannels !== 1 || !warmCommitted()) {
    assert.ok(Date.now() < deadline, 'the channel opened and the first commit arrived');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  // The next prepare is held at the service until the test has broken the channel it came over.
  let arrived: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (arrived = resolve));
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holdNext = true;
  service.before = async (batch) => {
    if (holdNext && batch.items.some((i) => i.action === 'prepare')) {
      holdNext = false;
      arrived();
      await released;
    }
  };
  // A 30 s time bound: a failure noticed only at the deadline would take that long.
  const overChannel = (await sidecar.stats()).batchesOverChannel;
  const started = performance.now();
  const result = begin(coordinator.url, 30_000);
  let answer: Awaited<typeof result>;
  let tookMs: number;
  try {
    await held;
    assert.equal((await sidecar.stats()).batchesOverChannel, overChannel + 1, 'the prepare came over the channel');
    assert.equal(sidecar.sockets.length, 1);
    sidecar.sockets[0]!.destroy();
    answer = await result;
    tookMs = performance.now() - started;
  } finally {
    // Held to the end, the first attempt would keep the sidecar from closing.
    release();
  }
  assert.equal(answer.outcome, 'committed', JSON.stringify(answer));
  assert.ok(tookMs < 10_000, `decided in ${Math.round(tookMs)} ms: the broken channel failed the prepare at once and it was retried, not left to its 30 s deadline`);
  const prepares = service.batches.flatMap((b) => b.items).filter((i) => i.action === 'prepare' && i.txId === answer.txId);
  assert.ok(prepares.length >= 2, 'the prepare was sent again');
  const commitBy = Date.now() + 10_000;
  while (!service.batches.some((b) => b.items.some((i) => i.action === 'commit' && i.txId === answer.txId))) {
    assert.ok(Date.now() < commitBy, 'the commit reached the service');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const stats = await sidecar.stats();
  assert.ok(stats.batchesOverChannel >= 2, `batches over the channel: ${JSON.stringify(stats)}`);
  assert.ok(sidecar.sockets.length >= 2, 'a new channel was opened after the broken one');
});

test('sidecarChannel: false (TXMESH_COORDINATOR_CHANNEL=off) sends every batch over HTTP and never asks for an upgrade', async (t) => {
  const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir: tempDir(t), logLevel: 'silent', sidecarChannel: false });
  t.after(() => coordinator.close());
  const service = await startService(t);
  const sidecar = await startSidecarFor(t, coordinator.url, service.url);
  const answers = await Promise.all([1, 2, 3].map(() => begin(coordinator.url, 5_000)));
  assert.ok(answers.every((a) => a.outcome === 'committed'));
  const stats = await sidecar.stats();
  assert.equal(stats.batchesOverChannel, 0);
  assert.ok(stats.batchesReceived >= 1);
  assert.equal(sidecar.sockets.length, 0, 'no upgrade asked for');
});
