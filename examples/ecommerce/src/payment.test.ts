import assert from 'node:assert/strict';
import type { JsonObject } from '@txmesh/protocol';
import { test } from 'node:test';
import { commit, getJson, openService, peek, prepare, rollback, summary, txId } from './test-support.ts';

test('payment charge: prepare holds money, commit takes it, rollback releases it', async (t) => {
  const payment = await openService(t, 'payment');
  const db = peek(t, payment);
  const account = (id: string) => db.prepare('SELECT balance, held FROM payment_accounts WHERE id = ?').get(id);
  const holds = (tx: string) => db.prepare('SELECT account, amount, status FROM payment_holds WHERE tx_id = ?').all(tx);

  const paid = txId();
  assert.equal((await prepare(payment, paid, [{ op: 'charge', args: { account: 'acct-1', amount: 30 } }])).status, 'ok');
  assert.deepEqual(account('acct-1'), { balance: 100, held: 30 });
  assert.deepEqual(holds(paid), [{ account: 'acct-1', amount: 30, status: 'held' }]);
  assert.deepEqual((await getJson(payment, '/accounts/acct-1')).body, { account: 'acct-1', balance: 100, held: 30, available: 70 });

  assert.equal((await commit(payment, paid)).status, 'ok');
  assert.deepEqual(account('acct-1'), { balance: 70, held: 0 });
  assert.deepEqual(holds(paid), [{ account: 'acct-1', amount: 30, status: 'committed' }]);

  const undone = txId();
  assert.equal((await prepare(payment, undone, [{ op: 'charge', args: { account: 'acct-2', amount: 100 } }])).status, 'ok');
  assert.deepEqual(account('acct-2'), { balance: 100, held: 100 });
  assert.equal((await rollback(payment, undone)).status, 'ok');
  assert.deepEqual(account('acct-2'), { balance: 100, held: 0 });
  assert.deepEqual(holds(undone), []);
  assert.deepEqual((await summary(payment)).committedTxIds, [paid]);
});

test('payment refuses INSUFFICIENT_FUNDS counting held money, UNKNOWN_ACCOUNT and BAD_ARGS', async (t) => {
  const payment = await openService(t, 'payment');
  const db = peek(t, payment);

  const tooMuch = await prepare(payment, txId(), [{ op: 'charge', args: { account: 'acct-1', amount: 101 } }]);
  assert.equal(tooMuch.status, 'no');
  assert.equal(tooMuch.reason, 'INSUFFICIENT_FUNDS');

  const split = await prepare(payment, txId(), [
    { op: 'charge', args: { account: 'acct-1', amount: 60 } },
    { op: 'charge', args: { account: 'acct-1', amount: 60 } },
  ]);
  assert.equal(split.status, 'no');
  assert.equal(split.reason, 'INSUFFICIENT_FUNDS');
  assert.deepEqual(db.prepare(`SELECT balance, held FROM payment_accounts WHERE id = 'acct-1'`).get(), { balance: 100, held: 0 });
  assert.equal(db.prepare('SELECT COUNT(*) FROM payment_holds').pluck().get(), 0);

  const unknown = await prepare(payment, txId(), [{ op: 'charge', args: { account: 'acct-404', amount: 1 } }]);
  assert.equal(unknown.status, 'no');
  assert.equal(unknown.reason, 'UNKNOWN_ACCOUNT');

  const badArgs: JsonObject[] = [{ account: 'acct-1', amount: -5 }, { account: 'acct-1', amount: 2.5 }, { account: '', amount: 5 }, { amount: 5 }];
  for (const args of badArgs) {
    const bad = await prepare(payment, txId(), [{ op: 'charge', args }]);
    assert.equal(bad.reason, 'BAD_ARGS', JSON.stringify(args));
  }
  assert.equal((await getJson(payment, '/accounts/acct-404')).status, 404);
  assert.equal((await summary(payment)).ok, true);
});
