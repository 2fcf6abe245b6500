/**
 * `txmesh bench --telemetry` end to end, short and at low concurrency: three clusters taking turns, and
 * figures that agree with each other. Its own file: with the other bench runs it outgrew a file's time budget.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRun, close, median, run } from './bench-run.ts';

test('txmesh bench --telemetry: three clusters take turns (metrics, no SDK, every span over OTLP); the ratios are medians of the rounds', async () => {
  const rounds = 2;
  const windowSec = 2;
  const { code, stdout, stderr } = await run(['bench', '--concurrency', '4', '--duration', String(rounds * windowSec), '--warmup', '1', '--probe', '0', '--startup-rounds', '0', '--telemetry', '--telemetry-rounds', String(rounds), '--json'], 200_000);
  assert.equal(code, 0, `bench failed:\n${stderr}`);
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>;
  const { telemetry } = report;
  assert.equal(telemetry.rounds, rounds);
  assert.equal(telemetry.windowSec, windowSec);
  assert.equal(telemetry.metrics.env.OTEL_SDK_DISABLED, undefined);
  assert.equal(telemetry.metrics.env.OTEL_TRACES_EXPORTER, undefined, 'the default: metrics served, no traces');
  assert.equal(telemetry.noSdk.env.OTEL_SDK_DISABLED, 'true');
  assert.equal(telemetry.otlp.env.OTEL_EXPORTER_OTLP_PROTOCOL, 'http/protobuf', 'the SDK default, as a collector gets it');
  for (const mode of ['metrics', 'noSdk', 'otlp']) {
    const m = telemetry[mode];
    assert.equal(m.windows.length, rounds, `${mode}: one window per round`);
    for (const w of m.windows) checkRun(mode, w, windowSec);
    assert.equal(m.committedTps, median(m.windows.map((w: { committedTps: number }) => w.committedTps)), `${mode}: committed/s is the windows' median`);
    assert.equal(m.verified.invariantsOk, true, `${mode}: every service agrees after all its windows`);
  }
  assert.equal(report.invariantsOk, true, 'every run, tracing included, leaves every service agreeing');
  assert.equal(telemetry.perRound.length, rounds);
  telemetry.perRound.forEach((r: Record<string, any>, i: number) => {
    assert.equal(r.order[0], ['metrics', 'noSdk', 'otlp'][i % 3], 'the order rotates from round to round');
    assert.deepEqual([...r.order].sort(), ['metrics', 'noSdk', 'otlp'], 'every mode runs once per round');
    for (const mode of ['metrics', 'noSdk', 'otlp']) assert.equal(r.committedTps[mode], telemetry[mode].windows[i].committedTps, `round ${i + 1}: ${mode} is its window`);
    assert.ok(close(r.otlpOverMetrics, r.committedTps.otlp / r.committedTps.metrics, 0.001, 1e-3), 'a round\'s ratio is otlp / metrics of that round');
    assert.ok(close(r.noSdkOverMetrics, r.committedTps.noSdk / r.committedTps.metrics, 0.001, 1e-3), 'a round\'s ratio is no-sdk / metrics of that round');
  });
  telemetry.perRound.forEach((r: Record<string, any>, i: number) => {
    for (const mode of ['metrics', 'noSdk', 'otlp']) {
      const other = r.otherCpuPercent[mode];
      assert.ok(typeof other === 'number' && other >= 0 && other <= 100, `round ${i + 1}: ${mode}'s window says how much of the machine other work took (${other})`);
      assert.equal(other, telemetry[mode].windows[i].otherCpuPercent);
    }
  });
  assert.ok(close(telemetry.ofMedians.otlpOverMetrics, telemetry.otlp.committedTps / telemetry.metrics.committedTps, 0.001, 1e-3), 'the ratio of the modes\' medians is reported too');
  assert.ok(close(telemetry.ofMedians.noSdkOverMetrics, telemetry.noSdk.committedTps / telemetry.metrics.committedTps, 0.001, 1e-3));
  for (const mode of ['metrics', 'noSdk', 'otlp']) {
    const roles = telemetry.cpuMsPerTxByRole[mode];
    assert.deepEqual(Object.keys(roles).sort(), ['bench', 'coordinators', 'services', 'sidecars'], `${mode}: CPU per committed tx by role`);
    for (const role of ['coordinators', 'services', 'sidecars']) assert.ok(roles[role] > 0, `${mode}: ${role} used CPU (${roles[role]} ms/tx)`);
    const windows = telemetry[mode].windows as { coordinatorCommitted: number; cpuMsPerTx: number }[];
    const committed = windows.reduce((n, w) => n + w.coordinatorCommitted, 0);
    const cluster = windows.reduce((ms, w) => ms + w.cpuMsPerTx * w.coordinatorCommitted, 0) / committed;
    assert.ok(close(roles.coordinators + roles.services + roles.sidecars, cluster, 0.02, 0.01), `${mode}: the roles add up to the cluster's CPU per committed tx (${cluster})`);
  }
  assert.equal(telemetry.otlpOverMetrics, median(telemetry.perRound.map((r: { otlpOverMetrics: number }) => r.otlpOverMetrics)));
  assert.equal(telemetry.noSdkOverMetrics, median(telemetry.perRound.map((r: { noSdkOverMetrics: number }) => r.noSdkOverMetrics)));
  // A committed 4-service transaction makes 17 spans of its own (coordinate, 4 prepare and 4 commit branch
  // spans, 8 hook spans) besides the batch spans it shares: every one reached the receiver.
  const decided = telemetry.otlp.windows.reduce((n: number, w: { committed: number; aborted: number }) => n + w.committed + w.aborted, 0);
  assert.ok(telemetry.receiver.spans >= 17 * decided, `every span exported: ${telemetry.receiver.spans} spans for ${decided} transactions in the windows alone`);
  // The SDK exports every 5 s or 512 spans, so a short window may see none arrive; the ratio is what it counted.
  const { inWindows, perCommittedTx } = telemetry.otlp.spans;
  const committedInWindows = telemetry.otlp.windows.reduce((n: number, w: { coordinatorCommitted: number }) => n + w.coordinatorCommitted, 0);
  assert.ok(close(perCommittedTx, inWindows / committedInWindows, 0.01, 0.01), `spans per committed tx is what arrived in the windows over committed: ${JSON.stringify(telemetry.otlp.spans)}`);
  assert.equal(telemetry.noSdk.spans, undefined, 'nothing exported without an SDK');
  const targets = (report.targets as { target: string; value: number; limit: number }[]).filter((t) => /OTLP|OpenTelemetry SDK/.test(t.target));
  assert.deepEqual(targets.map((t) => [t.value, t.limit]), [[telemetry.otlpOverMetrics, 0.85], [telemetry.noSdkOverMetrics, 0.98]]);
});
