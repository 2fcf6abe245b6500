/**
 * The thread behind a probe listener (see probe-listener.ts). It owns the probe port and answers each probe
 * from the answers the main thread last posted, so a probe never waits for the main event loop: not for a
 * burst of thousands of requests handled in one turn, a forced write of the decision log, or a GC pause.
 * It is not a lie: the main thread posts every beat, and when its last post is older than a probe's stall
 * bound, that probe answers 503 TXM_STALLED instead, so a stuck process fails its liveness probe.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { TxmeshError } from './errors.ts';

/** What the main thread posts: each probe path's answer, rendered. */
export interface ProbeAnswers {
  [path: string]: { statusCode: number; body: string };
}

export interface ProbeWorkerData {
  host: string;
  port: number;
  /** Per path: how old the main thread's last beat may be before the probe says it is stalled. */
  stallMs: Record<string, number>;
  /** Who the stalled probe names, e.g. "coordinator shard 0 of 2". */
  role: string;
  answers: ProbeAnswers;
}

/** Connections the probe port serves at once (a kubelet opens one per probe): a bound, not a queue. */
const MAX_PROBE_CONNECTIONS = 256;
const JSON_TYPE = 'application/json; charset=utf-8';

const port = parentPort;
if (!port) throw new Error('probe-worker.js runs only as a worker thread of startProbeListener');
const data = workerData as ProbeWorkerData;
let answers = data.answers;
let lastBeat = performance.now();
port.on('message', (posted: ProbeAnswers) => {
  answers = posted;
  lastBeat = performance.now();
});

function errorAnswer(error: TxmeshError): { statusCode: number; body: string } {
  return { statusCode: error.status, body: JSON.stringify(error.toBody()) };
}

function answerFor(method: string | undefined, path: string): { statusCode: number; body: string } {
  const bound = data.stallMs[path];
  const answer = answers[path];
  if ((method !== 'GET' && method !== 'HEAD') || bound === undefined || answer === undefined) {
    return errorAnswer(new TxmeshError('TXM_NOT_FOUND', 'this port serves only the probes'));
  }
  const silentMs = Math.round(performance.now() - lastBeat);
  if (silentMs > bound) {
    return errorAnswer(new TxmeshError('TXM_STALLED', `the event loop of the ${data.role} has not turned for ${silentMs} ms (bound ${bound} ms)`));
  }
  return answer;
}

const server = http.createServer((req, res) => {
  const { statusCode, body } = answerFor(req.method, (req.url ?? '').split('?')[0] ?? '');
  res.writeHead(statusCode, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
});
server.maxConnections = MAX_PROBE_CONNECTIONS;
// A probe that trickles its request in is cut off rather than held.
server.requestTimeout = 5_000;
server.headersTimeout = 5_000;
server.once('error', (err: NodeJS.ErrnoException) => port.postMessage({ error: err.message, code: err.code }));
server.listen(data.port, data.host, () => port.postMessage({ listening: (server.address() as AddressInfo).port }));
