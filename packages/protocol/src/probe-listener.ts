/**
 * A listener of its own for a server's probes (liveness, readiness), answered from a worker thread.
 *
 * Its own port gives the probes their own accept queue (under overload the main port's queue is full of
 * clients, and a dropped SYN is retried after 1, 3, 7 s). Its own thread gives them their own event loop:
 * measured under `txmesh bench-overload`, the main loop of a shard runs turns of 200-550 ms (thousands of
 * requests read in one poll, forced writes of the decision log, GC), and a probe answered there waited as long.
 *
 * The answers stay the server's own: every beat (100 ms) the main thread renders each probe with the same
 * function its route uses and posts the result; the worker answers with the last one. When the main thread
 * has not posted for longer than a probe's stall bound, the probe answers 503 TXM_STALLED: a stuck loop fails
 * liveness, so the orchestrator can restart it, and a loop too slow to serve fails readiness first.
 */
import { Worker } from 'node:worker_threads';
import { toTxmeshError } from './http-errors.ts';
import type { ProbeAnswers, ProbeWorkerData } from './probe-worker.ts';

/** What a probe says now: the body its route would send and the status. */
export interface ProbeAnswer {
  statusCode: number;
  body: unknown;
}

export interface ProbeRoute {
  path: string;
  /** The route's own answer (it may throw a TxmeshError, answered in the catalogue's shape). */
  answer(): unknown;
  /** How long the main loop may stay silent before this probe answers TXM_STALLED. */
  stallMs: number;
}

export interface ProbeListenerOptions {
  host: string;
  port: number;
  /** Named in a stalled probe's details, e.g. "coordinator shard 0 of 2". */
  role: string;
  probes: readonly ProbeRoute[];
  /** How often the main thread posts its answers (100 ms). */
  beatMs?: number;
  /** The probe thread failed after it started (the port then stops answering, and liveness fails). */
  onError?(err: Error): void;
}

export interface ProbeListener {
  url: string;
  close(): Promise<void>;
}

/** A liveness probe fails after the main loop was silent this long: a stall, not a slow turn under load. */
export const LIVENESS_STALL_MS = 10_000;
/**
 * A readiness probe fails sooner: a loop silent for 5 s serves nobody, so new traffic should go elsewhere. Not
 * shorter: under `txmesh bench-overload` on a 2-core machine (load ~15) a shard's loop fell silent for more than
 * 2 s now and then, and dropping out of the endpoints at every such pause would turn an overload into an outage.
 */
export const READINESS_STALL_MS = 5_000;
const DEFAULT_BEAT_MS = 100;

/** Runs a route's answer function and renders it as the route would: 200 and its body, or the refusal. */
export function renderProbe(answer: () => unknown): ProbeAnswer {
  try {
    return { statusCode: 200, body: answer() };
  } catch (err) {
    const error = toTxmeshError(err);
    return { statusCode: error.status, body: error.toBody() };
  }
}

function renderAll(probes: readonly ProbeRoute[]): ProbeAnswers {
  const answers: ProbeAnswers = {};
  for (const probe of probes) {
    const { statusCode, body } = renderProbe(() => probe.answer());
    answers[probe.path] = { statusCode, body: JSON.stringify(body) };
  }
  return answers;
}

export async function startProbeListener(o: ProbeListenerOptions): Promise<ProbeListener> {
  const data: ProbeWorkerData = {
    host: o.host,
    port: o.port,
    role: o.role,
    stallMs: Object.fromEntries(o.probes.map((probe) => [probe.path, probe.stallMs])),
    answers: renderAll(o.probes),
  };
  const worker = new Worker(new URL('./probe-worker.js', import.meta.url), { workerData: data });
  // The probe thread never keeps the process alive on its own: the server it speaks for does.
  worker.unref();
  let closing = false;
  const listening = new Promise<number>((resolve, reject) => {
    worker.on('message', (message: { listening?: number; error?: string; code?: string }) => {
      if (message.listening !== undefined) resolve(message.listening);
      else if (message.error !== undefined) {
        const err = Object.assign(new Error(`probe port ${o.host}:${o.port}: ${message.error}`), { code: message.code });
        reject(err);
        o.onError?.(err);
      }
    });
    worker.once('error', (err) => {
      reject(err);
      o.onError?.(err);
    });
    worker.once('exit', (code) => {
      const err = new Error(`the probe thread exited (code ${code})`);
      reject(err);
      if (!closing) o.onError?.(err);
    });
  });
  let port: number;
  try {
    port = await listening;
  } catch (err) {
    closing = true;
    await worker.terminate();
    throw err;
  }
  const beat = setInterval(() => worker.postMessage(renderAll(o.probes)), o.beatMs ?? DEFAULT_BEAT_MS);
  beat.unref();
  return {
    url: `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`,
    close: async () => {
      closing = true;
      clearInterval(beat);
      await worker.terminate();
    },
  };
}
