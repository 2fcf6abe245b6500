/**
 * A SQLite prepare runs in one savepoint, not two (branch-rules.ts, guardedPrepareRule): when even its
 * refusal cannot be written, the branch answers an error alone and leaves nothing behind, its neighbours
 * in the same transaction prepare or refuse as they should, in a batch of prepares and in one with outcomes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OperationSpec } from '@txmesh/protocol';
import { batch, commit, countRows, prepare, startParticipant, txId, writeOp } from './test-support.ts';

const noteOp = (text: string, key: string, fail?: string): OperationSpec => ({ op: 'note', args: { text, keys: [key], ...(fail ? { fail } : {}) } });

/** A trigger that refuses the voted-no row of `txIdToBreak`: its refusal cannot be recorded. */
function breakRefusalOf(db: import('better-sqlite3').Database, txIdToBreak: string): void {
  db.exec(`CREATE TRIGGER IF NOT EXISTS refuse_voted_no BEFORE INSERT ON txm_branches
    WHEN NEW.state = 'voted_no' AND NEW.tx_id IN (SELECT tx_id FROM broken) BEGIN SELECT RAISE(ABORT, 'no refusal for you'); END`);
  db.exec('CREATE TABLE IF NOT EXISTS broken (tx_id TEXT PRIMARY KEY)');
  db.prepare('INSERT INTO broken (tx_id) VALUES (?)').run(txIdToBreak);
}

for (const withOutcomes of [false, true]) {
  test(`a prepare whose refusal cannot be written answers an error and leaves nothing; its neighbours vote (${withOutcomes ? 'with outcomes in the batch' : 'prepares only'})`, async (t) => {
    const f = startParticipant(t);
    const earlier = txId();
    if (withOutcomes) assert.equal((await f.one(prepare(earlier, [writeOp('k0')]))).status, 'ok');
    const [before, broken, refused, after] = [txId(), txId(), txId(), txId()];
    f.db.exec('CREATE TABLE IF NOT EXISTS broken (tx_id TEXT PRIMARY KEY)');
    breakRefusalOf(f.db, broken);
    const notesBefore = countRows(f.db, 'notes');
    const items = [
      ...(withOutcomes ? [commit(earlier)] : []),
      prepare(before, [noteOp('a', 'k1')]),
      prepare(broken, [noteOp('b', 'k2', 'refuse')]),
      prepare(refused, [noteOp('c', 'k3', 'refuse')]),
      prepare(after, [noteOp('d', 'k4')]),
    ];
    const response = await f.participant.handleBatch(batch(...items));
    const byTx = new Map(response.results.map((r) => [r.txId, r]));
    assert.deepEqual(
      [before, broken, refused, after].map((id) => [byTx.get(id)?.status, byTx.get(id)?.reason]),
      [['ok', undefined], ['error', 'TXM_INTERNAL'], ['no', 'NOTE_REFUSED'], ['ok', undefined]],
    );
    if (withOutcomes) assert.equal(byTx.get(earlier)?.status, 'ok');
    const notes = f.db.prepare('SELECT tx_id FROM notes ORDER BY rowid').pluck().all() as string[];
    assert.deepEqual(notes.slice(notesBefore), [before, after], 'the failed and the refused branch wrote no note');
    const states = f.db.prepare('SELECT tx_id, state FROM txm_branches WHERE tx_id IN (?, ?, ?, ?)').all(before, broken, refused, after) as { tx_id: string; state: string }[];
    assert.deepEqual(new Map(states.map((s) => [s.tx_id, s.state])), new Map([[before, 'prepared'], [refused, 'voted_no'], [after, 'prepared']]), 'no row of the failed branch');
    assert.ok(f.logs.some((l) => l.event === 'prepare-item-failed' && l.txId === broken));
    // Its keys are free: the same key prepares at once for another branch.
    assert.equal((await f.one(prepare(txId(), [noteOp('e', 'k2')]))).status, 'ok');
  });
}
