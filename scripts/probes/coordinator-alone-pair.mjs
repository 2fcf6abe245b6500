// The coordinator alone (null participants) of two built checkouts, side by side: each checkout's coordinator
// with its own null sidecar and its own closed loop of 4-service orders at the same concurrency, in the same
// seconds, so both see the same machine (on a shared machine one run after the other compares two different
// minutes, docs/benchmarks.md). Prints one JSON line per round and a summary: per checkout committed tx/s and
// the coordinator's CPU per committed transaction (/proc, user + system, all threads), and after ÷ before.
// A probe for docs/benchmarks.md, not part of the product. Both checkouts built (`npm run build`):
//   node scripts/probes/coordinator-alone-pair.mjs <before-checkout> [after-checkout=.] [concurrency=64] [seconds=8] [warmup=2] [rounds=3] [mode=together]
// mode `alternate`: in each round one side runs after the other (order alternating), each alone on the machine, as
// `bench --loads` runs the coordinator alone: what a loop freed of waiting gains shows only when the cores are not
// already shared by the two sides.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [beforeDir, afterDir = '.', concurrency = '64', seconds = '8', warmup = '2', rounds = '3', mode = 'together'] = process.argv.slice(2);
if (mode !== 'together' && mode !== 'alternate') throw new Error(`mode must be together or alternate: ${mode}`);
if (!beforeDir) throw new Error('usage: coordinator-alone-pair.mjs <before-checkout> [after-checkout=.] [concurrency] [seconds] [warmup] [rounds]');

// Each side's harness from its own checkout, so its Member spawns that checkout's bin.
async function harness(checkout) {
  const root = resolve(checkout);
  const lab = await import(pathToFileURL(join(root, 'packages/lab/dist/index.js')).href);
  const client = await import(pathToFileURL(join(root, 'packages/client/dist/index.js')).href);
  return { root, lab, client };
}

async function start(side, label) {
  const { lab, client } = side;
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-alone-pair-'));
  const env = { TXMESH_LOG_LEVEL: 'warn', ...lab.OPTIMISED_ENV };
  const credentials = new lab.ClusterCredentials(dir);
  const coordinator = new lab.Member('coordinator-0', 'coordinator', (port) => ['--port', String(port), '--data', dir, '--secret-file', credentials.secretFile], join(dir, 'coordinator.log'), env);
  const url = await coordinator.start();
  const participants = new lab.Member('null-sidecar', 'null-sidecar', (port) => ['--port', String(port), '--coordinator', url, '--secret-file', credentials.secretFile], join(dir, 'null-sidecar.log'), env);
  await participants.start();
  const txmesh = client.createTxmeshClient({ coordinatorUrls: [url], connections: Number(concurrency), overloadRetries: 0, credential: credentials.client });
  const stats = async () => await (await fetch(`${url}/v1/stats`)).json();
  const committed = async () => (await stats()).committed;
  return { side, label, dir, coordinator, participants, txmesh, committed, stats };
}

async function measure(run) {
  const { lab } = run.side;
  let cpuBefore = 0;
  let committedBefore = 0;
  let logBefore = { logFlushes: 0, logRecords: 0 };
  const tally = await lab.closedLoop({
    concurrency: Number(concurrency),
    warmupMs: Number(warmup) * 1000,
    durationMs: Number(seconds) * 1000,
    client: run.txmesh,
    next: lab.makeWorkload(1, `pair-${run.label}`, lab.BENCH_CATALOG),
    onWindowStart: async () => {
      cpuBefore = lab.processCpuMs(run.coordinator.pid);
      committedBefore = await run.committed();
      logBefore = await run.stats();
    },
  });
  const cpuMs = lab.processCpuMs(run.coordinator.pid) - cpuBefore;
  const committed = (await run.committed()) - committedBefore;
  const logAfter = await run.stats();
  // Decision records per forced group (one fsync each) over the window.
  const recordsPerFlush = (logAfter.logRecords - logBefore.logRecords) / Math.max(1, logAfter.logFlushes - logBefore.logFlushes);
  return {
    committedTps: Math.round((tally.committed / tally.windowSec) * 10) / 10,
    coordinatorCpuMsPerTx: Math.round((cpuMs / committed) * 1000) / 1000,
    recordsPerFlush: Math.round(recordsPerFlush * 10) / 10,
  };
}

async function stop(run) {
  await run.txmesh.close().catch(() => undefined);
  await run.participants.stop();
  await run.coordinator.stop();
  rmSync(run.dir, { recursive: true, force: true });
}

const sides = { before: await harness(beforeDir), after: await harness(afterDir) };
const lines = [];
for (let round = 0; round < Number(rounds); round++) {
  // Started in turn, alternating which goes first; then measured in the same seconds.
  const order = round % 2 === 0 ? ['before', 'after'] : ['after', 'before'];
  const runs = [];
  let load = loadavg()[0];
  let results = [];
  if (mode === 'alternate') {
    for (const label of order) {
      const run = await start(sides[label], label);
      runs.push(run);
      results.push(await measure(run));
      await stop(run);
    }
    load = (load + loadavg()[0]) / 2;
  } else {
    for (const label of order) runs.push(await start(sides[label], label));
    load = loadavg()[0];
    results = await Promise.all(runs.map(measure));
    for (const run of runs) await stop(run);
  }
  const by = Object.fromEntries(runs.map((r, i) => [r.label, results[i]]));
  const line = {
    round,
    loadavg1m: Math.round(load * 10) / 10,
    before: by.before,
    after: by.after,
    cpuAfterOverBefore: Math.round((by.after.coordinatorCpuMsPerTx / by.before.coordinatorCpuMsPerTx) * 1000) / 1000,
    tpsAfterOverBefore: Math.round((by.after.committedTps / by.before.committedTps) * 1000) / 1000,
  };
  lines.push(line);
  console.log(JSON.stringify(line));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  JSON.stringify({
    summary: true,
    before: resolve(beforeDir),
    after: resolve(afterDir),
    concurrency: Number(concurrency),
    mode,
    rounds: lines.length,
    medianCpuAfterOverBefore: median(lines.map((l) => l.cpuAfterOverBefore)),
    medianTpsAfterOverBefore: median(lines.map((l) => l.tpsAfterOverBefore)),
  }),
);
