import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BranchAction, PROTOCOL_VERSION, type BranchItem } from '@txmesh/protocol';
import { BusinessRefusal, defineOperation } from './operation.ts';
import { createParticipant } from './participant.ts';
import { openTempDatabase, txId } from './test-support.ts';
import { VersionedRows } from './versioned-rows.ts';

function bank(t: import('node:test').TestContext) {
  const db = openTempDatabase(t);
  const rows = new VersionedRows<number>(db, 'accounts');
  rows.seed('a', 100);
  const debit = defineOperation<{ account: string; amount: number }>({
    parseArgs: (args) => args as { account: string; amount: number },
    writeKeys: (a) => [a.account],
    prepare(ctx, a) {
      rows.expect(ctx, a.account);
      const balance = rows.current(ctx, a.account)!;
      if (balance < a.amount) throw new BusinessRefusal('INSUFFICIENT_FUNDS');
      rows.stage(ctx, a.account, balance - a.amount);
    },
    commit: (ctx, a) => rows.apply(ctx, a.account),
    rollback: (ctx, a) => rows.drop(ctx, a.account),
  });
  const participant = createParticipant({ service: 'bank', db, operations: { debit }, resourceUsage: false, log: () => {} });
  t.after(() => participant.close());
  // A prepare carries its deadline, as the coordinator sends it (one without is refused).
  const one = async (item: Omit<BranchItem, 'service'>) => {
    const deadline = item.action === BranchAction.PREPARE ? { deadline: Date.now() + 5_000 } : {};
    return (await participant.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [{ ...item, service: 'bank', ...deadline }] })).results[0]!;
  };
  return { rows, one };
}

const debitOp = (amount: number, expectVersion?: number) => ({ op: 'debit', args: { account: 'a', amount }, ...(expectVersion !== undefined ? { expectVersion } : {}) });

test('versioned rows: a prepared write is invisible to reads until commit, then the version moves by one', async (t) => {
  const { rows, one } = bank(t);
  const id = txId();
  assert.equal((await one({ action: BranchAction.PREPARE, txId: id, operations: [debitOp(30)] })).status, 'ok');
  assert.deepEqual(rows.get('a'), { value: 100, version: 0 }, 'the tentative 70 is not what a reader sees');
  assert.equal((await one({ action: BranchAction.COMMIT, txId: id })).status, 'ok');
  assert.deepEqual(rows.get('a'), { value: 70, version: 1 });

  const rolled = txId();
  assert.equal((await one({ action: BranchAction.PREPARE, txId: rolled, operations: [debitOp(50)] })).status, 'ok');
  assert.equal((await one({ action: BranchAction.ROLLBACK, txId: rolled })).status, 'ok');
  assert.deepEqual(rows.get('a'), { value: 70, version: 1 }, 'a rolled-back write leaves value and version');
});

test('versioned rows: expectVersion votes VERSION_CONFLICT once the row moved, and passes at the current version', async (t) => {
  const { rows, one } = bank(t);
  const first = txId();
  assert.equal((await one({ action: BranchAction.PREPARE, txId: first, operations: [debitOp(10, 0)] })).status, 'ok');
  assert.equal((await one({ action: BranchAction.COMMIT, txId: first })).status, 'ok');
  const stale = await one({ action: BranchAction.PREPARE, txId: txId(), operations: [debitOp(10, 0)] });
  assert.equal(stale.status, 'no');
  assert.equal(stale.reason, 'VERSION_CONFLICT');
  assert.match(stale.message ?? '', /version 1/);
  assert.deepEqual(rows.get('a'), { value: 90, version: 1 }, 'the refused branch changed nothing');
  const fresh = txId();
  assert.equal((await one({ action: BranchAction.PREPARE, txId: fresh, operations: [debitOp(10, 1)] })).status, 'ok');
  assert.equal((await one({ action: BranchAction.COMMIT, txId: fresh })).status, 'ok');
  assert.deepEqual(rows.get('a'), { value: 80, version: 2 });
});

test('versioned rows: a table name must be a plain identifier', (t) => {
  const db = openTempDatabase(t);
  assert.throws(() => new VersionedRows(db, 'accounts; DROP TABLE x'), /plain SQL identifier/);
});
