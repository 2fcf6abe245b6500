/**
 * Timeouts per phase, retries with backoff, in-doubt visibility (list, log line, webhook) and pruning
 * of the decision log. In-process: fake transport, memory or SQLite log. No timed assertions.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { TxmeshError, type BeginTransactionRequest, type InDoubtBranch } from '@txmesh/protocol';
import { buildCoordinator } from './app.ts';
import { backoffDelayMs } from './backoff.ts';
import type { DecisionLog } from './decision-log.ts';
import { InDoubtMonitor, type InDoubtAlert } from './in-doubt-monitor.ts';
import { MemoryDecisionLog, MemoryLogStore } from './memory-decision-log.ts';
import { validateServiceTimeouts } from './service-timeouts.ts';
import { SqliteDecisionLog } from './sqlite-decision-log.ts';
import { FakeTransport, eventually, type FakeHandler } from './testing/fake-transport.ts';
import { TransactionManager, type TransactionManagerOptions } from './transaction-manager.ts';

const FAST = { baseMs: 1, capMs: 5 };

function setup(t: TestContext, handler?: FakeHandler, overrides: Partial<TransactionManagerOptions> = {}, log: DecisionLog = new MemoryDecisionLog()) {
  const transport = new FakeTransport(handler);
  const warnings: object[] = [];
  const errors: object[] = [];
  const manager = new TransactionManager({
    shard: 0,
    shards: 1,
    log,
    transport,
    deliveryBackoff: FAST,
    prepareBackoff: FAST,
    pruneIntervalMs: 0,
    logger: { warn: (obj) => warnings.push(obj), error: (obj) => errors.push(obj) },
    ...overrides,
  });
  for (const service of ['inventory', 'payment']) manager.registerService({ service, sidecarUrl: `http://127.0.0.1:1/${service}` });
  t.after(async () => {
    manager.close();
    await log.close();
  });
  return { manager, transport, log, warnings, errors };
}

const order: BeginTransactionRequest = {
  participants: [
    { service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a', qty: 1 } }] },
    { service: 'payment', operations: [{ op: 'charge', args: { cents: 500 } }] },
  ],
};

const isCode = (code: string) => (err: unknown) => err instanceof TxmeshError && err.code === code;

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-resilience-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('backoff', () => {
  it('grows exponentially, is capped, and is jittered uniformly below the ceiling', () => {
    const policy = { baseMs: 10, capMs: 300 };
    const top = () => 0.999999;
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelayMs(policy, n, top)), [9, 19, 39, 79, 159, 299, 299]);
    assert.equal(backoffDelayMs(policy, 1000, top), 299, 'huge attempt numbers stay at the cap');
    assert.equal(backoffDelayMs(policy, 5, () => 0), 0, 'full jitter reaches down to zero');
    assert.equal(backoffDelayMs(policy, 5, () => 0.5), 80);
  });
});

describe('phase timeouts', () => {
  it('a per-transaction prepareTimeoutMs tightens every branch deadline; a silent participant aborts the tx with TIMEOUT', async (t) => {
    const { manager, transport } = setup(t, (item) => (item.action === 'prepare' && item.service === 'payment' ? 'hang' : 'ok'));
    const result = await manager.begin({ ...order, timeoutMs: 60_000, prepareTimeoutMs: 50 });
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'TIMEOUT');
    const payment = result.participants.find((p) => p.service === 'payment');
    // details may name the attempt that timed out at the same moment; the vote and reason are what count.
    assert.deepEqual({ service: payment?.service, vote: payment?.vote, reason: payment?.reason }, { service: 'payment', vote: 'none', reason: 'TIMEOUT' });
    const created = manager.status(result.txId).createdAt;
    for (const p of transport.items('prepare')) assert.equal(p.deadline, created + 50, `${p.service} was told the prepare deadline`);
    await manager.settled();
    assert.equal(transport.count('rollback', 'payment'), 1, 'the silent one may have prepared late: rolled back');
  });

  it('a per-service prepareTimeoutMs applies to that service only', async (t) => {
    const { manager, transport } = setup(t, (item) => (item.action === 'prepare' && item.service === 'payment' ? 'hang' : 'ok'), {
      serviceTimeouts: { payment: { prepareTimeoutMs: 40 } },
    });
    const result = await manager.begin({ ...order, timeoutMs: 60_000 });
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'TIMEOUT');
    const created = manager.status(result.txId).createdAt;
    const deadlineOf = (service: string) => transport.items('prepare').find((p) => p.service === service)?.deadline;
    assert.equal(deadlineOf('payment'), created + 40);
    assert.equal(deadlineOf('inventory'), created + 60_000);
  });

  it('prepareTimeoutMs is validated: a bad value is refused with TXM_BAD_TIMEOUT before anything is sent', async (t) => {
    const { manager, transport } = setup(t);
    for (const bad of [0, -5, 1.5, '100', 600_001]) {
      await assert.rejects(manager.begin({ ...order, prepareTimeoutMs: bad }), isCode('TXM_BAD_TIMEOUT'), String(bad));
    }
    assert.equal(transport.batches.length, 0);
  });

  it('a per-service deliveryTimeoutMs bounds each commit attempt; the commit is retried until acknowledged', async (t) => {
    const { manager, transport } = setup(
      t,
      (item, _url, attempt) => (item.action === 'commit' && item.service === 'payment' && attempt <= 2 ? 'hang' : 'ok'),
      { deliveryTimeoutMs: 600_000, serviceTimeouts: { payment: { deliveryTimeoutMs: 20 } } },
    );
    const result = await manager.begin(order);
    assert.equal(result.outcome, 'committed');
    await manager.settled();
    assert.equal(transport.count('commit', 'payment'), 3, 'two timed-out attempts, then the acknowledged one');
    assert.equal(manager.status(result.txId).state, 'COMMITTED');
  });

  it('service timeouts are checked: unknown fields, bad values and bad names are refused', () => {
    assert.deepEqual({ ...validateServiceTimeouts({ payment: { prepareTimeoutMs: 100, deliveryTimeoutMs: 200 } }) }, {
      payment: { prepareTimeoutMs: 100, deliveryTimeoutMs: 200 },
    });
    assert.throws(() => validateServiceTimeouts([]), TypeError);
    assert.throws(() => validateServiceTimeouts({ payment: { prepareTimeout: 100 } }), /unknown/);
    assert.throws(() => validateServiceTimeouts({ payment: { prepareTimeoutMs: 0 } }), /integer/);
    assert.throws(() => validateServiceTimeouts({ 'bad name!': {} }), /service name/);
  });

  it('prepare retries are bounded and count as a no; commit retries go on with a warn line every Nth failure', async (t) => {
    let commitOk = false;
    const { manager, transport, warnings } = setup(
      t,
      (item) => {
        if (item.action === 'prepare' && item.service === 'payment') return { status: 'error', reason: 'BUSY' };
        if (item.action === 'commit') return commitOk ? 'ok' : 'throw';
        return 'ok';
      },
      { maxPrepareAttempts: 4, warnEvery: 5 },
    );
    const aborted = await manager.begin(order);
    assert.equal(aborted.outcome, 'aborted');
    assert.equal(aborted.reason, 'BUSY');
    assert.equal(transport.count('prepare', 'payment'), 4);

    transport.handler = (item) => (item.action === 'commit' ? (commitOk ? 'ok' : 'throw') : 'ok');
    const committed = await manager.begin(order);
    await eventually(() => transport.count('commit', 'payment') >= 12, 'commit retried past two warn intervals');
    const warned = warnings.filter((w) => (w as { txId?: string }).txId === committed.txId && (w as { service?: string }).service === 'payment');
    assert.ok(warned.length >= 2, 'a warn line every 5th failure');
    assert.ok(warned.length <= Math.ceil(transport.count('commit', 'payment') / 5), 'not one per failure');
    commitOk = true;
    await manager.settled();
    assert.equal(manager.status(committed.txId).state, 'COMMITTED');
  });
});

describe('in-doubt visibility', () => {
  it('lists branches whose outcome is unacknowledged past the threshold, with age, attempts, last error and sidecar', async (t) => {
    let acknowledge = false;
    const { manager } = setup(t, (item) => (item.action === 'commit' && item.service === 'payment' && !acknowledge ? 'throw' : 'ok'));
    const result = await manager.begin(order);
    await eventually(() => (manager.inDoubt(0)[0]?.attempts ?? 0) >= 2, 'a few failed attempts');
    const listed = manager.inDoubt(0);
    assert.equal(listed.length, 1, 'only the unacknowledged branch');
    const branch = listed[0]!;
    assert.equal(branch.txId, result.txId);
    assert.equal(branch.service, 'payment');
    assert.equal(branch.action, 'commit');
    assert.equal(branch.lastError, 'UNREACHABLE', 'the last failure as a catalogue reason');
    assert.match(branch.details ?? '', /ECONNREFUSED 127\.0\.0\.1:1/, 'and its raw text beside it');
    assert.equal(branch.sidecarUrl, 'http://127.0.0.1:1/payment');
    assert.ok(branch.ageMs >= 0);

    const decidedAt = manager.status(result.txId).decidedAt!;
    assert.deepEqual(manager.inDoubt(10_000, decidedAt + 9_999), [], 'younger than the threshold: not in doubt yet');
    assert.equal(manager.inDoubt(10_000, decidedAt + 10_000)[0]?.ageMs, 10_000);
    assert.equal(manager.stats().inDoubt, manager.inDoubt().length);

    acknowledge = true;
    await manager.settled();
    assert.deepEqual(manager.inDoubt(0), [], 'acknowledged: no longer in doubt');
  });

  it('rollbacks are in doubt too, except for branches that refused themselves', async (t) => {
    const { manager } = setup(t, (item) => {
      if (item.action === 'prepare' && item.service === 'payment') return { status: 'no', reason: 'INSUFFICIENT_FUNDS' };
      if (item.action === 'rollback') return 'throw';
      return 'ok';
    });
    const result = await manager.begin(order);
    assert.equal(result.outcome, 'aborted');
    await eventually(() => manager.inDoubt(0).length > 0, 'rollback failing');
    assert.deepEqual(manager.inDoubt(0).map((b) => [b.service, b.action]), [['inventory', 'rollback']]);
  });

  it('the monitor logs each branch once when it crosses the threshold, not on every check', () => {
    let current: InDoubtBranch[] = [];
    const errors: object[] = [];
    const monitor = new InDoubtMonitor({ shard: 0, list: () => current, logger: { warn() {}, error: (o) => errors.push(o) } });
    const a: InDoubtBranch = { txId: 't1', service: 'payment', action: 'commit', ageMs: 10_000, attempts: 7 };
    const b: InDoubtBranch = { txId: 't1', service: 'inventory', action: 'commit', ageMs: 10_000, attempts: 3 };
    current = [a];
    monitor.check();
    monitor.check();
    assert.equal(errors.length, 1);
    current = [a, b];
    monitor.check();
    assert.equal(errors.length, 2);
    assert.deepEqual(errors.map((e) => (e as InDoubtBranch).service), ['payment', 'inventory']);
    current = [];
    monitor.check();
    current = [a];
    monitor.check();
    assert.equal(errors.length, 3, 'a branch in doubt again after recovering is reported again');
  });

  it('a restart does not log in-doubt branches again: one recovery line sums them up; a branch crossing the threshold later gets its own', async (t) => {
    const store = new MemoryLogStore();
    const commitFails = (item: { action: string; service: string }) => (item.action === 'commit' && item.service === 'payment' ? 'throw' : 'ok');
    // The first process: one commit stays unacknowledged past the threshold and is logged once.
    const first = setup(t, commitFails, { inDoubtAfterMs: 20 }, new MemoryDecisionLog(store));
    const errorsOf = (lines: { msg: string }[]) => lines.filter((l) => l.msg.startsWith('branch in doubt')).length;
    const firstLines: { msg: string }[] = [];
    const firstMonitor = new InDoubtMonitor({ shard: 0, list: () => first.manager.inDoubt(), logger: { warn() {}, error: (_o, msg) => firstLines.push({ msg }) } });
    const old = await first.manager.begin(order);
    await eventually(() => first.manager.inDoubt().length === 1, 'in doubt in the first process');
    firstMonitor.check();
    firstMonitor.check();
    assert.equal(errorsOf(firstLines), 1);
    first.manager.close();
    // It was decided a second before the restarts below.
    const oldRecord = store.records.get(old.txId)!;
    store.records.set(old.txId, { ...oldRecord, decidedAt: oldRecord.decidedAt - 1000 });

    // A decision the first process made just before it died: not in doubt yet when the second one starts.
    const young = '0-abc-00000000000000dd';
    const now = Date.now();
    store.records.set(young, {
      txId: young,
      state: 'COMMITTING',
      participants: [{ service: 'payment', operations: [{ op: 'charge' }], vote: 'yes' }],
      result: { txId: young, outcome: 'committed', participants: [{ service: 'payment', vote: 'yes' }], durationMs: 1 },
      createdAt: now,
      decidedAt: now,
    });

    // Restarted twice on the same log: each start writes one summary line and no line per branch for `old`.
    for (const restart of [1, 2]) {
      const lines: { level: string; msg: string; fields: object }[] = [];
      const logger = { warn: (fields: object, msg: string) => lines.push({ level: 'warn', msg, fields }), error: (fields: object, msg: string) => lines.push({ level: 'error', msg, fields }) };
      const next = setup(t, commitFails, { inDoubtAfterMs: restart === 1 ? 200 : 20 }, new MemoryDecisionLog(store));
      const monitor = new InDoubtMonitor({ shard: 0, list: () => next.manager.inDoubt(), logger });
      const summary = next.manager.recoverWithSummary();
      assert.equal(summary.resumed, 2);
      monitor.noteRecovery(summary);
      monitor.check();
      const recoveryLines = lines.filter((l) => l.msg.startsWith('recovery resumed'));
      assert.equal(recoveryLines.length, 1, `restart ${restart}: one summary line`);
      assert.equal(recoveryLines[0]!.level, 'error');
      assert.equal((recoveryLines[0]!.fields as { alreadyInDoubt: number }).alreadyInDoubt, restart === 1 ? 1 : 2, 'decisions already in doubt');
      assert.equal(errorsOf(lines), 0, `restart ${restart}: the branches known to be in doubt are not logged again`);
      if (restart === 1) {
        // The young decision crosses the threshold in this process: that branch gets its own line, once.
        await eventually(() => next.manager.inDoubt().some((b) => b.txId === young), 'the young branch crosses the threshold', 3000);
        monitor.check();
        monitor.check();
        const own = lines.filter((l) => l.msg.startsWith('branch in doubt'));
        assert.deepEqual(own.map((l) => (l.fields as { txId: string }).txId), [young]);
      }
      next.manager.close();
    }
  });

  it('posts an alert to the webhook at most once per interval; a failing webhook is a warn line, never an error thrown', async (t) => {
    const received: InDoubtAlert[] = [];
    let status = 200;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as InDoubtAlert);
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as { port: number }).port;

    let now = 1_000_000;
    const warnings: object[] = [];
    const branch: InDoubtBranch = { txId: '0-abc', service: 'payment', action: 'commit', ageMs: 12_000, attempts: 9, lastError: 'ECONNREFUSED' };
    let current: InDoubtBranch[] = [];
    const monitor = new InDoubtMonitor({
      shard: 3,
      list: () => current,
      logger: { warn: (o) => warnings.push(o), error() {} },
      alertWebhookUrl: `http://127.0.0.1:${port}/hook`,
      alertIntervalMs: 60_000,
      now: () => now,
    });
    assert.equal(monitor.check(), undefined, 'nothing in doubt: no alert');
    current = [branch];
    await monitor.check();
    assert.deepEqual(received, [{ kind: 'txmesh.in-doubt', shard: 3, branches: [branch] }]);
    now += 59_999;
    assert.equal(monitor.check(), undefined, 'within the interval: no second alert');
    now += 1;
    await monitor.check();
    assert.equal(received.length, 2);
    assert.equal(monitor.alertsSent, 2);

    status = 500;
    now += 60_000;
    await monitor.check();
    assert.equal(monitor.alertFailures, 1);
    assert.match(JSON.stringify(warnings.at(-1)), /HTTP 500/);

    // Nobody listening: a warn line, and the monitor carries on.
    const closedPort = await new Promise<number>((resolve) => {
      const probe = http.createServer();
      probe.listen(0, '127.0.0.1', () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    const unreachable = new InDoubtMonitor({
      shard: 0,
      list: () => [branch],
      logger: { warn: (o) => warnings.push(o), error() {} },
      alertWebhookUrl: `http://127.0.0.1:${closedPort}/hook`,
    });
    await unreachable.check();
    assert.equal(unreachable.alertFailures, 1);
  });

  it('a webhook that never answers is given up after its timeout', async (t) => {
    const hanging = http.createServer(() => {});
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      hanging.closeAllConnections();
      return new Promise<void>((resolve) => hanging.close(() => resolve()));
    });
    const warnings: object[] = [];
    const monitor = new InDoubtMonitor({
      shard: 0,
      list: () => [{ txId: 'x', service: 's', action: 'rollback', ageMs: 1, attempts: 1 }],
      logger: { warn: (o) => warnings.push(o), error() {} },
      alertWebhookUrl: `http://127.0.0.1:${(hanging.address() as { port: number }).port}/`,
      alertTimeoutMs: 50,
    });
    await monitor.check();
    assert.equal(monitor.alertFailures, 1);
    assert.equal(warnings.length, 1);
  });

  it('a coordinator with alertWebhookUrl posts the in-doubt branches to it on its own schedule', async (t) => {
    const received: InDoubtAlert[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        received.push(JSON.parse(body) as InDoubtAlert);
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const transport = new FakeTransport((item) => (item.action === 'commit' ? 'throw' : 'ok'));
    const coordinator = await buildCoordinator(
      { shard: 0, shards: 1, dataDir: tempDir(t), inDoubtAfterMs: 0, alertWebhookUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/alert` },
      { transport, log: new MemoryDecisionLog() },
    );
    t.after(() => coordinator.close());
    coordinator.manager.registerService({ service: 'inventory', sidecarUrl: 'http://127.0.0.1:9001/' });
    const result = await coordinator.manager.begin({ participants: [order.participants[0]!] });
    await eventually(() => received.length > 0, 'alert received', 5000);
    assert.equal(received[0]!.kind, 'txmesh.in-doubt');
    assert.equal(received[0]!.shard, 0);
    assert.deepEqual(received[0]!.branches.map((b) => [b.txId, b.service, b.action]), [[result.txId, 'inventory', 'commit']]);
  });

  it('GET /v1/in-doubt lists in-doubt branches, takes ?olderThanMs, and /v1/stats counts them', async (t) => {
    const dataDir = tempDir(t);
    const transport = new FakeTransport((item) => (item.action === 'commit' ? 'throw' : 'ok'));
    const coordinator = await buildCoordinator({ shard: 0, shards: 1, dataDir }, { transport, log: new MemoryDecisionLog() });
    t.after(() => coordinator.close());
    const { app } = coordinator;
    await app.inject({ method: 'POST', url: '/v1/services', payload: { service: 'inventory', sidecarUrl: 'http://127.0.0.1:9001/' } });
    const begun = await app.inject({ method: 'POST', url: '/v1/transactions', payload: { participants: [order.participants[0]] } });
    assert.equal(begun.json().outcome, 'committed');
    await eventually(() => coordinator.manager.inDoubt(0).length === 1, 'commit failing');

    const all = await app.inject({ method: 'GET', url: '/v1/in-doubt?olderThanMs=0' });
    assert.equal(all.statusCode, 200);
    assert.equal(all.json().thresholdMs, 0);
    assert.deepEqual(all.json().branches.map((b: InDoubtBranch) => [b.txId, b.service, b.action]), [[begun.json().txId, 'inventory', 'commit']]);
    const byDefault = await app.inject({ method: 'GET', url: '/v1/in-doubt' });
    assert.equal(byDefault.json().thresholdMs, 10_000);
    assert.deepEqual(byDefault.json().branches, []);
    const bad = await app.inject({ method: 'GET', url: '/v1/in-doubt?olderThanMs=soon' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'TXM_BAD_REQUEST');
    const stats = await app.inject({ method: 'GET', url: '/v1/stats' });
    assert.equal(stats.json().inDoubt, 0);
  });
});

describe('the decision log stays small', () => {
  async function runMany(manager: TransactionManager, rounds: number, perRound: number, keyed: (i: number) => string | undefined, onRound: () => void): Promise<void> {
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      const batch = [];
      for (let i = 0; i < perRound; i++, n++) {
        const key = keyed(n);
        batch.push(manager.begin({ ...order, ...(key !== undefined ? { idempotencyKey: key } : {}) }));
      }
      for (const result of await Promise.all(batch)) assert.equal(result.outcome, 'committed');
      await manager.settled();
      onRound();
    }
  }

  const waitForDoneMarks = () => new Promise((resolve) => setTimeout(resolve, 30));

  it('thousands of transactions: pruned SQLite log keeps a bounded record count and file size; unpruned grows', async (t) => {
    const rounds = 40;
    const perRound = 100;
    const pruned = new SqliteDecisionLog(path.join(tempDir(t), 'pruned.db'));
    const unpruned = new SqliteDecisionLog(path.join(tempDir(t), 'unpruned.db'));
    // Resource-blind admission: this test is about the log, not about overload refusals.
    const a = setup(t, undefined, { recentLimit: 10, scheduler: false }, pruned);
    const b = setup(t, undefined, { recentLimit: 10, scheduler: false }, unpruned);
    let maxRecords = 0;
    let maxBytes = 0;
    await runMany(a.manager, rounds, perRound, () => undefined, () => {
      a.manager.pruneFinished();
      maxRecords = Math.max(maxRecords, pruned.countRecords());
      maxBytes = Math.max(maxBytes, pruned.sizeOnDisk());
    });
    await runMany(b.manager, rounds, perRound, () => undefined, () => {});
    await waitForDoneMarks();
    a.manager.pruneFinished();
    const total = rounds * perRound;
    assert.equal(unpruned.countRecords(), total, 'without pruning every record stays');
    assert.ok(maxRecords <= 2 * perRound, `pruned log held at most ${maxRecords} records (in flight + one round of late done marks)`);
    assert.equal(pruned.countRecords(), 0, 'everything finished is gone');
    assert.equal(a.manager.stats().logPruned, total);
    const unprunedBytes = unpruned.sizeOnDisk();
    t.diagnostic(JSON.stringify({ transactions: total, prunedPeakRecords: maxRecords, prunedPeakBytes: maxBytes, prunedEndBytes: pruned.sizeOnDisk(), unprunedRecords: total, unprunedBytes }));
    assert.ok(maxBytes * 4 < unprunedBytes, `pruned file peaked at ${maxBytes} bytes, unpruned is ${unprunedBytes}`);
    assert.ok(pruned.sizeOnDisk() * 8 < unprunedBytes, `pruned file ends at ${pruned.sizeOnDisk()} bytes`);
  });

  it('keyed records are kept for the retention window, then pruned; a pruned tx answers not found and abort', async (t) => {
    const log = new SqliteDecisionLog(path.join(tempDir(t), 'keyed.db'));
    const { manager } = setup(t, undefined, { recentLimit: 1, idempotencyRetentionMs: 3_600_000 }, log);
    const first = await manager.begin({ ...order, idempotencyKey: 'k-1' });
    const unkeyed = await manager.begin(order);
    await manager.begin(order); // pushes the others out of the in-memory recent list
    await manager.settled();
    await waitForDoneMarks();
    manager.pruneFinished();
    assert.equal((await manager.begin({ ...order, idempotencyKey: 'k-1' })).txId, first.txId, 'within retention: the first outcome');
    assert.throws(() => manager.status(unkeyed.txId), isCode('TXM_TX_NOT_FOUND'), 'unkeyed: pruned at once');
    assert.equal(manager.decision(unkeyed.txId).decision, 'abort', 'presumed abort for a pruned (finished) tx');

    assert.equal(manager.pruneFinished(Date.now() + 3_600_001), 1, 'past the retention the keyed record goes');
    assert.equal(log.countRecords(), 0);
    assert.throws(() => manager.status(first.txId), isCode('TXM_TX_NOT_FOUND'));
    const again = await manager.begin({ ...order, idempotencyKey: 'k-1' });
    assert.notEqual(again.txId, first.txId, 'after the retention window a retry runs as new');
  });

  it('unfinished records are never pruned', async (t) => {
    const store = new MemoryLogStore();
    const { manager } = setup(t, (item) => (item.action === 'commit' ? 'throw' : 'ok'), {}, new MemoryDecisionLog(store));
    const result = await manager.begin(order);
    assert.equal(manager.pruneFinished(Date.now() + 10 * 3_600_000), 0);
    assert.equal(store.records.get(result.txId)?.state, 'COMMITTING');
    assert.equal(manager.decision(result.txId).decision, 'commit');
  });

  it('groupCommit=false writes every forced append as its own flush', async () => {
    const grouped = new MemoryDecisionLog(new MemoryLogStore());
    const naive = new MemoryDecisionLog(new MemoryLogStore(), { groupCommit: false });
    const record = (txId: string) => ({
      txId,
      state: 'COMMITTING' as const,
      participants: [],
      result: { txId, outcome: 'committed' as const, participants: [], durationMs: 0 },
      createdAt: 1,
      decidedAt: 2,
    });
    await Promise.all([1, 2, 3].map((i) => grouped.append(record(`0-g${i}`))));
    await Promise.all([1, 2, 3].map((i) => naive.append(record(`0-n${i}`))));
    assert.equal(grouped.stats().flushes, 1);
    assert.equal(naive.stats().flushes, 3);
    assert.equal(naive.stats().records, 3);
  });
});
