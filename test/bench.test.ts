/**
 * `txmesh bench --json` end to end, short and at low concurrency: the shape of the last stdout line and
 * that its figures agree with each other. Speed is not checked here (shared machines); the benchmark
 * itself prints it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { processCpuMs, processMemoryMb } from '@txmesh/lab';
import { checkRun, close, median, run } from './bench-run.ts';


const ROLES = ['coordinator', 'service', 'sidecar'];
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
