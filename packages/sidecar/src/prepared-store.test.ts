import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { newTxId } from '@txmesh/protocol';
import { MemoryPreparedStore } from './memory-prepared-store.ts';
import type { PreparedRecord, PreparedStore } from './prepared-store.ts';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { SqlitePreparedStore, type StoreWriteEvent } from './sqlite-prepared-store.ts';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-sidecar-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every store write from now to the end of the test, with the synchronous level it ran at. */
function watchWrites(t: TestContext): StoreWriteEvent[] {
  const seen: StoreWriteEvent[] = [];
  const listener = (event: unknown): void => void seen.push(event as StoreWriteEvent);
  subscribe('txmesh:sidecar:store-write', listener);
  t.after(() => unsubscribe('txmesh:sidecar:store-write', listener));
  return seen;
}

function record(txId: string, preparedAt: number, op = 'reserve'): PreparedRecord {
  return { txId, service: 'inventory', operations: [{ op, args: { sku: 'A-1', qty: 2 } }], preparedAt };
}

const implementations: { name: string; open(t: TestContext): PreparedStore }[] = [
  { name: 'MemoryPreparedStore', open: () => new MemoryPreparedStore() },
  {
    name: 'SqlitePreparedStore',
    open: (t) => {
      const store = SqlitePreparedStore.forService(tempDir(t), 'inventory');
      t.after(() => store.close());
      return store;
    },
  },
];

for (const impl of implementations) {
  describe(`PreparedStore contract: ${impl.name}`, () => {
    it('puts, reads back, counts and lists oldest first', (t) => {
      const store = impl.open(t);
      const [a, b, c] = [newTxId(0), newTxId(1), newTxId(2)];
      store.put([record(b, 200), record(a, 100)]);
      store.put([record(c, 300)]);
      assert.equal(store.count(), 3);
      assert.deepEqual(store.get(a), record(a, 100));
      assert.deepEqual(store.list().map((r) => r.txId), [a, b, c]);
      assert.equal(store.get(newTxId(0)), undefined);
    });

    it('keeps the first record when the same txId is put again (retried prepare)', (t) => {
      const store = impl.open(t);
      const tx = newTxId(0);
      store.put([record(tx, 100, 'reserve')]);
      store.put([record(tx, 900, 'other')]);
      assert.equal(store.count(), 1);
      assert.deepEqual(store.get(tx), record(tx, 100, 'reserve'));
    });

    it('removes the named records and ignores unknown ids', (t) => {
      const store = impl.open(t);
      const [a, b] = [newTxId(0), newTxId(0)];
      store.put([record(a, 1), record(b, 2)]);
      store.remove([a, newTxId(3)]);
      store.remove([]);
      assert.deepEqual(store.list().map((r) => r.txId), [b]);
    });

    it('returns copies, so callers cannot change what is stored', (t) => {
      const store = impl.open(t);
      const tx = newTxId(0);
      const original = record(tx, 1);
      store.put([original]);
      original.operations[0]!.op = 'changed';
      const read = store.get(tx)!;
      read.operations.push({ op: 'extra' });
      assert.deepEqual(store.get(tx), record(tx, 1));
    });
  });
}

