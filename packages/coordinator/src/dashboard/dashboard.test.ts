import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildCoordinator } from '../app.ts';
import { FakeTransport } from '../testing/fake-transport.ts';
import type { DashboardData } from './dashboard-routes.ts';
import { HISTORY_SECONDS, LATENCY_WINDOW_MS, RecentActivity } from './recent-activity.ts';

async function setup(t: TestContext) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-dash-'));
  const transport = new FakeTransport((item) => (item.action === 'prepare' && item.operations?.[0]?.op === 'refuse' ? { status: 'no', reason: 'OUT_OF_STOCK' } : 'ok'));
  const coordinator = await buildCoordinator({ shard: 0, shards: 1, dataDir }, { transport });
  t.after(async () => {
    await coordinator.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  for (const service of ['inventory', 'payment']) {
    const res = await coordinator.app.inject({ method: 'POST', url: '/v1/services', payload: { service, sidecarUrl: `http://127.0.0.1:9/${service}` } });
    assert.equal(res.statusCode, 200);
  }
  return coordinator;
}

const tx = (op: string) => ({ participants: [{ service: 'inventory', operations: [{ op }] }, { service: 'payment', operations: [{ op: 'charge' }] }] });

describe('dashboard', () => {
  it('serves the page and data that follow the transactions run here', async (t) => {
    const { app, manager } = await setup(t);
    const page = await app.inject({ method: 'GET', url: '/dashboard' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /id="committed-total"/);

    for (let i = 0; i < 3; i++) assert.equal((await app.inject({ method: 'POST', url: '/v1/transactions', payload: tx('reserve') })).json().outcome, 'committed');
    const refused = (await app.inject({ method: 'POST', url: '/v1/transactions', payload: tx('refuse') })).json();
    assert.equal(refused.outcome, 'aborted');
    await manager.settled();

    const res = await app.inject({ method: 'GET', url: '/dashboard/data' });
    assert.equal(res.statusCode, 200);
    const data = res.json<DashboardData>();
    assert.deepEqual(data.services.map((s) => s.service), ['inventory', 'payment']);
    assert.equal(data.totals.committed, 3);
    assert.equal(data.totals.aborted, 1);
    assert.equal(data.activity.perSecond.length, HISTORY_SECONDS);
    assert.equal(data.activity.perSecond.reduce((n, s) => n + s.committed, 0), 3);
    assert.deepEqual(data.activity.abortsByReason, { OUT_OF_STOCK: 1 });
    assert.equal(data.activity.recentAborts[0]?.txId, refused.txId);
    assert.equal(data.activity.latency.samples, 4);
    assert.ok(data.activity.latency.p99Ms !== undefined && data.activity.latency.p99Ms >= data.activity.latency.p50Ms!);
    assert.deepEqual(data.inDoubt, []);
  });

  it('keeps only the last minutes: old seconds and old latencies fall out', () => {
    const activity = new RecentActivity();
    const start = 1_700_000_000_000;
    const result = (outcome: 'committed' | 'aborted', durationMs: number) => ({ txId: `0-x-${durationMs}`, outcome, participants: [], durationMs, ...(outcome === 'aborted' ? { reason: 'TIMEOUT' } : {}) });
    activity.note(result('committed', 10), start);
    activity.note(result('aborted', 900), start + 500);
    let snap = activity.snapshot(start + 1000);
    assert.equal(snap.perSecond.at(-2)?.committed, 1);
    assert.equal(snap.perSecond.at(-2)?.aborted, 1);
    assert.equal(snap.latency.p50Ms, 10);
    assert.equal(snap.latency.p99Ms, 900);
    snap = activity.snapshot(start + LATENCY_WINDOW_MS + 1000);
    assert.equal(snap.latency.samples, 0, 'latencies older than the window are not counted');
    assert.equal(snap.abortsByReason.TIMEOUT, 1, 'the abort is still within the history');
    snap = activity.snapshot(start + (HISTORY_SECONDS + 1) * 1000);
    assert.equal(snap.perSecond.reduce((n, s) => n + s.committed + s.aborted, 0), 0, 'seconds older than the history are gone');
    assert.deepEqual(snap.abortsByReason, {});
    // A slot reused by a later second starts from zero.
    activity.note(result('committed', 5), start + HISTORY_SECONDS * 1000);
    assert.equal(activity.snapshot(start + HISTORY_SECONDS * 1000).perSecond.at(-1)?.committed, 1);
  });
});
