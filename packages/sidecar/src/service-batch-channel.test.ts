/**
 * The sidecar -> service hop over the shared batch channel (client BatchChannel): what ServiceClient does with it
 * against a fake service over 127.0.0.1 that takes the channel or not, holds an answer back, or drops the connection.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { BATCH_CHANNEL_PROTOCOL, BatchFrameReader, ItemStatus, PROTOCOL_VERSION, Paths, encodeBatchFrame, newTxId, type BranchBatchRequest } from '@txmesh/protocol';
import { ServiceClient } from './service-client.ts';

interface ChannelService {
  url: string;
  /** Upgrades asked for, and how many were let through. */
  upgrades: number;
  /** Batches that came over HTTP instead. */
  httpBatches: number;
  /** false: upgrades are answered 404, as by a service whose SDK has no channel. */
  accept: boolean;
  /** Awaited before a frame is answered; may end the socket instead. */
  before: (socket: Duplex) => Promise<'answer' | 'drop'>;
}

/** A service taking the batch channel (or not), answering every item ok over either path. */
async function startChannelService(t: TestContext): Promise<ChannelService> {
  const answer = (payload: string): string => {
    const batch = JSON.parse(payload) as BranchBatchRequest;
    return JSON.stringify({ protocolVersion: PROTOCOL_VERSION, results: batch.items.map((item) => ({ txId: item.txId, action: item.action, status: ItemStatus.OK })) });
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.url === Paths.PARTICIPANT_BATCH) {
        fake.httpBatches += 1;
        res.writeHead(200, { 'content-type': 'application/json' }).end(answer(body));
      } else res.writeHead(404, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const sockets = new Set<Duplex>();
  server.on('upgrade', (req, socket, head) => {
    fake.upgrades += 1;
    if (!fake.accept || req.url !== Paths.PARTICIPANT_CHANNEL || req.headers.upgrade !== BATCH_CHANNEL_PROTOCOL) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}');
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${BATCH_CHANNEL_PROTOCOL}\r\n\r\n`);
    const reader = new BatchFrameReader(1 << 20);
    const onData = async (chunk: Buffer): Promise<void> => {
      for (const frame of reader.push(chunk)) {
        if ((await fake.before(socket)) === 'drop') socket.destroy();
        else socket.write(encodeBatchFrame(frame.id, 200, answer(frame.payload)));
      }
    };
    socket.on('data', (chunk: Buffer) => void onData(chunk));
    if (head.length > 0) void onData(head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const fake: ChannelService = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, upgrades: 0, httpBatches: 0, accept: true, before: async () => 'answer' };
  return fake;
}

const prepare = () => ({ action: 'prepare' as const, txId: newTxId(0), service: 'inventory', deadline: Date.now() + 5_000, operations: [{ op: 'reserve' }] });

/** A client whose channel is open: its first batch went over HTTP while the upgrade ran in the background. */
async function openClient(t: TestContext, service: ChannelService, timeoutMs = 5_000): Promise<ServiceClient> {
  const client = new ServiceClient(service.url, timeoutMs);
  t.after(() => client.close());
  assert.equal((await client.sendBatch([prepare()]))[0]?.status, ItemStatus.OK);
  assert.equal(await client.channelSettled(), true, 'the upgrade was taken');
  return client;
}

test('batches go over one upgraded connection while the service takes it, calls in flight side by side; the upgrade is never on a call\'s path', async (t) => {
  const service = await startChannelService(t);
  const client = await openClient(t, service);
  assert.deepEqual([service.httpBatches, client.channelCalls], [1, 0], 'the first batch went over HTTP while the upgrade ran');
  const batches = await Promise.all([1, 2, 3].map(() => client.sendBatch([prepare(), prepare()])));
  assert.ok(batches.every((results) => results.length === 2 && results.every((r) => r.status === ItemStatus.OK)));
  assert.deepEqual([service.upgrades, service.httpBatches, client.channelCalls, client.requests], [1, 1, 3, 4], 'one upgrade for every later call');
});

test('a service that refuses the upgrade gets its batches over HTTP and is not asked again at once; batchChannel: false and an https URL never upgrade', async (t) => {
  const service = await startChannelService(t);
  service.accept = false;
  const client = new ServiceClient(service.url, 5_000);
  t.after(() => client.close());
  assert.equal((await client.sendBatch([prepare()]))[0]?.status, ItemStatus.OK);
  assert.equal(await client.channelSettled(), false, 'refused');
  for (let i = 0; i < 3; i += 1) assert.equal((await client.sendBatch([prepare()]))[0]?.status, ItemStatus.OK);
  assert.deepEqual([service.upgrades, service.httpBatches, client.channelCalls], [1, 4, 0], 'not asked again within the retry period');

  service.accept = true;
  const off = new ServiceClient(service.url, 5_000, undefined, undefined, { batchChannel: false });
  t.after(() => off.close());
  await off.sendBatch([prepare()]);
  assert.equal(await off.channelSettled(), false);
  assert.deepEqual([service.httpBatches, off.channelCalls, service.upgrades], [5, 0, 1], 'batchChannel: false never upgrades');
  const tls = new ServiceClient(service.url.replace('http:', 'https:'), 1_000);
  t.after(() => tls.close());
  await tls.sendBatch([prepare()]);
  assert.equal(service.upgrades, 1, 'an https service keeps HTTPS');
});

test('a call whose answer does not come fails TIMEOUT and the channel stays; one whose connection drops fails at once and the next reconnects; close fails the rest', async (t) => {
  const service = await startChannelService(t);
  const client = await openClient(t, service, 60_000);
  const quick = new ServiceClient(service.url, 100);
  t.after(() => quick.close());
  await quick.sendBatch([prepare()]);
  assert.equal(await quick.channelSettled(), true);

  let release: () => void = () => undefined;
  service.before = () => new Promise((resolve) => (release = () => resolve('answer')));
  const late = await quick.sendBatch([prepare()]);
  assert.deepEqual([late[0]?.status, late[0]?.reason], [ItemStatus.ERROR, 'TXM_SERVICE_UNREACHABLE']);
  assert.match(late[0]?.message ?? '', /no complete answer within 100 ms/);
  release();
  service.before = async () => 'answer';
  assert.equal((await quick.sendBatch([prepare()]))[0]?.status, ItemStatus.OK, 'the late answer was dropped, the next call answered');
  assert.deepEqual([quick.channelCalls, service.upgrades, service.httpBatches], [1, 2, 2], 'answered on the same channel (the timed-out call counts none)');

  // The 60 s bound: a call failed by the drop settles when the connection goes, not at its deadline.
  const upgrades = service.upgrades;
  service.before = async () => 'drop';
  const dropped = await client.sendBatch([prepare()]);
  assert.deepEqual([dropped[0]?.status, dropped[0]?.reason], [ItemStatus.ERROR, 'TXM_SERVICE_UNREACHABLE']);
  service.before = async () => 'answer';
  assert.equal((await client.sendBatch([prepare()]))[0]?.status, ItemStatus.OK, 'over HTTP while a new channel is opened');
  assert.equal(await client.channelSettled(), true);
  const before = client.channelCalls;
  assert.equal((await client.sendBatch([prepare()]))[0]?.status, ItemStatus.OK);
  assert.deepEqual([service.upgrades - upgrades, client.channelCalls - before], [1, 1], 'a new connection after the drop');

  let held: () => void = () => undefined;
  service.before = () => new Promise((resolve) => (held = () => resolve('answer')));
  const inFlight = client.sendBatch([prepare()]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await client.close();
  const closed = await inFlight;
  held();
  assert.deepEqual([closed[0]?.status, closed[0]?.reason], [ItemStatus.ERROR, 'TXM_SERVICE_UNREACHABLE']);
  assert.match(closed[0]?.message ?? '', /closed/);
});

test('a call onto a channel whose socket is closing goes over HTTP at once, nothing written onto the dead socket, and the next call reconnects', async (t) => {
  const service = await startChannelService(t);
  // The sidecar's end of each upgraded connection, as node:http hands it over.
  const sockets: Duplex[] = [];
  const request = http.request;
  http.request = ((...args: Parameters<typeof http.request>) => {
    const req = request(...args);
    req.on('upgrade', (_response, socket: Duplex) => sockets.push(socket));
    return req;
  }) as typeof http.request;
  t.after(() => (http.request = request));
  const client = await openClient(t, service, 60_000);

  for (const [n, closing] of [['destroyed', (s: Duplex) => s.destroy()], ['ended', (s: Duplex) => s.end()]] as const) {
    assert.equal((await client.sendBatch([prepare()]))[0]?.status, ItemStatus.OK);
    const socket = sockets.at(-1)!;
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const [http0, channel0] = [service.httpBatches, client.channelCalls];
    closing(socket);
    // Before the check the frame went onto the dead socket and the call failed with it (or waited for its deadline).
    const results = await client.sendBatch([prepare()]);
    assert.equal(results[0]?.status, ItemStatus.OK, `a ${n} socket: the call was answered`);
    assert.deepEqual([service.httpBatches - http0, client.channelCalls - channel0], [1, 0], `a ${n} socket: the call went over HTTP`);
    // An ended socket closes once the service ends its side too (a service's server keeps half-open sockets).
    socket.destroy();
    await closed;
    assert.equal(await client.channelSettled(), true, 'a new channel is opened');
  }
  assert.equal(service.upgrades, 3);
});
