import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  BATCH_CHANNEL_PROTOCOL,
  BatchFrameReader,
  CallerRole,
  MAX_BATCH_BODY_BYTES,
  PROTOCOL_VERSION,
  Paths,
  authorizationHeader,
  deriveServiceKey,
  encodeBatchFrame,
  newClusterSecret,
  type BatchFrame,
} from '@txmesh/protocol';
import { createParticipant } from './participant.ts';
import { SERVICE, addStock, inventoryOperations, newCalls, openTempDatabase, prepare, reserveOp, startParticipant, txId } from './test-support.ts';

async function listen(t: TestContext, app: FastifyInstance): Promise<number> {
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as AddressInfo).port;
}

type Upgraded = { socket: Duplex; frames: BatchFrame[]; next(): Promise<BatchFrame>; ended: Promise<void> };
type Refused = { status: number; body: Record<string, any> };

/** Asks for the batch channel as a sidecar does; the upgraded socket with the frames it receives, or the refusal. */
function upgrade(port: number, headers: Record<string, string>): Promise<Upgraded | Refused> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: Paths.PARTICIPANT_CHANNEL, method: 'GET', agent: false, headers: { connection: 'Upgrade', upgrade: BATCH_CHANNEL_PROTOCOL, ...headers } });
    req.on('upgrade', (_res, socket) => {
      const reader = new BatchFrameReader(MAX_BATCH_BODY_BYTES);
      const frames: BatchFrame[] = [];
      const waiting: ((frame: BatchFrame) => void)[] = [];
      socket.on('data', (chunk: Buffer) => {
        for (const frame of reader.push(chunk)) {
          const waiter = waiting.shift();
          if (waiter) waiter(frame);
          else frames.push(frame);
        }
      });
      const ended = new Promise<void>((done) => socket.on('close', () => done()));
      resolve({ socket, frames, ended, next: () => new Promise((r) => (frames.length > 0 ? r(frames.shift()!) : waiting.push(r))) });
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, any> }));
    });
    req.on('error', reject);
    req.end();
  });
}

const batchBody = (...items: unknown[]): string => JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items });

test('the batch channel answers batches as the route does, in any order by id, and refuses bad frames with catalogue errors', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 5);
  const app = Fastify();
  f.participant.routes(app);
  const port = await listen(t, app);
  const channel = await upgrade(port, {});
  assert.ok('socket' in channel, 'upgraded');
  t.after(() => channel.socket.destroy());

  const [a, b] = [txId(), txId()];
  channel.socket.write(Buffer.concat([encodeBatchFrame(7, 0, batchBody(prepare(a, [reserveOp('apple', 2)]))), encodeBatchFrame(8, 0, batchBody(prepare(b, [reserveOp('apple', 9)])))]));
  const answers = [await channel.next(), await channel.next()].sort((x, y) => x.id - y.id);
  assert.deepEqual(answers.map((frame) => [frame.id, frame.status]), [[7, 200], [8, 200]]);
  assert.deepEqual(JSON.parse(answers[0]!.payload).results, [{ txId: a, action: 'prepare', status: 'ok' }]);
  assert.equal(JSON.parse(answers[1]!.payload).results[0].status, 'no', 'a refusal is a vote, as over HTTP');
  assert.deepEqual(f.participant.preparedList().prepared.map((p) => p.txId), [a]);

  const refusals: [string, number, string][] = [
    ['{"protocolVersion":', 400, 'TXM_BAD_REQUEST'],
    [JSON.stringify({ protocolVersion: 99, items: [] }), 400, 'TXM_PROTOCOL_VERSION'],
    [batchBody({ action: 'prepare', txId: 'nope' }), 400, 'TXM_BAD_REQUEST'],
    [`{"protocolVersion":${PROTOCOL_VERSION},"items":[],"__proto__":{"x":1}}`, 400, 'TXM_BAD_REQUEST'],
  ];
  for (const [i, [payload, status, code]] of refusals.entries()) {
    channel.socket.write(encodeBatchFrame(100 + i, 0, payload));
    const answer = await channel.next();
    assert.deepEqual([answer.id, answer.status, JSON.parse(answer.payload).error.code], [100 + i, status, code], payload);
  }
  assert.deepEqual(f.participant.preparedList().prepared.map((p) => p.txId), [a], 'no refused frame changed anything');

  // A frame announcing more than a batch may carry is answered and ends the channel; the next one starts clean.
  const header = Buffer.alloc(10);
  header.writeUInt32BE(MAX_BATCH_BODY_BYTES + 1, 0);
  header.writeUInt32BE(55, 4);
  channel.socket.write(header);
  const tooLarge = await channel.next();
  assert.deepEqual([tooLarge.id, tooLarge.status, JSON.parse(tooLarge.payload).error.code], [55, 413, 'TXM_BODY_TOO_LARGE']);
  await channel.ended;
  const again = await upgrade(port, {});
  assert.ok('socket' in again);
  again.socket.destroy();
});

