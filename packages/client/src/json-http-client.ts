/**
 * The one JSON-over-HTTP client of txmesh: the application's client, the coordinator's calls to sidecars
 * and the sidecar's calls to its service and to the shards all go through it. Keep-alive undici Pools (one
 * per origin), a time bound on every call, a bound on the answer's size, and transport failures as coded
 * errors. What an answer means (an error body, a status) is left to the caller: see TxmeshError.fromBody.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';

export const CallFailure = {
  /** No complete answer within the call's time bound. */
  TIMEOUT: 'TIMEOUT',
  /** The connection failed or broke. */
  UNREACHABLE: 'UNREACHABLE',
  /** The answer was larger than maxAnswerBytes; it was cut off and not read. */
  ANSWER_TOO_LARGE: 'ANSWER_TOO_LARGE',
  /** The client was closed. */
  CLOSED: 'CLOSED',
} as const;
export type CallFailure = (typeof CallFailure)[keyof typeof CallFailure];

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
}

export const DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024;
const KEEP_ALIVE_MS = 30_000;
/** Errors of the connect step: the request never left this process. */
const NOTHING_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

interface Target {
  pool: Pool;
  /** Path prefix of the base URL (a sidecar behind a path-routing proxy), without a trailing slash. */
  prefix: string;
}

export class JsonHttpClient {
  readonly #options: Required<Omit<JsonHttpClientOptions, 'headers'>> & { headers: Record<string, string> };
  readonly #pools = new Map<string, Pool>();
  readonly #targets = new Map<string, Target>();
  #closed = false;
  /** Calls started so far (the benchmark's requests between components). */
  requests = 0;

  constructor(options: JsonHttpClientOptions) {
    const positive = (value: number, name: string): number => {
      if (!Number.isInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer`);
      return value;
    };
    this.#options = {
      timeoutMs: positive(options.timeoutMs, 'timeoutMs'),
      maxAnswerBytes: positive(options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES, 'maxAnswerBytes'),
      connections: positive(options.connections ?? 16, 'connections'),
      headers: { accept: 'application/json', ...options.headers },
    };
  }

  /**
   * One call to `baseUrl` + `path`. Resolves with any HTTP answer, error statuses included; rejects with an
   * HttpCallError when there is no answer to read.
   */
  async request(baseUrl: string, path: string, call: JsonCall = {}): Promise<JsonAnswer> {
    const url = `${baseUrl.replace(/\/+$/, '')}${path}`;
    if (this.#closed) throw new HttpCallError(CallFailure.CLOSED, url, 'the client is closed', true);
    const target = this.#target(baseUrl);
    const timeoutMs = call.timeoutMs ?? this.#options.timeoutMs;
    const headers = call.body === undefined ? { ...this.#options.headers, ...call.headers } : { ...this.#options.headers, 'content-type': 'application/json', ...call.headers };
    // One timer bounds the whole call; undici's own timeouts bound each phase as a second line.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    this.requests += 1;
    try {
      const answer = await target.pool.request({
        method: call.method ?? (call.body === undefined ? 'GET' : 'POST'),
        path: `${target.prefix}${path}`,
        headers,
        body: call.body === undefined ? null : JSON.stringify(call.body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: controller.signal,
      });
      const text = await answer.body.text();
      return { status: answer.statusCode, headers: answer.headers, body: parseJson(text), text };
    } catch (err) {
      throw this.#failure(err, url, timeoutMs, controller.signal.aborted);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for calls in flight, then closes every connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
  }

  /** Aborts calls in flight (they fail UNREACHABLE) and closes every connection. */
  async destroy(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#pools.values()].map((pool) => pool.destroy()));
  }

  #target(baseUrl: string): Target {
    let target = this.#targets.get(baseUrl);
    if (target) return target;
    const parsed = new URL(baseUrl);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`${baseUrl} is not an http(s) URL`);
    let pool = this.#pools.get(parsed.origin);
    if (!pool) {
      pool = new Pool(parsed.origin, {
        connections: this.#options.connections,
        pipelining: 1,
        keepAliveTimeout: KEEP_ALIVE_MS,
        maxResponseSize: this.#options.maxAnswerBytes,
      });
      this.#pools.set(parsed.origin, pool);
    }
    target = { pool, prefix: parsed.pathname.replace(/\/+$/, '') };
    this.#targets.set(baseUrl, target);
    return target;
  }

  #failure(err: unknown, url: string, timeoutMs: number, timedOut: boolean): HttpCallError {
    const code = String((err as { code?: unknown } | null)?.code ?? '');
    if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new HttpCallError(CallFailure.TIMEOUT, url, `no complete answer within ${timeoutMs} ms`, false, err);
    }
    if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
      return new HttpCallError(CallFailure.ANSWER_TOO_LARGE, url, `the answer is larger than ${this.#options.maxAnswerBytes} bytes`, false, err);
    }
    if (this.#closed && (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_ABORTED')) {
      return new HttpCallError(CallFailure.CLOSED, url, 'the client was closed during the call', false, err);
    }
    const message = err instanceof Error ? err.message : String(err);
    // Node's messages name their code ("connect ECONNREFUSED 127.0.0.1:7000"); undici's do not.
    const detail = code === '' || message.includes(code) ? message || 'failed' : `${code} (${message})`;
    return new HttpCallError(CallFailure.UNREACHABLE, url, detail, NOTHING_SENT.has(code), err);
  }
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
