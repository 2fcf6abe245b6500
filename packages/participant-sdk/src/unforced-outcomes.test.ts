/**
 * Outcomes that travel with prepares go in the prepares' forced transaction when every prepare can have its
 * keys at once (mixed-batch.test.ts); otherwise they are written unforced and reach the disk with the
 * prepares' forced write: one sync per batch instead of two in series. Nothing is answered before that sync.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addStock, batch, commit, prepare, recordWrites, reserveOp, rollback, startParticipant, txId } from './test-support.ts';

const FULL = 2;
const NORMAL = 1;

test('a commit riding with a prepare that writes nothing is synced on its own before the answer', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'a', 5);
  addStock(f.db, 'b', 5);
  const first = txId();
  const second = txId();
  assert.equal((await f.one(prepare(first, [reserveOp('a', 1)]))).status, 'ok');
  assert.equal((await f.one(prepare(second, [reserveOp('b', 1)]))).status, 'ok');
  const writes = recordWrites(t);

  // The duplicate prepare is answered from its stored branch: no prepare transaction runs.
  const response = await f.participant.handleBatch(batch(commit(first), prepare(second, [reserveOp('b', 1)])));

  assert.deepEqual(response.results.map((r) => r.status), ['ok', 'ok']);
  assert.deepEqual(writes, [
    { kind: 'decisions', synchronous: NORMAL, carriesUnforced: false },
    { kind: 'force', synchronous: FULL, carriesUnforced: true },
  ]);
});

test('outcomes alone, and prepares alone, are forced as before', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'a', 5);
  const id = txId();
  const writes = recordWrites(t);
  assert.equal((await f.one(prepare(id, [reserveOp('a', 1)]))).status, 'ok');
  assert.equal((await f.one(rollback(id))).status, 'ok');
  assert.deepEqual(writes, [
    { kind: 'prepares', synchronous: FULL, carriesUnforced: false },
    { kind: 'decisions', synchronous: FULL, carriesUnforced: false },
  ]);
});

test('while a batch waits for a lock, its unforced commit is synced before the prepared list is answered', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 2_000 });
  addStock(f.db, 'a', 5);
  addStock(f.db, 'c', 5);
  const committing = txId();
  const holder = txId();
  assert.equal((await f.one(prepare(committing, [reserveOp('a', 1)]))).status, 'ok');
  assert.equal((await f.one(prepare(holder, [reserveOp('c', 1)]))).status, 'ok');
  const writes = recordWrites(t);

  // The prepare waits for `holder`'s key, so the batch has not answered and its commit is not yet synced.
  const waiting = f.participant.handleBatch(batch(commit(committing), prepare(txId(), [reserveOp('c', 1)])));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(writes, [{ kind: 'decisions', synchronous: NORMAL, carriesUnforced: false }]);

  const listed = f.participant.preparedList().prepared.map((p) => p.txId);
  assert.deepEqual(listed, [holder]);
  assert.deepEqual(writes[1], { kind: 'force', synchronous: FULL, carriesUnforced: true }, 'synced before the list left');

  assert.equal((await f.one(rollback(holder))).status, 'ok');
  assert.deepEqual((await waiting).results.map((r) => r.status), ['ok', 'ok']);
});
