import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BusinessRefusal, defineOperation } from './operation.ts';
import { createParticipant } from './participant.ts';
import {
  SERVICE,
  addStock,
  countRows,
  batch,
  commit,
  openTempDatabase,
  prepare,
  reserveOp,
  rollback,
  settledWithin,
  startParticipant,
  stock,
  txId,
} from './test-support.ts';

function locksOf(db: import('better-sqlite3').Database, id: string): string[] {
  return (db.prepare('SELECT key FROM txm_key_locks WHERE tx_id = ? ORDER BY key').all(id) as { key: string }[]).map((r) => r.key);
}

test('prepare yes, duplicate prepare answers yes again without re-running the hook, commit runs once', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  assert.deepEqual(await f.one(prepare(id, [reserveOp('apple', 3)])), { txId: id, action: 'prepare', status: 'ok' });
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 3 });
  assert.deepEqual(locksOf(f.db, id), ['sku:apple']);
  assert.deepEqual(f.participant.preparedList().prepared.map((p) => p.txId), [id]);

  assert.equal((await f.one(prepare(id, [reserveOp('apple', 3)]))).status, 'ok');
  assert.deepEqual(f.calls.prepare, [`${id}#0`]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 3 });

  assert.equal((await f.one(commit(id))).status, 'ok');
  assert.equal((await f.one(commit(id))).status, 'ok');
  assert.deepEqual(f.calls.commit, [`${id}#0`]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 7, reserved: 0 });
  assert.deepEqual(locksOf(f.db, id), []);
  assert.deepEqual(f.participant.preparedList().prepared, []);

  // A stray prepare after the commit answers the first vote and changes nothing.
  assert.equal((await f.one(prepare(id, [reserveOp('apple', 3)]))).status, 'ok');
  assert.deepEqual(f.calls.prepare, [`${id}#0`]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 7, reserved: 0 });
});

test('rollback after yes runs the rollback hook once; a later prepare votes no ALREADY_ROLLED_BACK', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  assert.equal((await f.one(prepare(id, [reserveOp('apple', 4)]))).status, 'ok');
  assert.equal((await f.one(rollback(id))).status, 'ok');
  assert.equal((await f.one(rollback(id))).status, 'ok');
  assert.deepEqual(f.calls.rollback, [`${id}#0`]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 });
  assert.deepEqual(locksOf(f.db, id), []);

  const again = await f.one(prepare(id, [reserveOp('apple', 4)]));
  assert.equal(again.status, 'no');
  assert.equal(again.reason, 'ALREADY_ROLLED_BACK');
  assert.deepEqual(f.calls.prepare, [`${id}#0`]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 });
  const commitAfter = await f.one(commit(id));
  assert.equal(commitAfter.status, 'error');
  assert.equal(commitAfter.reason, 'TXM_COMMIT_WITHOUT_PREPARE');
});

test('rollback before prepare is acked and recorded; the late prepare runs nothing and votes no', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  assert.deepEqual(await f.one(rollback(id)), { txId: id, action: 'rollback', status: 'ok' });
  assert.deepEqual(f.calls.rollback, []);
  const late = await f.one(prepare(id, [reserveOp('apple', 1)]));
  assert.equal(late.status, 'no');
  assert.equal(late.reason, 'ALREADY_ROLLED_BACK');
  assert.deepEqual(f.calls.prepare, []);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 });
  assert.deepEqual(locksOf(f.db, id), []);
  // The key is free for others.
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)]))).status, 'ok');
});

test('commit of a branch that never prepared yes is an error and applies nothing', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 1);
  const unknown = txId();
  const answer = await f.one(commit(unknown));
  assert.equal(answer.status, 'error');
  assert.equal(answer.reason, 'TXM_COMMIT_WITHOUT_PREPARE');

  const refused = txId();
  assert.equal((await f.one(prepare(refused, [reserveOp('apple', 5)]))).reason, 'OUT_OF_STOCK');
  assert.equal((await f.one(commit(refused))).reason, 'TXM_COMMIT_WITHOUT_PREPARE');
  assert.deepEqual(f.calls.commit, []);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 1, reserved: 0 });
  // Nothing was recorded for the unknown branch: a real prepare can still follow.
  assert.equal((await f.one(prepare(unknown, [reserveOp('apple', 1)]))).status, 'ok');
});

test('a refusal in any operation undoes the whole branch; the no is durable and rollback runs no hook', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  addStock(f.db, 'pear', 1);
  const id = txId();
  const ops = [reserveOp('apple', 2), reserveOp('pear', 2)];
  const first = await f.one(prepare(id, ops));
  assert.equal(first.status, 'no');
  assert.equal(first.reason, 'OUT_OF_STOCK');
  assert.equal(first.message, 'not enough pear');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 }, 'op 0 was undone with the branch');
  assert.deepEqual(locksOf(f.db, id), []);
  addStock(f.db, 'plum', 1); // unrelated change: the stored vote, not the data, decides the duplicate
  f.db.prepare('UPDATE stock SET qty = 100 WHERE sku = ?').run('pear');
  const duplicate = await f.one(prepare(id, ops));
  assert.deepEqual(duplicate, first);
  assert.deepEqual(f.calls.prepare, [`${id}#0`, `${id}#1`]);
  assert.equal((await f.one(rollback(id))).status, 'ok');
  assert.deepEqual(f.calls.rollback, []);
  assert.deepEqual(await f.one(prepare(id, ops)), first, 'after rollback the first no is still the answer');
  assert.deepEqual(f.participant.preparedList().prepared, []);
});

