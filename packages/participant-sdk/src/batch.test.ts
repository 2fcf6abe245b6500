import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { newTxId } from '@txmesh/protocol';
import { openParticipantDatabase } from './database.ts';
import { createParticipant } from './participant.ts';
import {
  SERVICE,
  batch,
  commit,
  countRows,
  inventoryOperations,
  newCalls,
  openTempDatabase,
  prepare,
  rollback,
  tempDatabasePath,
  txId,
} from './test-support.ts';

/** Counts outermost write transactions run through db.transaction (nested ones are savepoints). */
function countTransactions(db: Database.Database): { commits: number } {
  const counter = { commits: 0 };
  const original = db.transaction.bind(db);
  const counted = <F extends (...args: never[]) => unknown>(run: F) =>
    ((...args: Parameters<F>) => {
      const outermost = !db.inTransaction;
      const value = run(...args);
      if (outermost) counter.commits += 1;
      return value;
    }) as F;
  db.transaction = ((fn: (...args: never[]) => unknown) => {
    const tx = original(fn);
    return Object.assign(counted(tx), {
      deferred: counted(tx.deferred),
      immediate: counted(tx.immediate),
      exclusive: counted(tx.exclusive),
      default: counted(tx.default),
    });
  }) as typeof db.transaction;
  return counter;
}

const note = (text: string, keys: string[], fail?: string) => ({ op: 'note', args: { text, keys, ...(fail ? { fail } : {}) } });

test('one batch of N prepares is one SQLite write transaction; a refusal undoes only its own branch', async (t) => {
  const file = tempDatabasePath(t);
  const db = openTempDatabase(t, file);
  const reader = openParticipantDatabase(file);
  t.after(() => reader.close());
  const calls = newCalls();
  const operations = inventoryOperations(db, calls);
  // Every hook looks at the database from another connection: nothing of the batch may be visible
  // there until the single commit at the end.
  const seenByReader: number[] = [];
  const notePrepare = operations.note!.prepare.bind(operations.note);
  operations.note!.prepare = (ctx, args) => {
    seenByReader.push(countRows(reader, 'notes'));
    notePrepare(ctx, args);
  };
  const counter = countTransactions(db);
  const participant = createParticipant({ service: SERVICE, db, operations, log: () => {} });
  t.after(() => participant.close());
  // Opening wrote the schema in a transaction of its own; only the batch's are counted.
  counter.commits = 0;
  const versionBefore = reader.pragma('data_version', { simple: true });

  const ids = Array.from({ length: 8 }, () => txId());
  const items = ids.map((id, i) => prepare(id, [note(`n${i}`, [`k${i}`], i === 3 ? 'refuse' : i === 5 ? 'crash' : undefined)]));
  const response = await participant.handleBatch(batch(...items));

  assert.deepEqual(
    response.results.map((r) => r.status),
    ['ok', 'ok', 'ok', 'no', 'ok', 'no', 'ok', 'ok'],
  );
  assert.equal(response.results[3]!.reason, 'NOTE_REFUSED');
  assert.equal(response.results[5]!.reason, 'PREPARE_FAILED');
  assert.equal(counter.commits, 1, 'one write transaction for the whole batch');
  assert.deepEqual(seenByReader, [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.notEqual(reader.pragma('data_version', { simple: true }), versionBefore);
  // Durable and visible to another connection: six notes, six prepared branches, six lock rows.
  assert.deepEqual(
    (reader.prepare('SELECT text FROM notes ORDER BY text').all() as { text: string }[]).map((r) => r.text),
    ['n0', 'n1', 'n2', 'n4', 'n6', 'n7'],
  );
  assert.equal(countRows(reader, 'txm_key_locks'), 6);
  assert.deepEqual(
    (reader.prepare(`SELECT tx_id, state FROM txm_branches ORDER BY state`).all() as { state: string }[]).map((r) => r.state).sort(),
    ['prepared', 'prepared', 'prepared', 'prepared', 'prepared', 'prepared', 'voted_no', 'voted_no'],
  );

  // The decisions of a batch are one transaction too.
  const before = counter.commits;
  const decided = await participant.handleBatch(batch(...ids.map((id) => commit(id))));
  assert.equal(counter.commits - before, 1);
  assert.deepEqual(
    decided.results.map((r) => r.reason ?? r.status),
    ['ok', 'ok', 'ok', 'TXM_COMMIT_WITHOUT_PREPARE', 'ok', 'TXM_COMMIT_WITHOUT_PREPARE', 'ok', 'ok'],
  );
  assert.equal(countRows(reader, 'txm_key_locks'), 0);
  assert.equal(calls.commit.length, 6);
});

test('a branch stuck on a lock held inside the same batch does not hold back the others', async (t) => {
  const db = openTempDatabase(t);
  const calls = newCalls();
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, calls), lockWaitMs: 300, log: () => {} });
  t.after(() => participant.close());
  const [a, b, c] = [txId(), txId(), txId()];
  const started = Date.now();
  // b refuses and frees "shared" after the first transaction; c then gets it in a second one.
  const pending = participant.handleBatch(
    batch(prepare(a, [note('a', ['x'])]), prepare(b, [note('b', ['shared'], 'refuse')]), prepare(c, [note('c', ['shared'])])),
  );
  const response = await pending;
  assert.deepEqual(
    response.results.map((r) => r.status),
    ['ok', 'no', 'ok'],
  );
  assert.ok(Date.now() - started < 250, 'c did not wait for its lock timeout');
  assert.deepEqual(participant.preparedList().prepared.map((p) => p.txId).sort(), [a, c].sort());
});

