/**
 * The decision record's `result` column: a result that repeats the record's other columns is stored as
 * {"derived":1} (with an abort's reason and details) and read back as the same result, key for key; any other
 * result is stored whole, as before.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import type { DecisionRecord } from './decision-log.ts';
import { SqliteDecisionLog } from './sqlite-decision-log.ts';

function openLog(t: TestContext): { file: string; log: SqliteDecisionLog } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-result-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'd.db');
  return { file, log: new SqliteDecisionLog(file) };
}

function rawResults(file: string): Record<string, string> {
  const db = new Database(file, { readonly: true });
  try {
    return Object.fromEntries((db.prepare('SELECT tx_id, result FROM decisions').all() as { tx_id: string; result: string }[]).map((r) => [r.tx_id, r.result]));
  } finally {
    db.close();
  }
}

/** A commit as TransactionManager records it: the result's keys in the order it answers with. */
const committed: DecisionRecord = {
  txId: '0-a-00000000000000c1',
  state: 'COMMITTING',
  participants: [
    { service: 'inventory', operations: [{ op: 'reserve', args: { sku: 's', qty: 1 } }], vote: 'yes' },
    { service: 'payment', operations: [{ op: 'charge', args: { account: 'a', amount: 3 } }], vote: 'yes' },
  ],
  result: { txId: '0-a-00000000000000c1', outcome: 'committed', participants: [{ service: 'inventory', vote: 'yes' }, { service: 'payment', vote: 'yes' }], durationMs: 7 },
  idempotencyKey: 'order:1',
  requestHash: 'h',
  createdAt: 1000,
  decidedAt: 1007,
};

/** A keyed abort: a no with its reason and details, and a branch cut short. */
const aborted: DecisionRecord = {
  txId: '0-a-00000000000000c2',
  state: 'ABORTING',
  participants: [
    { service: 'inventory', operations: [{ op: 'reserve' }], vote: 'no', reason: 'OUT_OF_STOCK', details: 'none left of "s"' },
    { service: 'payment', operations: [{ op: 'charge' }], vote: 'none', reason: 'TIMEOUT', unsent: true },
  ],
  result: {
    txId: '0-a-00000000000000c2',
    outcome: 'aborted',
    reason: 'OUT_OF_STOCK',
    participants: [{ service: 'inventory', vote: 'no', reason: 'OUT_OF_STOCK', details: 'none left of "s"' }, { service: 'payment', vote: 'none', reason: 'TIMEOUT' }],
    durationMs: 12,
    details: 'none left of "s"',
  },
  idempotencyKey: 'order:2',
  requestHash: 'h2',
  createdAt: 2000,
  decidedAt: 2012,
};

describe('the result column of a decision record', () => {
  it('stores a result that repeats the record as {"derived":1} and reads it back key for key, done or not', async (t) => {
    const { file, log } = openLog(t);
    await Promise.all([log.append(committed), log.append(aborted)]);
    for (const r of [committed, aborted]) {
      assert.equal(JSON.stringify(log.get(r.txId)?.result), JSON.stringify(r.result));
      assert.equal(JSON.stringify(log.getByIdempotencyKey(r.idempotencyKey!)?.result), JSON.stringify(r.result));
    }
    log.markDone(committed.txId, 'COMMITTED', 1100);
    await log.close();
    assert.deepEqual(rawResults(file), {
      [committed.txId]: '{"derived":1}',
      [aborted.txId]: '{"derived":1,"reason":"OUT_OF_STOCK","details":"none left of \\"s\\""}',
    });
    const again = new SqliteDecisionLog(file);
    t.after(() => void again.close());
    assert.equal(JSON.stringify(again.get(committed.txId)?.result), JSON.stringify(committed.result), 'a finished record reads the same');
    assert.equal(JSON.stringify(again.listUnfinished()[0]?.result), JSON.stringify(aborted.result));
  });

  it('stores whole a result that differs from the record in anything', async (t) => {
    const { file, log } = openLog(t);
    const variants: DecisionRecord[] = [
      { ...committed, txId: '0-a-00000000000000d1', result: { ...committed.result, txId: '0-a-00000000000000d1', durationMs: 99 } },
      { ...committed, txId: '0-a-00000000000000d2', result: { ...committed.result, txId: '0-a-00000000000000d2', participants: [{ service: 'inventory', vote: 'yes' }] } },
      { ...committed, txId: '0-a-00000000000000d3', result: { ...committed.result, txId: '0-a-00000000000000d3', outcome: 'aborted' } },
      { ...committed, txId: '0-a-00000000000000d4', result: { ...committed.result, txId: '0-a-00000000000000d4', extra: true } as DecisionRecord['result'] },
    ];
    for (const v of variants) await log.append(v);
    for (const v of variants) assert.deepEqual(log.get(v.txId)?.result, v.result);
    await log.close();
    const raw = rawResults(file);
    for (const v of variants) assert.deepEqual(JSON.parse(raw[v.txId]!), v.result);
  });
});