describe('SqlitePreparedStore durability', () => {
  it('persists records across close and reopen', (t) => {
    const dir = tempDir(t);
    const [a, b] = [newTxId(0), newTxId(1)];
    const first = SqlitePreparedStore.forService(dir, 'inventory');
    first.put([record(a, 10), record(b, 20)]);
    first.remove([b]);
    first.close();
    const second = SqlitePreparedStore.forService(dir, 'inventory');
    t.after(() => second.close());
    assert.deepEqual(second.list(), [record(a, 10)]);
    assert.equal(second.file, join(dir, 'sidecar-inventory.db'));
  });

  it('opens the file in WAL mode with synchronous = FULL', (t) => {
    const dir = tempDir(t);
    const store = SqlitePreparedStore.forService(dir, 'payment');
    t.after(() => store.close());
    const reader = new Database(store.file, { readonly: true });
    t.after(() => reader.close());
    assert.equal(reader.pragma('journal_mode', { simple: true }), 'wal');
    // synchronous is per connection: check the store's own connection.
    assert.equal(store.synchronousLevel(), 2);
  });

  it('counts one forced write per put of a whole batch; removals are written unforced before a read and leave synchronous = FULL behind', (t) => {
    const dir = tempDir(t);
    const store = SqlitePreparedStore.forService(dir, 'order');
    t.after(() => store.close());
    const ids = Array.from({ length: 50 }, (_, i) => newTxId(0, 1000 + i));
    store.put(ids.map((id, i) => record(id, i)));
    const levels = watchWrites(t);
    store.remove(ids.slice(0, 10));
    assert.deepEqual(levels, [], 'a removal waits for the next write');
    assert.equal(store.get(ids[0]!), undefined, 'a removed record is gone for get at once');
    assert.equal(store.count(), 40);
    assert.deepEqual(levels, [{ kind: 'remove', synchronous: 1, removes: 10 }], 'the removal ran with synchronous = NORMAL');
    assert.deepEqual(store.stats(), { forcedWrites: 1, unforcedWrites: 1, recordsPut: 50, recordsRemoved: 10 });
    assert.equal(store.synchronousLevel(), 2, 'the next yes vote is forced again');
  });

  it('deletes the pending removals in the next put\'s forced write: one write per batch, not two', (t) => {
    const dir = tempDir(t);
    const store = SqlitePreparedStore.forService(dir, 'order');
    t.after(() => store.close());
    const [previous, next] = [newTxId(0, 1000), newTxId(0, 2000)];
    store.put([record(previous, 1)]);
    const levels = watchWrites(t);
    store.remove([previous]);
    store.put([record(next, 2)]);
    assert.deepEqual(levels, [{ kind: 'put', synchronous: 2, removes: 1 }]);
    assert.deepEqual(store.stats(), { forcedWrites: 2, unforcedWrites: 0, recordsPut: 2, recordsRemoved: 1 });
    // On disk, not only hidden: another connection sees the file as the put left it.
    const reader = new Database(store.file, { readonly: true });
    t.after(() => reader.close());
    assert.deepEqual(reader.prepare('SELECT tx_id FROM prepared').all(), [{ tx_id: next }]);
  });

  it('writes removals no put carries once removalLingerMs passes, and those still pending at close', async (t) => {
    const dir = tempDir(t);
    const store = SqlitePreparedStore.forService(dir, 'order', { removalLingerMs: 20 });
    const [a, b] = [newTxId(0, 1000), newTxId(0, 2000)];
    store.put([record(a, 1), record(b, 2)]);
    const levels = watchWrites(t);
    store.remove([a]);
    const reader = new Database(store.file, { readonly: true });
    t.after(() => reader.close());
    const onDisk = (): unknown[] => reader.prepare('SELECT tx_id FROM prepared ORDER BY prepared_at').all().map((row) => (row as { tx_id: string }).tx_id);
    assert.deepEqual(onDisk(), [a, b]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(levels, [{ kind: 'remove', synchronous: 1, removes: 1 }]);
    assert.deepEqual(onDisk(), [b]);
    store.remove([b]);
    store.close();
    assert.deepEqual(onDisk(), []);
  });

  it('keeps a record put again after its removal (a retried prepare after its outcome was acknowledged)', (t) => {
    const dir = tempDir(t);
    const store = SqlitePreparedStore.forService(dir, 'order');
    t.after(() => store.close());
    const tx = newTxId(0, 1000);
    store.put([record(tx, 1)]);
    store.remove([tx]);
    store.put([record(tx, 5)]);
    assert.deepEqual(store.get(tx), record(tx, 5));
    assert.deepEqual(store.list().map((r) => r.txId), [tx]);
  });

  it('with forcePuts off writes the yes-vote records unforced too, and they are still there after reopening', (t) => {
    const dir = tempDir(t);
    const store = SqlitePreparedStore.forService(dir, 'shipping', { forcePuts: false });
    const levels = watchWrites(t);
    const id = newTxId(0, 5000);
    store.put([record(id, 1)]);
    assert.deepEqual(levels, [{ kind: 'put', synchronous: 1, removes: 0 }]);
    assert.deepEqual(store.stats(), { forcedWrites: 0, unforcedWrites: 1, recordsPut: 1, recordsRemoved: 0 });
    assert.equal(store.synchronousLevel(), 2);
    store.close();
    const reopened = SqlitePreparedStore.forService(dir, 'shipping');
    t.after(() => reopened.close());
    assert.deepEqual(reopened.list().map((r) => r.txId), [id]);
  });
});
