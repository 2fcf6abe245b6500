import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { InjectOptions } from 'fastify';
import { newTxId } from '@txmesh/protocol';
import { buildCoordinator, decisionLogPath } from './app.ts';
import { SqliteDecisionLog } from './sqlite-decision-log.ts';
import { FakeTransport } from './testing/fake-transport.ts';

async function setup(t: TestContext) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-coord-'));
  const transport = new FakeTransport();
  // The coordinator holds its log exclusively (no second connection can read it while it runs), so the test
  // hands it the log and counts what it made durable.
  const log = new SqliteDecisionLog(decisionLogPath(dataDir, 0));
  const coordinator = await buildCoordinator({ shard: 0, shards: 2, dataDir }, { transport, log });
  t.after(async () => {
    await coordinator.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const { app } = coordinator;
  const register = await app.inject({ method: 'POST', url: '/v1/services', payload: { service: 'inventory', sidecarUrl: 'http://127.0.0.1:9001/' } });
  assert.equal(register.statusCode, 200);
  return { ...coordinator, transport, dataDir, log };
}

/** Decision records the shard's (fresh) log made durable: refusals must leave none. */
function decisionRows(log: SqliteDecisionLog): number {
  return log.stats().records;
}

const validBody = { participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a' } }] }] };

describe('coordinator routes', () => {
  it('is alive at once and ready only after recovery', async (t) => {
    const { app, recover } = await setup(t);
    assert.equal((await app.inject({ method: 'GET', url: '/v1/health' })).statusCode, 200);
    const early = await app.inject({ method: 'GET', url: '/v1/ready' });
    assert.equal(early.statusCode, 503);
    assert.equal(early.json().error.code, 'TXM_NOT_READY');
    assert.match(early.json().error.details, /coordinator shard 0 of 2 has not recovered/);
    recover();
    const ready = await app.inject({ method: 'GET', url: '/v1/ready' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { ready: true, role: 'coordinator shard 0 of 2' });
  });

  it('refuses bad input with the catalogue code and changes nothing', async (t) => {
    const { app, transport, manager, log } = await setup(t);
    const cases: { name: string; request: InjectOptions; status: number; code: string }[] = [
      { name: 'bad JSON', request: { method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json' }, payload: '{"participants": [' }, status: 400, code: 'TXM_BAD_REQUEST' },
      { name: 'empty body', request: { method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json' }, payload: '' }, status: 400, code: 'TXM_BAD_REQUEST' },
      { name: 'not JSON', request: { method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'text/plain' }, payload: 'commit please' }, status: 415, code: 'TXM_UNSUPPORTED_MEDIA_TYPE' },
      {
        name: 'oversized body',
        request: { method: 'POST', url: '/v1/transactions', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ ...validBody, pad: 'x'.repeat(1024 * 1024) }) },
        status: 413,
        code: 'TXM_BODY_TOO_LARGE',
      },
      { name: 'empty participants', request: { method: 'POST', url: '/v1/transactions', payload: { participants: [] } }, status: 400, code: 'TXM_NO_PARTICIPANTS' },
      { name: 'body not an object', request: { method: 'POST', url: '/v1/transactions', payload: [1, 2] }, status: 400, code: 'TXM_BAD_REQUEST' },
      { name: 'bad timeout', request: { method: 'POST', url: '/v1/transactions', payload: { ...validBody, timeoutMs: -1 } }, status: 400, code: 'TXM_BAD_TIMEOUT' },
      {
        name: 'unknown service',
        request: { method: 'POST', url: '/v1/transactions', payload: { participants: [...validBody.participants, { service: 'ghost', operations: [{ op: 'x' }] }], idempotencyKey: 'k1-2' } },
        status: 422,
        code: 'TXM_UNKNOWN_SERVICE',
      },
      { name: 'wrong shard', request: { method: 'GET', url: '/v1/transactions/1-abc-0123456789abcdef' }, status: 421, code: 'TXM_WRONG_SHARD' },
      { name: 'wrong shard decision', request: { method: 'GET', url: '/v1/transactions/1-abc-0123456789abcdef/decision' }, status: 421, code: 'TXM_WRONG_SHARD' },
      { name: 'bad tx id', request: { method: 'GET', url: '/v1/transactions/not-an-id' }, status: 400, code: 'TXM_BAD_TX_ID' },
      { name: 'bad tx id decision', request: { method: 'GET', url: '/v1/transactions/%00%ff/decision' }, status: 400, code: 'TXM_BAD_TX_ID' },
      { name: 'overlong tx id', request: { method: 'GET', url: `/v1/transactions/0-abc-${'f'.repeat(200)}/decision` }, status: 400, code: 'TXM_BAD_TX_ID' },
      { name: 'unknown tx', request: { method: 'GET', url: `/v1/transactions/${newTxId(0)}` }, status: 404, code: 'TXM_TX_NOT_FOUND' },
      { name: 'tx older than the log', request: { method: 'GET', url: '/v1/transactions/0-abc-0123456789abcdef/decision' }, status: 409, code: 'TXM_DECISION_UNKNOWN' },
      {
        name: 'args nested 10,000 deep',
        request: {
          method: 'POST',
          url: '/v1/transactions',
          headers: { 'content-type': 'application/json' },
          payload: `{"idempotencyKey":"deep-1","participants":[{"service":"inventory","operations":[{"op":"reserve","args":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}]}]}`,
        },
        status: 400,
        code: 'TXM_BAD_REQUEST',
      },
      { name: 'bad registration', request: { method: 'POST', url: '/v1/services', payload: { service: 'x', sidecarUrl: 'ftp://a' } }, status: 400, code: 'TXM_BAD_REQUEST' },
      { name: 'no such route', request: { method: 'GET', url: '/v2/anything' }, status: 404, code: 'TXM_NOT_FOUND' },
    ];
    for (const c of cases) {
      const response = await app.inject(c.request);
      assert.equal(response.statusCode, c.status, `${c.name}: ${response.body}`);
      const body = response.json() as { error: { code: string; message: string } };
      assert.equal(body.error.code, c.code, c.name);
      assert.ok(body.error.message.length > 10, c.name);
      assert.doesNotMatch(response.body, /\n\s+at /, `${c.name} leaks no stack`);
    }
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(transport.batches.length, 0, 'nothing was sent to any sidecar');
    assert.equal(manager.stats().inFlight, 0);
    assert.equal(decisionRows(log), 0, 'no decision record was written');
    const services = (await app.inject({ method: 'GET', url: '/v1/services' })).json() as { services: { service: string }[] };
    assert.deepEqual(services.services.map((s) => s.service), ['inventory'], 'a refused registration added nothing');
  });

  it('runs a transaction end to end and answers status, decision, services, health and stats', async (t) => {
    const { app, manager, log } = await setup(t);
    const registered = await app.inject({
      method: 'POST',
      url: '/v1/services',
      payload: { service: 'payment', sidecarUrl: 'http://127.0.0.1:9002', report: { cpuPercent: 12, junk: 'x' } },
    });
    assert.deepEqual(registered.json(), { shard: 0, shards: 2, heartbeatMs: 1000 });

    const response = await app.inject({
      method: 'POST',
      url: '/v1/transactions',
      payload: { participants: [...validBody.participants, { service: 'payment', operations: [{ op: 'charge' }] }], idempotencyKey: 'o-1' },
    });
    assert.equal(response.statusCode, 200, response.body);
    const result = response.json() as { txId: string; outcome: string };
    assert.equal(result.outcome, 'committed');
    assert.equal(decisionRows(log), 1);

    const again = await app.inject({ method: 'POST', url: '/v1/transactions', payload: { participants: validBody.participants, idempotencyKey: 'o-1' } });
    assert.equal(again.statusCode, 409);
    assert.equal((again.json() as { error: { code: string } }).error.code, 'TXM_IDEMPOTENCY_CONFLICT');

    const decision = await app.inject({ method: 'GET', url: `/v1/transactions/${result.txId}/decision` });
    assert.deepEqual(decision.json(), { txId: result.txId, decision: 'commit' });
    await manager.settled();
    const status = (await app.inject({ method: 'GET', url: `/v1/transactions/${result.txId}` })).json() as { state: string; shard: number };
    assert.equal(status.state, 'COMMITTED');
    assert.equal(status.shard, 0);

    const services = (await app.inject({ method: 'GET', url: '/v1/services' })).json() as { services: { service: string; sidecarUrl: string; report?: object }[] };
    assert.deepEqual(services.services.map((s) => [s.service, s.sidecarUrl]), [['inventory', 'http://127.0.0.1:9001'], ['payment', 'http://127.0.0.1:9002']]);
    assert.equal((services.services[1]?.report as { cpuPercent?: number }).cpuPercent, 12);

    assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/health' })).json(), { ok: true, shard: 0, shards: 2, inFlight: 0 });
    const stats = (await app.inject({ method: 'GET', url: '/v1/stats' })).json() as Record<string, number>;
    for (const key of ['aborted', 'batchesSent', 'committed', 'inFlight', 'itemsSent', 'logFlushes', 'logRecords', 'recovered', 'refusedOverloaded', 'schedulerEnabled']) {
      assert.ok(key in stats, `stats has ${key}`);
    }
    const view = services.services[0] as { scheduler?: { enabled: boolean; limit: number; inFlight: number; queued: number } };
    assert.equal(view.scheduler?.enabled, true);
    assert.ok((view.scheduler?.limit ?? 0) >= 1);
    assert.equal(view.scheduler?.inFlight, 0);
    assert.equal(view.scheduler?.queued, 0);
    assert.equal(stats.committed, 1);
    assert.equal(stats.logRecords, 1);
    assert.ok((stats.logFlushes ?? 0) >= 1);
    assert.equal(stats.itemsSent, 4, 'two prepares and two commits');
  });

  it('refuses a transaction whose service is saturated with 429 TXM_OVERLOADED and Retry-After, before sending anything', async (t) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-coord-'));
    // The first prepare never answers, so it holds the service's only slot.
    const transport = new FakeTransport(() => 'hang');
    const log = new SqliteDecisionLog(decisionLogPath(dataDir, 0));
    const coordinator = await buildCoordinator(
      { shard: 0, shards: 2, dataDir, scheduler: { initialLimit: 1, minLimit: 1, maxLimit: 1, maxQueueWaitMs: 0 } },
      { transport, log },
    );
    t.after(async () => {
      await coordinator.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    const { app } = coordinator;
    await app.inject({ method: 'POST', url: '/v1/services', payload: { service: 'inventory', sidecarUrl: 'http://127.0.0.1:9001' } });
    const holding = app.inject({ method: 'POST', url: '/v1/transactions', payload: { ...validBody, timeoutMs: 60_000 } });
    for (let turn = 0; turn < 50 && transport.batches.length === 0; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(transport.batches.length, 1, 'the first transaction is preparing');
    const refused = await app.inject({ method: 'POST', url: '/v1/transactions', payload: validBody });
    assert.equal(refused.statusCode, 429, refused.body);
    assert.equal((refused.json() as { error: { code: string } }).error.code, 'TXM_OVERLOADED');
    assert.match(String(refused.headers['retry-after']), /^[1-9][0-9]*$/);
    assert.equal(transport.batches.length, 1, 'nothing was sent for the refused transaction');
    assert.equal(decisionRows(log), 0);
    const stats = (await app.inject({ method: 'GET', url: '/v1/stats' })).json() as { refusedOverloaded: number };
    assert.equal(stats.refusedOverloaded, 1);
    const view = ((await app.inject({ method: 'GET', url: '/v1/services' })).json() as { services: { scheduler: { inFlight: number; limit: number } }[] }).services[0];
    assert.deepEqual([view?.scheduler.inFlight, view?.scheduler.limit], [1, 1]);
    await coordinator.close();
    await holding;
  });
});
