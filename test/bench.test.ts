/**
 * `txmesh bench --json` end to end, short and at low concurrency: the shape of the last stdout line and
 * that its figures agree with each other. Speed is not checked here (shared machines); the benchmark
 * itself prints it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { processCpuMs, processMemoryMb } from '@txmesh/lab';
import { TXMESH_BIN } from './helpers.ts';


function run(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TXMESH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Equal up to `relative` of b, plus the rounding of the printed figures. */
const close = (a: number, b: number, relative: number, rounding = 1e-6): boolean => Math.abs(a - b) <= relative * Math.abs(b) + rounding;

/** Checks one run's figures against each other. */
function checkRun(name: string, r: Record<string, any>, durationSec: number): void {
  assert.ok(r.committed > 0, `${name}: some transactions commit`);
  assert.ok(close(r.committedTps, r.committed / durationSec, 0.001, 0.01), `${name}: committedTps = committed / duration`);
  assert.equal(r.goodputTps, r.committedTps, `${name}: goodput is committed per second`);
  assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.maxMs >= r.p99Ms, `${name}: 0 < p50 <= p99 <= max`);
  assert.ok(r.coordinatorCommitted > 0, `${name}: the coordinator counted commits in the window`);
  assert.ok(r.coordinatorFsyncsPerTx > 0, `${name}: a commit needs a forced record`);
  const { coordinatorToSidecarBatches: batches, sidecarToService, sidecarToCoordinator, sidecarStatsMissing } = r.requests;
  assert.deepEqual(sidecarStatsMissing, [], `${name}: every sidecar answers its stats`);
  assert.ok(batches > 0 && sidecarToService > 0, `${name}: batches went out and reached the services`);
  assert.ok(
    close(r.requestsPerTx, (batches + sidecarToService + sidecarToCoordinator) / r.coordinatorCommitted, 0.001, 1e-4),
    `${name}: requestsPerTx is the sum of the counted requests over committed`,
  );
  assert.ok(r.cpuMsPerTx > 0, `${name}: the cluster used CPU`);
  const cpuSum = Object.values(r.cpuMsByMember as Record<string, number>).reduce((a, b) => a + b, 0);
  assert.ok(close(r.cpuMsPerTx, cpuSum / r.coordinatorCommitted, 0.01, 1e-3), `${name}: cpuMsPerTx is the members' CPU over committed`);
  assert.equal(Object.keys(r.cpuMsByMember).length, 9, `${name}: 1 coordinator, 4 services, 4 sidecars`);
  assert.ok(r.coordinatorRssMb > 0, `${name}: coordinator memory read`);
  for (const service of ['inventory', 'payment', 'order', 'shipping']) {
    assert.ok(r.memoryMb[`sidecar-${service}`]?.rssMb > 0, `${name}: sidecar-${service} memory read`);
  }
  assert.deepEqual(Object.keys(r.startupMs).sort(), Object.keys(r.cpuMsByMember).sort(), `${name}: every member's start was timed`);
  for (const [member, ms] of Object.entries(r.startupMs as Record<string, number>)) assert.ok(ms > 0, `${name}: ${member} took time to start`);
}

const ROLES = ['coordinator', 'service', 'sidecar'];
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
const largestOf = (r: Record<string, any>, prefix: string): number =>
  Math.max(...Object.entries(r.memoryMb as Record<string, { rssMb: number }>).filter(([n]) => n.startsWith(prefix)).map(([, m]) => m.rssMb));

