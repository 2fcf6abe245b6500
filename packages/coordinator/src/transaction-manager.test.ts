import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOL_VERSION, TxmeshError, newTxId, type BeginTransactionRequest } from '@txmesh/protocol';
import type { DecisionRecord } from './decision-log.ts';
import { MemoryDecisionLog, MemoryLogStore } from './memory-decision-log.ts';
import { FakeTransport, eventually, type FakeHandler } from './testing/fake-transport.ts';
import { TransactionManager, type TransactionManagerOptions } from './transaction-manager.ts';

const FAST_DELIVERY = { baseMs: 1, capMs: 5 };

/** A manager restarted on the log a dead process left in `store`, delivering to a fake transport. */
function restartedManager(t: TestContext, store: MemoryLogStore): { transport: FakeTransport; manager: TransactionManager } {
  const transport = new FakeTransport();
  const log = new MemoryDecisionLog(store);
  const manager = new TransactionManager({ shard: 1, shards: 4, log, transport, deliveryBackoff: FAST_DELIVERY });
  t.after(async () => {
    manager.close();
    await log.close();
  });
  return { transport, manager };
}

/** A decided commit of inventory and shipping, as a process that died before delivering it left it in its log. */
function committingRecord(txId: string): DecisionRecord {
  return {
    txId,
    state: 'COMMITTING',
    participants: [
      { service: 'inventory', operations: [{ op: 'reserve' }], vote: 'yes' },
      { service: 'shipping', operations: [{ op: 'book' }], vote: 'yes' },
    ],
    result: { txId, outcome: 'committed', participants: [], durationMs: 4 },
    createdAt: 10,
    decidedAt: 11,
  };
}

function setup(t: TestContext, handler?: FakeHandler, overrides: Partial<TransactionManagerOptions> = {}, store = new MemoryLogStore()) {
  const transport = new FakeTransport(handler);
  const log = new MemoryDecisionLog(store);
  const warnings: object[] = [];
  const manager = new TransactionManager({
    shard: 1,
    shards: 4,
    log,
    transport,
    deliveryBackoff: FAST_DELIVERY,
    logger: { warn: (obj) => warnings.push(obj), error: () => {} },
    ...overrides,
  });
  for (const service of ['inventory', 'payment', 'shipping']) {
    manager.registerService({ service, sidecarUrl: `http://127.0.0.1:1/${service}` });
  }
  t.after(async () => {
    manager.close();
    await log.close();
  });
  return { manager, transport, log, store, warnings };
}

