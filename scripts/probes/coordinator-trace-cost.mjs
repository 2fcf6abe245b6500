// What tracing costs a coordinator alone: coordinators side by side, each with a null-sidecar (answers every batch
// at once, no spans), one without traces and one or two exporting every span over OTLP/HTTP protobuf to a receiver
// in this process; closed loops on all of them at the same time, so the machine's load weighs on each alike.
// Prints each round's coordinator CPU per committed transaction (from /proc) and the traced ones' excess over the
// untraced one, and their medians (the first round warms up and is not counted).
//   node scripts/probes/coordinator-trace-cost.mjs [rounds=5] [seconds=8] [concurrency=64]
// TRACED_ENV / SECOND_TRACED_ENV / UNTRACED_ENV (K=V,K=V): extra environment of the traced coordinator / of a second
// traced one / of the untraced one; PROBE_PROFILE_DIR=<dir> writes a CPU profile of each coordinator under <dir>/<label>,
// e.g. TRACED_ENV=TXMESH_SEMI_SPACE_MB=4 SECOND_TRACED_ENV=TXMESH_SEMI_SPACE_MB=8.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTxmeshClient } from '@txmesh/client';
import { BENCH_CATALOG, ClusterCredentials, Member, OPTIMISED_ENV, OtlpReceiver, closedLoop, makeWorkload, processCpuMs } from '@txmesh/lab';

const [rounds = '5', seconds = '8', concurrency = '64'] = process.argv.slice(2);
const envOf = (text) => Object.fromEntries((text ?? '').split(',').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const profileArgs = (label) => (process.env.PROBE_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env.PROBE_PROFILE_DIR, label)}`] : []);

const receiver = await OtlpReceiver.start({ keepSpans: false });
async function start(label, env) {
  const dir = mkdtempSync(join(tmpdir(), `txmesh-trace-cost-${label}-`));
  const credentials = new ClusterCredentials(dir);
  const coordinator = new Member(`coordinator-${label}`, 'coordinator', (port) => ['--port', String(port), '--data', dir, '--secret-file', credentials.secretFile, '--metrics-port', '0'], join(dir, 'coordinator.log'), { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV, ...env }, profileArgs(label));
  const url = await coordinator.start();
  const participants = new Member(`null-sidecar-${label}`, 'null-sidecar', (port) => ['--port', String(port), '--coordinator', url, '--secret-file', credentials.secretFile], join(dir, 'null-sidecar.log'), { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV, OTEL_SDK_DISABLED: 'true' });
  await participants.start();
  const client = createTxmeshClient({ coordinatorUrls: [url], connections: Number(concurrency), overloadRetries: 0, credential: credentials.client });
  const committed = async () => (await (await fetch(`${url}/v1/stats`)).json()).committed;
  return { label, dir, coordinator, participants, client, committed, next: makeWorkload(1, label, BENCH_CATALOG) };
}

const runs = [await start('untraced', envOf(process.env.UNTRACED_ENV)), await start('traced', { ...receiver.benchmarkEnv(), ...envOf(process.env.TRACED_ENV) })];
if (process.env.SECOND_TRACED_ENV) runs.push(await start('traced-2', { ...receiver.benchmarkEnv(), ...envOf(process.env.SECOND_TRACED_ENV) }));
const perRound = [];
try {
  for (let round = 0; round <= Number(rounds); round++) {
    const before = await Promise.all(runs.map(async (r) => ({ cpu: processCpuMs(r.coordinator.pid), tx: await r.committed() })));
    await Promise.all(runs.map((r) => closedLoop({ concurrency: Number(concurrency), warmupMs: 0, durationMs: Number(seconds) * 1000, client: r.client, next: r.next })));
    const after = await Promise.all(runs.map(async (r) => ({ cpu: processCpuMs(r.coordinator.pid), tx: await r.committed() })));
    if (round === 0) continue;
    const msPerTx = runs.map((_, i) => (after[i].cpu - before[i].cpu) / (after[i].tx - before[i].tx));
    const figures = { committed: runs.map((_, i) => after[i].tx - before[i].tx), cpuMsPerTx: msPerTx.map((v) => Math.round(v * 10000) / 10000) };
    for (let i = 1; i < runs.length; i++) figures[`${runs[i].label}ExcessUs`] = Math.round((msPerTx[i] - msPerTx[0]) * 1000);
    perRound.push(figures);
  }
} finally {
  for (const r of runs) {
    await r.client.close().catch(() => undefined);
    await r.participants.stop();
    await r.coordinator.stop();
    rmSync(r.dir, { recursive: true, force: true });
  }
  await receiver.close();
}
const medians = Object.fromEntries(runs.slice(1).map((r) => [`${r.label}ExcessUs`, median(perRound.map((f) => f[`${r.label}ExcessUs`]))]));
console.log(JSON.stringify({ loadAverage: loadavg().map((l) => Math.round(l * 10) / 10), runs: runs.map((r) => r.label), medians, spansReceived: receiver.count, perRound }));
