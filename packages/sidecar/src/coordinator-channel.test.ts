/**
 * The sidecar's end of the coordinator's batch channel, on a real sidecar with credentials on: the upgrade
 * checks the coordinator's proof as the batch route does (a refusal has a code and changes nothing), a batch
 * over the channel is handled as one over the route, and other upgrade requests are still served as the plain
 * requests they are.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { BatchChannel, CallFailure, HttpCallError } from '@txmesh/client';
import {
  BranchAction,
  COMPACT_OK,
  CallerRole,
  ItemStatus,
  PROTOCOL_VERSION,
  Paths,
  authorizationHeader,
  deriveServiceKey,
  newClusterSecret,
  newTxId,
  type BatchChannelRequest,
  type BranchBatchResponse,
} from '@txmesh/protocol';
import { buildSidecar } from './sidecar.ts';
import { listenOn, readJson, startFakeService, tempDir } from './test-fakes.ts';

const SECRET = newClusterSecret();
const KEY = deriveServiceKey(SECRET, 'inventory');
const COORDINATOR_PROOF = authorizationHeader(CallerRole.COORDINATOR, 'inventory', KEY);

async function startSidecar(t: TestContext, serviceUrl: string, maxConnections?: number) {
  const sidecar = await buildSidecar({
    service: 'inventory', serviceUrl, coordinatorUrls: [], dataDir: tempDir(t), logLevel: 'silent', serviceTimeoutMs: 2000, keys: [KEY], ...(maxConnections === undefined ? {} : { maxConnections }),
  });
  t.after(() => sidecar.close());
  return { ...sidecar, url: await listenOn(sidecar.server) };
}

/** A channel with the coordinator's proof, upgraded (its first call goes over HTTP, so it carries nothing). */
async function openChannel(t: TestContext, url: string): Promise<BatchChannel> {
  const channel = new BatchChannel({ url, path: Paths.SIDECAR_CHANNEL, authorization: COORDINATOR_PROOF, maxAnswerBytes: 1 << 20 });
  t.after(() => channel.destroy());
  assert.equal(await channel.call('{}', 2_000), undefined);
  assert.equal(await channel.settled(), true, 'the upgrade with the coordinator proof is taken');
  return channel;
}

async function stats(url: string): Promise<{ batchesReceived: number; batchesOverChannel: number; coordinatorChannels: number }> {
  return readJson(await fetch(`${url}${Paths.SIDECAR_STATS}`));
}

/** The raw answer to an upgrade request: status line, headers and body as text. */
function rawUpgrade(url: string, headers: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(`GET ${Paths.SIDECAR_CHANNEL} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: txmesh-batch/1\r\n${headers}\r\n`));
    let text = '';
    socket.setEncoding('utf8').on('data', (c: string) => (text += c));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

const prepare = (txId: string) => ({ action: BranchAction.PREPARE, txId, service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'A-1' } }], deadline: Date.now() + 5_000 });

test('an upgrade without the coordinator credential is refused with a code and changes nothing', async (t) => {
  const service = await startFakeService(t);
  const sidecar = await startSidecar(t, service.url);
  const none = await rawUpgrade(sidecar.url, '');
  assert.match(none, /^HTTP\/1\.1 401 /);
  assert.match(none, /"TXM_UNAUTHENTICATED"/);
  const otherService = authorizationHeader(CallerRole.COORDINATOR, 'payment', deriveServiceKey(SECRET, 'payment'));
  assert.match(await rawUpgrade(sidecar.url, `Authorization: ${otherService}\r\n`), /^HTTP\/1\.1 403 [\s\S]*"TXM_FORBIDDEN"/);
  const sidecarProof = authorizationHeader(CallerRole.SIDECAR, 'inventory', KEY);
  assert.match(await rawUpgrade(sidecar.url, `Authorization: ${sidecarProof}\r\n`), /^HTTP\/1\.1 403 [\s\S]*"TXM_FORBIDDEN"/, 'a proof for another direction opens nothing');

  // The calling end takes the refusal as "not now": its batches go over HTTP (and are refused there too).
  const channel = new BatchChannel({ url: sidecar.url, path: Paths.SIDECAR_CHANNEL, maxAnswerBytes: 1 << 20 });
  t.after(() => channel.destroy());
  assert.equal(await channel.call(JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare(newTxId(0))] }), 2_000), undefined);
  assert.equal(await channel.settled(), false);
  assert.deepEqual([service.batches.length, (await stats(sidecar.url)).batchesReceived, (await stats(sidecar.url)).coordinatorChannels], [0, 0, 0]);
});

