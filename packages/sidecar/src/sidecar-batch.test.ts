import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import Database from 'better-sqlite3';
import { BranchAction, ItemStatus, newTxId, PROTOCOL_VERSION, type BranchBatchResponse, type BranchItem } from '@txmesh/protocol';
import { buildSidecar } from './sidecar.ts';
import { DEFAULT_REMOVAL_LINGER_MS, SqlitePreparedStore } from './sqlite-prepared-store.ts';
import { deadUrl, startFakeService, tempDir, readJson, waitFor, listenOn } from './test-fakes.ts';

async function startTestSidecar(t: TestContext, serviceUrl: string, dataDir = tempDir(t)) {
  const sidecar = await buildSidecar({ service: 'inventory', serviceUrl, coordinatorUrls: [], dataDir, logLevel: 'silent', serviceTimeoutMs: 2000 });
  t.after(() => sidecar.close());
  const url = await listenOn(sidecar.server);
  return { ...sidecar, url, dataDir };
}

/** Reads the sidecar's SQLite file through a second connection, as a restarted sidecar would. */
function recordedTxIds(dataDir: string): string[] {
  const db = new Database(SqlitePreparedStore.fileFor(dataDir, 'inventory'), { readonly: true });
  try {
    return (db.prepare('SELECT tx_id FROM prepared ORDER BY tx_id').all() as { tx_id: string }[]).map((r) => r.tx_id);
  } finally {
    db.close();
  }
}

/** The same, once removals waiting for the next write have been written on their own (see SqlitePreparedStore). */
async function recordedAfterRemovals(dataDir: string): Promise<string[]> {
  // The store's timer was armed first, so it has written before this one fires.
  await new Promise((resolve) => setTimeout(resolve, DEFAULT_REMOVAL_LINGER_MS + 50));
  return recordedTxIds(dataDir);
}

async function postBatch(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/txmesh/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await readJson(res) };
}

const prepare = (txId: string): BranchItem => ({ action: BranchAction.PREPARE, txId, service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'A-1', qty: 1 } }] });

