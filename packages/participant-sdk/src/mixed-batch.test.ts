/**
 * A batch of outcomes and prepares in one forced transaction (mixed-batch.ts): a prepare takes over the key
 * its neighbour's outcome frees, a failed outcome keeps its key, and a waiter already queued is never
 * overtaken.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParticipant } from './participant.ts';
import { defineOperation } from './operation.ts';
import { addStock, batch, commit, countRows, inventoryOperations, newCalls, openTempDatabase, prepare, recordWrites, reserveOp, rollback, SERVICE, startParticipant, stock, txId } from './test-support.ts';

const FULL = 2;
const NORMAL = 1;

const lockRowsOf = (db: import('better-sqlite3').Database, id: string): number =>
  (db.prepare('SELECT COUNT(*) AS n FROM txm_key_locks WHERE tx_id = ?').get(id) as { n: number }).n;

test('a commit and the prepares riding with it go in one forced transaction, one of them taking over the key the commit frees', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 100 });
  addStock(f.db, 'a', 5);
  addStock(f.db, 'b', 5);
  const first = txId();
  assert.equal((await f.one(prepare(first, [reserveOp('a', 1)]))).status, 'ok');
  const writes = recordWrites(t);

  const second = txId();
  const response = await f.participant.handleBatch(batch(commit(first), prepare(second, [reserveOp('a', 1)]), prepare(txId(), [reserveOp('b', 1)])));

  assert.deepEqual(response.results.map((r) => r.status), ['ok', 'ok', 'ok']);
  assert.deepEqual(writes, [{ kind: 'together', synchronous: FULL, carriesUnforced: false }]);
  assert.equal(f.db.pragma('synchronous', { simple: true }), FULL, 'the connection stays FULL');
  assert.equal(f.participant.stats().batchTransactions, 1);
  assert.deepEqual(f.calls.commit, [`${first}#0`]);
  assert.deepEqual(stock(f.db, 'a'), { qty: 4, reserved: 1 });
  assert.deepEqual(stock(f.db, 'b'), { qty: 5, reserved: 1 });
  assert.equal(lockRowsOf(f.db, first), 0);
  assert.equal(lockRowsOf(f.db, second), 1);
  // `second` holds the key in memory too: a third branch waits for it and gives up.
  const third = await f.one(prepare(txId(), [reserveOp('a', 1)]));
  assert.equal(third.status, 'no');
  assert.equal(third.reason, 'LOCK_TIMEOUT');
});

test('a commit that fails keeps its key: the prepare behind it waits instead of taking it over', async (t) => {
  const db = openTempDatabase(t);
  const failing = new Set<string>();
  const flaky = defineOperation<{ key: string }>({
    parseArgs: (args) => ({ key: String((args as { key?: unknown }).key) }),
    lockKeys: (a) => [a.key],
    prepare: () => {},
    commit(ctx) {
      if (failing.has(ctx.txId)) throw new Error('the commit hook failed');
    },
    rollback: () => {},
  });
  const participant = createParticipant({ service: SERVICE, db, operations: { ...inventoryOperations(db, newCalls()), flaky }, lockWaitMs: 100, log: () => {} });
  t.after(() => participant.close());
  const first = txId();
  const op = { op: 'flaky', args: { key: 'k' } };
  assert.equal((await participant.handleBatch(batch(prepare(first, [op])))).results[0]!.status, 'ok');
  failing.add(first);
  const writes = recordWrites(t);

  const second = txId();
  const response = await participant.handleBatch(batch(commit(first), prepare(second, [op])));

  assert.deepEqual(response.results.map((r) => [r.status, r.reason]), [['error', 'COMMIT_FAILED'], ['no', 'LOCK_TIMEOUT']]);
  // The outcomes alone in the forced transaction (the recheck found the key still held), then the no on its own.
  assert.deepEqual(writes.map((w) => w.kind), ['together', 'prepares']);
  assert.equal(lockRowsOf(db, first), 1, 'the branch whose commit failed keeps its key');
  assert.equal(participant.preparedList().prepared.map((p) => p.txId).includes(first), true);
});

test('a waiter already queued for the key is not overtaken: the batch takes the usual path', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 300 });
  addStock(f.db, 'a', 5);
  const first = txId();
  assert.equal((await f.one(prepare(first, [reserveOp('a', 1)]))).status, 'ok');
  const queued = txId();
  const waiting = f.one(prepare(queued, [reserveOp('a', 1)]));
  await new Promise((resolve) => setTimeout(resolve, 20));
  const writes = recordWrites(t);

  const late = txId();
  const response = await f.participant.handleBatch(batch(commit(first), prepare(late, [reserveOp('a', 1)])));

  assert.equal((await waiting).status, 'ok', 'the queued branch got the key first');
  assert.deepEqual(response.results.map((r) => [r.status, r.reason]), [['ok', undefined], ['no', 'LOCK_TIMEOUT']]);
  assert.deepEqual(writes[0], { kind: 'decisions', synchronous: NORMAL, carriesUnforced: false });
  assert.equal(countRows(f.db, 'txm_key_locks'), 1);
  assert.equal(lockRowsOf(f.db, queued), 1);
  assert.equal((await f.one(rollback(queued))).status, 'ok');
});

test('readers of one key go together, a writer of it in the same batch takes the usual path', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 100 });
  addStock(f.db, 'a', 5);
  const first = txId();
  assert.equal((await f.one(prepare(first, [reserveOp('a', 1)]))).status, 'ok');
  const writes = recordWrites(t);
  const peek = { op: 'peek', args: { keys: ['shared'] } };

  const readers = await f.participant.handleBatch(batch(commit(first), prepare(txId(), [peek]), prepare(txId(), [peek])));
  assert.deepEqual(readers.results.map((r) => r.status), ['ok', 'ok', 'ok']);
  assert.deepEqual(writes.map((w) => w.kind), ['together']);

  const second = txId();
  assert.equal((await f.one(prepare(second, [reserveOp('a', 1)]))).status, 'ok');
  writes.length = 0;
  const note = { op: 'note', args: { text: 'w', keys: ['x'] } };
  const mixed = await f.participant.handleBatch(batch(commit(second), prepare(txId(), [note]), prepare(txId(), [note])));
  // Two writers of one key: the second would wait for the first, so neither goes with the commit.
  assert.deepEqual(writes[0], { kind: 'decisions', synchronous: NORMAL, carriesUnforced: false });
  assert.deepEqual(mixed.results.map((r) => r.status)[0], 'ok');
});

test('a prepare whose key an undecided branch holds does not send its batch the long way: the others go with the commit, it is deferred at once and gets its vote when asked again', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 5_000 });
  addStock(f.db, 'a', 5);
  addStock(f.db, 'b', 5);
  addStock(f.db, 'x', 5);
  const [first, holder] = [txId(), txId()];
  assert.equal((await f.one(prepare(first, [reserveOp('a', 1)]))).status, 'ok');
  assert.equal((await f.one(prepare(holder, [reserveOp('x', 1)]))).status, 'ok');
  const writes = recordWrites(t);

  const [takesOver, free, waits] = [txId(), txId(), txId()];
  const response = await f.participant.handleBatch(
    batch(commit(first), prepare(takesOver, [reserveOp('a', 1)]), prepare(waits, [reserveOp('x', 1)]), prepare(free, [reserveOp('b', 1)])),
  );
  assert.deepEqual(
    response.results.map((r) => [r.status, r.reason]),
    [['ok', undefined], ['ok', undefined], ['error', 'PREPARE_DEFERRED'], ['ok', undefined]],
    'the waiting prepare is deferred at once, not after its lock wait',
  );
  assert.deepEqual(writes, [{ kind: 'together', synchronous: FULL, carriesUnforced: false }], 'the commit and the two free prepares in one forced transaction');
  assert.equal(lockRowsOf(f.db, takesOver), 1);
  assert.equal(lockRowsOf(f.db, free), 1);
  assert.equal(lockRowsOf(f.db, waits), 0, 'the deferred one holds nothing yet');

  // Its holder's outcome frees the key; the coordinator's next ask gets the vote.
  writes.length = 0;
  const again = await f.participant.handleBatch(batch(commit(holder), prepare(waits, [reserveOp('x', 1)])));
  assert.deepEqual(again.results.map((r) => r.status), ['ok', 'ok']);
  assert.equal(lockRowsOf(f.db, waits), 1);
  assert.deepEqual(stock(f.db, 'x'), { qty: 4, reserved: 1 });
  assert.deepEqual(f.calls.prepare.filter((c) => c.startsWith(waits)).length, 1, 'its prepare hook ran once');
});

test('a commit gets the arguments its prepare stored, even when the prepare hook changed the objects it was given (remembered branches)', async (t) => {
  const db = openTempDatabase(t);
  const seen: unknown[] = [];
  // parseArgs hands the request's own object to the hooks, and the prepare hook changes it.
  const sloppy = defineOperation<{ n: number }>({
    parseArgs: (args) => args as { n: number },
    lockKeys: () => ['k'],
    prepare: (_ctx, args) => {
      args.n = 99;
    },
    commit: (_ctx, args) => void seen.push(args.n),
    rollback: () => {},
  });
  const participant = createParticipant({ service: SERVICE, db, operations: { sloppy }, log: () => {} });
  t.after(() => participant.close());
  const [first, second] = [txId(), txId()];
  const op = () => ({ op: 'sloppy', args: { n: 1 } });
  assert.equal((await participant.handleBatch(batch(prepare(first, [op()])))).results[0]!.status, 'ok');
  // A mixed batch (outcome and prepare together), then an outcome alone: both read the remembered branches.
  assert.deepEqual((await participant.handleBatch(batch(commit(first), prepare(second, [op()])))).results.map((r) => r.status), ['ok', 'ok']);
  assert.equal((await participant.handleBatch(batch(commit(second)))).results[0]!.status, 'ok');
  assert.deepEqual(seen, [1, 1], 'each commit saw the stored arguments');
});
