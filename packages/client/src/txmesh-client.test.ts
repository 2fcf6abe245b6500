import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { TxmeshError, newTxId, shardForIdempotencyKey, type TransactionResult } from '@txmesh/protocol';
import { RetryLaterError, createTxmeshClient } from './txmesh-client.ts';

async function listen(t: TestContext, app: FastifyInstance): Promise<string> {
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}


/** A coordinator stand-in: records what arrives and answers what the test says. */
async function fakeCoordinator(t: TestContext, shard: number, answer: (body: unknown) => { status: number; body: unknown; raw?: boolean; headers?: Record<string, string> }) {
  const seen: { method: string; url: string; body: unknown }[] = [];
  const app = Fastify();
  const reply = (req: { method: string; url: string; body: unknown }) => {
    seen.push({ method: req.method, url: req.url, body: req.body });
    return answer(req.body);
  };
  app.post('/v1/transactions', async (req, res) => {
    const a = reply(req);
    if (a.raw) return res.status(a.status).type('text/html').send(String(a.body));
    if (a.headers) void res.headers(a.headers);
    return res.status(a.status).send(a.body);
  });
  app.get('/v1/transactions/:txId', async (req, res) => {
    const a = reply(req);
    return res.status(a.status).send({ ...(a.body as object), servedBy: shard });
  });
  return { url: await listen(t, app), seen };
}

const begin = { participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'apple', qty: 1 } }] }] };

