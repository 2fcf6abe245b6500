// What one coordinator batch costs the sidecar and its service at concurrency 1 (a probe for docs/benchmarks.md,
// not part of the product): the inventory example service and its sidecar as real processes with credentials,
// a stand-in coordinator in this process that accepts the registration and sends batches of [commit the
// previous transaction, prepare the next] one after the other, as a coordinator does at concurrency 1. Prints
// wall p50 per batch and each process's CPU per batch (/proc), back to back and GAP ms apart.
//   node scripts/probes/batch-path.mjs [N=1000] [GAP=10]
// Then both processes left idle for PROBE_IDLE_SECONDS (5): their CPU per second without any request.
// `overChannel`: the share of the sidecar's calls to the service that went over the batch channel (the rest are
// HTTP: the in-doubt resolver's prepared lists, or every batch with TXMESH_BATCH_CHANNEL=off, which both children
// read from this environment).
// PROBE_ITEMS=K (1) sends K transactions per batch (K commits of the previous batch's prepares, K new prepares),
// as a coordinator does under load (about 14 at concurrency 64 with the 4-service order); figures stay per batch.
// TXMESH_MEMBERS_CHECKOUT=<a built checkout> runs that checkout's sidecar and service (before/after pairs);
// PROBE_NODE_ARGS='--cpu-prof --cpu-prof-dir DIR' (or any node flags, e.g. --perf-basic-prof for perf) go to
// both processes.
// PROBE_TRACE=1: every item carries a trace context (as a traced coordinator's do) and both processes export every
// span over OTLP/HTTP protobuf to a receiver in this process (what tracing costs them, issue 15);
// PROBE_TRACE=carriers: the items carry their trace contexts but the processes trace nothing.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CallerRole, PROTOCOL_VERSION, Paths, authorizationHeader, deriveServiceKey, newClusterSecret, newTxId } from '@txmesh/protocol';

const count = Number(process.argv[2] ?? 1000);
const gapMs = Number(process.argv[3] ?? 10);
const WARMUP = 500;
const ITEMS = Math.max(1, Number(process.env.PROBE_ITEMS ?? 1));
const SERVICE = 'inventory';
const SKUS = 1000;
const checkout = process.env.TXMESH_MEMBERS_CHECKOUT || join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const nodeArgs = (process.env.PROBE_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '');
const dir = mkdtempSync(join(tmpdir(), 'txmesh-batch-path-'));
const key = deriveServiceKey(newClusterSecret(), SERVICE);
const keyFile = join(dir, `${SERVICE}.key`);
writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
const coordinatorAuth = authorizationHeader(CallerRole.COORDINATOR, SERVICE, key);
const TRACE = process.env.PROBE_TRACE === '1' || process.env.PROBE_TRACE === 'carriers';
const receiver = process.env.PROBE_TRACE === '1' ? await (await import('@txmesh/lab')).OtlpReceiver.start({ keepSpans: false }) : undefined;
const hex = (digits) => {
  let out = '';
  while (out.length < digits) out += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, digits);
};
const traceOf = () => (TRACE ? { trace: { traceparent: `00-${hex(32)}-${hex(16)}-01` } } : {});

// The stand-in coordinator: it only has to accept the registration and its heartbeats.
const coordinator = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ shard: 0, shards: 1, heartbeatMs: 5000 });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
await new Promise((resolve) => coordinator.listen(0, '127.0.0.1', resolve));
const coordinatorUrl = `http://127.0.0.1:${coordinator.address().port}`;

const children = [];
function start(bin, args) {
  const child = spawn(process.execPath, [...nodeArgs, bin, ...args, '--metrics-port', '0'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...receiver?.benchmarkEnv(), TXMESH_EXIT_WITH_PARENT: '1' } });
  children.push(child);
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const ready = /TXMESH_READY (\S+)/.exec(buffered);
      if (ready) resolve({ pid: child.pid, url: ready[1] });
    });
  });
}
const service = await start(join(checkout, 'packages', 'lab', 'bin', 'txmesh-lab.mjs'), [
  'service', SERVICE, '--port', '0', '--db', join(dir, `${SERVICE}.db`), '--key-file', keyFile,
  '--catalog', JSON.stringify({ skus: SKUS, stockPerSku: 1_000_000 }),
]);
const sidecar = await start(join(checkout, 'packages', 'cli', 'bin', 'txmesh.mjs'), [
  'sidecar', '--service', SERVICE, '--service-url', service.url, '--coordinator', coordinatorUrl, '--port', '0', '--data', dir, '--key-file', keyFile,
]);

