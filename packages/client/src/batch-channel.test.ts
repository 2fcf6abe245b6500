/**
 * Both ends of the batch channel over real sockets on 127.0.0.1: the calling end (BatchChannel) against the
 * answering end (protocol BatchChannelServer) on a node:http server, and against servers that refuse, go
 * silent or break the connection mid-call.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { BatchChannelServer, TxmeshError, refuseUpgrade } from '@txmesh/protocol';
import { BatchChannel, RETRY_BUSY_MS } from './batch-channel.ts';
import { CallFailure } from './call-failure.ts';
import { HttpCallError } from './json-http-client.ts';

const PATH = '/test/channel';

interface Server {
  url: string;
  channels: BatchChannelServer;
  /** Upgrade sockets taken, newest last. */
  sockets: Duplex[];
  /** Throws to refuse an upgrade. */
  admit: () => void;
  /** Answers a call's parsed body. */
  answer: (body: unknown) => Promise<unknown>;
}

async function startServer(t: TestContext): Promise<Server> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const fake: Server = {
    url: '',
    sockets: [],
    admit: () => undefined,
    answer: async (body) => ({ echo: body }),
    channels: new BatchChannelServer({
      path: PATH,
      maxPayloadBytes: 1 << 16,
      admit: () => fake.admit(),
      answer: (body) => fake.answer(body),
      onInternalError: () => undefined,
    }),
  };
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    fake.sockets.push(socket);
    if (!fake.channels.handleUpgrade(req, socket, head)) refuseUpgrade(socket, new TxmeshError('TXM_NOT_FOUND', 'no such upgrade'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of fake.sockets) socket.destroy();
    server.close();
  });
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function channelTo(t: TestContext, server: Server, options: { retryRefusedMs?: number; maxAnswerBytes?: number } = {}): BatchChannel {
  const channel = new BatchChannel({ url: server.url, path: PATH, maxAnswerBytes: options.maxAnswerBytes ?? 1 << 16, ...options });
  t.after(() => channel.destroy());
  return channel;
}

/** The first call starts the upgrade and goes over HTTP (undefined); once it has settled the channel is open. */
async function opened(channel: BatchChannel): Promise<void> {
  assert.equal(await channel.call('{}', 2_000), undefined, 'no channel yet: this call goes over HTTP');
  assert.equal(await channel.settled(), true, 'the upgrade was taken');
}

const failsWith = (failure: CallFailure) => (err: unknown) => err instanceof HttpCallError && err.failure === failure;

test('calls share one upgraded connection, several in flight, each answered by its own frame in any order', async (t) => {
  const server = await startServer(t);
  server.answer = async (body) => {
    const { n } = body as { n: number };
    await new Promise((resolve) => setTimeout(resolve, (5 - n) * 20));
    return { n };
  };
  const channel = channelTo(t, server);
  await opened(channel);
  const answers = await Promise.all([1, 2, 3, 4].map((n) => channel.call(JSON.stringify({ n }), 5_000)));
  assert.deepEqual(answers.map((a) => [a?.status, a?.body]), [1, 2, 3, 4].map((n) => [200, { n }]));
  assert.deepEqual([channel.upgrades, server.channels.calls, server.channels.openChannels], [1, 4, 1]);
});

test('a refusal is answered as a catalogue error with its status: the call goes over HTTP, and the upgrade is asked for again later', async (t) => {
  const server = await startServer(t);
  server.admit = () => {
    throw new TxmeshError('TXM_UNAUTHENTICATED', 'no credential');
  };
  const channel = channelTo(t, server, { retryRefusedMs: 300 });
  assert.equal(await channel.call('{}', 2_000), undefined, 'no channel yet: the caller sends over HTTP');
  assert.equal(await channel.settled(), false, 'refused');
  assert.equal(await channel.call('{}', 2_000), undefined);
  assert.equal(await channel.settled(), false);
  assert.deepEqual([channel.upgrades, channel.refusals, server.channels.calls], [1, 1, 0], 'not asked again within the retry period, nothing answered');

  // What a refused upgrade is told: the status and the catalogue body.
  const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = http.request(`${server.url}${PATH}`, { headers: { connection: 'Upgrade', upgrade: 'txmesh-batch/1' } });
    request.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    request.on('error', reject);
    request.end();
  });
  assert.equal(refused.status, 401);
  assert.equal((JSON.parse(refused.body) as { error: { code: string } }).error.code, 'TXM_UNAUTHENTICATED');

  server.admit = () => undefined;
  await new Promise((resolve) => setTimeout(resolve, 350));
  await opened(channel);
  assert.equal((await channel.call('{"a":1}', 2_000))?.status, 200, 'asked again after the retry period, and taken');
  assert.equal(channel.upgrades, 2);
});

test('a server that is only busy or closing (503) is asked again soon, not after the whole retry period', async (t) => {
  const server = await startServer(t);
  server.admit = () => {
    throw new TxmeshError('TXM_SHUTTING_DOWN', 'closing');
  };
  const channel = channelTo(t, server, { retryRefusedMs: 60_000 });
  assert.equal(await channel.call('{}', 2_000), undefined);
  assert.equal(await channel.settled(), false);
  server.admit = () => undefined;
  await new Promise((resolve) => setTimeout(resolve, RETRY_BUSY_MS + 50));
  await opened(channel);
  assert.equal((await channel.call('{}', 2_000))?.status, 200);
});

