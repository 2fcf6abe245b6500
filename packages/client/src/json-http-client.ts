/**
 * The one JSON-over-HTTP client of txmesh: the application's client, the coordinator's calls to sidecars
 * and the sidecar's calls to its service and to the shards all go through it. Kept-alive connections per
 * origin, a time bound on every call, a bound on the answer's size, and transport failures as coded errors.
 * What an answer means (an error body, a status) is left to the caller: see TxmeshError.fromBody.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { CallDeadline } from './call-deadline.ts';
import { CallFailure } from './call-failure.ts';
import { CallEnded, type HttpTransport } from './http-transport.ts';
import { NodeHttpTransport } from './node-http-transport.ts';
import { UndiciTransport } from './undici-transport.ts';

export { CallFailure } from './call-failure.ts';

/** A call that got no usable answer. The message names the URL and the cause; `failure` is for code. */
export class HttpCallError extends Error {
  readonly failure: CallFailure;
  readonly url: string;
  /**
   * True when the request cannot have reached the server (connection refused, host not found): nothing ran
   * there, so it is safe to send it elsewhere. False means it may have arrived and run.
   */
  readonly nothingSent: boolean;

  constructor(failure: CallFailure, url: string, detail: string, nothingSent: boolean, cause?: unknown) {
    super(`${url}: ${detail}`, cause === undefined ? undefined : { cause });
    this.name = 'HttpCallError';
    this.failure = failure;
    this.url = url;
    this.nothingSent = nothingSent;
  }
}

export interface JsonAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body; undefined when the body is empty or not JSON. */
  body: unknown;
  /** The raw body, for reporting an answer that is not ours (a proxy's error page). */
  text: string;
}

export interface JsonCall {
  method?: 'GET' | 'POST';
  /** Sent as JSON with content-type application/json. */
  body?: unknown;
  /** Overrides the client's time bound for this call. */
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export interface JsonHttpClientOptions {
  /** Time bound of a whole call (connect, send, headers and body), unless the call gives its own. */
  timeoutMs: number;
  /** Largest answer body accepted, in bytes (16 MiB). */
  maxAnswerBytes?: number;
  /** Keep-alive connections per origin (16): at most this many calls in flight to one origin. */
  connections?: number;
  /** Sent with every call. */
  headers?: Record<string, string>;
  /**
   * The HTTP stack: 'node:http' (the default), already loaded in any process that serves HTTP, for components
   * whose calls are few and batched; 'undici', which costs less CPU per call but about 110 modules to load, for
   * an application sending many calls a second. Loaded on the first call.
   */
  stack?: HttpStack;
  /**
   * An origin not called for this long (and with no call in flight) loses its connections and its entry
   * (5 minutes): sidecars come and go, and the addresses of those gone must not pile up in a coordinator.
   */
  idleOriginMs?: number;
}

export type HttpStack = 'node:http' | 'undici';

export const DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024;
/** Errors of the connect step: the request never left this process. */
const NOTHING_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/** At most this often the client looks for idle origins to forget. */
const MAX_SWEEP_INTERVAL_MS = 60_000;

interface OriginUse {
  inFlight: number;
  lastUsed: number;
}

interface Target {
  origin: string;
  /** Path prefix of the base URL (a sidecar behind a path-routing proxy), without a trailing slash. */
  prefix: string;
}

export class JsonHttpClient {
  readonly #options: Required<Omit<JsonHttpClientOptions, 'headers'>> & { headers: Record<string, string> };
  readonly #targets = new Map<string, Target>();
  readonly #uses = new Map<string, OriginUse>();
  #nextSweep = 0;
  #transport: Promise<HttpTransport> | undefined;
  #closed = false;
  /** Calls started so far (the benchmark's requests between components). */
  requests = 0;

