import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LockManager, LockWaitError } from './lock-manager.ts';
import { LockMode, newTxId } from '@txmesh/protocol';
import {
  addStock,
  batch,
  commit,
  prepare,
  reserveOp,
  rollback,
  settledWithin,
  startParticipant,
  stock,
  tempDatabasePath,
  txId,
} from './test-support.ts';

const X = LockMode.EXCLUSIVE;
const writes = (keys: string[]) => keys.map((key) => ({ key, mode: X }));

test('lock manager: exclusive, re-entrant, FIFO, timeout and cancel leave the queue clean', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'T1', X, 100);
  await locks.acquire('k', 'T1', X, 100); // re-entrant
  const order: string[] = [];
  const t2 = locks.acquire('k', 'T2', X, 1000).then(() => order.push('T2'));
  const t3 = locks.acquire('k', 'T3', X, 1000).then(() => order.push('T3'));
  const t4 = locks.acquire('k', 'T4', X, 1000).catch((err: unknown) => (err as LockWaitError).failure);
  const t5 = locks.acquire('k', 'T5', X, 10).catch((err: unknown) => (err as LockWaitError).failure);
  assert.equal(await t5, 'timeout');
  locks.cancelWaits('T4');
  assert.equal(await t4, 'cancelled');
  locks.release('T1');
  await t2;
  assert.deepEqual(locks.holdersOf('k'), ['T2']);
  assert.deepEqual(order, ['T2']);
  locks.release('T2');
  await t3;
  assert.deepEqual(order, ['T2', 'T3']);
  locks.release('T3');
  assert.equal(locks.heldCount, 0);
});

test('lock manager: acquireAll takes keys in sorted order and keeps what it took on timeout', async () => {
  const locks = new LockManager();
  await locks.acquire('m', 'other', X, 10);
  await assert.rejects(locks.acquireAll(writes(['z', 'm', 'a']), 'T', 20), (err: unknown) => err instanceof LockWaitError && err.failure === 'timeout');
  assert.deepEqual(locks.keysHeldBy('T'), ['a'], 'a was taken before m, z never');
  locks.release('T');
  assert.deepEqual(locks.holdersOf('a'), []);
});

test('a conflicting prepare waits, then proceeds once the holder commits', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 2000 });
  addStock(f.db, 'apple', 10);
  const [t1, t2] = [txId(), txId()];
  assert.equal((await f.one(prepare(t1, [reserveOp('apple', 1)]))).status, 'ok');
  const waiting = f.one(prepare(t2, [reserveOp('apple', 2)]));
  assert.equal(await settledWithin(waiting, 50), 'pending');
  assert.deepEqual(f.calls.prepare, [`${t1}#0`], 'no hook runs before the lock is granted');
  assert.equal((await f.one(commit(t1))).status, 'ok');
  assert.equal((await waiting).status, 'ok');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 9, reserved: 2 });
});

test('a lock wait longer than lockWaitMs votes LOCK_TIMEOUT and leaves nothing locked', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 40 });
  addStock(f.db, 'apple', 10);
  addStock(f.db, 'banana', 10);
  const [holder, loser] = [txId(), txId()];
  assert.equal((await f.one(prepare(holder, [reserveOp('banana', 1)]))).status, 'ok');
  const started = Date.now();
  // apple sorts before banana: the loser takes apple, then times out on banana.
  const answer = await f.one(prepare(loser, [reserveOp('banana', 1), reserveOp('apple', 1)]));
  assert.equal(answer.status, 'no');
  assert.equal(answer.reason, 'LOCK_TIMEOUT');
  assert.ok(Date.now() - started >= 35);
  assert.deepEqual(f.calls.prepare, [`${holder}#0`]);
  const lockRows = f.db.prepare('SELECT key, tx_id FROM txm_key_locks').all();
  assert.deepEqual(lockRows, [{ key: 'sku:banana', tx_id: holder }]);
  // apple was released: a prepare on it does not wait.
  const quick = await settledWithin(f.one(prepare(txId(), [reserveOp('apple', 1)])), 30);
  assert.notEqual(quick, 'pending');
  assert.equal(quick === 'pending' ? undefined : quick.status, 'ok');
  // The no is durable: a duplicate answers the same even though banana is now free.
  assert.equal((await f.one(commit(holder))).status, 'ok');
  assert.equal((await f.one(prepare(loser, [reserveOp('banana', 1)]))).reason, 'LOCK_TIMEOUT');
});