/** startupMs and rssMb per role, and the targets of issue 17 made of them. */
function checkRoles(report: Record<string, any>, startupRounds: number): void {
  assert.deepEqual(Object.keys(report.startupMs).sort(), ROLES, 'startupMs for each role');
  assert.deepEqual(Object.keys(report.rssMb).sort(), ROLES, 'rssMb for each role');
  assert.equal(report.startupFrom, 'probe');
  assert.equal(report.startup.rounds, startupRounds);
  for (const role of ROLES) {
    const samples = report.startup.samplesMs[role] as number[];
    assert.equal(samples.length, startupRounds, `${role}: one spawn per round`);
    assert.ok(samples.every((ms) => ms > 0), `${role}: every spawn took time`);
    assert.equal(report.startupMs[role], median(samples), `${role}: startupMs is the median of the probe's spawns`);
    const cpuSamples = report.startup.cpuSamplesMs[role] as number[];
    assert.ok(cpuSamples.length === startupRounds && cpuSamples.every((ms) => ms > 0), `${role}: CPU until ready read for every spawn`);
    assert.equal(report.startupCpuMs[role], median(cpuSamples), `${role}: startupCpuMs is the median of the probe's CPU times`);
    assert.ok(report.idleRssMb[role] > 30, `${role}: idle memory read (a Node process holds more than 30 MB)`);
    assert.equal(report.rssMb[role], largestOf(report.run, `${role}-`), `${role}: rssMb is the role's largest member at the end of the main window`);
  }
  assert.equal(report.rssMb.coordinator, report.coordinatorRssMb, 'one shard: its memory is the coordinator figure');
  assert.equal(report.rssMb.sidecar, Math.max(...(Object.values(report.sidecarRssMb) as number[])));

  const targets = report.targets as { target: string; met: boolean; value: number; limit: number }[];
  const target = (re: RegExp): { met: boolean; value: number; limit: number } => {
    const found = targets.filter((t) => re.test(t.target));
    assert.equal(found.length, 1, `one target matches ${re}`);
    return found[0]!;
  };
  for (const role of ROLES) {
    const t = target(new RegExp(`^${role} prints TXMESH_READY`));
    assert.deepEqual([t.value, t.limit, t.met], [report.startupMs[role], 400, report.startupMs[role] <= 400], `${role} startup target`);
  }
  const sidecar = target(/^sidecar RSS/);
  assert.deepEqual([sidecar.value, sidecar.limit, sidecar.met], [report.rssMb.sidecar, 100, report.rssMb.sidecar <= 100]);
  const coordinator = target(/^coordinator RSS/);
  assert.deepEqual([coordinator.value, coordinator.limit, coordinator.met], [report.rssMb.coordinator, 150, report.rssMb.coordinator <= 150]);
  const idle = target(/^idle sidecar RSS/);
  assert.deepEqual([idle.value, idle.limit, idle.met], [report.idleRssMb.sidecar, 75, report.idleRssMb.sidecar <= 75]);
}