  constructor(options: JsonHttpClientOptions) {
    const positive = (value: number, name: string): number => {
      if (!Number.isInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer`);
      return value;
    };
    if (options.stack !== undefined && options.stack !== 'node:http' && options.stack !== 'undici') throw new TypeError('stack must be node:http or undici');
    this.#options = {
      timeoutMs: positive(options.timeoutMs, 'timeoutMs'),
      maxAnswerBytes: positive(options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES, 'maxAnswerBytes'),
      connections: positive(options.connections ?? 16, 'connections'),
      headers: { accept: 'application/json', ...options.headers },
      stack: options.stack ?? 'node:http',
      idleOriginMs: positive(options.idleOriginMs ?? 5 * 60_000, 'idleOriginMs'),
    };
  }

  /** Origins this client holds connections or an entry for. */
  get origins(): number {
    return this.#uses.size;
  }

  /**
   * One call to `baseUrl` + `path`. Resolves with any HTTP answer, error statuses included; rejects with an
   * HttpCallError when there is no answer to read.
   */
  async request(baseUrl: string, path: string, call: JsonCall = {}): Promise<JsonAnswer> {
    if (this.#closed) throw new HttpCallError(CallFailure.CLOSED, urlOf(baseUrl, path), 'the client is closed', true);
    const target = this.#target(baseUrl);
    this.#sweepIdleOrigins(Date.now());
    const use = this.#uses.get(target.origin) ?? { inFlight: 0, lastUsed: 0 };
    this.#uses.set(target.origin, use);
    use.inFlight += 1;
    const timeoutMs = call.timeoutMs ?? this.#options.timeoutMs;
    const headers = call.body === undefined ? { ...this.#options.headers, ...call.headers } : { ...this.#options.headers, 'content-type': 'application/json', ...call.headers };
    // One deadline bounds the whole call: connect, send, headers and body.
    const deadline = new CallDeadline(timeoutMs);
    this.requests += 1;
    try {
      const transport = await this.#openTransport();
      const answer = await transport.send(target.origin, {
        method: call.method ?? (call.body === undefined ? 'GET' : 'POST'),
        path: `${target.prefix}${path}`,
        headers,
        body: call.body === undefined ? undefined : JSON.stringify(call.body),
        timeoutMs,
        deadline,
      });
      return { ...answer, body: parseJson(answer.text) };
    } catch (err) {
      throw this.#failure(err, urlOf(baseUrl, path), timeoutMs, deadline.passed);
    } finally {
      deadline.clear();
      use.inFlight -= 1;
      use.lastUsed = Date.now();
    }
  }

  /** Forgets origins idle for idleOriginMs: their connections close, their entries go. */
  #sweepIdleOrigins(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + Math.min(MAX_SWEEP_INTERVAL_MS, this.#options.idleOriginMs);
    for (const [origin, use] of this.#uses) {
      if (use.inFlight > 0 || now - use.lastUsed <= this.#options.idleOriginMs) continue;
      this.#uses.delete(origin);
      for (const [baseUrl, target] of this.#targets) if (target.origin === origin) this.#targets.delete(baseUrl);
      void this.#transport?.then((transport) => transport.forget(origin), () => undefined);
    }
  }

  /** Waits for calls in flight, then closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await (await this.#transport)?.close();
  }

  /** Aborts calls in flight (they fail CLOSED) and closes every connection. */
  async destroy(): Promise<void> {
    this.#closed = true;
    await (await this.#transport)?.destroy();
  }

  #openTransport(): Promise<HttpTransport> {
    const options = { connections: this.#options.connections, maxAnswerBytes: this.#options.maxAnswerBytes };
    this.#transport ??= this.#options.stack === 'undici' ? UndiciTransport.load(options) : Promise.resolve(new NodeHttpTransport(options));
    return this.#transport;
  }

  #target(baseUrl: string): Target {
    let target = this.#targets.get(baseUrl);
    if (target) return target;
    const parsed = new URL(baseUrl);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`${baseUrl} is not an http(s) URL`);
    target = { origin: parsed.origin, prefix: parsed.pathname.replace(/\/+$/, '') };
    this.#targets.set(baseUrl, target);
    return target;
  }

  #failure(err: unknown, url: string, timeoutMs: number, timedOut: boolean): HttpCallError {
    if (timedOut) return new HttpCallError(CallFailure.TIMEOUT, url, `no complete answer within ${timeoutMs} ms`, false, err);
    // Ended by the transport for a reason it knows; the request may have arrived and run.
    if (err instanceof CallEnded) return new HttpCallError(err.failure, url, err.message, false, err.cause ?? err);
    const code = String((err as { code?: unknown } | null)?.code ?? '');
    const message = err instanceof Error ? err.message : String(err);
    // Node's messages name their code ("connect ECONNREFUSED 127.0.0.1:7000"); undici's do not.
    const detail = code === '' || message.includes(code) ? message || 'failed' : `${code} (${message})`;
    return new HttpCallError(CallFailure.UNREACHABLE, url, detail, NOTHING_SENT.has(code), err);
  }
}

/** The URL a call went to, for its error message (built only when one is needed). */
function urlOf(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}${path}`;
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** "HTTP 502: <first 200 characters>", for an answer that carries no error of ours. */
export function describeAnswer(answer: JsonAnswer): string {
  const text = answer.text.replace(/\s+/g, ' ').trim();
  return `HTTP ${answer.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
}
