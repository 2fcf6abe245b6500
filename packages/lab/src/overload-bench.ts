/**
 * `txmesh bench-overload`: more clients than a coordinator shard serves, against participants that answer
 * slowly, while a prober asks the shard's liveness and readiness on a fresh connection every interval (as a
 * kubelet does). It measures what the issue asked of overload: the probes' latency, and that every client
 * request gets an HTTP answer with a catalogue code (no connection reset). JSON on the last line.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { orderRequest } from '@txmesh/example-ecommerce';
import { Paths } from '@txmesh/protocol';
import { round } from './bench-math.ts';
import { processMemoryMb } from './bench-process.ts';
import { Cluster, sleep } from './cluster.ts';
import { percentile } from './demo.ts';

export interface OverloadBenchOptions {
  /** Concurrent client connections, each sending begins back to back (4000). */
  clients: number;
  /** The shard's --max-connections (1000). */
  maxConnections: number;
  durationSec: number;
  /** How long every participant batch takes at the inventory service (1000 ms). */
  slowMs: number;
  /** Probe interval (100 ms). */
  probeEveryMs: number;
  /** Probe the shard on its own probe port (--probe-port) instead of its main port. */
  probePort: boolean;
  out: NodeJS.WritableStream;
}

export interface OverloadReport {
  clients: number;
  maxConnections: number;
  probedOn: 'main port' | 'probe port';
  durationSec: number;
  slowMs: number;
  /** Answers to begins by status and catalogue code, e.g. {"429 TXM_OVERLOADED": 5123, "200 committed": 812}. */
  answers: Record<string, number>;
  /** Client requests that got no HTTP answer, by error code (ECONNRESET, EPIPE, …): the goal is none. */
  unanswered: Record<string, number>;
  /**
   * Latencies are to an HTTP answer, whatever its status (the 100 ms goal); `failed` counts the probes a kubelet
   * would count as failed (not 200, or no answer), `failures` the same by path and status and code or socket error
   * (e.g. "/v1/ready 503 TXM_STALLED").
   */
  probes: { sent: number; answered: number; failed: number; failures: Record<string, number>; p50Ms: number; p99Ms: number; maxMs: number; over100Ms: number; slowest: { atMs: number; path: string; ms: number }[] };
  coordinatorRssMb?: number;
  coordinatorPeakRssMb?: number;
  /** The shard's own count of requests refused on connections past the cap. */
  refusedByConnectionCap?: number;
}

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

/** One request on `agent`; resolves with "status code" and the Retry-After seconds, or rejects with the socket error. */
function post(agent: http.Agent, url: URL, body: string, headers: Record<string, string>): Promise<{ label: string; retryAfterSec: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let label: string;
        try {
          const parsed = JSON.parse(text) as { outcome?: string; error?: { code?: string } };
          label = parsed.error?.code ?? parsed.outcome ?? 'unparsed';
        } catch {
          label = 'not JSON';
        }
        const retryAfterSec = Number(res.headers['retry-after']);
        resolve({ label: `${res.statusCode} ${label}`, retryAfterSec: Number.isFinite(retryAfterSec) ? retryAfterSec : 0 });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A loopback port nothing listens on now (handed out by the OS, then freed), for the shard's probe listener. */
async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What overload-prober.js prints: time to each HTTP answer, the probes not answered 200, the probes not answered at all. */
interface ProberOutput {
  latencies: number[];
  failures: Record<string, number>;
  unanswered: number;
  slow: { atMs: number; path: string; ms: number }[];
}

/** Runs overload-prober.js in its own process until `stopAt`; resolves with what it measured. */
function runProber(urls: string[], stopAt: number, everyMs: number): Promise<ProberOutput> {
  const script = fileURLToPath(new URL('./overload-prober.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, String(stopAt), String(everyMs), ...urls], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(out) as ProberOutput);
      } catch {
        reject(new Error(`the prober exited with ${code} and printed ${JSON.stringify(out.slice(0, 200))}`));
      }
    });
  });
}