describe('sidecar batch handling', () => {
  it('forwards the batch in one call, records yes votes before answering, and forgets them after commit', async (t) => {
    const service = await startFakeService(t);
    const refused = newTxId(1);
    service.answer = (item) =>
      item.txId === refused && item.action === 'prepare' ? { txId: item.txId, action: item.action, status: ItemStatus.NO, reason: 'OUT_OF_STOCK' } : { txId: item.txId, action: item.action, status: ItemStatus.OK };
    const sidecar = await startTestSidecar(t, service.url);
    const [a, b] = [newTxId(0), newTxId(2)].sort();

    const answer = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(a!), prepare(refused), prepare(b!)] });
    assert.equal(answer.status, 200);
    assert.equal(service.batches.length, 1, 'the whole batch goes to the service in one call');
    assert.deepEqual(service.batches[0]!.items.map((i) => i.txId), [a, refused, b]);
    assert.deepEqual(
      (answer.body as BranchBatchResponse).results.map((r) => [r.txId, r.status]),
      [[a, 'ok'], [refused, 'no'], [b, 'ok']],
    );
    assert.equal(typeof (answer.body as BranchBatchResponse).report?.at, 'number', 'a resource report rides on the answer');
    // Visible to another connection the moment the vote arrives: the write was committed before answering.
    const atOnce = recordedTxIds(sidecar.dataDir);
    assert.ok(atOnce.includes(a!) && atOnce.includes(b!), `${atOnce.join(', ')} holds both yes votes`);
    // The refused prepare's record (recorded ahead) goes with the next write.
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), [a, b]);

    const commit = await postBatch(sidecar.url, {
      protocolVersion: PROTOCOL_VERSION,
      items: [{ action: BranchAction.COMMIT, txId: a, service: 'inventory' }, { action: BranchAction.ROLLBACK, txId: refused, service: 'inventory' }],
    });
    assert.deepEqual(commit.body.results.map((r: { status: string }) => r.status), ['ok', 'ok']);
    assert.equal(service.batches.length, 2);
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), [b]);
    const health = await readJson(await fetch(`${sidecar.url}/txmesh/v1/health`));
    assert.deepEqual(health, { ok: true, service: 'inventory', ready: false, prepared: 1 });
  });

  it('keeps the record when the service does not acknowledge the commit', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const tx = newTxId(0);
    await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    service.answer = (item) => ({ txId: item.txId, action: item.action, status: ItemStatus.ERROR, reason: 'DB_BUSY' });
    const answer = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [{ action: 'commit', txId: tx, service: 'inventory' }] });
    assert.deepEqual(answer.body.results, [{ txId: tx, action: 'commit', status: 'error', reason: 'DB_BUSY' }]);
    assert.deepEqual(recordedTxIds(sidecar.dataDir), [tx]);
  });

  it('answers error for every item and records nothing when the service is down', async (t) => {
    const sidecar = await startTestSidecar(t, await deadUrl());
    const [a, b] = [newTxId(0), newTxId(0)];
    const answer = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(a), { action: 'rollback', txId: b, service: 'inventory' }] });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.results.map((r: { txId: string; status: string; reason: string }) => [r.txId, r.status, r.reason]), [
      [a, 'error', 'TXM_SERVICE_UNREACHABLE'],
      [b, 'error', 'TXM_SERVICE_UNREACHABLE'],
    ]);
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), []);
  });

  it('treats a malformed service answer as a transient error', async (t) => {
    const service = await startFakeService(t);
    service.answer = (item) => ({ txId: 'someone-else', action: item.action, status: ItemStatus.OK });
    const sidecar = await startTestSidecar(t, service.url);
    const tx = newTxId(0);
    const answer = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    assert.equal(answer.body.results[0].status, 'error');
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), []);
  });

  it('refuses items for another service without forwarding them', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const [mine, theirs] = [newTxId(0), newTxId(0)];
    const answer = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [{ ...prepare(theirs), service: 'payment' }, prepare(mine)] });
    assert.deepEqual(answer.body.results.map((r: { status: string; reason?: string }) => [r.status, r.reason]), [['error', 'TXM_UNKNOWN_SERVICE'], ['ok', undefined]]);
    assert.deepEqual(service.batches[0]!.items.map((i) => i.txId), [mine]);
    assert.deepEqual(recordedTxIds(sidecar.dataDir), [mine]);
  });

  it('does not re-create a record when a slow yes comes back after the outcome was acknowledged', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const tx = newTxId(0);
    // The first prepare attempt is held at the service; the coordinator's retry, its commit and the ack pass it.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    service.before = (batch) => (service.batches.length === 1 && batch.items[0]?.action === 'prepare' ? held : undefined);
    const slow = postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    await waitFor(() => service.batches.length === 1, 3000, 'the first prepare to reach the service');

    const retry = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    assert.equal(retry.body.results[0].status, 'ok');
    assert.deepEqual(recordedTxIds(sidecar.dataDir), [tx]);
    const commit = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [{ action: BranchAction.COMMIT, txId: tx, service: 'inventory' }] });
    assert.equal(commit.body.results[0].status, 'ok');
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), []);

    release();
    const late = await slow;
    assert.equal(late.body.results[0].status, 'ok', 'the service answer is relayed as it was');
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), [], 'no record outlives its acknowledged branch');
  });

  it('lets an acknowledged outcome win over a yes for the same branch wherever it sits in the batch', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const [a, b] = [newTxId(0), newTxId(0)];
    await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(a), prepare(b)] });
    assert.deepEqual(recordedTxIds(sidecar.dataDir), [a, b].sort());
    // A duplicate prepare after the commit (the service answers it yes from its stored branch), and before it.
    const answer = await postBatch(sidecar.url, {
      protocolVersion: PROTOCOL_VERSION,
      items: [{ action: BranchAction.COMMIT, txId: a, service: 'inventory' }, prepare(a), prepare(b), { action: BranchAction.ROLLBACK, txId: b, service: 'inventory' }],
    });
    assert.deepEqual(answer.body.results.map((r: { status: string }) => r.status), ['ok', 'ok', 'ok', 'ok']);
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), []);
  });

  it('does not record a yes for a branch whose outcome was already acknowledged (a late duplicate prepare)', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const tx = newTxId(0);
    await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [{ action: BranchAction.COMMIT, txId: tx, service: 'inventory' }] });
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), []);
    // A prepare delayed on the network arrives after the commit: the service answers it from its stored
    // branch (yes), but the branch is finished and a record would outlive it.
    const late = await postBatch(sidecar.url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    assert.equal(late.body.results[0].status, 'ok', 'the duplicate still gets the first answer');
    assert.deepEqual(await recordedAfterRemovals(sidecar.dataDir), [], 'no prepared record is re-created');
  });

  it('finishes a batch in flight when closing and refuses later requests with TXM_SHUTTING_DOWN', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const tx = newTxId(0);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    service.before = () => held;
    // One keep-alive connection: the batch, then (pipelined, once closing began) a health request.
    const socket = net.connect(Number(new URL(sidecar.url).port), '127.0.0.1');
    t.after(() => socket.destroy());
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    const ended = once(socket, 'end');
    const body = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items: [prepare(tx)] });
    socket.write(`POST /txmesh/v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await waitFor(() => service.batches.length === 1, 3000, 'the batch to reach the service');

    const closed = sidecar.close();
    await waitFor(() => !sidecar.server.listening, 3000, 'the server to stop listening');
    socket.write('GET /txmesh/v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    release();
    await closed;
    await ended;
    const [first, second] = received.split(/(?=HTTP\/1\.1 )/);
    assert.match(first!, /^HTTP\/1\.1 200 /);
    assert.match(first!, /"status":"ok"/);
    assert.match(second!, /^HTTP\/1\.1 503 /);
    assert.equal(JSON.parse(second!.slice(second!.indexOf('\r\n\r\n') + 4)).error.code, 'TXM_SHUTTING_DOWN');
    assert.deepEqual(recordedTxIds(sidecar.dataDir), [tx], 'the yes that left was recorded before the store closed');
  });

  it('answers 400 TXM_BAD_REQUEST to a bad batch body and forwards nothing', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const bodies: unknown[] = [
      { protocolVersion: PROTOCOL_VERSION, items: [{ action: 'prepare', txId: 'not-an-id', service: 'inventory', operations: [{ op: 'x' }] }] },
      { protocolVersion: PROTOCOL_VERSION, items: 'nope' },
      { protocolVersion: PROTOCOL_VERSION, items: [{ action: 'prepare', txId: newTxId(0), service: 'inventory', operations: [] }] },
      [1, 2],
    ];
    for (const body of bodies) {
      const answer = await postBatch(sidecar.url, body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body.error.code, 'TXM_BAD_REQUEST');
    }
    const raw = await fetch(`${sidecar.url}/txmesh/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"items": [' });
    assert.equal(raw.status, 400);
    assert.equal((await readJson(raw)).error.code, 'TXM_BAD_REQUEST');
    const version = await postBatch(sidecar.url, { protocolVersion: 99, items: [] });
    assert.equal(version.status, 400);
    assert.equal(version.body.error.code, 'TXM_PROTOCOL_VERSION');
    assert.equal(service.batches.length, 0);
    assert.deepEqual(recordedTxIds(sidecar.dataDir), []);
  });

  it('answers unknown control routes with TXM_NOT_FOUND instead of proxying them', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await startTestSidecar(t, service.url);
    const res = await fetch(`${sidecar.url}/txmesh/v1/nothing-here`);
    assert.equal(res.status, 404);
    assert.equal((await readJson(res)).error.code, 'TXM_NOT_FOUND');
    assert.equal(service.echoes.length, 0);
  });
});

describe('sidecar refusals of prepares no shard can decide', () => {
  it('votes no, without asking the service, for a prepare whose id names a shard the cluster lacks', async (t) => {
    const service = await startFakeService(t);
    const sidecar = await buildSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [await deadUrl()], dataDir: tempDir(t), logLevel: 'silent' });
    t.after(() => sidecar.close());
    const url = await listenOn(sidecar.server);
    const [valid, shard7] = [newTxId(0), newTxId(7)];
    const answer = await postBatch(url, { protocolVersion: PROTOCOL_VERSION, items: [prepare(shard7), prepare(valid)] });
    assert.deepEqual(answer.body.results.map((r: { status: string; reason?: string }) => [r.status, r.reason]), [['no', 'TXM_WRONG_SHARD'], ['ok', undefined]]);
    assert.deepEqual(service.batches.flatMap((b) => b.items.map((i) => i.txId)), [valid], 'the service never saw it');
  });
});