// User and system CPU of a process in ms (USER_HZ is 100 on Linux).
const cpuOf = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: Number(fields[11]) * 10, system: Number(fields[12]) * 10 };
};
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const sendBatch = (items) =>
  new Promise((resolve, reject) => {
    const body = JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items });
    const req = http.request(`${sidecar.url}${Paths.SIDECAR_BATCH}`, {
      method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: coordinatorAuth },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        const answer = JSON.parse(text);
        if (res.statusCode !== 200 || answer.results.some((r) => r.status !== 'ok')) reject(new Error(`batch answered ${res.statusCode}: ${text}`));
        else resolve();
      });
    });
    req.on('error', reject);
    req.end(body);
  });

let previous = [];
let n = 0;
let t = 0;
const nextBatch = () => {
  const items = previous.map((txId) => ({ action: 'commit', txId, service: SERVICE, ...traceOf() }));
  previous = [];
  n += 1;
  for (let k = 0; k < ITEMS; k++) {
    const txId = newTxId(0);
    previous.push(txId);
    t += 1;
    items.push({ action: 'prepare', txId, service: SERVICE, deadline: Date.now() + 5000, operations: [{ op: 'reserve', args: { sku: `sku-${1 + (t % SKUS)}`, qty: 1 } }], ...traceOf() });
  }
  return items;
};
const run = async (gap) => {
  const before = { sidecar: cpuOf(sidecar.pid), service: cpuOf(service.pid) };
  const walls = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await sendBatch(nextBatch());
    walls.push(performance.now() - t0);
    if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
  }
  walls.sort((a, b) => a - b);
  const per = (ms) => Number((ms / count).toFixed(3));
  const spent = (pid, was) => {
    const now = cpuOf(pid);
    return { cpuMsPerBatch: per(now.user + now.system - was.user - was.system), userMsPerBatch: per(now.user - was.user), systemMsPerBatch: per(now.system - was.system) };
  };
  return { gapMs: gap, wallP50Ms: Number(walls[walls.length >> 1].toFixed(3)), sidecar: spent(sidecar.pid, before.sidecar), service: spent(service.pid, before.service) };
};
/** CPU each process burns per second with no request at all (timers, monitors, heartbeats). */
const idle = async (seconds) => {
  // The last prepare's commit first, or the sidecar's in-doubt resolver would be asking the stand-in coordinator.
  await sendBatch(previous.map((txId) => ({ action: 'commit', txId, service: SERVICE })));
  const before = { sidecar: cpuOf(sidecar.pid), service: cpuOf(service.pid) };
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const perSecond = (pid, was) => {
    const now = cpuOf(pid);
    return Number(((now.user + now.system - was.user - was.system) / seconds).toFixed(2));
  };
  return { seconds, sidecarCpuMsPerSecond: perSecond(sidecar.pid, before.sidecar), serviceCpuMsPerSecond: perSecond(service.pid, before.service) };
};
try {
  for (let i = 0; i < WARMUP; i++) await sendBatch(nextBatch());
  const result = { checkout, batches: count, itemsPerBatch: ITEMS, backToBack: await run(0), paced: await run(gapMs), idle: await idle(Number(process.env.PROBE_IDLE_SECONDS ?? 5)) };
  // The sidecar's SQLite write transactions over every batch sent (warm-up, both runs, the last commit).
  const { store, serviceCalls, serviceCallsOverChannel } = await (await fetch(`${sidecar.url}${Paths.SIDECAR_STATS}`)).json();
  result.sidecarWritesPerBatch = Number(((store.forcedWrites + store.unforcedWrites) / n).toFixed(3));
  // The share of the sidecar's calls to the service that went over the batch channel (absent before it existed).
  if (serviceCallsOverChannel !== undefined) result.overChannel = Number((serviceCallsOverChannel / serviceCalls).toFixed(3));
  if (receiver) result.spansReceived = receiver.count;
  console.log(JSON.stringify(result));
} finally {
  agent.destroy();
  // SIGINT lets both close cleanly, which is when --cpu-prof writes its profile.
  await Promise.all(children.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.once('exit', resolve);
    child.kill('SIGINT');
  })));
  coordinator.close();
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
}
