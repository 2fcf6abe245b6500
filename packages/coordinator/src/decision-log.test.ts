/**
 * One suite, run against every DecisionLog implementation, so they cannot drift apart.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DecisionLog, DecisionRecord, LogWrite } from './decision-log.ts';
import { MemoryDecisionLog, MemoryLogStore } from './memory-decision-log.ts';
import { SqliteDecisionLog, logWriteChannel, type LogWriteEvent } from './sqlite-decision-log.ts';

interface LogFactory {
  /** Opens a log on fresh storage; reopen() opens the same storage again, as a restarted process would. */
  create(): { log: DecisionLog; reopen(): DecisionLog; cleanup(): void };
}

function record(txId: string, overrides: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    txId,
    state: 'COMMITTING',
    participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a', qty: 1 } }], vote: 'yes' }],
    result: { txId, outcome: 'committed', participants: [{ service: 'inventory', vote: 'yes' }], durationMs: 3 },
    createdAt: 1000,
    decidedAt: 1001,
    ...overrides,
  };
}

function describeDecisionLog(name: string, factory: LogFactory): void {
  describe(`DecisionLog contract: ${name}`, () => {
    it('appends made in one event-loop turn share one flush, and each resolves when durable', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      const before = log.stats().flushes;
      await Promise.all([log.append(record('0-a-0000000000000001')), log.append(record('0-a-0000000000000002')), log.append(record('0-a-0000000000000003'))]);
      assert.equal(log.stats().flushes - before, 1);
      assert.equal(log.stats().records, 3);
      await log.append(record('0-a-0000000000000004'));
      assert.equal(log.stats().flushes - before, 2);
      assert.equal(log.get('0-a-0000000000000002')?.state, 'COMMITTING');
      await log.close();
    });

    it('a record is not readable before its flush and is readable after the append resolves', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      const pending = log.append(record('0-a-0000000000000010'));
      assert.equal(log.get('0-a-0000000000000010'), undefined);
      await pending;
      assert.deepEqual(log.get('0-a-0000000000000010'), record('0-a-0000000000000010'));
      await log.close();
    });

    it('finds records by idempotency key and keeps the request hash', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      await log.append(record('0-a-0000000000000020', { idempotencyKey: 'order-7', requestHash: 'h1', state: 'ABORTING' }));
      const found = log.getByIdempotencyKey('order-7');
      assert.equal(found?.txId, '0-a-0000000000000020');
      assert.equal(found?.requestHash, 'h1');
      assert.equal(log.getByIdempotencyKey('order-8'), undefined);
      // Two records under one key: the one decided first answers.
      await log.append(record('0-a-0000000000000021', { idempotencyKey: 'order-9', requestHash: 'first', decidedAt: 1001 }));
      await log.append(record('0-a-0000000000000022', { idempotencyKey: 'order-9', requestHash: 'second', decidedAt: 5000 }));
      assert.equal(log.getByIdempotencyKey('order-9')?.requestHash, 'first');
      await log.close();
    });

    it('lists unfinished records until they are marked done, and done marks are written without being awaited', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      await Promise.all([
        log.append(record('0-a-0000000000000030', { decidedAt: 5 })),
        log.append(record('0-a-0000000000000031', { state: 'ABORTING', decidedAt: 4 })),
      ]);
      assert.deepEqual(log.listUnfinished().map((r) => r.txId), ['0-a-0000000000000031', '0-a-0000000000000030']);
      log.markDone('0-a-0000000000000030', 'COMMITTED', 99);
      // The done mark rides along with the next forced group.
      await log.append(record('0-a-0000000000000032'));
      assert.deepEqual(log.listUnfinished().map((r) => r.txId), ['0-a-0000000000000031', '0-a-0000000000000032']);
      const done = log.get('0-a-0000000000000030');
      assert.equal(done?.state, 'COMMITTED');
      assert.equal(done?.doneAt, 99);
      await log.close();
    });

    it('an unforced write alone is still flushed soon', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      log.saveService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:9', registeredAt: 7 });
      const deadline = Date.now() + 2000;
      while (log.listServices().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(log.listServices(), [{ service: 'payment', sidecarUrl: 'http://127.0.0.1:9', registeredAt: 7 }]);
      await log.close();
    });

    it('everything written survives a reopen, including what was queued at close', async (t) => {
      const { log, reopen, cleanup } = factory.create();
      t.after(cleanup);
      await log.append(record('0-a-0000000000000040', { idempotencyKey: 'k', requestHash: 'h' }));
      log.saveService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:1', registeredAt: 1 });
      log.saveService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:2', registeredAt: 2 });
      log.markDone('0-a-0000000000000040', 'COMMITTED', 50);
      await log.close();
      await assert.rejects(log.append(record('0-a-0000000000000041')));
      const again = reopen();
      assert.equal(again.get('0-a-0000000000000040')?.state, 'COMMITTED');
      assert.equal(again.getByIdempotencyKey('k')?.txId, '0-a-0000000000000040');
      assert.deepEqual(again.listServices(), [{ service: 'inventory', sidecarUrl: 'http://127.0.0.1:2', registeredAt: 2 }]);
      assert.deepEqual(again.listUnfinished(), []);
      await again.close();
    });

    it('a forgotten service leaves the table, durably; registering it again brings it back', async (t) => {
      const { log, reopen, cleanup } = factory.create();
      t.after(cleanup);
      log.saveService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:1', registeredAt: 1 });
      log.saveService({ service: 'junk', sidecarUrl: 'http://127.0.0.1:2', registeredAt: 2 });
      log.forgetService('junk');
      log.forgetService('never-registered');
      log.saveService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:3', registeredAt: 3 });
      log.forgetService('payment');
      log.saveService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:4', registeredAt: 4 });
      await log.close();
      const again = reopen();
      assert.deepEqual(again.listServices(), [
        { service: 'inventory', sidecarUrl: 'http://127.0.0.1:1', registeredAt: 1 },
        { service: 'payment', sidecarUrl: 'http://127.0.0.1:4', registeredAt: 4 },
      ]);
      await again.close();
    });

    it('a group that fails is rejected as a whole and the log keeps working', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      await log.append(record('0-a-0000000000000050'));
      // A duplicate txId is refused by both; every waiter in that group fails and nothing of it is kept.
      const results = await Promise.allSettled([log.append(record('0-a-0000000000000051')), log.append(record('0-a-0000000000000050'))]);
      assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
      assert.equal(log.get('0-a-0000000000000051'), undefined);
      await log.append(record('0-a-0000000000000052'));
      assert.ok(log.get('0-a-0000000000000052'));
      await log.close();
    });

    it('a failed group does not lose the done marks and registry entries that rode along with it', async (t) => {
      const { log, cleanup } = factory.create();
      t.after(cleanup);
      await log.append(record('0-a-0000000000000060'));
      // The done mark and the sidecar address join the same group as a record that cannot be written.
      log.markDone('0-a-0000000000000060', 'COMMITTED', 61);
      log.saveService({ service: 'shipping', sidecarUrl: 'http://127.0.0.1:4', registeredAt: 3 });
      await assert.rejects(log.append(record('0-a-0000000000000060')));
      assert.equal(log.get('0-a-0000000000000060')?.state, 'COMMITTED');
      assert.deepEqual(log.listUnfinished(), []);
      assert.deepEqual(log.listServices(), [{ service: 'shipping', sidecarUrl: 'http://127.0.0.1:4', registeredAt: 3 }]);
      await log.close();
    });
  });
}