test('unexpected exception votes PREPARE_FAILED and is logged; unknown op and bad args vote no', async (t) => {
  const f = startParticipant(t);
  const crash = txId();
  const answer = await f.one(prepare(crash, [{ op: 'note', args: { text: 'x', fail: 'crash' } }]));
  assert.equal(answer.status, 'no');
  assert.equal(answer.reason, 'PREPARE_FAILED');
  assert.equal(countRows(f.db, 'notes'), 0);
  assert.ok(f.logs.some((l) => l.txId === crash && String(l.error).includes('disk gremlin')));

  const unknownOp = await f.one(prepare(txId(), [{ op: 'teleport', args: {} }]));
  assert.equal(unknownOp.status, 'no');
  assert.equal(unknownOp.reason, 'TXM_UNKNOWN_OPERATION');
  const inherited = await f.one(prepare(txId(), [{ op: 'toString', args: {} }]));
  assert.equal(inherited.reason, 'TXM_UNKNOWN_OPERATION');

  const badArgs = await f.one(prepare(txId(), [{ op: 'reserve', args: { sku: 'apple', qty: -1 } }]));
  assert.equal(badArgs.status, 'no');
  assert.equal(badArgs.reason, 'BAD_ARGS');
  assert.deepEqual(f.calls.prepare, [`${crash}#0`]);
});

test('a prepare whose deadline has passed votes DEADLINE_PASSED and runs nothing', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const answer = await f.one(prepare(txId(), [reserveOp('apple', 1)], Date.now() - 1));
  assert.equal(answer.status, 'no');
  assert.equal(answer.reason, 'DEADLINE_PASSED');
  assert.deepEqual(f.calls.prepare, []);
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)], Date.now() + 60_000))).status, 'ok');
});

test('duplicates interleaved in one batch: each hook runs once, answers in item order', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  addStock(f.db, 'pear', 10);
  addStock(f.db, 'plum', 10);
  const [a, b, c] = [txId(), txId(), txId()];
  assert.equal((await f.one(prepare(c, [reserveOp('plum', 1)]))).status, 'ok');

  const response = await f.participant.handleBatch(
    batch(
      prepare(a, [reserveOp('apple', 1)]),
      commit(c),
      prepare(a, [reserveOp('apple', 1)]),
      prepare(b, [reserveOp('pear', 1)]),
      rollback(b),
      commit(c),
      rollback(b),
    ),
  );
  assert.deepEqual(
    response.results.map((r) => [r.txId, r.action, r.status, r.reason]),
    [
      [a, 'prepare', 'ok', undefined],
      [c, 'commit', 'ok', undefined],
      [a, 'prepare', 'ok', undefined],
      // Decisions of a batch land before its prepares: b's rollback came first, so b runs nothing.
      [b, 'prepare', 'no', 'ALREADY_ROLLED_BACK'],
      [b, 'rollback', 'ok', undefined],
      [c, 'commit', 'ok', undefined],
      [b, 'rollback', 'ok', undefined],
    ],
  );
  assert.deepEqual(f.calls.prepare, [`${c}#0`, `${a}#0`]);
  assert.deepEqual(f.calls.commit, [`${c}#0`]);
  assert.deepEqual(f.calls.rollback, []);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 1 });
  assert.deepEqual(stock(f.db, 'pear'), { qty: 10, reserved: 0 });
  assert.deepEqual(stock(f.db, 'plum'), { qty: 9, reserved: 0 });
});

test('duplicate prepares in concurrent batches share one execution', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 2000 });
  addStock(f.db, 'apple', 10);
  const holder = txId();
  const id = txId();
  assert.equal((await f.one(prepare(holder, [reserveOp('apple', 1)]))).status, 'ok');
  // Both copies wait behind holder's lock; they must end as one prepare.
  const first = f.one(prepare(id, [reserveOp('apple', 2)]));
  const second = f.one(prepare(id, [reserveOp('apple', 2)]));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal((await f.one(commit(holder))).status, 'ok');
  assert.deepEqual([(await first).status, (await second).status], ['ok', 'ok']);
  assert.deepEqual(f.calls.prepare, [`${holder}#0`, `${id}#0`]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 9, reserved: 2 });
});