test('a prepare waiting for a key that a branch of its own batch holds prepared is deferred, keeps waiting, and the next ask gets its vote', async (t) => {
  const db = openTempDatabase(t);
  const calls = newCalls();
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, calls), lockWaitMs: 3_000, log: () => {} });
  t.after(() => participant.close());
  // `older` may wait its whole budget, but the holder's commit cannot arrive before this batch answers:
  // waiting inside the batch would delay every vote of the batch and then fail. It is answered "deferred".
  const older = newTxId(0, Date.now() - 1_000);
  const younger = txId();
  const started = Date.now();
  const response = await participant.handleBatch(batch(prepare(younger, [note('y', ['shared'])]), prepare(older, [note('o', ['shared'])])));
  assert.deepEqual(response.results.map((r) => [r.status, r.reason]), [['ok', undefined], ['error', 'PREPARE_DEFERRED']]);
  assert.ok(Date.now() - started < 1_000, `answered after ${Date.now() - started} ms, not after the 3 s lock budget`);
  assert.deepEqual(participant.preparedList().prepared.map((p) => p.txId), [younger]);

  // The coordinator asks again; that ask waits for the lock, which the holder's commit frees.
  const again = participant.handleBatch(batch(prepare(older, [note('o', ['shared'])])));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(participant.preparedList().prepared.map((p) => p.txId), [younger], 'still waiting while the holder is prepared');
  const committed = await participant.handleBatch(batch(commit(younger)));
  assert.equal(committed.results[0]?.status, 'ok');
  assert.deepEqual((await again).results.map((r) => [r.status, r.reason]), [['ok', undefined]]);
  assert.deepEqual(participant.preparedList().prepared.map((p) => p.txId), [older]);
  assert.equal(calls.prepare.filter((c) => c.startsWith(older)).length, 1, 'prepared once, for both asks');
});

test('a vote never waits for another branch\'s lock wait: the waiting prepare is deferred as soon as a neighbour has its answer', async (t) => {
  const db = openTempDatabase(t);
  const calls = newCalls();
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, calls), lockWaitMs: 3_000, log: () => {} });
  t.after(() => participant.close());
  const [holder, free, waiter] = [txId(), txId(), txId()];
  await participant.handleBatch(batch(prepare(holder, [note('h', ['k'])])));
  // `waiter` waits for a holder prepared by an earlier batch; `free`'s yes must not wait with it (a vote
  // held back behind a lock wait is a wait-for edge of its own, and with it cycles no lock shows).
  const response = await participant.handleBatch(batch(prepare(free, [note('f', ['other'])]), prepare(waiter, [note('w', ['k'])])));
  assert.deepEqual(response.results.map((r) => [r.status, r.reason]), [['ok', undefined], ['error', 'PREPARE_DEFERRED']]);
  const again = participant.handleBatch(batch(prepare(waiter, [note('w', ['k'])])));
  await participant.handleBatch(batch(commit(holder)));
  assert.deepEqual((await again).results.map((r) => r.status), ['ok']);
});

test('a deferred prepare whose rollback arrives before it gets its key runs nothing', async (t) => {
  const db = openTempDatabase(t);
  const calls = newCalls();
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, calls), lockWaitMs: 3_000, log: () => {} });
  t.after(() => participant.close());
  const [holder, waiter] = [txId(), txId()];
  const first = await participant.handleBatch(batch(prepare(holder, [note('h', ['k'])]), prepare(waiter, [note('w', ['k'])])));
  assert.deepEqual(first.results.map((r) => r.reason), [undefined, 'PREPARE_DEFERRED']);
  // The coordinator gave up on the transaction and rolls the deferred branch back; its wait ends.
  const rolledBack = await participant.handleBatch(batch(rollback(waiter)));
  assert.equal(rolledBack.results[0]?.status, 'ok');
  await participant.handleBatch(batch(commit(holder)));
  const late = await participant.handleBatch(batch(prepare(waiter, [note('w', ['k'])])));
  assert.deepEqual(late.results.map((r) => [r.status, r.reason]), [['no', 'ALREADY_ROLLED_BACK']]);
  assert.deepEqual(participant.preparedList().prepared, []);
  assert.equal(calls.prepare.filter((c) => c.startsWith(waiter)).length, 0, 'the rolled-back branch ran no hook');
});

test('a BusinessRefusal whose reason is free text votes PREPARE_FAILED: an address never becomes a reason', async (t) => {
  const db = openTempDatabase(t);
  const logs: Record<string, unknown>[] = [];
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()), log: (entry) => logs.push(entry) });
  t.after(() => participant.close());
  const id = txId();
  const [answer] = (await participant.handleBatch(batch(prepare(id, [note('n', ['k'], 'free-text')])))).results;
  assert.equal(answer?.status, 'no');
  assert.equal(answer?.reason, 'PREPARE_FAILED');
  assert.match(answer?.message ?? '', /must be a token/);
  assert.equal(countRows(db, 'notes'), 0, 'the branch changed nothing');
  assert.equal(logs.filter((l) => l.event === 'prepare-failed').length, 1, 'the developer sees it in the log');
});
