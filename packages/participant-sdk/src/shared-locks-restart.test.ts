import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commit, peekOp, prepare, settledWithin, startParticipant, tempDatabasePath, txId, writeOp } from './test-support.ts';

const pairs = (edges: { waiter: string; holder: string }[]): string[] => edges.map((e) => `${e.waiter}->${e.holder}`).sort();

test('readers share a key across prepares; a writer and a later reader queue; a restart keeps the readers, the queue re-forms', async (t) => {
  const file = tempDatabasePath(t);
  const before = startParticipant(t, { file, lockWaitMs: 5_000 });
  const [r1, r2, w, r3] = [txId(), txId(), txId(), txId()];
  assert.equal((await before.one(prepare(r1, [peekOp('k')]))).status, 'ok');
  assert.equal((await before.one(prepare(r2, [peekOp('k')]))).status, 'ok', 'a second reader shares the key');
  const writer = before.one(prepare(w, [writeOp('k')]));
  const reader = before.one(prepare(r3, [peekOp('k')]));
  assert.equal(await settledWithin(writer, 50), 'pending', 'the writer waits for both readers');
  assert.equal(await settledWithin(reader, 20), 'pending', 'a reader behind the waiting writer queues too');
  assert.deepEqual(pairs(before.participant.waits().edges), [`${r3}->${w}`, `${w}->${r1}`, `${w}->${r2}`].sort());

  // The service goes down: waits end without a vote (the coordinator retries), prepared readers stay durable.
  before.participant.close();
  assert.equal((await writer).reason, 'TXM_SHUTTING_DOWN');
  assert.equal((await reader).reason, 'TXM_SHUTTING_DOWN');
  before.db.close();

  const after = startParticipant(t, { file, lockWaitMs: 5_000 });
  assert.deepEqual(after.participant.preparedList().prepared.map((p) => p.txId).sort(), [r1, r2].sort());
  const writerAgain = after.one(prepare(w, [writeOp('k')]));
  const readerAgain = after.one(prepare(r3, [peekOp('k')]));
  assert.equal(await settledWithin(writerAgain, 50), 'pending', 'the restored shared locks still keep the writer out');
  assert.deepEqual(pairs(after.participant.waits().edges), [`${r3}->${w}`, `${w}->${r1}`, `${w}->${r2}`].sort());
  assert.equal((await after.one(commit(r1))).status, 'ok');
  assert.equal(await settledWithin(writerAgain, 50), 'pending', 'one reader is still in');
  assert.equal((await after.one(commit(r2))).status, 'ok');
  assert.equal((await writerAgain).status, 'ok', 'the writer gets the key once both readers are gone');
  assert.equal(await settledWithin(readerAgain, 50), 'pending', 'the later reader waits for the writer');
  assert.equal((await after.one(commit(w))).status, 'ok');
  assert.equal((await readerAgain).status, 'ok');
  assert.deepEqual(after.participant.waits().edges, []);
});