test('waiters are served in arrival order', async (t) => {
  // Younger waiters would give up after lockGraceMs under wait-die; this test is about queue order only.
  const f = startParticipant(t, { lockWaitMs: 3000, lockGraceMs: 3000 });
  addStock(f.db, 'apple', 10);
  const [t1, t2, t3] = [txId(), txId(), txId()];
  assert.equal((await f.one(prepare(t1, [reserveOp('apple', 1)]))).status, 'ok');
  const second = f.one(prepare(t2, [reserveOp('apple', 1)]));
  await new Promise((resolve) => setTimeout(resolve, 5));
  const third = f.one(prepare(t3, [reserveOp('apple', 1)]));
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal((await f.one(commit(t1))).status, 'ok');
  assert.equal((await second).status, 'ok');
  assert.equal(await settledWithin(third, 50), 'pending', 't3 waits for t2');
  assert.equal((await f.one(rollback(t2))).status, 'ok');
  assert.equal((await third).status, 'ok');
  assert.deepEqual(f.calls.prepare, [`${t1}#0`, `${t2}#0`, `${t3}#0`]);
});

test('a rollback arriving while the prepare waits for locks turns the prepare into a no-op', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 5000 });
  addStock(f.db, 'apple', 10);
  addStock(f.db, 'banana', 10);
  const [holder, victim] = [txId(), txId()];
  assert.equal((await f.one(prepare(holder, [reserveOp('banana', 1)]))).status, 'ok');
  const waiting = f.one(prepare(victim, [reserveOp('apple', 1), reserveOp('banana', 1)]));
  assert.equal(await settledWithin(waiting, 30), 'pending');
  assert.equal((await f.one(rollback(victim))).status, 'ok');
  const answer = await settledWithin(waiting, 500);
  assert.notEqual(answer, 'pending', 'the wait ends with the rollback, not at lockWaitMs');
  assert.equal(answer === 'pending' ? undefined : answer.reason, 'ALREADY_ROLLED_BACK');
  assert.deepEqual(f.calls.prepare, [`${holder}#0`]);
  assert.deepEqual(f.db.prepare('SELECT tx_id FROM txm_key_locks').all(), [{ tx_id: holder }]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 });
  // apple, taken before the wait on banana, was given back.
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)]))).status, 'ok');
});

test('a rollback landing just as a waiting prepare is granted a key stops it taking its other keys', async (t) => {
  const f = startParticipant(t, { lockWaitMs: 5000 });
  addStock(f.db, 'apple', 10);
  addStock(f.db, 'banana', 10);
  const [appleHolder, bananaHolder] = [txId(), txId()];
  // Older than both holders, so wait-die lets it wait its whole budget on each key.
  const victim = newTxId(0, Date.now() - 60_000);
  assert.equal((await f.one(prepare(appleHolder, [reserveOp('apple', 1)]))).status, 'ok');
  assert.equal((await f.one(prepare(bananaHolder, [reserveOp('banana', 1)]))).status, 'ok');
  const waiting = f.one(prepare(victim, [reserveOp('apple', 1), reserveOp('banana', 1)]));
  assert.equal(await settledWithin(waiting, 30), 'pending');
  // The commit hands apple to the victim; the rollback in the same batch frees it again at once.
  const decided = await f.participant.handleBatch(batch(commit(appleHolder), rollback(victim)));
  assert.deepEqual(decided.results.map((r) => r.status), ['ok', 'ok']);
  const answer = await settledWithin(waiting, 500);
  assert.notEqual(answer, 'pending', 'the rolled-back prepare must not queue for banana for its whole budget');
  assert.equal(answer === 'pending' ? undefined : answer.reason, 'ALREADY_ROLLED_BACK');
  assert.deepEqual(f.calls.prepare, [`${appleHolder}#0`, `${bananaHolder}#0`]);
  assert.equal((await f.one(commit(bananaHolder))).status, 'ok');
  const next = f.one(prepare(txId(), [reserveOp('apple', 1), reserveOp('banana', 1)]));
  assert.equal((await settledWithin(next, 500)) === 'pending' ? 'pending' : 'answered', 'answered', 'no key is left to the rolled-back branch');
  assert.equal((await next).status, 'ok');
});

