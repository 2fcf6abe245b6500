import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, type BranchItem } from '@txmesh/protocol';
import { BatchingDispatcher, TransportTimeoutError } from './batching-dispatcher.ts';
import { FakeTransport } from './testing/fake-transport.ts';

function item(n: number, service = 'svc'): BranchItem {
  return { action: 'commit', txId: `0-abc-${n.toString(16).padStart(16, '0')}`, service };
}

describe('BatchingDispatcher', () => {
  it('sends one batch per sidecar per event-loop turn, split at the batch limit, each caller getting its own result', async () => {
    const transport = new FakeTransport((i) => (i.txId.endsWith('7') ? { status: 'error', reason: 'BUSY' } : 'ok'));
    const dispatcher = new BatchingDispatcher(transport, 4);
    const a = Array.from({ length: 10 }, (_, n) => dispatcher.submit('http://a', item(n), 1000).result);
    const b = [dispatcher.submit('http://b', item(100, 'other'), 1000).result];
    const results = await Promise.all([...a, ...b]);
    assert.deepEqual(transport.batches.map((x) => [x.sidecarUrl, x.items.length]), [['http://a', 4], ['http://a', 4], ['http://a', 2], ['http://b', 1]]);
    assert.deepEqual(results.map((r) => r.txId), [...Array.from({ length: 10 }, (_, n) => item(n).txId), item(100).txId]);
    assert.equal(results[7]?.status, 'error');
    assert.equal(results[7]?.reason, 'BUSY');
    assert.equal(results[6]?.status, 'ok');
    assert.deepEqual(dispatcher.stats(), { batchesSent: 4, itemsSent: 11 });
    // A later turn starts a new batch.
    await dispatcher.submit('http://a', item(50), 1000).result;
    assert.equal(transport.batches.length, 5);
  });

  it('refuses a batch limit that could never drain its queue', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => new BatchingDispatcher(new FakeTransport(), bad), RangeError);
  });

  it('times a large batch by its longest item without overflowing the stack', async () => {
    const sent: number[] = [];
    const dispatcher = new BatchingDispatcher(
      {
        send: async (_url, items, timeoutMs) => {
          sent.push(timeoutMs);
          return { protocolVersion: PROTOCOL_VERSION, results: items.map((i) => ({ txId: i.txId, action: i.action, status: 'ok' as const })) };
        },
      },
      200_000,
    );
    const results = Array.from({ length: 150_000 }, (_, n) => dispatcher.submit('http://a', item(n), n === 7 ? 2000 : 1000).result);
    assert.equal((await Promise.all(results)).length, 150_000);
    assert.deepEqual(sent, [2000]);
  });

  it('fails every item of a batch whose answer is short, out of order or thrown', async () => {
    const short = new BatchingDispatcher({ send: async () => ({ protocolVersion: PROTOCOL_VERSION, results: [] }) });
    await assert.rejects(short.submit('http://a', item(1), 1000).result, /0 results for 1 items/);
    const swapped = new BatchingDispatcher({
      send: async (_url, items) => ({ protocolVersion: PROTOCOL_VERSION, results: [...items].reverse().map((i) => ({ txId: i.txId, action: i.action, status: 'ok' as const })) }),
    });
    const both = [swapped.submit('http://a', item(1), 1000).result, swapped.submit('http://a', item(2), 1000).result];
    for (const r of await Promise.allSettled(both)) assert.equal(r.status, 'rejected');
    const throwing = new BatchingDispatcher({
      send: () => {
        throw new Error('boom');
      },
    });
    await assert.rejects(throwing.submit('http://a', item(1), 1000).result, /boom/);
  });

  it('times out a batch whose transport never answers, and close() releases waiting callers', async () => {
    const dispatcher = new BatchingDispatcher(new FakeTransport(() => 'hang'));
    const started = Date.now();
    await assert.rejects(dispatcher.submit('http://a', item(1), 30).result, TransportTimeoutError);
    assert.ok(Date.now() - started < 1000);
    const waiting = dispatcher.submit('http://a', item(2), 60_000);
    await waiting.sent;
    dispatcher.close();
    await assert.rejects(waiting.result, /closed/);
    await assert.rejects(dispatcher.submit('http://a', item(3), 10).result, /closed/);
  });
});