test('a connection broken mid-call fails the calls in flight at once, not at their deadline; the next call opens a new one', async (t) => {
  const server = await startServer(t);
  let arrived: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (arrived = resolve));
  server.answer = async () => {
    arrived();
    return new Promise(() => undefined); // never answered
  };
  const channel = channelTo(t, server);
  await opened(channel);
  const started = performance.now();
  const calls = [channel.call('{}', 30_000), channel.call('{}', 30_000)];
  await held;
  server.sockets.at(-1)!.destroy();
  for (const call of calls) await assert.rejects(call, failsWith(CallFailure.UNREACHABLE));
  assert.ok(performance.now() - started < 10_000, 'failed when the connection broke, long before the 30 s deadline');

  server.answer = async () => ({ ok: true });
  await opened(channel);
  assert.equal((await channel.call('{}', 5_000))?.status, 200);
  assert.equal(channel.upgrades, 2);
});

test('a connection the server ends right after the upgrade fails or reroutes its call at once, not at its deadline', async (t) => {
  const server = await startServer(t);
  let endNext = true;
  const original = server.channels;
  // Take the upgrade, then end the connection at once: the call finds it broken or sees it break.
  server.channels = {
    ...original,
    calls: 0,
    openChannels: 0,
    handleUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!endNext) return original.handleUpgrade(req, socket, head);
      socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: txmesh-batch/1\r\n\r\n');
      return true;
    },
  } as unknown as BatchChannelServer;
  const channel = channelTo(t, server);
  assert.equal(await channel.call('{}', 2_000), undefined);
  await channel.settled();
  const started = performance.now();
  const settled = await channel.call('{}', 30_000).then(
    (answer) => ({ answer }),
    (err: unknown) => ({ err }),
  );
  assert.ok(performance.now() - started < 10_000, 'settled when the connection ended, long before the 30 s deadline');
  assert.ok('answer' in settled ? settled.answer === undefined : failsWith(CallFailure.UNREACHABLE)(settled.err), 'sent over HTTP instead, or failed UNREACHABLE');
  endNext = false;
  while (channel.open) await new Promise((resolve) => setTimeout(resolve, 10));
  await opened(channel);
  assert.equal((await channel.call('{}', 5_000))?.status, 200, 'the next channel works');
});

test('two calls timing out with nothing heard take the silent connection down; one late answer or one timing out beside answered calls does not', async (t) => {
  const server = await startServer(t);
  server.answer = () => new Promise(() => undefined);
  const channel = channelTo(t, server);
  await opened(channel);
  await assert.rejects(channel.call('{}', 100), failsWith(CallFailure.TIMEOUT));
  assert.equal(channel.open, true, 'one timeout may be a slow link: the connection stays');
  await assert.rejects(channel.call('{}', 100), failsWith(CallFailure.TIMEOUT));
  assert.equal(channel.open, false, 'nothing heard since the first timed-out call was written: the connection is presumed dead');
  await opened(channel);

  server.answer = async (body) => {
    if ((body as { slow?: boolean }).slow) return new Promise(() => undefined);
    return { ok: true };
  };
  const slow = channel.call('{"slow":true}', 300);
  assert.equal((await channel.call('{}', 2_000))?.status, 200);
  await assert.rejects(slow, failsWith(CallFailure.TIMEOUT));
  await assert.rejects(channel.call('{"slow":true}', 100), failsWith(CallFailure.TIMEOUT));
  assert.equal(channel.open, true, 'the connection answered meanwhile: it stays');
  assert.equal(channel.upgrades, 2);
});

test('catalogue errors come back as answers with their status; an answer too large fails its call; destroy fails the rest CLOSED', async (t) => {
  const server = await startServer(t);
  server.answer = async (body) => {
    const kind = (body as { kind: string }).kind;
    if (kind === 'refuse') throw new TxmeshError('TXM_PROTOCOL_VERSION', 'speak v1');
    if (kind === 'big') return { pad: 'x'.repeat(2_000) };
    return new Promise(() => undefined);
  };
  const channel = channelTo(t, server, { maxAnswerBytes: 1_000 });
  await opened(channel);
  const refused = await channel.call('{"kind":"refuse"}', 2_000);
  assert.equal(refused?.status, 400);
  assert.equal((refused?.body as { error: { code: string } }).error.code, 'TXM_PROTOCOL_VERSION');
  const notJson = await channel.call('{"kind":', 2_000);
  assert.equal(notJson?.status, 400, 'a body that does not parse is refused, the channel stays');
  await assert.rejects(channel.call('{"kind":"big"}', 2_000), failsWith(CallFailure.ANSWER_TOO_LARGE));
  assert.equal(channel.open, false, 'the rest of that stream cannot be read: the connection goes');
  await opened(channel);

  const pending = channel.call('{"kind":"hang"}', 30_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  channel.destroy();
  await assert.rejects(pending, failsWith(CallFailure.CLOSED));
  await assert.rejects(channel.call('{}', 1_000), failsWith(CallFailure.CLOSED));
});

test('a closing server answers the calls in flight, refuses later ones TXM_SHUTTING_DOWN and ends its channels', async (t) => {
  const server = await startServer(t);
  let release: () => void = () => undefined;
  const channel = channelTo(t, server);
  await opened(channel);
  server.answer = () => new Promise((resolve) => (release = () => resolve({ done: true })));
  const inFlight = channel.call('{}', 5_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  server.channels.close();
  const late = await channel.call('{}', 5_000);
  assert.equal(late?.status, 503);
  assert.equal((late?.body as { error: { code: string } }).error.code, 'TXM_SHUTTING_DOWN');
  release();
  assert.deepEqual((await inFlight)?.body, { done: true });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(channel.open, false, 'the server ended the channel once its last call was answered');
  assert.equal(await channel.call('{}', 2_000), undefined, 'no channel: over HTTP');
  assert.equal(await channel.settled(), false, 'a new upgrade is refused while closing');
});
