/**
 * Compact answers on the coordinator's batch channel: a sidecar writes a plain ok as COMPACT_OK only for the item at
 * its place, and the coordinator reads it back as that item's ok while checking every full result as before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BranchAction, COMPACT_OK, ItemStatus, PROTOCOL_VERSION, compactBatchResponse, newTxId, validateBatchResponse, validateCompactBatchResponse, type BranchItem } from './index.ts';

const items: BranchItem[] = [
  { action: BranchAction.PREPARE, txId: newTxId(0), service: 'inventory', operations: [{ op: 'reserve' }] },
  { action: BranchAction.PREPARE, txId: newTxId(0), service: 'inventory', operations: [{ op: 'reserve' }] },
  { action: BranchAction.COMMIT, txId: newTxId(0), service: 'inventory' },
  { action: BranchAction.ROLLBACK, txId: newTxId(0), service: 'inventory' },
  { action: BranchAction.COMMIT, txId: newTxId(0), service: 'inventory' },
];
const full = {
  protocolVersion: PROTOCOL_VERSION,
  results: [
    { txId: items[0]!.txId, action: BranchAction.PREPARE, status: ItemStatus.OK },
    { txId: items[1]!.txId, action: BranchAction.PREPARE, status: ItemStatus.NO, reason: 'OUT_OF_STOCK', message: 'none left' },
    { txId: items[2]!.txId, action: BranchAction.COMMIT, status: ItemStatus.OK, message: 'applied earlier' },
    { txId: items[3]!.txId, action: BranchAction.COMMIT, status: ItemStatus.OK },
    { txId: items[4]!.txId, action: BranchAction.COMMIT, status: ItemStatus.OK },
  ],
  report: { at: 5, cpuPercent: 10 },
};

test('only a plain ok for the item at its place is compacted, and reading it back gives what the full answer gives', () => {
  const compact = compactBatchResponse(items, full) as { results: unknown[]; report: unknown };
  // A no, an ok with a message, and an ok naming another action than its item's stay objects.
  assert.deepEqual(compact.results, [COMPACT_OK, full.results[1], full.results[2], full.results[3], COMPACT_OK]);
  assert.deepEqual(compact.report, full.report);
  assert.deepEqual(validateCompactBatchResponse(compact, items), validateBatchResponse(full));
  // A full answer (a sidecar that does not compact) reads the same through the compact reader.
  assert.deepEqual(validateCompactBatchResponse(full, items), validateBatchResponse(full));
});

test('a compact answer that does not fit its request is refused with a code', () => {
  assert.throws(() => validateCompactBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [COMPACT_OK, COMPACT_OK] }, items.slice(0, 1)), {
    code: 'TXM_BAD_REQUEST',
    message: /results\[1\] is 1 \(ok\) for an item that was not sent/,
  });
  assert.throws(() => validateCompactBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [2] }, items), { code: 'TXM_BAD_REQUEST' });
  assert.throws(() => validateCompactBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: ['ok'] }, items), { code: 'TXM_BAD_REQUEST' });
  assert.throws(() => validateCompactBatchResponse({ protocolVersion: 2, results: [COMPACT_OK] }, items), { code: 'TXM_PROTOCOL_VERSION' });
});

test('what is not a batch answer is left as it is', () => {
  const refusal = { error: { code: 'TXM_BAD_REQUEST', message: 'no' } };
  assert.equal(compactBatchResponse(items, refusal), refusal);
  assert.equal(compactBatchResponse(undefined, full), full);
});