test('client: round-robin begin, status to the shard named by the id, error bodies become TxmeshErrors', async (t) => {
  let mode: 'ok' | 'refuse' | 'html' | 'not-found' = 'ok';
  const answer = (shard: number) => (): { status: number; body: unknown; raw?: boolean } => {
    if (mode === 'refuse') return { status: 422, body: { error: { code: 'TXM_UNKNOWN_SERVICE', message: 'x', details: 'inventory' } } };
    if (mode === 'html') return { status: 502, body: '<html>bad gateway</html>', raw: true };
    if (mode === 'not-found') return { status: 404, body: '<html>no such page</html>', raw: true };
    const result: TransactionResult = { txId: newTxId(shard), outcome: 'committed', participants: [], durationMs: 1 };
    return { status: 200, body: result };
  };
  const shard0 = await fakeCoordinator(t, 0, answer(0));
  const shard1 = await fakeCoordinator(t, 1, answer(1));
  const client = createTxmeshClient({ coordinatorUrls: [shard0.url, shard1.url] });
  t.after(() => client.close());

  const r1 = await client.transaction(begin);
  const r2 = await client.transaction(begin);
  assert.deepEqual([r1.txId.split('-')[0], r2.txId.split('-')[0]], ['0', '1']);
  assert.equal(shard0.seen.length, 1);
  assert.deepEqual(shard0.seen[0]!.body, begin);

  const status = (await client.status(newTxId(1))) as unknown as { servedBy: number };
  assert.equal(status.servedBy, 1);
  assert.equal(shard1.seen.at(-1)!.method, 'GET');

  mode = 'refuse';
  await assert.rejects(client.transaction(begin), (err: unknown) => {
    assert.ok(err instanceof TxmeshError);
    assert.equal(err.code, 'TXM_UNKNOWN_SERVICE');
    assert.equal(err.status, 422);
    assert.equal(err.details, 'inventory');
    return true;
  });
  mode = 'html';
  // A gateway error page may come after the request was forwarded: the outcome is unknown, not "unchanged".
  await assert.rejects(client.transaction(begin), (err: unknown) => {
    assert.ok(err instanceof TxmeshError);
    assert.equal(err.code, 'TXM_COORDINATOR_UNREACHABLE');
    assert.match(err.details ?? '', /HTTP 502/);
    return true;
  });
  mode = 'not-found';
  await assert.rejects(client.transaction(begin), (err: unknown) => {
    assert.ok(err instanceof TxmeshError);
    assert.equal(err.code, 'TXM_INTERNAL');
    assert.match(err.details ?? '', /HTTP 404/);
    return true;
  });

  // Refused locally, nothing sent.
  const sent = shard0.seen.length + shard1.seen.length;
  await assert.rejects(client.transaction({ participants: [] }), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_NO_PARTICIPANTS');
  await assert.rejects(client.status('not-an-id'), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_BAD_TX_ID');
  await assert.rejects(client.status(newTxId(7)), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_WRONG_SHARD');
  assert.equal(shard0.seen.length + shard1.seen.length, sent);
});

test('client: a shard that refuses connections is skipped for a new transaction', async (t) => {
  const down = Fastify();
  const downUrl = await listen(t, down);
  await down.close();
  const up = await fakeCoordinator(t, 1, () => ({ status: 200, body: { txId: newTxId(1), outcome: 'aborted', participants: [], durationMs: 1 } }));
  const client = createTxmeshClient({ coordinatorUrls: [downUrl, up.url] });
  t.after(() => client.close());
  const result = await client.transaction(begin);
  assert.equal(result.outcome, 'aborted');
  assert.equal(up.seen.length, 1);
  await assert.rejects(client.status(newTxId(0)), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_COORDINATOR_UNREACHABLE');
});

test('client: a keyed transaction always goes to the shard that owns its key, never fails over', async (t) => {
  const shards = [0, 1, 2];
  const coordinators = await Promise.all(
    shards.map((shard) => fakeCoordinator(t, shard, () => ({ status: 200, body: { txId: newTxId(shard), outcome: 'committed', participants: [], durationMs: 1 } }))),
  );
  const client = createTxmeshClient({ coordinatorUrls: coordinators.map((c) => c.url) });
  t.after(() => client.close());
  for (const key of ['order-1', 'order-2', 'order-3', 'order-4', 'order-5', 'order-6']) {
    const owner = shardForIdempotencyKey(key, shards.length);
    const before = coordinators.map((c) => c.seen.length);
    await client.transaction({ ...begin, idempotencyKey: key });
    await client.transaction({ ...begin, idempotencyKey: key });
    const after = coordinators.map((c) => c.seen.length);
    assert.deepEqual(after.map((n, i) => n - before[i]!), shards.map((s) => (s === owner ? 2 : 0)), key);
  }

  // The owner refuses connections: the keyed request fails instead of running on another shard.
  const down = Fastify();
  const downUrl = await listen(t, down);
  await down.close();
  const keyOwnedBy0 = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].find((k) => shardForIdempotencyKey(k, 2) === 0)!;
  const failover = createTxmeshClient({ coordinatorUrls: [downUrl, coordinators[1]!.url] });
  t.after(() => failover.close());
  const seenBefore = coordinators[1]!.seen.length;
  await assert.rejects(failover.transaction({ ...begin, idempotencyKey: keyOwnedBy0 }), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_COORDINATOR_UNREACHABLE');
  assert.equal(coordinators[1]!.seen.length, seenBefore);
});

test('client: a TXM_OVERLOADED refusal is sent again after Retry-After, a bounded number of times', async (t) => {
  let refusals = 2;
  const overloaded = { error: { code: 'TXM_OVERLOADED', message: 'saturated' } };
  const shard = await fakeCoordinator(t, 0, () =>
    refusals-- > 0
      ? { status: 429, body: overloaded, headers: { 'retry-after': '0' } }
      : { status: 200, body: { txId: newTxId(0), outcome: 'committed', participants: [], durationMs: 1 } },
  );
  const client = createTxmeshClient({ coordinatorUrls: [shard.url] });
  t.after(() => client.close());
  assert.equal((await client.transaction(begin)).outcome, 'committed');
  assert.equal(shard.seen.length, 3, 'two refusals, then the accepted resend');

  refusals = 5;
  const impatient = createTxmeshClient({ coordinatorUrls: [shard.url], overloadRetries: 0 });
  t.after(() => impatient.close());
  await assert.rejects(impatient.transaction(begin), (err: unknown) => err instanceof RetryLaterError && err.code === 'TXM_OVERLOADED' && err.retryAfterMs === 0);
  assert.equal(shard.seen.length, 4, 'no resend when overloadRetries is 0');
});

test('client: in-doubt and services ask every shard and report a shard that cannot answer in place', async (t) => {
  const app = Fastify();
  const asked: string[] = [];
  app.get('/v1/in-doubt', async (req) => {
    asked.push(req.url);
    return { shard: 0, thresholdMs: 10_000, branches: [{ txId: newTxId(0), service: 'payment', action: 'commit', ageMs: 12_000, attempts: 9 }] };
  });
  app.get('/v1/services', async () => ({ services: [{ service: 'payment', sidecarUrl: 'http://127.0.0.1:1', registeredAt: 1, lastSeenAt: 2 }] }));
  const up = await listen(t, app);
  const down = Fastify();
  const downUrl = await listen(t, down);
  await down.close();
  const client = createTxmeshClient({ coordinatorUrls: [up, downUrl] });
  t.after(() => client.close());

  const inDoubt = await client.inDoubt({ olderThanMs: 500 });
  assert.deepEqual(asked, ['/v1/in-doubt?olderThanMs=500']);
  assert.equal(inDoubt.length, 2);
  const [first, second] = inDoubt;
  assert.ok(first && 'answer' in first && first.answer.branches[0]!.service === 'payment');
  assert.ok(second && 'error' in second && second.error.code === 'TXM_COORDINATOR_UNREACHABLE' && second.shard === 1);
  const services = await client.services();
  assert.ok('answer' in services[0]! && services[0].answer.services[0]!.service === 'payment');
  await assert.rejects(client.inDoubt({ olderThanMs: -1 }), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_BAD_REQUEST');
});

test('client: by default 100 concurrent transactions are all in flight at one shard at once, none queued in the client', async (t) => {
  let inFlight = 0;
  let most = 0;
  const release: (() => void)[] = [];
  const app = Fastify();
  app.post('/v1/transactions', async () => {
    inFlight += 1;
    most = Math.max(most, inFlight);
    // Held until every transaction has arrived (or the test gives up), so the count is of concurrent calls.
    await new Promise<void>((resolve) => release.push(resolve));
    inFlight -= 1;
    const result: TransactionResult = { txId: newTxId(0), outcome: 'committed', participants: [], durationMs: 1 };
    return result;
  });
  const url = await listen(t, app);
  const client = createTxmeshClient({ coordinatorUrls: [url] });
  t.after(() => client.close());
  const all = Promise.all(Array.from({ length: 100 }, () => client.transaction(begin)));
  const deadline = Date.now() + 5_000;
  while (most < 100 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  for (const done of release.splice(0)) done();
  // Any queued in the client arrive after the first release; answer them too.
  const drain = setInterval(() => release.splice(0).forEach((done) => done()), 5);
  t.after(() => clearInterval(drain));
  await all;
  assert.equal(most, 100, `only ${most} of 100 transactions were at the shard at once`);
});
