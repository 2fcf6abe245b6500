/**
 * The connection settings the SQLite storage takes care of: the savepoint journal of a batch stays in memory
 * (a temporary file cost one write system call per page once a batch's journal passed 64 KiB), unless the
 * service chose where its temporary data goes; and an unforced write hands back the level the connection had.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createParticipant } from './participant.ts';
import { addStock, batch, commit, inventoryOperations, newCalls, openTempDatabase, prepare, reserveOp, SERVICE, txId } from './test-support.ts';

const DEFAULT = 0;
const FILE = 1;
const MEMORY = 2;
const NORMAL = 1;

const tempStore = (db: import('better-sqlite3').Database): number => db.pragma('temp_store', { simple: true }) as number;

test('temporary data goes to memory when the service left SQLite’s default', (t) => {
  const db = openTempDatabase(t);
  assert.equal(tempStore(db), DEFAULT);
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()), log: () => {} });
  t.after(() => participant.close());
  assert.equal(tempStore(db), MEMORY);
});

test('a temp_store the service chose stays', (t) => {
  const db = openTempDatabase(t);
  db.pragma('temp_store = FILE');
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()), log: () => {} });
  t.after(() => participant.close());
  assert.equal(tempStore(db), FILE);
});

test('an unforced outcome hands back the level the connection had when the participant was created', async (t) => {
  const db = openTempDatabase(t);
  db.pragma('synchronous = NORMAL');
  const participant = createParticipant({ service: SERVICE, db, operations: inventoryOperations(db, newCalls()), log: () => {} });
  t.after(() => participant.close());
  addStock(db, 'a', 5);
  addStock(db, 'b', 5);
  const first = txId();
  assert.equal((await participant.handleBatch(batch(prepare(first, [reserveOp('a', 1)])))).results[0]!.status, 'ok');
  const mixed = await participant.handleBatch(batch(commit(first), prepare(txId(), [reserveOp('b', 1)])));
  assert.deepEqual(mixed.results.map((r) => r.status), ['ok', 'ok']);
  assert.equal(db.pragma('synchronous', { simple: true }), NORMAL);
});
