/**
 * Prometheus metrics across real processes: every member's GET /metrics passes `promtool check metrics`,
 * and the counters move as transactions run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CoordinatorMetricNames } from '@txmesh/coordinator';
import { ParticipantMetricNames } from '@txmesh/participant-sdk';
import { SidecarMetricNames } from '@txmesh/sidecar';
import { DEFAULT_METRICS_PORT } from 'txmesh';
import { goodOrder, postJson, refusedOrder, runTxmesh, spawnTxmesh, startTestCluster, waitReady } from './helpers.ts';
import { ensureTestTool } from './tools.ts';

async function scrape(url: string | undefined): Promise<string> {
  assert.ok(url, 'the member printed no metrics URL');
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return res.text();
}

/** Sum of a metric's samples whose labels include every `labels` pair. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

test('every process serves /metrics that promtool accepts, and the counters move with transactions', async (t) => {
  const promtool = ensureTestTool('promtool');
  const cluster = await startTestCluster(t);
  const coordinator = cluster.coordinators[0]!;
  const before = await scrape(coordinator.metricsUrl);

  const committed = 6;
  for (let i = 0; i < committed; i++) {
    const res = await postJson(`${coordinator.url}/v1/transactions`, goodOrder(`metrics-${i}`, 20_000));
    assert.equal(res.body.outcome, 'committed', JSON.stringify(res.body));
  }
  // A business refusal: shipping refuses an empty address.
  const refused = await postJson(`${coordinator.url}/v1/transactions`, refusedOrder('metrics-refused', 20_000));
  assert.equal(refused.body.outcome, 'aborted');
  assert.equal(refused.body.reason, 'UNDELIVERABLE');

  const after = await scrape(coordinator.metricsUrl);
  assert.equal(sample(after, 'txmesh_transactions_total', { outcome: 'committed' }) - sample(before, 'txmesh_transactions_total', { outcome: 'committed' }), committed);
  assert.equal(sample(after, 'txmesh_transactions_total', { outcome: 'aborted', reason: refused.body.reason }) - sample(before, 'txmesh_transactions_total', { outcome: 'aborted', reason: refused.body.reason }), 1);
  assert.equal(sample(after, 'txmesh_transaction_duration_seconds_count') - sample(before, 'txmesh_transaction_duration_seconds_count'), committed + 1);
  assert.ok(sample(after, 'txmesh_decision_log_records_total') >= committed, 'every commit forced a decision record');
  assert.ok(sample(after, 'txmesh_decision_log_force_duration_seconds_count') >= 1);
  for (const service of ['inventory', 'payment', 'order', 'shipping']) {
    assert.ok(sample(after, 'txmesh_prepare_duration_seconds_count', { service }) >= committed, `prepares to ${service} are timed`);
    assert.ok(sample(after, 'txmesh_batch_items_count', { service }) >= 1, `batches to ${service} are counted`);
    assert.ok(after.includes(`txmesh_scheduler_limit{service="${service}"`), `the scheduler lane of ${service} is a gauge`);
  }
  assert.ok(after.includes('txmesh_branches_in_doubt{'), 'in-doubt branches are a gauge');

  // The sidecar counts the items it received; its prepared-records gauge is back to 0 once delivered.
  const sidecar = await scrape(cluster.sidecars.get('payment')!.metricsUrl);
  assert.ok(sample(sidecar, 'txmesh_sidecar_batch_items_received_total') >= 2 * committed, 'prepares and commits reached the sidecar');
  assert.ok(sidecar.includes('txmesh_sidecar_prepared_records{'), 'prepared records are a gauge');

  // Each service registered its own provider; the participant SDK inside it reports its locks there.
  const service = await scrape(cluster.services.get('inventory')!.metricsUrl);
  assert.ok(service.includes('txmesh_locks_held{'), 'locks held are a gauge in the service process');

  const members = [...cluster.coordinators, ...cluster.sidecars.values(), ...cluster.services.values()];
  for (const member of members) {
    const text = await scrape(member.metricsUrl);
    const check = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool check metrics on ${member.name}: ${check.stdout}${check.stderr}`);
  }
});

test('the Grafana dashboard queries only metrics txmesh exports', () => {
  const exported = new Set<string>([
    ...Object.values(CoordinatorMetricNames),
    ...Object.values(SidecarMetricNames),
    ...Object.values(ParticipantMetricNames),
    'txmesh_build_info',
  ]);
  const dashboard = readFileSync(new URL('../../helm/txmesh/dashboards/txmesh.json', import.meta.url), 'utf8');
  const queried = new Set([...dashboard.matchAll(/\btxmesh_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
  assert.ok(queried.size >= 15, `the dashboard queries ${queried.size} metrics`);
  for (const name of queried) assert.ok(exported.has(name), `${name} in helm/txmesh/dashboards/txmesh.json is not a metric txmesh exports`);
  const panels = (JSON.parse(dashboard) as { panels: { targets: { expr: string }[] }[] }).panels;
  assert.ok(panels.every((p) => p.targets.length > 0 && p.targets.every((t) => t.expr.includes('$job'))), 'every query is scoped by the job variable');
});

test('the default metrics port taken falls back to a free one; a port given with --metrics-port must be free', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-metrics-port-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Hold the default port (or find it held already, by another process on this host).
  const holder = createServer();
  await new Promise<void>((resolve) => holder.once('error', () => resolve()).listen(DEFAULT_METRICS_PORT, '127.0.0.1', resolve));
  t.after(() => holder.close());

  const coordinator = spawnTxmesh(t, ['coordinator', '--port', '0', '--data', dir, '--insecure']);
  await waitReady(coordinator);
  const metricsUrl = /^TXMESH_METRICS (\S+)$/m.exec(coordinator.stdout())?.[1];
  assert.ok(metricsUrl && new URL(metricsUrl).port !== String(DEFAULT_METRICS_PORT), `another port: ${coordinator.stdout()}`);
  assert.match(coordinator.stderr(), new RegExp(`the default metrics port ${DEFAULT_METRICS_PORT} is in use on 127\\.0\\.0\\.1; /metrics is on port ${new URL(metricsUrl).port}`));
  assert.match(await scrape(metricsUrl), /txmesh_build_info/);
  // Anything else on that port is refused in the catalogue's shape.
  const other = await fetch(new URL('/nope', metricsUrl), { method: 'POST' });
  assert.equal(other.status, 404);
  assert.equal(((await other.json()) as { error: { code: string } }).error.code, 'TXM_NOT_FOUND');

  const refused = await runTxmesh(t, ['coordinator', '--port', '0', '--data', dir, '--insecure', '--metrics-port', String(DEFAULT_METRICS_PORT)]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, new RegExp(`--metrics-port ${DEFAULT_METRICS_PORT} is in use on 127\\.0\\.0\\.1: pick another port, or 0 for any free one`));
});