test('an upgrade on a connection past --max-connections is refused TXM_OVERLOADED with Retry-After', async (t) => {
  const service = await startFakeService(t);
  const sidecar = await startSidecar(t, service.url, 1);
  const { port } = new URL(sidecar.url);
  // The connection that takes the one place; destroyed before the sidecar closes, which would wait for it.
  const first = net.connect(Number(port), '127.0.0.1');
  try {
    await new Promise((resolve) => first.once('connect', resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = await rawUpgrade(sidecar.url, `Authorization: ${COORDINATOR_PROOF}\r\n`);
    assert.match(refused, /^HTTP\/1\.1 429 [\s\S]*Retry-After: 1[\s\S]*"TXM_OVERLOADED"/);
  } finally {
    first.destroy();
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal((await stats(sidecar.url)).coordinatorChannels, 0, 'no channel was opened');
});

test('batches over the channel are handled as over the route: one service call, records, results in order, the report', async (t) => {
  const service = await startFakeService(t);
  const refused = newTxId(0);
  service.answer = (item) => ({ txId: item.txId, action: item.action, status: item.txId === refused ? ItemStatus.NO : ItemStatus.OK });
  const sidecar = await startSidecar(t, service.url);
  const channel = await openChannel(t, sidecar.url);
  const ok = newTxId(0);
  const itemTrace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
  const request: BatchChannelRequest = {
    protocolVersion: PROTOCOL_VERSION,
    items: [{ ...prepare(ok), trace: itemTrace }, prepare(refused)],
    trace: { traceparent: '00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01' },
  };
  const answer = await channel.call(JSON.stringify(request), 5_000);
  assert.equal(answer?.status, 200);
  const body = answer?.body as BranchBatchResponse;
  assert.deepEqual(body.results.map((r) => [r.txId, r.status]), [[ok, 'ok'], [refused, 'no']]);
  assert.equal(typeof body.report?.at, 'number', 'the resource report rides on the answer');
  assert.equal(service.batches.length, 1);
  assert.deepEqual(service.batches[0]!.items[0]!.trace, itemTrace, 'each item keeps its own trace context on to the service');
  const health = (await readJson(await fetch(`${sidecar.url}${Paths.SIDECAR_HEALTH}`))) as { prepared: number };
  assert.equal(health.prepared, 1, 'the yes vote was recorded');

  // Asked for compact results: the plain yes is COMPACT_OK, the no stays the object it is.
  const again = newTxId(0);
  const compactAnswer = await channel.call(JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare(again), prepare(refused)], compactResults: true }), 5_000);
  assert.equal(compactAnswer?.status, 200);
  const compact = compactAnswer?.body as { results: unknown[] };
  assert.equal(compact.results[0], COMPACT_OK);
  assert.deepEqual(compact.results[1], { txId: refused, action: 'prepare', status: 'no' });

  const wrongVersion = await channel.call(JSON.stringify({ protocolVersion: 99, items: [prepare(newTxId(0))] }), 5_000);
  assert.equal(wrongVersion?.status, 400);
  assert.equal((wrongVersion?.body as { error: { code: string } }).error.code, 'TXM_PROTOCOL_VERSION');
  const counts = await stats(sidecar.url);
  assert.deepEqual([counts.batchesReceived, counts.batchesOverChannel, counts.coordinatorChannels, channel.upgrades], [2, 2, 1, 1], 'the refused batch is not counted');
});

test('a closing sidecar answers the batch in flight over the channel, then ends the channel', async (t) => {
  const service = await startFakeService(t);
  let release: () => void = () => undefined;
  service.before = () => new Promise<void>((resolve) => (release = resolve));
  const sidecar = await startSidecar(t, service.url);
  const channel = await openChannel(t, sidecar.url);
  const inFlight = channel.call(JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare(newTxId(0))] }), 5_000);
  while (service.batches.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  const closed = sidecar.close();
  const late = channel.call(JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare(newTxId(0))] }), 5_000);
  release();
  assert.equal((await inFlight)?.status, 200);
  const lateAnswer = await late.catch((err: unknown) => err);
  // Sent as the sidecar closed: answered TXM_SHUTTING_DOWN, or failed UNREACHABLE once the channel ended.
  assert.ok(
    (lateAnswer as { status?: number })?.status === 503 || (lateAnswer instanceof HttpCallError && lateAnswer.failure === CallFailure.UNREACHABLE),
    `the late batch is refused: ${String((lateAnswer as { text?: string })?.text ?? lateAnswer)}`,
  );
  await closed;
});

test('another upgrade request to the service is still proxied as the plain request it is', async (t) => {
  const service = await startFakeService(t);
  const sidecar = await startSidecar(t, service.url);
  const { port } = new URL(sidecar.url);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write('GET /echo/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n'));
    let text = '';
    socket.setEncoding('utf8').on('data', (c: string) => (text += c));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 200 /);
  assert.match(answer, /"seen":"\/echo\/h2c"/);
  assert.equal(service.echoes.length, 1);
});