describeDecisionLog('MemoryDecisionLog', {
  create() {
    const store = new MemoryLogStore();
    return { log: new MemoryDecisionLog(store), reopen: () => new MemoryDecisionLog(store), cleanup: () => {} };
  },
});

describeDecisionLog('SqliteDecisionLog', {
  create() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-log-'));
    const file = path.join(dir, 'decisions.db');
    const log = new SqliteDecisionLog(file);
    return {
      log,
      reopen: () => new SqliteDecisionLog(file),
      cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  },
});

describe('SqliteDecisionLog storage', () => {
  it('opens the database in WAL mode', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-log-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const log = new SqliteDecisionLog(path.join(dir, 'nested', 'd.db'));
    await log.close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(path.join(dir, 'nested', 'd.db'), { readonly: true });
    t.after(() => db.close());
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  });
});

describe('SqliteDecisionLog forcing', () => {
  it('holds the log file itself exclusively while it runs: another connection can read it only after close', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-log-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'coordinator-shard-0.db');
    const log = new SqliteDecisionLog(file);
    await log.append(record('0-a-00000000000000e1'));
    const Database = (await import('better-sqlite3')).default;
    const reader = new Database(file, { readonly: true, timeout: 0 });
    t.after(() => reader.close());
    assert.throws(() => reader.prepare('SELECT COUNT(*) AS n FROM decisions').get(), /database is locked/);
    await log.close();
    assert.deepEqual(reader.prepare('SELECT COUNT(*) AS n FROM decisions').get(), { n: 1 });
  });

  it('forces a group holding a decision, writes a group of done marks and acks alone without an fsync, and drops acks settled in the same group', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-log-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const log = new SqliteDecisionLog(path.join(dir, 'd.db'));
    const seen: LogWriteEvent[] = [];
    const listen = (event: unknown): void => void seen.push(event as LogWriteEvent);
    logWriteChannel.subscribe(listen);
    t.after(() => logWriteChannel.unsubscribe(listen));
    await log.append(record('0-a-0000000000000090'));
    assert.deepEqual(seen, [{ writes: 1, synchronous: 2 }]);
    const forcedBefore = log.stats().flushes;
    log.markAcked('0-a-0000000000000090', 'payment', 91);
    log.markAcked('0-a-0000000000000090', 'shipping', 91);
    log.markDone('0-a-0000000000000090', 'COMMITTED', 92);
    await log.close();
    // The two acks went with the done mark that deletes them: one write, at NORMAL, not counted as forced.
    assert.deepEqual(seen[1], { writes: 1, synchronous: 1 });
    assert.equal(log.stats().flushes, forcedBefore);
    const again = new SqliteDecisionLog(path.join(dir, 'd.db'));
    t.after(() => void again.close());
    assert.equal(again.get('0-a-0000000000000090')?.state, 'COMMITTED');
    assert.equal(again.get('0-a-0000000000000090')?.acked, undefined);
  });
});