test('the batch channel takes only the sidecar of its service, and only as an upgrade of its own path', async (t) => {
  const key = deriveServiceKey(newClusterSecret(), SERVICE);
  const db = openTempDatabase(t);
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()), keys: [key], log: () => undefined });
  t.after(() => participant.close());
  const app = Fastify();
  participant.routes(app);
  const port = await listen(t, app);

  const none = (await upgrade(port, {})) as Refused;
  assert.deepEqual([none.status, none.body.error.code], [401, 'TXM_UNAUTHENTICATED']);
  const coordinator = (await upgrade(port, { authorization: authorizationHeader(CallerRole.COORDINATOR, SERVICE, key) })) as Refused;
  assert.deepEqual([coordinator.status, coordinator.body.error.code], [403, 'TXM_FORBIDDEN']);
  const otherProtocol = (await upgrade(port, { authorization: authorizationHeader(CallerRole.SIDECAR, SERVICE, key), upgrade: 'websocket' })) as Refused;
  assert.deepEqual([otherProtocol.status, otherProtocol.body.error.code], [400, 'TXM_BAD_REQUEST']);
  const sidecar = await upgrade(port, { authorization: authorizationHeader(CallerRole.SIDECAR, SERVICE, key) });
  assert.ok('socket' in sidecar, 'the sidecar with its proof gets the channel');
  sidecar.socket.write(encodeBatchFrame(1, 0, batchBody()));
  assert.deepEqual(JSON.parse((await sidecar.next()).payload).results, []);
  sidecar.socket.destroy();

  const elsewhere = await new Promise<number>((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/somewhere', agent: false, headers: { connection: 'Upgrade', upgrade: BATCH_CHANNEL_PROTOCOL } });
    req.on('response', (res) => resolve(res.statusCode ?? 0));
    req.end();
  });
  assert.equal(elsewhere, 404, 'an upgrade of another path is answered, not left hanging');
});

test('a closing service ends its idle channels and answers a call in flight before the channel ends', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 5_000 });
  addStock(f.db, 'apple', 5);
  const app = Fastify();
  f.participant.routes(app);
  const port = await listen(t, app);
  const idle = await upgrade(port, {});
  const busy = await upgrade(port, {});
  assert.ok('socket' in idle && 'socket' in busy);
  // A prepare that waits for a key: its call is in flight while the server closes.
  const holder = txId();
  assert.equal((await f.one(prepare(holder, [reserveOp('apple', 1)]))).status, 'ok');
  busy.socket.write(encodeBatchFrame(3, 0, batchBody(prepare(txId(), [reserveOp('apple', 1)]))));
  await new Promise((resolve) => setTimeout(resolve, 50));

  const closed = app.close();
  await idle.ended;
  setTimeout(() => void f.one({ action: 'commit', txId: holder, service: SERVICE }), 50);
  const answer = await busy.next();
  assert.deepEqual([answer.id, answer.status, JSON.parse(answer.payload).results[0].status], [3, 200, 'ok']);
  await busy.ended;
  await closed;
});

test('a participant created with batchChannel: false takes no upgrade: its batches come through the route and its hooks', async (t) => {
  const db = openTempDatabase(t);
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()), batchChannel: false, log: () => undefined });
  t.after(() => participant.close());
  const app = Fastify();
  participant.routes(app);
  const port = await listen(t, app);
  const refused = (await upgrade(port, {})) as Refused;
  assert.equal(refused.status, 404, 'the upgrade is an ordinary request to a route that does not exist');
});