test('a failing commit hook answers error, keeps the branch prepared and locked, and a retry commits once', async (t) => {
  const db = openTempDatabase(t);
  db.exec('CREATE TABLE ledger (tx_id TEXT PRIMARY KEY)');
  let failCommit = true;
  const calls: string[] = [];
  const op = defineOperation<null>({
    parseArgs: () => null,
    lockKeys: () => ['ledger'],
    prepare: () => {},
    commit(ctx) {
      calls.push(ctx.txId);
      ctx.db.prepare('INSERT INTO ledger (tx_id) VALUES (?)').run(ctx.txId);
      if (failCommit) throw new Error('commit hiccup');
    },
    rollback: () => {},
  });
  const participant = createParticipant({ service: SERVICE, db, operations: { op }, lockWaitMs: 20, log: () => {} });
  t.after(() => participant.close());
  const id = txId();
  const run = async (item: ReturnType<typeof commit>) => (await participant.handleBatch(batch(item))).results[0]!;
  assert.equal((await run(prepare(id, [{ op: 'op' }]))).status, 'ok');
  const failed = await run(commit(id));
  assert.equal(failed.status, 'error');
  assert.equal(failed.reason, 'COMMIT_FAILED');
  assert.equal(countRows(db, 'ledger'), 0, 'the failed hook left nothing');
  assert.deepEqual(participant.preparedList().prepared.map((p) => p.txId), [id]);
  assert.equal((await run(prepare(txId(), [{ op: 'op' }]))).reason, 'LOCK_TIMEOUT', 'still locked');
  failCommit = false;
  assert.equal((await run(commit(id))).status, 'ok');
  assert.equal(countRows(db, 'ledger'), 1);
  assert.equal((await run(commit(id))).status, 'ok');
  assert.deepEqual(calls, [id, id]);
});

test('an async prepare hook is refused rather than run outside the transaction', async (t) => {
  const db = openTempDatabase(t);
  const op = defineOperation<null>({
    parseArgs: () => null,
    prepare: (async () => {}) as unknown as () => void,
    commit: () => {},
    rollback: () => {},
  });
  const participant = createParticipant({ service: SERVICE, db, operations: { op }, log: () => {} });
  t.after(() => participant.close());
  const answer = (await participant.handleBatch(batch(prepare(txId(), [{ op: 'op' }])))).results[0]!;
  assert.equal(answer.status, 'no');
  assert.equal(answer.reason, 'PREPARE_FAILED');
  assert.match(answer.message ?? '', /synchronous/);
});

test('an async hook that rejects later is logged, not left to crash the process as an unhandled rejection', async (t) => {
  const db = openTempDatabase(t);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  // Installing a listener keeps the runner alive whatever happens; the assertion below is the check.
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const logs: Record<string, unknown>[] = [];
  const op = defineOperation<null>({
    parseArgs: () => null,
    prepare: (async () => {
      throw new BusinessRefusal('OUT_OF_STOCK');
    }) as unknown as () => void,
    commit: () => {},
    rollback: () => {},
  });
  const participant = createParticipant({ service: SERVICE, db, operations: { op }, log: (e) => logs.push(e) });
  t.after(() => participant.close());
  const id = txId();
  const answer = (await participant.handleBatch(batch(prepare(id, [{ op: 'op' }])))).results[0]!;
  assert.equal(answer.reason, 'PREPARE_FAILED');
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(unhandled, []);
  assert.ok(logs.some((e) => e.event === 'async-hook-rejected' && e.txId === id));
});

test('an unreadable stored branch fails only its own item; the rest of the batch prepares and keeps no stray lock', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 200 });
  addStock(f.db, 'apple', 10);
  const [good, broken] = [txId(), txId()];
  f.db.prepare(`INSERT INTO txm_branches (tx_id, state, operations, prepared_at) VALUES (?, 'voted_no', '{not json', 1)`).run(broken);
  const response = await f.participant.handleBatch(batch(prepare(good, [reserveOp('apple', 1)]), prepare(broken, [reserveOp('apple', 1)])));
  assert.deepEqual(response.results.map((r) => [r.status, r.reason]), [['ok', undefined], ['error', 'TXM_INTERNAL']]);
  assert.ok(f.logs.some((e) => e.event === 'prepare-start-failed' && e.txId === broken));
  assert.equal((await f.one(commit(good))).status, 'ok');
  // Nothing of the batch is left behind: the key is free and a repeated prepare answers at once.
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)]))).status, 'ok');
  assert.equal((await settledWithin(f.one(prepare(good, [reserveOp('apple', 1)])), 500)) === 'pending', false);
});

test('items for another service are refused; BusinessRefusal keeps reason and message', async (t) => {
  const f = startParticipant(t);
  const answer = await f.one({ ...prepare(txId(), [reserveOp('apple', 1)]), service: 'payment' });
  assert.equal(answer.status, 'no');
  assert.equal(answer.reason, 'TXM_UNKNOWN_SERVICE');
  const refusal = new BusinessRefusal('OUT_OF_STOCK', 'only 2 left');
  assert.equal(refusal.reason, 'OUT_OF_STOCK');
  assert.equal(refusal.message, 'only 2 left');
  assert.ok(refusal instanceof Error);
});
