import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { CallFailure, HttpCallError } from '@txmesh/client';
import { BATCH_CHANNEL_PROTOCOL, BatchFrameReader, ItemStatus, PROTOCOL_VERSION, Paths, encodeBatchFrame, newTxId, type BranchBatchRequest } from '@txmesh/protocol';
import { ServiceChannel } from './service-channel.ts';
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

test('batches go over one upgraded connection while the service takes it, calls in flight side by side', async (t) => {
  const service = await startChannelService(t);
  const client = new ServiceClient(service.url, 5_000);
  t.after(() => client.close());
  const batches = await Promise.all([1, 2, 3].map(() => client.sendBatch([prepare(), prepare()])));
  assert.ok(batches.every((results) => results.length === 2 && results.every((r) => r.status === ItemStatus.OK)));
  const later = await client.sendBatch([prepare()]);
  assert.equal(later[0]?.status, ItemStatus.OK);
  assert.deepEqual([service.upgrades, service.httpBatches, client.channelCalls, client.requests], [1, 0, 4, 4], 'one upgrade for every call');
});

test('a service that refuses the upgrade gets its batches over HTTP, and is asked again after the retry period', async (t) => {
  const service = await startChannelService(t);
  service.accept = false;
  const channel = new ServiceChannel({ serviceUrl: service.url, maxAnswerBytes: 1 << 20, retryRefusedMs: 200 });
  t.after(() => channel.destroy());
  assert.equal(await channel.call('{}', 1_000), undefined, 'refused: the caller uses HTTP');
  assert.equal(await channel.call('{}', 1_000), undefined);
  assert.equal(service.upgrades, 1, 'not asked again within the retry period');
  service.accept = true;
  await new Promise((resolve) => setTimeout(resolve, 250));
  const answer = await channel.call(JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare()] }), 1_000);
  assert.equal(answer?.status, 200);
  assert.equal(service.upgrades, 2);

  const off = new ServiceClient(service.url, 5_000, undefined, undefined, { batchChannel: false });
  t.after(() => off.close());
  await off.sendBatch([prepare()]);
  assert.deepEqual([service.httpBatches, off.channelCalls, service.upgrades], [1, 0, 2], 'batchChannel: false never upgrades');
});

test('a call whose answer does not come fails TIMEOUT and the channel stays; one whose connection drops fails UNREACHABLE and the next reconnects', async (t) => {
  const service = await startChannelService(t);
  const channel = new ServiceChannel({ serviceUrl: service.url, maxAnswerBytes: 1 << 20 });
  t.after(() => channel.destroy());
  const body = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare()] });
  assert.equal((await channel.call(body, 1_000))?.status, 200);

  let release: () => void = () => undefined;
  service.before = () => new Promise((resolve) => (release = () => resolve('answer')));
  await assert.rejects(channel.call(body, 100), (err: unknown) => err instanceof HttpCallError && err.failure === CallFailure.TIMEOUT);
  release();
  service.before = async () => 'answer';
  assert.equal((await channel.call(body, 1_000))?.status, 200, 'the late answer was dropped, the next call answered');
  assert.equal(service.upgrades, 1);

  service.before = async () => 'drop';
  await assert.rejects(channel.call(body, 1_000), (err: unknown) => err instanceof HttpCallError && err.failure === CallFailure.UNREACHABLE);
  service.before = async () => 'answer';
  assert.equal((await channel.call(body, 1_000))?.status, 200);
  assert.equal(service.upgrades, 2, 'a new connection after the drop');

  // Through the client the failure is an error result per item, which the coordinator retries.
  const client = new ServiceClient(service.url, 1_000);
  t.after(() => client.close());
  service.before = async () => 'drop';
  const failed = await client.sendBatch([prepare()]);
  assert.deepEqual([failed[0]?.status, failed[0]?.reason], [ItemStatus.ERROR, 'TXM_SERVICE_UNREACHABLE']);

  channel.destroy();
  await assert.rejects(channel.call(body, 1_000), (err: unknown) => err instanceof HttpCallError && err.failure === CallFailure.CLOSED);
});

test('a call onto a channel whose socket is closing fails UNREACHABLE at once, before the close is even reported, and the next call reconnects', async (t) => {
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
  const channel = new ServiceChannel({ serviceUrl: service.url, maxAnswerBytes: 1 << 20 });
  t.after(() => channel.destroy());
  const body = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare()] });

  for (const [n, closing] of [['destroyed', (s: Duplex) => s.destroy()], ['ended', (s: Duplex) => s.end()]] as const) {
    assert.equal((await channel.call(body, 60_000))?.status, 200);
    const socket = sockets.at(-1)!;
    const order: string[] = [];
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve(void order.push('close'))));
    closing(socket);
    // Before the fix the frame went onto the dead socket and the call waited for the close (or its deadline).
    const call = channel.call(body, 60_000).then(
      () => order.push('answered'),
      (err: unknown) => order.push(err instanceof HttpCallError ? `${err.failure}${err.nothingSent ? ', nothing sent' : ''}` : String(err)),
    );
    await call;
    // An ended socket closes once the service ends its side too (a service's server keeps half-open sockets).
    socket.destroy();
    await closed;
    assert.deepEqual(order, [`${CallFailure.UNREACHABLE}, nothing sent`, 'close'], `a ${n} socket`);
  }
  assert.equal((await channel.call(body, 60_000))?.status, 200, 'the next call opens a new channel');
  assert.equal(service.upgrades, 3);
});
