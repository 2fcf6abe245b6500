/**
 * The decision log guards what presumed abort rests on: per-branch acknowledgements survive a restart
 * (so only unacknowledged branches hear the outcome again), one process per log, and a log that knows
 * whose it is and since when.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TxmeshError, newTxId, validateRegisterRequest } from '@txmesh/protocol';
import { MemoryDecisionLog, MemoryLogStore } from './memory-decision-log.ts';
import { SqliteDecisionLog } from './sqlite-decision-log.ts';
import { LogLockedError } from './log-lock.ts';
import { LogIdentityError } from './log-identity.ts';
import { FakeTransport, eventually } from './testing/fake-transport.ts';
import { TransactionManager } from './transaction-manager.ts';
import type { DecisionLog } from './decision-log.ts';

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-log-guard-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function manager(log: DecisionLog, transport: FakeTransport): TransactionManager {
  const m = new TransactionManager({ shard: 0, shards: 1, log, transport, deliveryBackoff: { baseMs: 1, capMs: 5 }, pruneIntervalMs: 0 });
  for (const service of ['inventory', 'payment']) m.registerService({ service, sidecarUrl: `http://127.0.0.1:1/${service}` });
  return m;
}

const order = {
  participants: [
    { service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a' } }] },
    { service: 'payment', operations: [{ op: 'charge', args: { cents: 5 } }] },
  ],
};

for (const kind of ['memory', 'sqlite'] as const) {
  describe(`branch acknowledgements (${kind} log)`, () => {
    it('after a restart the outcome goes only to the branches that had not acknowledged it', async (t) => {
      const dir = tempDir(t);
      const store = new MemoryLogStore();
      const open = (): DecisionLog => (kind === 'memory' ? new MemoryDecisionLog(store) : new SqliteDecisionLog(path.join(dir, 'log.db')));
      // inventory acknowledges its commit, payment never does.
      const first = new FakeTransport((item) => (item.action === 'commit' && item.service === 'payment' ? 'throw' : 'ok'));
      const log1 = open();
      const m1 = manager(log1, first);
      const result = await m1.begin(order);
      assert.equal(result.outcome, 'committed');
      await eventually(() => first.count('commit', 'inventory') === 1 && first.count('commit', 'payment') >= 2, 'inventory acked, payment retried');
      await new Promise((resolve) => setTimeout(resolve, 30)); // the unforced ack rides the next group
      m1.close();
      await log1.close();

      const second = new FakeTransport();
      const log2 = open();
      const m2 = manager(log2, second);
      t.after(async () => {
        m2.close();
        await log2.close();
      });
      assert.deepEqual(log2.get(result.txId)?.acked, ['inventory']);
      assert.equal(m2.recover(), 1);
      await m2.settled();
      assert.deepEqual(second.items('commit').map((i) => i.service), ['payment'], 'inventory is not asked again');
      assert.equal(m2.status(result.txId).state, 'COMMITTED');
    });
  });
}

describe('decision log identity and lock', () => {
  it('refuses a second opener of the same log, in this process and in another one', async (t) => {
    const file = path.join(tempDir(t), 'coordinator-shard-0.db');
    const log = new SqliteDecisionLog(file, { identity: { cluster: 'c', shard: 0, shards: 1 } });
    assert.throws(() => new SqliteDecisionLog(file), LogLockedError);
    const moduleUrl = new URL('./sqlite-decision-log.js', import.meta.url).href;
    const child = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import { SqliteDecisionLog } from ${JSON.stringify(moduleUrl)}; try { new SqliteDecisionLog(${JSON.stringify(file)}); console.log('opened'); } catch (e) { console.log(e.name); }`],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(child.stdout.trim(), 'LogLockedError', child.stderr);
    await log.close();
    const reopened = new SqliteDecisionLog(file, { identity: { cluster: 'c', shard: 0, shards: 1 } });
    await reopened.close();
  });

  it('refuses a log stamped for another shard, shard count or cluster, and keeps its birth time across restarts', async (t) => {
    const file = path.join(tempDir(t), 'log.db');
    const log = new SqliteDecisionLog(file, { identity: { cluster: 'c', shard: 2, shards: 4 } });
    const bornAt = log.bornAt;
    await log.close();
    for (const identity of [{ cluster: 'c', shard: 1, shards: 4 }, { cluster: 'c', shard: 2, shards: 8 }, { cluster: 'other', shard: 2, shards: 4 }]) {
      assert.throws(() => new SqliteDecisionLog(file, { identity }), LogIdentityError, JSON.stringify(identity));
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
    const again = new SqliteDecisionLog(file, { identity: { cluster: 'c', shard: 2, shards: 4 } });
    assert.equal(again.bornAt, bornAt, 'a restart is not a new log');
    await again.close();
  });

  it('a shard on a fresh log does not presume abort for transactions older than the log', async (t) => {
    const old = newTxId(0, Date.now() - 60_000);
    const log = new SqliteDecisionLog(path.join(tempDir(t), 'fresh.db'));
    const m = manager(log, new FakeTransport());
    t.after(async () => {
      m.close();
      await log.close();
    });
    assert.throws(() => m.decision(old), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_DECISION_UNKNOWN');
    assert.equal(m.decision(newTxId(0)).decision, 'abort', 'younger than the log: never logged means abort');
  });
});

describe('shard bounds', () => {
  it('refuses a new transaction with TXM_OVERLOADED once the shard runs maxInFlight of them, before sending anything', async (t) => {
    const transport = new FakeTransport(() => 'hang');
    const log = new MemoryDecisionLog();
    const m = new TransactionManager({ shard: 0, shards: 1, log, transport, maxInFlight: 1, pruneIntervalMs: 0, scheduler: false });
    m.registerService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:1/inventory' });
    t.after(async () => {
      m.close();
      await log.close();
    });
    const holding = m.begin({ participants: [order.participants[0]!], timeoutMs: 200 });
    await eventually(() => transport.batches.length === 1, 'the first transaction is preparing');
    await assert.rejects(m.begin({ participants: [order.participants[0]!] }), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_OVERLOADED');
    assert.equal(transport.batches.length, 1, 'nothing was sent for the refused one');
    await holding;
  });

  it('clamps a registration report stamped in the future to now', () => {
    const request = validateRegisterRequest({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:1', report: { at: Date.now() + 86_400_000, cpuPercent: 5 } });
    assert.ok((request.report?.at ?? Infinity) <= Date.now());
  });
});
