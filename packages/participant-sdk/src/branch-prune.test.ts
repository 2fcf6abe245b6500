/**
 * Finished branch rows are pruned after a retention, and what keeps that safe: a late prepare is
 * refused by its deadline, a rollback after commit (a stale presumed-abort look-up) is a no-op.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { DEFAULT_BRANCH_RETENTION_MS, DEFAULT_TOMBSTONE_RETENTION_MS, minimumBranchRetentionMs, resolveBranchRetention } from './branch-retention.ts';
import { createParticipant } from './participant.ts';
import {
  SERVICE,
  addStock,
  batch,
  commit,
  countRows,
  inventoryOperations,
  newCalls,
  openTempDatabase,
  prepare,
  reserveOp,
  rollback,
  startParticipant,
  stock,
  txId,
} from './test-support.ts';

function participantWith(t: TestContext, options: { clockSkewAllowanceMs?: number; branchRetentionMs?: number } = {}) {
  const db = openTempDatabase(t);
  const calls = newCalls();
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, calls), log: () => {}, ...options });
  t.after(() => participant.close());
  const one = async (item: Parameters<typeof batch>[0]) => (await participant.handleBatch(batch(item))).results[0]!;
  return { db, calls, participant, one };
}

test('a rollback after commit changes nothing and is acknowledged, so a stale asker stops retrying', async (t) => {
  const f = startParticipant(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  assert.equal((await f.one(prepare(id, [reserveOp('apple', 2)]))).status, 'ok');
  assert.equal((await f.one(commit(id))).status, 'ok');
  const answer = await f.one(rollback(id));
  assert.equal(answer.status, 'ok');
  assert.equal(answer.reason, 'ALREADY_COMMITTED');
  assert.deepEqual(f.calls.rollback, [], 'no rollback hook ran');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 8, reserved: 0 }, 'the commit stands');
  assert.ok(f.logs.some((l) => l.event === 'rollback-after-commit-ignored' && l.level === 'error'), 'and it is logged as an error');
  assert.equal(f.participant.stats().rollbacksAfterCommit, 1, 'and counted');
});

test('finished branches older than the retention are pruned with any barrier rows an older SDK wrote; prepared ones never', async (t) => {
  const f = participantWith(t);
  addStock(f.db, 'apple', 100);
  const committed = txId();
  const rolledBackEarly = txId();
  const refused = txId();
  const held = txId();
  assert.equal((await f.one(prepare(committed, [reserveOp('apple', 1)]))).status, 'ok');
  assert.equal((await f.one(commit(committed))).status, 'ok');
  assert.equal((await f.one(rollback(rolledBackEarly))).status, 'ok');
  assert.equal((await f.one(prepare(refused, [reserveOp('pear', 1)]))).status, 'no');
  assert.equal((await f.one(prepare(held, [reserveOp('apple', 1)]))).status, 'ok');
  assert.equal(countRows(f.db, 'txm_branches'), 4);
  assert.equal(countRows(f.db, 'txm_barrier'), 0, 'the branch row is the barrier: no row per hook');
  // Barrier rows an SDK before stop 30 wrote for the same branches go with them.
  const oldBarrier = f.db.prepare(`INSERT INTO txm_barrier (tx_id, op_index, phase, at) VALUES (?, 0, ?, ?)`);
  for (const [id, phase] of [[committed, 'prepare'], [committed, 'commit'], [held, 'prepare']] as const) oldBarrier.run(id, phase, Date.now());

  assert.equal(f.participant.pruneFinishedBranches(), 0, 'nothing is older than the retention yet');
  const later = Date.now() + DEFAULT_BRANCH_RETENTION_MS + 1;
  assert.equal(f.participant.pruneFinishedBranches(later), 3);
  const left = f.db.prepare('SELECT tx_id, state FROM txm_branches').all() as { tx_id: string; state: string }[];
  assert.deepEqual(left, [{ tx_id: held, state: 'prepared' }], 'the prepared branch and its locks stay');
  assert.equal(countRows(f.db, 'txm_barrier'), 1, "only the held branch's old barrier row stays");
  assert.equal(countRows(f.db, 'txm_key_locks'), 1);
  assert.deepEqual(f.participant.preparedList().prepared.map((p) => p.txId), [held]);
  assert.equal((await f.one(commit(held))).status, 'ok', 'the held branch still commits');
});

test('a prepare that comes back after its rollback row was pruned is refused by its passed deadline', async (t) => {
  const f = participantWith(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  const deadline = Date.now() + 50;
  assert.equal((await f.one(rollback(id))).status, 'ok', 'rollback overtakes the prepare');
  assert.equal(f.participant.pruneFinishedBranches(Date.now() + DEFAULT_BRANCH_RETENTION_MS + 1), 1);
  assert.equal(countRows(f.db, 'txm_branches'), 0, 'the rolled-back row is forgotten');
  // The delayed prepare finally arrives, long after its deadline.
  const late = { ...prepare(id, [reserveOp('apple', 3)]), deadline: deadline - DEFAULT_BRANCH_RETENTION_MS };
  const answer = await f.one(late);
  assert.equal(answer.status, 'no');
  assert.equal(answer.reason, 'DEADLINE_PASSED');
  assert.deepEqual(f.calls.prepare, [], 'no business change');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 0 });
  assert.equal(countRows(f.db, 'txm_key_locks'), 0, 'no lock taken');
});

test('the clock-skew allowance lets a prepare just past its deadline run, and refuses it beyond', async (t) => {
  const f = participantWith(t, { clockSkewAllowanceMs: 5_000, branchRetentionMs: minimumBranchRetentionMs(5_000) + 1 });
  addStock(f.db, 'apple', 10);
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)], Date.now() - 1_000))).status, 'ok', 'within the allowance');
  const beyond = await f.one(prepare(txId(), [reserveOp('apple', 1)], Date.now() - 6_000));
  assert.equal(beyond.status, 'no');
  assert.equal(beyond.reason, 'DEADLINE_PASSED');
});

test('the retention must outlast the longest transaction plus the skew allowance', () => {
  assert.equal(resolveBranchRetention({}).retentionMs, DEFAULT_BRANCH_RETENTION_MS);
  assert.throws(() => resolveBranchRetention({ branchRetentionMs: 60_000 }), /branchRetentionMs must be more than 600000/);
  assert.throws(() => resolveBranchRetention({ clockSkewAllowanceMs: 200_000 }), /more than 1000000/, 'the default is too short for a large allowance');
  assert.throws(() => resolveBranchRetention({ clockSkewAllowanceMs: -1 }), TypeError);
  assert.equal(resolveBranchRetention({ clockSkewAllowanceMs: 200_000, branchRetentionMs: 1_000_001 }).retentionMs, 1_000_001);
});

test('a pruned committed branch answers a late commit and refuses a late rollback from its tombstone, until the tombstone ages out', async (t) => {
  const f = participantWith(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  assert.equal((await f.one(prepare(id, [reserveOp('apple', 2)]))).status, 'ok');
  assert.equal((await f.one(commit(id))).status, 'ok');
  const pruneAt = Date.now() + DEFAULT_BRANCH_RETENTION_MS + 1;
  assert.equal(f.participant.pruneFinishedBranches(pruneAt), 1);
  assert.equal(countRows(f.db, 'txm_branches'), 0, 'the row is gone');
  assert.equal(countRows(f.db, 'txm_tombstones'), 1, 'its tombstone stays');

  // A shard that was down past the retention re-sends the commit it never saw acknowledged.
  const late = await f.one(commit(id));
  assert.equal(late.status, 'ok', 'acknowledged from the proof, not refused as COMMIT_WITHOUT_PREPARE');
  const stale = await f.one(rollback(id));
  assert.equal(stale.status, 'ok');
  assert.equal(stale.reason, 'ALREADY_COMMITTED', 'a rollback of it is not applied');
  assert.equal(countRows(f.db, 'txm_branches'), 0, 'neither answer wrote a row');
  assert.equal(f.calls.commit.length, 1, 'the commit hook ran once');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 8, reserved: 0 });

  f.participant.pruneFinishedBranches(Date.now() + DEFAULT_TOMBSTONE_RETENTION_MS + 1);
  assert.equal(countRows(f.db, 'txm_tombstones'), 0, 'past its own retention the tombstone goes too');
  const forgotten = await f.one(commit(id));
  assert.equal(forgotten.status, 'error');
  assert.equal(forgotten.reason, 'TXM_COMMIT_WITHOUT_PREPARE', 'without proof the commit is refused, not assumed');
});

test('a tombstone still proves its commit to a participant opened after the prune (a look-up skips the tombstones only for ids newer than the newest one)', async (t) => {
  const f = participantWith(t);
  addStock(f.db, 'apple', 10);
  const id = txId();
  assert.equal((await f.one(prepare(id, [reserveOp('apple', 2)]))).status, 'ok');
  assert.equal((await f.one(commit(id))).status, 'ok');
  assert.equal(f.participant.pruneFinishedBranches(Date.now() + DEFAULT_BRANCH_RETENTION_MS + 1), 1);
  f.participant.close();

  // The restarted service knows of the tombstone only from the database.
  const calls = newCalls();
  const again = createParticipant({ service: SERVICE, db: f.db, operations: inventoryOperations(f.db, calls), log: () => {} });
  t.after(() => again.close());
  const late = (await again.handleBatch(batch(commit(id)))).results[0]!;
  assert.equal(late.status, 'ok', 'acknowledged from the tombstone');
  const stale = (await again.handleBatch(batch(rollback(id)))).results[0]!;
  assert.equal(stale.reason, 'ALREADY_COMMITTED');
  assert.deepEqual(calls, newCalls(), 'no hook ran');
  // A new transaction still prepares and commits (its look-up finds neither a row nor a tombstone).
  const fresh = txId();
  assert.equal((await again.handleBatch(batch(prepare(fresh, [reserveOp('apple', 1)])))).results[0]!.status, 'ok');
  assert.equal((await again.handleBatch(batch(commit(fresh)))).results[0]!.status, 'ok');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 7, reserved: 0 });
});

test('a rolled-back or refused branch leaves no tombstone; a tombstone retention shorter than the row retention is refused', async (t) => {
  const f = participantWith(t);
  assert.equal((await f.one(rollback(txId()))).status, 'ok');
  assert.equal((await f.one(prepare(txId(), [reserveOp('pear', 1)]))).status, 'no');
  assert.equal(f.participant.pruneFinishedBranches(Date.now() + DEFAULT_BRANCH_RETENTION_MS + 1), 2);
  assert.equal(countRows(f.db, 'txm_tombstones'), 0);
  assert.throws(() => resolveBranchRetention({ tombstoneRetentionMs: DEFAULT_BRANCH_RETENTION_MS - 1 }), /tombstoneRetentionMs must be at least branchRetentionMs/);
});