test('txmesh bench --json: optimised, naive and slow-service runs in one invocation, figures consistent', async () => {
  const durationSec = 2;
  const startupRounds = 2;
  const { code, stdout, stderr } = await run(
    ['bench', '--concurrency', '4', '--duration', String(durationSec), '--warmup', '1', '--probe', '1', '--startup-rounds', String(startupRounds), '--compare', '--slow-service', 'shipping', '--slow-ms', '5', '--json'],
    200_000,
  );
  assert.equal(code, 0, `bench failed:\n${stderr}`);
  const lines = stdout.trim().split('\n');
  const report = JSON.parse(lines.at(-1)!) as Record<string, any>;
  assert.match(stderr, /\[null-echo\]/, 'human progress goes to stderr');
  assert.match(stderr, /\[startup\] ready after/, 'the startup probe reports to stderr');

  for (const key of ['committedTps', 'p50Ms', 'p99Ms', 'nullEchoRps', 'efficiency', 'coordinatorFsyncsPerTx', 'requestsPerTx', 'cpuMsPerTx', 'coordinatorRssMb']) {
    assert.equal(typeof report[key], 'number', `${key} is a number`);
  }
  assert.equal(report.concurrency, 4);
  assert.ok(report.committedTps > 0 && report.nullEchoRps > 0);
  assert.ok(close(report.efficiency, report.committedTps / report.nullEchoRps, 0.001), 'efficiency = committedTps / nullEchoRps');
  assert.equal(report.committedTps, report.run.committedTps, 'top-level figures are the main run');
  assert.equal(report.coordinatorFsyncsPerTx, report.run.coordinatorFsyncsPerTx);
  assert.equal(report.requestsPerTx, report.run.requestsPerTx);
  assert.deepEqual(Object.keys(report.sidecarRssMb).sort(), ['inventory', 'order', 'payment', 'shipping']);
  assert.ok(report.run.idle.committed > 0 && report.run.idle.p50Ms > 0, 'the concurrency-1 probe ran');
  assert.equal(report.invariantsOk, true, 'every service agrees on every outcome after the runs');
  assert.equal(report.inconsistent, false);
  assert.equal(report.run.verified.quiesced, true);
  assert.equal(report.run.verified.lostCommits, 0);
  assert.equal(report.naive.verified.invariantsOk, true);
  checkRun('optimised', report.run, durationSec);
  checkRoles(report, startupRounds);

  assert.equal(report.naive.env.TXMESH_BATCHING, 'off');
  assert.equal(report.naive.env.TXMESH_GROUP_COMMIT, 'off');
  assert.equal(report.naive.env.TXMESH_SCHEDULER, 'off');
  checkRun('naive', report.naive, durationSec);
  assert.ok(close(report.compare.optimisedOverNaive.committedTps, report.committedTps / report.naive.committedTps, 0.001, 1e-3), 'ratio is optimised / naive');

  const slow = report.slowService;
  assert.equal(slow.service, 'shipping');
  for (const name of ['reference', 'aware', 'blind'] as const) {
    checkRun(`slow ${name}`, slow[name], durationSec);
    const classes = slow[name].byClass;
    // The aware scheduler may hold back the class that needs the slow service; the other class must run.
    assert.ok(classes.withoutSlow.committed > 0, `${name}: transactions without the slow service commit`);
    assert.equal((classes.all?.committed ?? 0) + classes.withoutSlow.committed, slow[name].committed, `${name}: classes add up`);
    assert.equal((classes.all?.refused ?? 0) + (classes.withoutSlow.refused ?? 0), slow[name].refused, `${name}: refusals add up`);
  }
  assert.ok(slow.reference.byClass.all.committed > 0, 'the reference run commits full orders too');
  assert.equal(slow.reference.slowService, undefined, 'the reference run has no slow service');
  assert.equal(slow.aware.slowService, 'shipping');
  assert.equal(slow.blind.env.TXMESH_SCHEDULER, 'off');
  assert.equal(slow.aware.env.TXMESH_SCHEDULER, 'on');

  const targets = report.targets as { target: string; met: boolean; value: number; limit: number }[];
  assert.equal(targets.length, 12, 'four targets of issue 6, two slow-service ones, six of issue 17');
  for (const t of targets) assert.equal(typeof t.met, 'boolean', t.target);
});

test('txmesh bench --telemetry: three clusters take turns (metrics, no SDK, every span over OTLP); the ratios are medians of the rounds', async () => {
  const rounds = 2;
  const windowSec = 1;
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

test('bench reads CPU time and memory of a process from /proc', { skip: process.platform !== 'linux' }, () => {
  const cpu = processCpuMs(process.pid);
  assert.ok(cpu !== undefined && cpu > 0);
  const memory = processMemoryMb(process.pid);
  assert.ok(memory !== undefined && memory.rssMb > 0 && memory.peakRssMb >= memory.rssMb);
  assert.equal(processCpuMs(2 ** 30), undefined, 'a process that does not exist has no figures');
});

test('txmesh bench --startup-only runs only the startup probe and reports its targets', async () => {
  const { code, stdout, stderr } = await run(['bench', '--startup-only', '--startup-rounds', '1', '--json'], 60_000);
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, any>;
  assert.equal(report.startup.rounds, 1);
  for (const role of ROLES) {
    assert.ok(report.startup.startupMs[role] > 0 && report.startup.startupCpuMs[role] > 0, `${role}: time and CPU until ready`);
    assert.ok(report.startup.idleRssMb[role] > 30, `${role}: idle memory`);
  }
  const targets = (report.targets as { target: string; value: number; met: boolean }[]).map((t) => [t.target, t.value, t.met]);
  assert.deepEqual(targets, [
    ...['coordinator', 'sidecar', 'service'].map((role) => [`${role} prints TXMESH_READY <= 400 ms after its spawn`, report.startup.startupMs[role], report.startup.startupMs[role] <= 400]),
    ['idle sidecar RSS <= 75 MB', report.startup.idleRssMb.sidecar, report.startup.idleRssMb.sidecar <= 75],
  ]);
  assert.doesNotMatch(stderr, /null-echo|optimised/, 'no cluster run');
});

test('txmesh bench refuses an unknown slow service', async () => {
  const { code, stderr } = await run(['bench', '--slow-service', 'warehouse'], 30_000);
  assert.equal(code, 2);
  assert.match(stderr, /--slow-service must be one of/);
});