test('lock manager: acquireAll stops when its transaction is released between a grant and the next key', async () => {
  const locks = new LockManager();
  await locks.acquire('a', 'A', X, 100);
  await locks.acquire('b', 'B', X, 100);
  const all = locks.acquireAll(writes(['a', 'b']), 'T', 5_000).then(() => 'granted', (err: unknown) => (err as LockWaitError).failure);
  await new Promise((resolve) => setImmediate(resolve));
  locks.release('A'); // grants a to T; its continuation runs a turn later
  locks.cancelWaits('T');
  locks.release('T');
  assert.equal(await settledWithin(all, 200), 'cancelled');
  assert.deepEqual(locks.holdersOf('a'), []);
  assert.deepEqual(locks.keysHeldBy('T'), []);
  locks.release('B');
  assert.equal(locks.heldCount, 0, 'T never queued for b');
});

test('locks of prepared branches survive a restart and are released by the later commit', async (t) => {
  const file = tempDatabasePath(t);
  const before = startParticipant(t, { file, lockWaitMs: 40 });
  addStock(before.db, 'apple', 10);
  const held = txId();
  assert.equal((await before.one(prepare(held, [reserveOp('apple', 3)]))).status, 'ok');
  before.participant.close();
  before.db.close();

  const after = startParticipant(t, { file, lockWaitMs: 40 });
  assert.deepEqual(after.participant.preparedList().prepared.map((p) => p.txId), [held]);
  const blocked = await after.one(prepare(txId(), [reserveOp('apple', 1)]));
  assert.equal(blocked.status, 'no');
  assert.equal(blocked.reason, 'LOCK_TIMEOUT');
  assert.equal((await after.one(commit(held))).status, 'ok');
  assert.deepEqual(after.calls.commit, [`${held}#0`]);
  assert.deepEqual(stock(after.db, 'apple'), { qty: 7, reserved: 0 });
  assert.equal((await after.one(prepare(txId(), [reserveOp('apple', 1)]))).status, 'ok');
});

test('wait-die: an older transaction waits its budget, a younger one dies after the grace', async () => {
  const older = newTxId(0, 1_000_000);
  const younger = newTxId(0, 2_000_000);
  const locks = new LockManager();
  await locks.acquire('k', older, X, 100);
  const started = Date.now();
  const failure = await locks.acquire('k', younger, X, 5_000, 30).then(() => 'granted', (err: unknown) => (err as LockWaitError).failure);
  assert.equal(failure, 'conflict');
  assert.ok(Date.now() - started < 1_000, 'the younger one gave up after the grace, not the budget');
  locks.release(older);

  await locks.acquire('k', younger, X, 100);
  const olderWait = locks.acquire('k', older, X, 5_000, 10);
  setTimeout(() => locks.release(younger), 60); // longer than the grace: the older one must still get it
  await olderWait;
  assert.deepEqual(locks.holdersOf('k'), [older]);
});

test('wait-die breaks a deadlock across two services within the grace', async () => {
  // T1 (older) holds sku at inventory and wants the account at payment; T2 holds the account and wants the sku.
  const t1 = newTxId(0, 1_000_000);
  const t2 = newTxId(1, 1_000_001);
  const inventory = new LockManager();
  const payment = new LockManager();
  await inventory.acquire('sku:a', t1, X, 100);
  await payment.acquire('account:x', t2, X, 100);
  const started = Date.now();
  const t1Waits = payment.acquire('account:x', t1, X, 5_000, 50);
  const t2Waits = inventory.acquire('sku:a', t2, X, 5_000, 50).catch((err: unknown) => {
    // T2 dies and its transaction aborts: every service releases its locks.
    payment.release(t2);
    inventory.release(t2);
    return (err as LockWaitError).failure;
  });
  assert.equal(await t2Waits, 'conflict');
  await t1Waits;
  assert.deepEqual(payment.holdersOf('account:x'), [t1]);
  assert.ok(Date.now() - started < 1_000, 'resolved after the grace, far below the 5 s budget');
});
