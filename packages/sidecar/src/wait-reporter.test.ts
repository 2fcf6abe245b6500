import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newTxId, type WaitEdge, type WaitReport } from '@txmesh/protocol';
import { WaitReporter } from './wait-reporter.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const [a, b] = [newTxId(0), newTxId(1)];
const edge: WaitEdge = { waiter: a, holder: b, key: 'k' };

function reporter(poll: () => Promise<WaitEdge[] | undefined>) {
  const sent: { shard: number; report: WaitReport }[] = [];
  const r = new WaitReporter({ service: 'inventory', shards: 2, send: async (shard, report) => void sent.push({ shard, report }), poll, pollMs: 10, refreshMs: 60_000 });
  return { r, sent };
}

test('wait reporter: every shard hears a changed edge set once, an unchanged one not again, the empty set when waits end', async () => {
  const { r, sent } = reporter(async () => undefined);
  r.note([edge]);
  await sleep(5);
  assert.deepEqual(sent.map((s) => s.shard).sort(), [0, 1]);
  r.note([{ ...edge, since: 5 }]); // same wait, nothing new to say
  await sleep(5);
  assert.equal(sent.length, 2);
  r.note([]);
  await sleep(5);
  assert.equal(sent.length, 4);
  assert.deepEqual(sent.at(-1)!.report, { service: 'inventory', edges: [] });
  r.stop();
});

test('wait reporter: a batch call outstanding for minWaitMs makes it ask the service; a quick one does not, nor one younger than minWaitMs', async () => {
  let polls = 0;
  let clock = 1_000;
  const sent: WaitReport[] = [];
  const r = new WaitReporter({
    service: 'inventory', shards: 2, send: async (_shard, report) => void sent.push(report), pollMs: 10, refreshMs: 60_000, minWaitMs: 100, now: () => clock,
    poll: async () => {
      polls += 1;
      return [edge];
    },
  });
  const quick = r.batchStarted();
  clock += 30;
  quick();
  await sleep(40);
  assert.equal(polls, 0, 'no call was slow');
  const slow = r.batchStarted();
  clock += 60;
  await sleep(40);
  assert.equal(polls, 0, 'out for several poll intervals but younger than minWaitMs: no wait in it could be reported yet');
  clock += 40;
  await sleep(40);
  assert.ok(polls >= 1, 'the slow call made it ask');
  assert.equal(sent.length, 2, 'the edges went to both shards once');
  slow();
  r.stop();
});

test('wait reporter: once the last quick call ended and no edge stands, nothing wakes it (no poll timer left)', async () => {
  let clockReads = 0;
  let polls = 0;
  const r = new WaitReporter({ service: 'inventory', shards: 1, send: async () => undefined, poll: async () => (polls++, []), pollMs: 10, refreshMs: 60_000, now: () => (clockReads++, 1_000) });
  const first = r.batchStarted();
  const second = r.batchStarted();
  first();
  const readsWhileOneIsOut = clockReads;
  await sleep(30);
  assert.ok(clockReads > readsWhileOneIsOut, 'a call still out keeps the poll timer: it ran');
  second();
  const readsAfterLast = clockReads;
  await sleep(40);
  assert.equal(clockReads, readsAfterLast, 'no timer ran after the last call ended');
  assert.equal(polls, 0, 'no call was slow by the clock, so the service was never asked');
  r.stop();
});

test('wait reporter: a wait younger than minWaitMs is not reported; once it has lasted, the next poll reports it', async () => {
  let clock = 1_000;
  const young: WaitEdge = { ...edge, since: 990 };
  const sent: WaitReport[] = [];
  const r = new WaitReporter({ service: 'inventory', shards: 1, send: async (_shard, report) => void sent.push(report), poll: async () => [young], pollMs: 10, refreshMs: 60_000, minWaitMs: 25, now: () => clock });
  r.note([young]);
  await sleep(30);
  assert.equal(sent.length, 0, 'a 10 ms wait usually ends by itself: nothing sent');
  clock = 1_020; // the wait has lasted 30 ms; the poll that follows reports it
  await sleep(40);
  assert.deepEqual(sent.map((s) => s.edges), [[young]]);
  r.note([]);
  await sleep(5);
  assert.deepEqual(sent.at(-1), { service: 'inventory', edges: [] }, 'its end is reported');
  r.stop();
});
