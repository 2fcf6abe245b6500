/**
 * The JSON client's transport on undici: one keep-alive Pool per origin. It costs less CPU per call than
 * node:http, which an application starting many transactions a second (the benchmark's load generator)
 * notices; loading undici costs about 110 modules, so only a client that asks for it loads it.
 */
import type { Pool } from 'undici';
import { CallFailure } from './call-failure.ts';
import { CallEnded, KEEP_ALIVE_MS, type HttpTransport, type RawAnswer, type TransportOptions, type TransportRequest } from './http-transport.ts';

/** undici's codes for a call ended by its own phase timeouts, a too-large answer, or a closed pool. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const CLOSED_CODES = new Set(['UND_ERR_DESTROYED', 'UND_ERR_CLOSED', 'UND_ERR_ABORTED']);

export class UndiciTransport implements HttpTransport {
  readonly #options: TransportOptions;
  readonly #pools = new Map<string, Pool>();
  readonly #PoolClass: typeof Pool;
  #closing = false;

  private constructor(PoolClass: typeof Pool, options: TransportOptions) {
    this.#PoolClass = PoolClass;
    this.#options = options;
  }

  static async load(options: TransportOptions): Promise<UndiciTransport> {
    const { Pool: PoolClass } = await import('undici');
    return new UndiciTransport(PoolClass, options);
  }

  async send(origin: string, req: TransportRequest): Promise<RawAnswer> {
    // undici ends a call through a signal; this stack is the application's, where calls are few per transaction.
    const controller = new AbortController();
    req.deadline.onPass(() => controller.abort());
    try {
      const answer = await this.#pool(origin).request({
        method: req.method,
        path: req.path,
        headers: req.headers,
        body: req.body ?? null,
        // The client's timer bounds the whole call; undici's phase timeouts are a second line.
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
        signal: controller.signal,
      });
      return { status: answer.statusCode, headers: answer.headers, text: await answer.body.text() };
    } catch (err) {
      const code = String((err as { code?: unknown } | null)?.code ?? '');
      if (TIMEOUT_CODES.has(code)) throw new CallEnded(CallFailure.TIMEOUT, `no complete answer within ${req.timeoutMs} ms`, err);
      if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw new CallEnded(CallFailure.ANSWER_TOO_LARGE, `the answer is larger than ${this.#options.maxAnswerBytes} bytes`, err);
      if (this.#closing && CLOSED_CODES.has(code)) throw new CallEnded(CallFailure.CLOSED, 'the client was closed during the call', err);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#pools.values()].map((pool) => pool.close()));
  }

  async destroy(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#pools.values()].map((pool) => pool.destroy()));
  }

  forget(origin: string): void {
    const pool = this.#pools.get(origin);
    this.#pools.delete(origin);
    // Nothing is in flight to it (the client checks), so closing waits for nothing.
    void pool?.close().catch(() => undefined);
  }

  #pool(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (!pool) {
      pool = new this.#PoolClass(origin, { connections: this.#options.connections, pipelining: 1, keepAliveTimeout: KEEP_ALIVE_MS, maxResponseSize: this.#options.maxAnswerBytes });
      this.#pools.set(origin, pool);
    }
    return pool;
  }
}
