import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commit, countRows, peekOp, prepare, settledWithin, startParticipant, tempDatabasePath, txId, writeOp } from './test-support.ts';

const pairs = (edges: { waiter: string; holder: string }[]): string[] => edges.map((e) => `${e.waiter}->${e.holder}`).sort();

test('readers share a key across prepares; a writer and a later reader queue; a restart keeps the readers, the queue re-forms', async (t) => {
  const file = tempDatabasePath(t);
  const before = startParticipant(t, { file, lockWaitMs: 5_000 });
  const [r1, r2, w, r3] = [txId(), txId(), txId(), txId()];
  assert.equal((await before.one(prepare(r1, [peekOp('k')]))).status, 'ok');
  assert.equal((await before.one(prepare(r2, [peekOp('k')]))).status, 'ok', 'a second reader shares the key');
  const writer = before.one(prepare(w, [writeOp('k')]));
  const reader = before.one(prepare(r3, [peekOp('k')]));
  assert.equal(await settledWithin(writer, 50), 'pending', 'the writer waits for both readers');
  assert.equal(await settledWithin(reader, 20), 'pending', 'a reader behind the waiting writer queues too');
  assert.deepEqual(pairs(before.participant.waits().edges), [`${r3}->${w}`, `${w}->${r1}`, `${w}->${r2}`].sort());

  // The service goes down: waits end without a vote (the coordinator retries), prepared readers stay durable.
  before.participant.close();
  assert.equal((await writer).reason, 'TXM_SHUTTING_DOWN');
  assert.equal((await reader).reason, 'TXM_SHUTTING_DOWN');
  before.db.close();

  const after = startParticipant(t, { file, lockWaitMs: 5_000 });
  assert.deepEqual(after.participant.preparedList().prepared.map((p) => p.txId).sort(), [r1, r2].sort());
  const writerAgain = after.one(prepare(w, [writeOp('k')]));
  const readerAgain = after.one(prepare(r3, [peekOp('k')]));
  assert.equal(await settledWithin(writerAgain, 50), 'pending', 'the restored shared locks still keep the writer out');
  assert.deepEqual(pairs(after.participant.waits().edges), [`${r3}->${w}`, `${w}->${r1}`, `${w}->${r2}`].sort());
  assert.equal((await after.one(commit(r1))).status, 'ok');
  assert.equal(await settledWithin(writerAgain, 50), 'pending', 'one reader is still in');
  assert.equal((await after.one(commit(r2))).status, 'ok');
  assert.equal((await writerAgain).status, 'ok', 'the writer gets the key once both readers are gone');
  assert.equal(await settledWithin(readerAgain, 50), 'pending', 'the later reader waits for the writer');
  assert.equal((await after.one(commit(w))).status, 'ok');
  assert.equal((await readerAgain).status, 'ok');
  assert.deepEqual(after.participant.waits().edges, []);
});

test('a database whose locks earlier SDKs kept in their own tables (txm_key_locks keyed (key, tx_id), txm_locks) keeps them, in the branch rows from then on', async (t) => {
  const file = tempDatabasePath(t);
  const before = startParticipant(t, { file, lockWaitMs: 5_000 });
  const [reader, writer] = [txId(), txId()];
  assert.equal((await before.one(prepare(reader, [peekOp('a', 'b')]))).status, 'ok');
  assert.equal((await before.one(prepare(writer, [writeOp('c')]))).status, 'ok');
  before.participant.close();
  // The earlier layouts, rows kept and the branch rows without their keys: what a service upgraded in place opens.
  before.db.exec(`
    DROP VIEW txm_key_locks;
    UPDATE txm_branches SET locks = NULL;
    CREATE TABLE txm_key_locks (key TEXT NOT NULL, tx_id TEXT NOT NULL, mode TEXT NOT NULL CHECK (mode IN ('shared', 'exclusive')), PRIMARY KEY (key, tx_id)) WITHOUT ROWID;
    CREATE INDEX txm_key_locks_by_tx ON txm_key_locks (tx_id);
    INSERT INTO txm_key_locks (key, tx_id, mode) VALUES ('a', '${reader}', 'shared'), ('b', '${reader}', 'shared');
    CREATE TABLE txm_locks (key TEXT NOT NULL, tx_id TEXT NOT NULL, PRIMARY KEY (key));
    INSERT INTO txm_locks (key, tx_id) VALUES ('c', '${writer}');
  `);
  before.db.close();

  const after = startParticipant(t, { file, lockWaitMs: 5_000 });
  const objects = after.db.prepare(`SELECT type, name FROM sqlite_master WHERE name IN ('txm_key_locks', 'txm_key_locks_by_tx', 'txm_locks')`).all();
  assert.deepEqual(objects, [{ type: 'view', name: 'txm_key_locks' }], 'the old tables are gone; txm_key_locks is a view of the branch rows');
  const locks = after.db.prepare('SELECT tx_id, locks FROM txm_branches ORDER BY locks').all();
  assert.deepEqual(locks, [
    { tx_id: reader, locks: '[["a","shared"],["b","shared"]]' },
    { tx_id: writer, locks: '[["c","exclusive"]]' },
  ]);
  const rows = after.db.prepare('SELECT tx_id, key, mode FROM txm_key_locks ORDER BY key').all();
  assert.deepEqual(rows, [
    { tx_id: reader, key: 'a', mode: 'shared' },
    { tx_id: reader, key: 'b', mode: 'shared' },
    { tx_id: writer, key: 'c', mode: 'exclusive' },
  ]);
  const blocked = after.one(prepare(txId(), [writeOp('b')]));
  assert.equal(await settledWithin(blocked, 50), 'pending', 'the restored shared lock keeps a writer out');
  const alsoBlocked = after.one(prepare(txId(), [peekOp('c')]));
  assert.equal(await settledWithin(alsoBlocked, 50), 'pending', 'the restored exclusive lock keeps a reader out');
  assert.equal((await after.one(commit(reader))).status, 'ok');
  assert.equal((await blocked).status, 'ok');
  assert.equal((await after.one(commit(writer))).status, 'ok');
  assert.equal((await alsoBlocked).status, 'ok');
  assert.equal(countRows(after.db, 'txm_key_locks'), 2, 'the decided branches hold nothing; the two new ones hold their keys');
  assert.throws(() => after.db.exec(`INSERT INTO txm_key_locks (tx_id, key, mode) VALUES ('x', 'y', 'shared')`), /view/, 'an SDK that would write the old table fails');
});
