// What one coordinator batch costs the coordinator and the sidecar over the coordinator's batch channel and over
// HTTP, side by side (a probe for docs/benchmarks.md, not part of the product). The inventory example service and
// its sidecar run as real processes with credentials; this process is the coordinator's side: it accepts the
// sidecar's registration and sends batches of [commit the previous transaction, prepare the next] one after the
// other through the coordinator's own HttpBranchTransport, as a coordinator does at concurrency 1. Two transports
// to the same sidecar, one with the channel and one without (TXMESH_COORDINATOR_CHANNEL=off), measured in
// alternating blocks (A B A B …) so both see the same machine. Prints per mode the wall p50 per batch and the CPU
// per batch (/proc for the sidecar and the service, process.cpuUsage() for this process: the transport, its JSON
// and the loop, the same loop for both modes), back to back and GAP ms apart, and after ÷ before.
//   node scripts/probes/coordinator-channel.mjs [N=1000 per block] [GAP=10] [ROUNDS=3]
// PROBE_ITEMS=K (1): K transactions per batch, as under load.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpBranchTransport } from '@txmesh/coordinator';
import { Paths, deriveServiceKey, newClusterSecret, newTxId } from '@txmesh/protocol';

const count = Number(process.argv[2] ?? 1000);
const gapMs = Number(process.argv[3] ?? 10);
const rounds = Number(process.argv[4] ?? 3);
const WARMUP = 500;
const ITEMS = Math.max(1, Number(process.env.PROBE_ITEMS ?? 1));
const SERVICE = 'inventory';
const SKUS = 1000;
const checkout = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'txmesh-coordinator-channel-'));
const secret = newClusterSecret();
const key = deriveServiceKey(secret, SERVICE);
const keyFile = join(dir, `${SERVICE}.key`);
writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });

// The stand-in shard: it only has to accept the registration and its heartbeats.
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
  const child = spawn(process.execPath, [bin, ...args, '--metrics-port', '0'], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, TXMESH_EXIT_WITH_PARENT: '1' } });
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

const cpuOf = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
};
const ownCpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const modes = {
  channel: new HttpBranchTransport({ secret }),
  http: new HttpBranchTransport({ secret, channel: false }),
};

let previous = [];
let t = 0;
const nextBatch = () => {
  const items = previous.map((txId) => ({ action: 'commit', txId, service: SERVICE }));
  previous = [];
  for (let k = 0; k < ITEMS; k++) {
    const txId = newTxId(0);
    previous.push(txId);
    t += 1;
    items.push({ action: 'prepare', txId, service: SERVICE, deadline: Date.now() + 5000, operations: [{ op: 'reserve', args: { sku: `sku-${1 + (t % SKUS)}`, qty: 1 } }] });
  }
  return items;
};
const send = async (transport) => {
  const response = await transport.send(sidecar.url, nextBatch(), 5000);
  if (response.results.some((r) => r.status !== 'ok')) throw new Error(`a batch was not answered ok: ${JSON.stringify(response.results)}`);
};
const sidecarStats = async () => (await (await fetch(`${sidecar.url}${Paths.SIDECAR_STATS}`)).json());

const block = async (mode, gap) => {
  const transport = modes[mode];
  const before = { coordinator: ownCpu(), sidecar: cpuOf(sidecar.pid), service: cpuOf(service.pid), overChannel: (await sidecarStats()).batchesOverChannel };
  const walls = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await send(transport);
    walls.push(performance.now() - t0);
    if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
  }
  const after = { coordinator: ownCpu(), sidecar: cpuOf(sidecar.pid), service: cpuOf(service.pid), overChannel: (await sidecarStats()).batchesOverChannel };
  walls.sort((a, b) => a - b);
  const per = (key) => Number(((after[key] - before[key]) / count).toFixed(3));
  return { mode, gapMs: gap, wallP50Ms: Number(walls[walls.length >> 1].toFixed(3)), coordinatorCpuMsPerBatch: per('coordinator'), sidecarCpuMsPerBatch: per('sidecar'), serviceCpuMsPerBatch: per('service'), overChannel: Number(((after.overChannel - before.overChannel) / count).toFixed(3)) };
};

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
};
try {
  for (const mode of Object.keys(modes)) for (let i = 0; i < WARMUP; i++) await send(modes[mode]);
  const lines = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ['http', 'channel'] : ['channel', 'http'];
    for (const gap of [0, gapMs]) {
      for (const mode of order) {
        const line = { round, loadavg1m: Number(loadavg()[0].toFixed(1)), ...(await block(mode, gap)) };
        lines.push(line);
        console.log(JSON.stringify(line));
      }
    }
  }
  const summary = {};
  for (const gap of [0, gapMs]) {
    const of = (mode, key) => median(lines.filter((l) => l.mode === mode && l.gapMs === gap).map((l) => l[key]));
    const figures = {};
    for (const key of ['wallP50Ms', 'coordinatorCpuMsPerBatch', 'sidecarCpuMsPerBatch', 'serviceCpuMsPerBatch']) {
      figures[key] = { http: of('http', key), channel: of('channel', key), channelOverHttp: Number((of('channel', key) / of('http', key)).toFixed(3)) };
    }
    summary[gap === 0 ? 'backToBack' : 'paced'] = { gapMs: gap, ...figures };
  }
  console.log(JSON.stringify({ summary: { batchesPerBlock: count, itemsPerBatch: ITEMS, rounds, ...summary } }));
} finally {
  for (const transport of Object.values(modes)) await transport.close();
  await Promise.all(children.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.once('exit', resolve);
    child.kill('SIGINT');
  })));
  coordinator.close();
  rmSync(dir, { recursive: true, force: true });
}
