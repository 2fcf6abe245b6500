import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BranchItem } from '@txmesh/protocol';
import { ParticipantSteps } from './steps.ts';
import { addStock, commit, openTempDatabase, prepare, reserveOp, startParticipant, stock, tempDatabasePath, txId } from './test-support.ts';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash-child.fixture.js');
/** Arms the crash points named in TXMESH_CRASH_AT (see @txmesh/lab's crash-on-step). */
const CRASH_PRELOAD = fileURLToPath(import.meta.resolve('@txmesh/lab/crash-on-step'));


function runChild(file: string, items: BranchItem[], crashAt?: string) {
  const env = { ...process.env };
  delete env.TXMESH_CRASH_AT;
  delete env.TXMESH_CRASH_AFTER;
  if (crashAt) env.TXMESH_CRASH_AT = crashAt;
  return spawnSync(process.execPath, ['--import', CRASH_PRELOAD, child, file, JSON.stringify(items)], { env, encoding: 'utf8', timeout: 30_000 });
}

test('a prepare is durable with its locks when the process dies right after it, before answering', async (t) => {
  const file = tempDatabasePath(t);
  const setup = openTempDatabase(t, file);
  setup.exec('CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0)');
  addStock(setup, 'apple', 10);
  setup.close();

  const id = txId();
  const crashed = runChild(file, [prepare(id, [reserveOp('apple', 4)])], ParticipantSteps.AFTER_PREPARE);
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
  assert.equal(crashed.stdout, '', 'no answer left the process');

  const f = startParticipant(t, { file, lockWaitMs: 30 });
  assert.deepEqual(f.participant.preparedList().prepared.map((p) => p.txId), [id]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 10, reserved: 4 });
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)]))).reason, 'LOCK_TIMEOUT');
  // The coordinator's retry of the prepare gets the yes the crash swallowed, without a second reservation.
  assert.equal((await f.one(prepare(id, [reserveOp('apple', 4)]))).status, 'ok');
  assert.deepEqual(f.calls.prepare, []);
  f.participant.close();
  f.db.close();

  const committed = runChild(file, [commit(id)], ParticipantSteps.AFTER_COMMIT);
  assert.equal(committed.signal, 'SIGKILL', committed.stderr);
  const again = runChild(file, [commit(id)]);
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout), [{ txId: id, action: 'commit', status: 'ok' }]);
  const check = openTempDatabase(t, file);
  assert.deepEqual(stock(check, 'apple'), { qty: 6, reserved: 0 }, 'committed exactly once');
  assert.equal((check.prepare('SELECT COUNT(*) AS n FROM txm_key_locks').get() as { n: number }).n, 0);
});

test('a batch that commits one branch and prepares the next on the same key, killed before answering: after the restart the new branch holds the key, the committed one nothing', async (t) => {
  const file = tempDatabasePath(t);
  const setup = openTempDatabase(t, file);
  setup.exec('CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0)');
  addStock(setup, 'apple', 10);
  setup.close();

  const [first, next] = [txId(), txId()];
  const prepared = runChild(file, [prepare(first, [reserveOp('apple', 2)])]);
  assert.equal(prepared.status, 0, prepared.stderr);
  // The outcome and the prepare go in one forced transaction (mixed-batch.ts); the process dies once it is durable.
  const crashed = runChild(file, [commit(first), prepare(next, [reserveOp('apple', 3)])], ParticipantSteps.AFTER_PREPARE);
  assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
  assert.equal(crashed.stdout, '', 'no answer left the process');

  const f = startParticipant(t, { file, lockWaitMs: 30 });
  assert.deepEqual(f.participant.preparedList().prepared.map((p) => p.txId), [next]);
  assert.deepEqual(f.db.prepare('SELECT tx_id, key, mode FROM txm_key_locks').all(), [{ tx_id: next, key: 'sku:apple', mode: 'exclusive' }]);
  assert.deepEqual(stock(f.db, 'apple'), { qty: 8, reserved: 3 }, 'the commit applied, the new reservation held');
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)]))).reason, 'LOCK_TIMEOUT', 'the restored key keeps others out');
  assert.equal((await f.one(commit(first))).status, 'ok', "the coordinator's resent commit is acknowledged without running again");
  assert.equal((await f.one(commit(next))).status, 'ok');
  assert.deepEqual(stock(f.db, 'apple'), { qty: 5, reserved: 0 });
  assert.deepEqual(f.calls.commit, [`${next}#0`], 'only the second commit ran here');
  assert.equal((await f.one(prepare(txId(), [reserveOp('apple', 1)]))).status, 'ok', 'and the key is free');
});