describe('GroupCommitLog when storage fails', () => {
  /** Memory storage whose next `failures` writes throw, as a full disk would. */
  class FlakyLog extends MemoryDecisionLog {
    failures = 0;
    protected override writeGroup(writes: readonly LogWrite[]): void {
      if (this.failures > 0) {
        this.failures -= 1;
        throw new Error('disk full');
      }
      super.writeGroup(writes);
    }
  }

  it('keeps unforced writes of a failed group, in order, for the next group', async () => {
    const log = new FlakyLog();
    await log.append(record('0-a-0000000000000070'));
    log.saveService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:1', registeredAt: 1 });
    log.markDone('0-a-0000000000000070', 'COMMITTED', 71);
    log.saveService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:2', registeredAt: 2 });
    log.failures = 2; // the group, and the retry of its unforced writes alone
    await assert.rejects(log.append(record('0-a-0000000000000071')), /disk full/);
    assert.equal(log.get('0-a-0000000000000070')?.state, 'COMMITTING');
    await log.append(record('0-a-0000000000000072'));
    assert.equal(log.get('0-a-0000000000000070')?.state, 'COMMITTED');
    assert.deepEqual(log.listServices(), [{ service: 'payment', sidecarUrl: 'http://127.0.0.1:2', registeredAt: 2 }]);
    assert.equal(log.get('0-a-0000000000000071'), undefined);
    await log.close();
  });
});