export async function runOverloadBench(o: OverloadBenchOptions): Promise<OverloadReport> {
  const probePort = o.probePort ? await freePort() : undefined;
  o.out.write(`starting 1 shard (--max-connections ${o.maxConnections}), 4 services (inventory answers in ${o.slowMs} ms), 4 sidecars\n`);
  // TXMESH_PROFILE_DIR=<dir> writes a V8 CPU profile of every member (as for `txmesh bench`).
  const profileDir = process.env.TXMESH_PROFILE_DIR;
  const cluster = await Cluster.start({
    catalog: { skus: 50, stockPerSku: 1_000_000, accounts: 50, balancePerAccount: 1_000_000_000 },
    ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
    coordinatorArgs: ['--max-connections', String(o.maxConnections), ...(probePort === undefined ? [] : ['--probe-port', String(probePort)])],
    memberEnv: { 'service-inventory': { TXMESH_SLOW_MS: String(o.slowMs), TXMESH_SLOW_CPU_MS: '0' } },
    env: { TXMESH_LOG_LEVEL: 'error' },
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients, maxFreeSockets: o.clients });
  try {
    const coordinator = cluster.coordinators[0]!;
    const base = new URL(coordinator.url);
    const begin = new URL(Paths.TRANSACTIONS, base);
    const answers: Record<string, number> = {};
    const unanswered: Record<string, number> = {};
    const stopAt = Date.now() + o.durationSec * 1000;
    o.out.write(`${o.clients} clients for ${o.durationSec} s; probing ${Paths.COORDINATOR_HEALTH} and ${Paths.COORDINATOR_READY} every ${o.probeEveryMs} ms\n`);
    const clients = Array.from({ length: o.clients }, async (_, client) => {
      for (let n = 0; Date.now() < stopAt; n++) {
        const body = JSON.stringify(orderRequest({ orderId: `ov-${client}-${n}`, sku: `sku-${n % 50}`, qty: 1, account: `acct-${client % 50}`, amount: 1, address: 'x' }, 5000));
        try {
          const { label, retryAfterSec } = await post(agent, begin, body, cluster.clientHeaders);
          count(answers, label);
          // A refused client waits the Retry-After it was given, as the client SDK does.
          if (retryAfterSec > 0) await sleep(retryAfterSec * 1000);
        } catch (err) {
          count(unanswered, (err as { code?: string }).code ?? (err as Error).message);
          await sleep(1000);
        }
      }
    });
    const probeBase = probePort === undefined ? base : new URL(`http://127.0.0.1:${probePort}`);
    const prober = runProber([Paths.COORDINATOR_HEALTH, Paths.COORDINATOR_READY].map((path) => new URL(path, probeBase).href), stopAt, o.probeEveryMs);
    let peak: { rssMb: number; peakRssMb: number } | undefined;
    const sampler = (async () => {
      while (Date.now() < stopAt) {
        peak = processMemoryMb(coordinator.pid) ?? peak;
        await sleep(500);
      }
    })();
    const [probed] = await Promise.all([prober, ...clients, sampler]);
    // The clients' connections go first: past the cap, this request would be refused too.
    agent.destroy();
    await sleep(200);
    const stats = (await (await fetch(new URL(Paths.COORDINATOR_STATS, base))).json()) as { connections?: { refused: number } };
    const latencies = probed.latencies.sort((a, b) => a - b);
    const probesFailed = Object.values(probed.failures).reduce((sum, n) => sum + n, 0);
    const report: OverloadReport = {
      clients: o.clients,
      maxConnections: o.maxConnections,
      probedOn: probePort === undefined ? 'main port' : 'probe port',
      durationSec: o.durationSec,
      slowMs: o.slowMs,
      answers,
      unanswered,
      probes: {
        sent: latencies.length + probed.unanswered,
        answered: latencies.length,
        failed: probesFailed,
        failures: probed.failures,
        p50Ms: round(percentile(latencies, 50), 1),
        p99Ms: round(percentile(latencies, 99), 1),
        maxMs: round(latencies.at(-1) ?? 0, 1),
        over100Ms: latencies.filter((ms) => ms > 100).length,
        // When in the run the worst ones were sent (ms since the prober started): a burst at the start, or all along.
        slowest: probed.slow.sort((a, b) => b.ms - a.ms).slice(0, 5),
      },
    };
    if (peak) {
      report.coordinatorRssMb = peak.rssMb;
      report.coordinatorPeakRssMb = peak.peakRssMb;
    }
    if (stats.connections) report.refusedByConnectionCap = stats.connections.refused;
    return report;
  } finally {
    agent.destroy();
    await cluster.stop();
    cluster.removeData();
  }
}