const order: BeginTransactionRequest = {
  participants: [
    { service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a', qty: 1 } }] },
    { service: 'payment', operations: [{ op: 'charge', args: { cents: 500 } }] },
  ],
};

function isCode(code: string) {
  return (err: unknown) => err instanceof TxmeshError && err.code === code;
}

describe('TransactionManager', () => {
  it('commits when every participant votes yes: record durable first, then commit delivered to all', async (t) => {
    const { manager, transport, store } = setup(t);
    const result = await manager.begin({ ...order, timeoutMs: 1000 });
    assert.equal(result.outcome, 'committed');
    assert.match(result.txId, /^1-/);
    assert.deepEqual(result.participants, [{ service: 'inventory', vote: 'yes' }, { service: 'payment', vote: 'yes' }]);
    // The client heard "committed": the record must already be in the log.
    const record = store.records.get(result.txId);
    assert.ok(record);
    assert.deepEqual(record.participants.map((p) => [p.service, p.operations[0]?.op, p.vote]), [['inventory', 'reserve', 'yes'], ['payment', 'charge', 'yes']]);
    const prepares = transport.items('prepare');
    assert.equal(prepares.length, 2);
    assert.ok(prepares.every((p) => p.txId === result.txId && typeof p.deadline === 'number' && p.operations?.length === 1));
    await manager.settled();
    assert.equal(transport.count('commit'), 2);
    assert.equal(transport.count('rollback'), 0);
    assert.equal(manager.status(result.txId).state, 'COMMITTED');
    assert.deepEqual(manager.status(result.txId).branches.map((b) => b.state), ['COMMITTED', 'COMMITTED']);
    await eventually(() => store.records.get(result.txId)?.state === 'COMMITTED', 'done mark written');
    const stats = manager.stats();
    assert.equal(stats.committed, 1);
    assert.equal(stats.inFlight, 0);
    assert.equal(stats.logRecords, 1);
  });

  it('aborts at once on a business "no" without waiting for the others, and rolls back everyone else', async (t) => {
    const { manager, transport, store } = setup(t, (item) => {
      if (item.action === 'prepare' && item.service === 'payment') return { status: 'no', reason: 'INSUFFICIENT_FUNDS' };
      if (item.action === 'prepare' && item.service === 'inventory') return 'hang';
      return 'ok';
    });
    const started = Date.now();
    const result = await manager.begin({ ...order, timeoutMs: 2000 });
    assert.ok(Date.now() - started < 1000, 'did not wait for the silent participant');
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'INSUFFICIENT_FUNDS');
    assert.deepEqual(result.participants, [
      { service: 'inventory', vote: 'none', reason: 'TIMEOUT' },
      { service: 'payment', vote: 'no', reason: 'INSUFFICIENT_FUNDS' },
    ]);
    assert.equal(store.records.size, 0, 'an abort without idempotencyKey writes nothing');
    await manager.settled();
    assert.deepEqual(transport.items('rollback').map((i) => i.service), ['inventory']);
    assert.equal(manager.status(result.txId).state, 'ABORTED');
    assert.equal(manager.decision(result.txId).decision, 'abort');
  });

  it('aborts with TIMEOUT when a participant never answers, and still rolls it back', async (t) => {
    const { manager, transport } = setup(t, (item) => (item.action === 'prepare' && item.service === 'payment' ? 'hang' : 'ok'));
    const started = Date.now();
    const result = await manager.begin({ ...order, timeoutMs: 60 });
    const took = Date.now() - started;
    assert.ok(took >= 55 && took < 1000, `took ${took} ms`);
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'TIMEOUT');
    await manager.settled();
    assert.deepEqual(transport.items('rollback').map((i) => i.service).sort(), ['inventory', 'payment']);
    assert.equal(transport.count('commit'), 0);
  });

  it('retries transient prepare errors with backoff and commits when they clear', async (t) => {
    const { manager, transport } = setup(t, (item, _url, attempt) => {
      if (item.action === 'prepare' && item.service === 'inventory' && attempt === 1) return 'throw';
      if (item.action === 'prepare' && item.service === 'inventory' && attempt === 2) return { status: 'error', reason: 'TXM_SERVICE_UNREACHABLE' };
      return 'ok';
    });
    const result = await manager.begin({ ...order, timeoutMs: 2000 });
    assert.equal(result.outcome, 'committed');
    assert.equal(transport.count('prepare', 'inventory'), 3);
    assert.equal(transport.count('prepare', 'payment'), 1);
  });

  it('asks again at once for a prepare the participant deferred, without counting it as a failed attempt', async (t) => {
    const { manager, transport } = setup(t, (item, _url, attempt) =>
      item.action === 'prepare' && item.service === 'inventory' && attempt <= 5 ? { status: 'error', reason: 'PREPARE_DEFERRED' } : 'ok',
    );
    const result = await manager.begin({ ...order, timeoutMs: 2000 });
    assert.equal(result.outcome, 'committed', 'five deferrals are not three failed attempts');
    assert.equal(transport.count('prepare', 'inventory'), 6);
  });

  it('re-asks a deferred prepare alone and outside the scheduler: its lock wait holds no slot another transaction needs', async (t) => {
    // The first order's inventory prepare is deferred, and its re-ask is answered only once the second
    // order's inventory prepare has arrived: a lock wait that ends when others move on. With one slot for
    // inventory, a re-ask holding that slot would keep the second prepare out until the first's deadline.
    let secondArrived!: () => void;
    const second = new Promise<void>((resolve) => (secondArrived = resolve));
    let firstTxId: string | undefined;
    const batches: string[][] = [];
    const transport = new FakeTransport();
    transport.send = async (_url, items) => {
      batches.push(items.map((i) => `${i.action}:${i.service}`));
      const results = await Promise.all(
        items.map(async (item) => {
          if (item.action === 'prepare' && item.service === 'inventory') {
            firstTxId ??= item.txId;
            if (item.txId !== firstTxId) secondArrived();
            else if (batches.filter((b) => b.includes('prepare:inventory')).length === 1) return { txId: item.txId, action: item.action, status: 'error' as const, reason: 'PREPARE_DEFERRED' };
            else await second;
          }
          return { txId: item.txId, action: item.action, status: 'ok' as const };
        }),
      );
      return { protocolVersion: PROTOCOL_VERSION, results };
    };
    const { manager } = setup(t, undefined, { transport, scheduler: { initialLimit: 1, minLimit: 1, maxLimit: 1 } });
    const first = manager.begin({ ...order, timeoutMs: 3000 });
    await eventually(() => firstTxId !== undefined && batches.length >= 3, 'the first prepare was deferred and asked again');
    const result = await manager.begin({ ...order, timeoutMs: 3000 });
    assert.equal(result.outcome, 'committed');
    assert.equal((await first).outcome, 'committed', 'the re-ask was answered once the second prepare got through');
    const reask = batches.filter((b) => b.includes('prepare:inventory'))[1];
    assert.deepEqual(reask, ['prepare:inventory'], 'the re-ask went alone');
  });

  it('a prepare deferred until its deadline aborts the transaction with TIMEOUT', async (t) => {
    const { manager } = setup(t, (item) => (item.action === 'prepare' && item.service === 'inventory' ? { status: 'error', reason: 'PREPARE_DEFERRED' } : 'ok'));
    const result = await manager.begin({ ...order, timeoutMs: 300 });
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'TIMEOUT');
  });

  it('gives up after 3 failed prepare attempts: vote none, abort with the last reason', async (t) => {
    const { manager, transport } = setup(t, (item) =>
      item.action === 'prepare' && item.service === 'inventory' ? { status: 'error', reason: 'TXM_SERVICE_UNREACHABLE' } : 'ok',
    );
    const result = await manager.begin({ ...order, timeoutMs: 5000 });
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'TXM_SERVICE_UNREACHABLE');
    assert.equal(result.participants[0]?.vote, 'none');
    assert.equal(transport.count('prepare', 'inventory'), 3);
    await manager.settled();
    // The erroring branch may have prepared after all: it gets a rollback too.
    assert.deepEqual(transport.items('rollback').map((i) => i.service).sort(), ['inventory', 'payment']);
  });

  it('retries commit delivery until acknowledged, warning every Nth failure, and stays COMMITTING meanwhile', async (t) => {
    let commitFailures = 0;
    let release = false;
    const { manager, transport, store, warnings } = setup(
      t,
      (item) => {
        if (item.action === 'commit' && item.service === 'payment' && !release) {
          commitFailures += 1;
          return commitFailures % 2 === 0 ? 'throw' : { status: 'error', reason: 'DB_DOWN' };
        }
        return 'ok';
      },
      { warnEvery: 3 },
    );
    const result = await manager.begin(order);
    assert.equal(result.outcome, 'committed');
    await eventually(() => commitFailures >= 7, 'several failed commit deliveries');
    assert.equal(manager.status(result.txId).state, 'COMMITTING');
    assert.equal(manager.decision(result.txId).decision, 'commit');
    assert.equal(store.records.get(result.txId)?.state, 'COMMITTING');
    assert.ok(warnings.length >= 2);
    assert.deepEqual(Object.keys(warnings[0] ?? {}).sort(), ['action', 'attempts', 'failure', 'service', 'txId']);
    assert.equal((warnings[0] as { service: string }).service, 'payment');
    release = true;
    await manager.settled();
    assert.equal(manager.status(result.txId).state, 'COMMITTED');
    assert.ok(transport.count('commit', 'payment') >= commitFailures + 1);
    await eventually(() => store.records.get(result.txId)?.state === 'COMMITTED', 'done mark written');
  });

  it('answers the same idempotencyKey with the first result, also while running and after a restart', async (t) => {
    const { manager, transport, store } = setup(t);
    const keyed = { ...order, idempotencyKey: 'order-42-4' };
    const [first, concurrent] = await Promise.all([manager.begin(keyed), manager.begin(structuredClone(keyed))]);
    assert.deepEqual(concurrent, first);
    // Same request with keys in another order is the same body.
    const reordered = { idempotencyKey: 'order-42-4', participants: keyed.participants.map((p) => ({ operations: p.operations, service: p.service })) };
    assert.deepEqual(await manager.begin(reordered), first);
    assert.equal(transport.count('prepare'), 2, 'the transaction ran once');
    await assert.rejects(manager.begin({ ...keyed, timeoutMs: 900 }), isCode('TXM_IDEMPOTENCY_CONFLICT'));

    const restarted = setup(t, undefined, {}, store);
    assert.deepEqual(await restarted.manager.begin(keyed), first);
    assert.equal(restarted.transport.count('prepare'), 0);
    await assert.rejects(restarted.manager.begin({ ...order, idempotencyKey: 'order-42-4', timeoutMs: 100 }), isCode('TXM_IDEMPOTENCY_CONFLICT'));
  });

  it('logs an abort that carries an idempotencyKey, so the key never runs again', async (t) => {
    const { manager, transport, store } = setup(t, (item) => (item.action === 'prepare' && item.service === 'payment' ? 'no' : 'ok'));
    const keyed = { ...order, idempotencyKey: 'pay-1-1' };
    const first = await manager.begin(keyed);
    assert.equal(first.outcome, 'aborted');
    const record = [...store.records.values()][0];
    assert.equal(record?.state === 'ABORTING' || record?.state === 'ABORTED', true);
    assert.equal(record?.idempotencyKey, 'pay-1-1');
    transport.handler = () => 'ok';
    assert.deepEqual(await manager.begin(keyed), first);
    assert.equal(transport.count('prepare'), 2);
  });

  it('refuses an unregistered service before anything is sent or written', async (t) => {
    const { manager, transport, store } = setup(t);
    await assert.rejects(
      manager.begin({ participants: [...order.participants, { service: 'ghost', operations: [{ op: 'x' }] }], idempotencyKey: 'k-2' }),
      isCode('TXM_UNKNOWN_SERVICE'),
    );
    await assert.rejects(manager.begin({ participants: [] }), isCode('TXM_NO_PARTICIPANTS'));
    // 'order-42' belongs to shard 0 of 4, this manager is shard 1: running it here could run it twice.
    await assert.rejects(manager.begin({ ...order, idempotencyKey: 'order-42' }), isCode('TXM_WRONG_SHARD'));
    await new Promise((r) => setImmediate(r));
    assert.equal(transport.batches.length, 0);
    assert.equal(store.records.size, 0);
    assert.equal(manager.inFlight, 0);
  });

  it('answers decisions under presumed abort: pending while preparing, commit once logged, abort otherwise', async (t) => {
    let gated = true;
    const { manager, transport } = setup(t, (item) => (item.action === 'prepare' && gated ? 'hang' : 'ok'));
    const running = manager.begin({ participants: [order.participants[0]!], timeoutMs: 80 });
    await eventually(() => transport.count('prepare') === 1, 'prepare sent');
    const txId = transport.items('prepare')[0]!.txId;
    assert.deepEqual(manager.decision(txId), { txId, decision: 'pending' });
    assert.equal(manager.status(txId).state, 'PREPARING');
    assert.equal(manager.stats().inFlight, 1);
    const aborted = await running;
    assert.equal(aborted.txId, txId);
    assert.equal(aborted.reason, 'TIMEOUT');
    assert.equal(manager.decision(txId).decision, 'abort');
    gated = false;
    const committed = await manager.begin({ participants: [order.participants[0]!] });
    assert.equal(manager.decision(committed.txId).decision, 'commit');
    // An id of this shard that began after the log did and was never logged: presumed abort.
    const unlogged = newTxId(1);
    assert.deepEqual(manager.decision(unlogged), { txId: unlogged, decision: 'abort' });
    assert.throws(() => manager.decision('2-abc-0123456789abcdef'), isCode('TXM_WRONG_SHARD'));
    assert.throws(() => manager.decision('nope'), isCode('TXM_BAD_TX_ID'));
    assert.throws(() => manager.status(unlogged), isCode('TXM_TX_NOT_FOUND'));
    // One that began before this log existed: the log cannot vouch that it never committed.
    assert.throws(() => manager.decision('1-abc-0123456789abcdef'), isCode('TXM_DECISION_UNKNOWN'));
    assert.throws(() => manager.status('1-abc-0123456789abcdef'), isCode('TXM_DECISION_UNKNOWN'));
  });

  it('answers pending, never commit, while the COMMIT record is being forced, and "committed" only once it is durable', async (t) => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let appending = false;
    /** A log whose next append waits for the test, as a slow fsync would. */
    class SlowLog extends MemoryDecisionLog {
      override async append(record: DecisionRecord): Promise<void> {
        appending = true;
        await gate;
        return super.append(record);
      }
    }
    const store = new MemoryLogStore();
    const log = new SlowLog(store);
    const transport = new FakeTransport();
    const manager = new TransactionManager({ shard: 1, shards: 4, log, transport, deliveryBackoff: FAST_DELIVERY });
    t.after(async () => {
      manager.close();
      await log.close();
    });
    manager.registerService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:1/inventory' });
    let answered = false;
    const running = manager.begin({ participants: [order.participants[0]!] }).then((r) => ((answered = true), r));
    await eventually(() => appending, 'commit record being written');
    const txId = transport.items('prepare')[0]!.txId;
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(manager.decision(txId), { txId, decision: 'pending' });
    assert.equal(manager.status(txId).outcome, undefined);
    assert.equal(answered, false, 'the client must not hear before the record is durable');
    assert.equal(transport.count('commit'), 0, 'no commit leaves before the record is durable');
    release();
    const result = await running;
    assert.equal(result.outcome, 'committed');
    assert.ok(store.records.get(txId), 'durable when the client hears it');
    assert.deepEqual(manager.decision(txId), { txId, decision: 'commit' });
  });

  it('recovers a COMMITTING record: commit delivery resumes to every branch and completes', async (t) => {
    const store = new MemoryLogStore();
    const txId = '1-abc-00000000000000aa';
    const abortId = '1-abc-00000000000000bb';
    const committing = committingRecord(txId);
    const aborting: DecisionRecord = {
      txId: abortId,
      state: 'ABORTING',
      participants: [
        { service: 'inventory', operations: [{ op: 'reserve' }], vote: 'yes' },
        { service: 'payment', operations: [{ op: 'charge' }], vote: 'no', reason: 'DECLINED' },
      ],
      idempotencyKey: 'k-9-4',
      requestHash: 'h',
      result: { txId: abortId, outcome: 'aborted', reason: 'DECLINED', participants: [], durationMs: 4 },
      createdAt: 10,
      decidedAt: 12,
    };
    // The dead process's log: the decisions and the registry, nothing marked done.
    const previous = new MemoryDecisionLog(store);
    await Promise.all([previous.append(committing), previous.append(aborting)]);
    previous.saveService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:7/inv', registeredAt: 1 });
    previous.saveService({ service: 'shipping', sidecarUrl: 'http://127.0.0.1:7/ship', registeredAt: 1 });
    previous.saveService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:7/pay', registeredAt: 1 });
    await previous.close();

    const { transport, manager } = restartedManager(t, store);
    assert.equal(manager.decision(txId).decision, 'commit');
    assert.equal(manager.recover(), 2);
    assert.equal(manager.status(txId).state === 'COMMITTING' || manager.status(txId).state === 'COMMITTED', true);
    await manager.settled();
    assert.deepEqual(transport.items('commit').map((i) => [i.txId, i.service, transport.batches.find((b) => b.items.includes(i))?.sidecarUrl]).sort(), [
      [txId, 'inventory', 'http://127.0.0.1:7/inv'],
      [txId, 'shipping', 'http://127.0.0.1:7/ship'],
    ]);
    // The branch that refused never prepared: only the yes voter is rolled back.
    assert.deepEqual(transport.items('rollback').map((i) => [i.txId, i.service]), [[abortId, 'inventory']]);
    assert.equal(transport.count('prepare'), 0);
    await eventually(() => store.records.get(txId)?.state === 'COMMITTED' && store.records.get(abortId)?.state === 'ABORTED', 'both marked done');
    assert.equal(manager.stats().recovered, 2);
    assert.equal(manager.recover(), 0, 'nothing left to recover');
    assert.equal(manager.status(txId).state, 'COMMITTED');
  });

  it('a resumed decision whose every branch acknowledged before the restart sends nothing and is marked done', async (t) => {
    const store = new MemoryLogStore();
    const txId = '1-abc-00000000000000cc';
    const previous = new MemoryDecisionLog(store);
    await previous.append(committingRecord(txId));
    previous.markAcked(txId, 'inventory', 12);
    previous.markAcked(txId, 'shipping', 13);
    await previous.close();
    const { transport, manager } = restartedManager(t, store);
    assert.equal(manager.recover(), 1);
    await manager.settled();
    assert.equal(transport.batches.length, 0, 'an acknowledged branch may have forgotten it: never asked again');
    assert.equal(manager.status(txId).state, 'COMMITTED');
    assert.equal(manager.inFlight, 0);
    await eventually(() => store.records.get(txId)?.state === 'COMMITTED', 'marked done');
  });

  it('recover() does not deliver again what this process finished while its done mark is still unwritten', async (t) => {
    const { manager, transport, store } = setup(t);
    const result = await manager.begin(order);
    await manager.settled();
    assert.equal(store.records.get(result.txId)?.state, 'COMMITTING', 'the done mark is not written yet');
    assert.equal(manager.recover(), 0);
    await manager.settled();
    assert.equal(transport.count('commit'), 2, 'each branch got its commit once');
  });

  it('batches items for the same sidecar queued in one turn into one request', async (t) => {
    const { manager, transport } = setup(t);
    // The registrations' unforced write flushes on its own timer; let it land before counting.
    await new Promise((r) => setTimeout(r, 30));
    const flushesBefore = manager.stats().logFlushes;
    const results = await Promise.all(Array.from({ length: 20 }, () => manager.begin(order)));
    assert.ok(results.every((r) => r.outcome === 'committed'));
    const prepareBatches = transport.batches.filter((b) => b.items[0]?.action === 'prepare');
    assert.equal(prepareBatches.length, 2, 'one prepare batch per sidecar');
    assert.ok(prepareBatches.every((b) => b.items.length === 20));
    assert.equal(manager.stats().logFlushes - flushesBefore, 1, 'twenty commit records, one group commit');
  });

  it('keeps only a bounded number of finished transactions in memory and answers older ones from the log', async (t) => {
    const { manager } = setup(t, undefined, { recentLimit: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await manager.begin(order)).txId);
    await manager.settled();
    await new Promise((r) => setTimeout(r, 30));
    const oldest = manager.status(ids[0]!);
    assert.equal(oldest.state, 'COMMITTED');
    assert.equal(oldest.branches[0]?.attempts, 0, 'answered from the log, not from memory');
    assert.equal(manager.status(ids[3]!).branches[0]?.attempts, 1);
  });

  it('refuses a registration meant for another shard or another cluster, and keeps the old address', (t) => {
    const { manager } = setup(t);
    assert.throws(() => manager.registerService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:2', shard: 0, shards: 4 }), isCode('TXM_WRONG_SHARD'));
    assert.throws(() => manager.registerService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:2', shard: 1, shards: 1 }), isCode('TXM_WRONG_SHARD'));
    assert.equal(manager.listServices().find((s) => s.service === 'payment')?.sidecarUrl, 'http://127.0.0.1:1/payment');
    manager.registerService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:3', shard: 1, shards: 4 });
    assert.equal(manager.listServices().find((s) => s.service === 'payment')?.sidecarUrl, 'http://127.0.0.1:3');
  });

  it('refuses a service whose registration lease ran out, saying since when, until it heartbeats again', async (t) => {
    const { manager } = setup(t, undefined, { registrationLeaseMs: 50 });
    await new Promise((resolve) => setTimeout(resolve, 120));
    manager.registerService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:1/inventory' });
    await assert.rejects(manager.begin({ ...order, timeoutMs: 1000 }), (err: unknown) => {
      assert.ok(err instanceof TxmeshError && err.code === 'TXM_UNKNOWN_SERVICE');
      assert.match(err.details ?? '', /^payment \(its registration expired: no heartbeat for 0 s\)$/);
      return true;
    });
    manager.registerService({ service: 'payment', sidecarUrl: 'http://127.0.0.1:1/payment' });
    assert.equal((await manager.begin({ ...order, timeoutMs: 1000 })).outcome, 'committed');
  });

  it('refuses new transactions once closed', async (t) => {
    const { manager } = setup(t);
    manager.close();
    await assert.rejects(manager.begin(order), isCode('TXM_SHUTTING_DOWN'));
  });

  it('a COMMIT record that cannot be forced leaves the outcome to recovery: nothing delivered, decision pending', async (t) => {
    class FailingLog extends MemoryDecisionLog {
      override append(): Promise<void> {
        return Promise.reject(new Error('disk I/O error'));
      }
    }
    const failures: string[] = [];
    const { manager, transport } = setup(t, undefined, { log: new FailingLog(), onLogFailure: (_err, txId) => failures.push(txId) });
    await assert.rejects(manager.begin({ ...order, timeoutMs: 1000 }), isCode('TXM_OUTCOME_UNKNOWN'));
    assert.equal(failures.length, 1, 'the failure handler (by default: stop the process) was called');
    const txId = failures[0]!;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(transport.count('commit'), 0, 'no commit: the record may not be on disk');
    assert.equal(transport.count('rollback'), 0, 'no rollback: the record may be on disk');
    assert.equal(manager.decision(txId).decision, 'pending', 'participants asking must wait for recovery');

    // A keyed abort whose record cannot be forced: rollback is safe, but no final answer under the key.
    transport.handler = (item) => (item.action === 'prepare' && item.service === 'payment' ? { status: 'no', reason: 'INSUFFICIENT_FUNDS' } : 'ok');
    await assert.rejects(manager.begin({ ...order, timeoutMs: 1000, idempotencyKey: 'pay-1-1' }), isCode('TXM_OUTCOME_UNKNOWN'));
    assert.equal(failures.length, 2);
    await eventually(() => transport.count('rollback') === 1, 'the prepared branch is rolled back');
  });

  it('a branch whose prepare was never sent (queued when the transaction aborted) gets no rollback, and is logged as never sent', async (t) => {
    // payment's lane takes one prepare at a time and the first one never answers: the second transaction's waits.
    const handler: FakeHandler = (item) => {
      if (item.action !== 'prepare') return 'ok';
      if (item.service === 'payment') return 'hang';
      return { status: 'no', reason: 'OUT_OF_STOCK' };
    };
    const { manager, transport, store } = setup(t, handler, { scheduler: { initialLimit: 1, minLimit: 1, maxLimit: 1 } });
    const payment = { service: 'payment', operations: [{ op: 'charge', args: { cents: 1 } }] };
    const inventory = { service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a', qty: 1 } }] };
    const first = manager.begin({ participants: [payment], timeoutMs: 1500 });
    await eventually(() => transport.count('prepare', 'payment') === 1, 'the first prepare holds the lane');
    const second = await manager.begin({ participants: [inventory, payment], timeoutMs: 1500, idempotencyKey: 'k-2' });
    assert.equal(second.outcome, 'aborted');
    const sentFor = (txId: string, action: 'prepare' | 'rollback') => transport.items(action).filter((i) => i.txId === txId && i.service === 'payment').length;
    assert.equal(sentFor(second.txId, 'prepare'), 0, 'its prepare was still queued when the transaction aborted');
    assert.equal(store.records.get(second.txId)?.participants.find((p) => p.service === 'payment')?.unsent, true, 'logged as never sent');
    // The first one times out; its prepare was sent and may have prepared, so it is rolled back.
    assert.equal((await first).outcome, 'aborted');
    await manager.settled();
    assert.ok(sentFor((await first).txId, 'rollback') >= 1);
    assert.equal(sentFor(second.txId, 'rollback'), 0, 'nothing to roll back where nothing was sent');
    assert.deepEqual(manager.inDoubt(0).filter((b) => b.txId === second.txId), []);
  });
});
