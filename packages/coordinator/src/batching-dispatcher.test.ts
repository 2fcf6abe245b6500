import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, type BranchItem } from '@txmesh/protocol';
import { BatchingDispatcher } from './batching-dispatcher.ts';
import { TransportTimeoutError } from './branch-errors.ts';
import { FakeTransport } from './testing/fake-transport.ts';

function item(n: number, service = 'svc'): BranchItem {
  return { action: 'commit', txId: `0-abc-${n.toString(16).padStart(16, '0')}`, service };
}

function prepareItem(n: number): BranchItem {
  return { action: 'prepare', txId: `0-abc-${n.toString(16).padStart(16, '0')}`, service: 'svc', operations: [{ op: 'x' }] };
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
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(dispatcher.lanes, 0, 'a lane with nothing queued or unanswered goes: sidecar addresses do not pile up');
  });

  it('send: an item with an ItemAnswer is told its own result or its failure once, in the same batches as submitted items', async () => {
    const transport = new FakeTransport((i) => (i.txId.endsWith('2') ? { status: 'no', reason: 'OUT_OF_STOCK' } : 'ok'));
    const dispatcher = new BatchingDispatcher(transport, 8);
    const heard: string[] = [];
    const target = (name: string) => ({
      answered: (r: { txId: string; status: string }) => heard.push(`${name} ${r.txId.slice(-1)} ${r.status}`),
      failed: (err: unknown) => heard.push(`${name} failed ${(err as Error).message}`),
    });
    dispatcher.send('http://a', item(1), 1000, target('a'));
    const submitted = dispatcher.submit('http://a', item(2), 1000).result;
    dispatcher.send('http://a', item(4), 1000, target('d'));
    assert.equal((await submitted).status, 'no');
    assert.deepEqual(heard, ['a 1 ok', 'd 4 ok']);
    assert.deepEqual(transport.batches.map((b) => b.items.length), [3]);
    // A transport failure, and a closed dispatcher (told on a later turn, as a rejected promise would be).
    const failing = new BatchingDispatcher({
      send: () => {
        throw new Error('boom');
      },
    });
    failing.send('http://a', item(5), 1000, target('e'));
    dispatcher.close();
    dispatcher.send('http://a', item(6), 1000, target('f'));
    assert.deepEqual(heard, ['a 1 ok', 'd 4 ok'], 'nothing is told synchronously');
    // Outcomes linger up to 5 ms for a prepare to ride with.
    for (let turn = 0; turn < 40 && heard.length < 4; turn++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(heard.slice(2).sort(), ['e failed boom', 'f failed the dispatcher is closed: this coordinator is shutting down and sends nothing more']);
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

  it('while a batch to a sidecar is unanswered, later items wait and leave together when it answers (window zero when idle)', async () => {
    const answers: (() => void)[] = [];
    const sent: number[] = [];
    const transport = {
      send: (_url: string, items: BranchItem[]) => {
        sent.push(items.length);
        return new Promise<{ protocolVersion: number; results: { txId: string; action: BranchItem['action']; status: 'ok' }[] }>((resolve) =>
          answers.push(() => resolve({ protocolVersion: PROTOCOL_VERSION, results: items.map((i) => ({ txId: i.txId, action: i.action, status: 'ok' })) })),
        );
      },
    };
    const dispatcher = new BatchingDispatcher(transport, { maxInFlightBatches: 1, maxWindowMs: 60_000 });
    const first = dispatcher.submit('http://a', prepareItem(1), 60_000);
    await first.sent;
    assert.deepEqual(sent, [1], 'an idle sidecar gets a prepare at once');
    const later = [2, 3, 4].map((n) => dispatcher.submit('http://a', prepareItem(n), 60_000).result);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent, [1], 'held while the first batch is out');
    answers.shift()!();
    await first.result;
    for (let turn = 0; turn < 10 && sent.length < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent, [1, 3], 'the held items left as one batch once the answer came');
    answers.shift()!();
    assert.equal((await Promise.all(later)).length, 3);
    dispatcher.close();
  });

  it('sends held items when the window ends even if the earlier batch is still out, and full batches at once', async () => {
    const sent: number[] = [];
    const transport = {
      send: (_url: string, items: BranchItem[]) => {
        sent.push(items.length);
        return new Promise<never>(() => {});
      },
    };
    const dispatcher = new BatchingDispatcher(transport, { maxInFlightBatches: 1, maxWindowMs: 5, maxBatchItems: 3 });
    // Every result is rejected by close() at the end; nothing here waits for one.
    const submit = (n: number) => {
      const d = dispatcher.submit('http://a', item(n), 60_000);
      d.result.catch(() => {});
      return d;
    };
    await submit(1).sent;
    const held = submit(2);
    for (const n of [3, 4, 5]) submit(n);
    await held.sent;
    assert.deepEqual(sent.slice(0, 2), [1, 3], 'a full batch does not wait');
    await submit(6).sent;
    assert.deepEqual(sent, [1, 3, 2], 'the rest left when the window ended');
    dispatcher.close();
  });

  it('sends an item marked alone at once as its own request, past a full lane, and without taking its slot', async () => {
    const answers: (() => void)[] = [];
    const sent: string[][] = [];
    const transport = {
      send: (_url: string, items: BranchItem[]) => {
        sent.push(items.map((i) => i.txId.slice(-1)));
        return new Promise<{ protocolVersion: number; results: { txId: string; action: BranchItem['action']; status: 'ok' }[] }>((resolve) =>
          answers.push(() => resolve({ protocolVersion: PROTOCOL_VERSION, results: items.map((i) => ({ txId: i.txId, action: i.action, status: 'ok' })) })),
        );
      },
    };
    const dispatcher = new BatchingDispatcher(transport, { maxInFlightBatches: 1, maxWindowMs: 60_000 });
    const first = dispatcher.submit('http://a', prepareItem(1), 60_000);
    await first.sent;
    const held = dispatcher.submit('http://a', prepareItem(2), 60_000);
    const alone = dispatcher.submit('http://a', prepareItem(3), 60_000, { alone: true });
    await alone.sent;
    assert.deepEqual(sent, [['1'], ['3']], 'the lane is full (item 2 waits) but the lone item left at once, by itself');
    answers[1]!();
    assert.equal((await alone.result).status, 'ok');
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sent, [['1'], ['3']], 'its answer freed no lane slot: item 2 still waits for the first batch');
    answers[0]!();
    await held.sent;
    assert.deepEqual(sent, [['1'], ['3'], ['2']]);
    answers[2]!();
    await Promise.all([first.result, held.result]);
    dispatcher.close();
  });

  it('lets outcomes alone linger for the next prepare to that sidecar, and sends them on their own when none comes', async () => {
    const transport = new FakeTransport();
    const dispatcher = new BatchingDispatcher(transport, { outcomeLingerMs: 60_000 });
    const commit = dispatcher.submit('http://a', item(1), 1000);
    const otherSidecar = dispatcher.submit('http://b', prepareItem(9), 1000);
    await otherSidecar.result;
    assert.deepEqual(transport.batches.map((b) => b.sidecarUrl), ['http://b'], 'a prepare to another sidecar does not carry the commit');
    await dispatcher.submit('http://a', prepareItem(2), 1000).result;
    assert.equal((await commit.result).status, 'ok');
    assert.deepEqual(transport.batches[1]?.items.map((i) => i.action), ['commit', 'prepare'], 'the commit rode with the next prepare');

    const short = new BatchingDispatcher(transport, { outcomeLingerMs: 20 });
    const started = performance.now();
    const alone = short.submit('http://a', item(3), 1000);
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(transport.batches.length, 2, 'still lingering');
    await alone.result;
    assert.ok(performance.now() - started >= 19, 'left when the linger ended');
    assert.deepEqual(transport.batches[2]?.items.map((i) => i.action), ['commit']);

    const eager = new BatchingDispatcher(transport, { outcomeLingerMs: 0 });
    await eager.submit('http://a', item(4), 1000).sent;
    assert.equal(transport.batches.length, 4, 'no linger: at once');
  });

  it('naive mode sends every item as its own request at once', async () => {
    const transport = new FakeTransport();
    const dispatcher = new BatchingDispatcher(transport, { batching: false });
    await Promise.all(Array.from({ length: 5 }, (_, n) => dispatcher.submit('http://a', item(n), 1000).result));
    assert.deepEqual(transport.batches.map((b) => b.items.length), [1, 1, 1, 1, 1]);
  });

  it('hands a piggybacked resource report to onReport, and a throwing onReport does not fail the batch', async () => {
    const reports: [string, number][] = [];
    const transport = {
      send: async (_url: string, items: BranchItem[]) => ({
        protocolVersion: PROTOCOL_VERSION,
        results: items.map((i) => ({ txId: i.txId, action: i.action, status: 'ok' as const })),
        report: { at: 5, inFlight: 3 },
      }),
    };
    const dispatcher = new BatchingDispatcher(transport, { onReport: (service, report) => reports.push([service, report.inFlight ?? -1]) });
    await dispatcher.submit('http://a', item(1, 'inventory'), 1000).result;
    assert.deepEqual(reports, [['inventory', 3]]);
    const throwing = new BatchingDispatcher(transport, {
      onReport: () => {
        throw new Error('bad');
      },
    });
    assert.equal((await throwing.submit('http://a', item(2), 1000).result).status, 'ok');
  });
});
