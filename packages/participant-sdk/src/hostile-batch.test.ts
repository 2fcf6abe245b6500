/**
 * A batch mixes many transactions: one branch's bad input must never decide another's vote, and a
 * prepare whose timing no coordinator would send is refused before it takes a lock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BranchAction, newTxId, type BranchItem, type JsonObject } from '@txmesh/protocol';
import { SERVICE, addStock, batch, countRows, prepare, reserveOp, startParticipant, stock, txId } from './test-support.ts';

function deeplyNested(levels: number): JsonObject {
  let value: JsonObject = { end: true };
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

test('a branch that cannot even be recorded fails alone; its neighbours in the batch vote as they should', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const good = txId();
  const refused = txId();
  const poisoned = txId();
  const response = await f.participant.handleBatch(
    batch(
      prepare(good, [reserveOp('apple', 2)]),
      prepare(refused, [reserveOp('pear', 1)]),
      prepare(poisoned, [{ op: 'reserve', args: { sku: 'plum', qty: 1, extra: deeplyNested(10_000) } }]),
    ),
  );
  const byTx = new Map(response.results.map((r) => [r.txId, r]));
  assert.equal(byTx.get(good)?.status, 'ok');
  assert.equal(byTx.get(refused)?.status, 'no');
  assert.equal(byTx.get(refused)?.reason, 'OUT_OF_STOCK');
  assert.equal(byTx.get(poisoned)?.status, 'error');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 2 }, 'only the good branch reserved');
  assert.equal(countRows(f.db, 'txm_key_locks'), 1, 'only the good branch holds a lock');
});

test('prepares without a deadline, with a deadline beyond the longest transaction, or with an implausible id are refused and lock nothing', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const now = Date.now();
  const noDeadline: BranchItem = { action: BranchAction.PREPARE, txId: txId(), service: SERVICE, operations: [reserveOp('apple', 1)] };
  const cases: { name: string; item: BranchItem; reason: string }[] = [
    { name: 'no deadline', item: noDeadline, reason: 'TXM_BAD_TIMEOUT' },
    { name: 'deadline an hour away', item: prepare(txId(), [reserveOp('apple', 1)], now + 3_600_000), reason: 'TXM_BAD_TIMEOUT' },
    { name: 'id from 1970 (the oldest for wait-die)', item: prepare(newTxId(0, 0), [reserveOp('apple', 1)], now + 1_000), reason: 'TXM_BAD_TIMEOUT' },
    { name: 'id from an hour ago', item: prepare(newTxId(0, now - 3_600_000), [reserveOp('apple', 1)], now - 3_600_000 + 500), reason: 'DEADLINE_PASSED' },
    { name: 'id from tomorrow', item: prepare(newTxId(0, now + 86_400_000), [reserveOp('apple', 1)], now + 86_400_000 + 500), reason: 'TXM_BAD_TX_ID' },
  ];
  for (const c of cases) {
    const answer = await f.one(c.item);
    assert.equal(answer.status, 'no', c.name);
    assert.equal(answer.reason, c.reason, c.name);
  }
  assert.equal(countRows(f.db, 'txm_key_locks'), 0);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 });
  assert.deepEqual(f.calls.prepare, []);
});
