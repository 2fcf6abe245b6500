/**
 * The sidecar's control routes (batch, health, ready, stats) on plain node:http: JSON in, JSON out, every
 * refusal in the catalogue's shape. Four routes do not need a web framework, and fastify with its
 * dependencies was about a third of the sidecar's start-up and 12 MB of its idle memory (docs/benchmarks.md).
 * It answers as the fastify routes did: 415 for a body that is not JSON, 413 past the body limit, 400 for
 * JSON that does not parse or carries a prototype key, 404 TXM_NOT_FOUND for an unknown route, and
 * TXM_INTERNAL (logged with the original error) for anything unexpected a handler throws.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { TxmeshError, toTxmeshError } from '@txmesh/protocol';
import type { Logger } from 'pino';
import { readJsonBody } from './json-body.ts';

export interface ControlRequest {
  /** The route's path, as registered. */
  route: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body of a POST; undefined when it came without one. */
  body: unknown;
}

type Handler = (request: ControlRequest) => unknown;

export interface ControlRoutesOptions {
  /** The largest body a POST may carry. */
  bodyLimit: number;
  log: Logger;
  /** Runs before the body is read, for every request (`route` undefined when no route matches); throw to refuse. */
  onRequest(route: string | undefined, headers: IncomingHttpHeaders): void;
}

export class ControlRoutes {
  readonly #routes = new Map<string, Handler>();
  readonly #options: ControlRoutesOptions;
  #closing = false;

  constructor(options: ControlRoutesOptions) {
    this.#options = options;
  }

  get(path: string, handler: Handler): void {
    this.#routes.set(`GET ${path}`, handler);
  }

  post(path: string, handler: Handler): void {
    this.#routes.set(`POST ${path}`, handler);
  }

  /** From now on a request's answer closes its connection, so keep-alive callers do not hold a closing server open. */
  drain(): void {
    this.#closing = true;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    void this.#serve(req, res);
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    // A HEAD is answered as its GET, without the body (node:http drops it).
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const route = this.#routes.has(`${method} ${path}`) ? path : undefined;
    if (this.#closing) res.shouldKeepAlive = false;
    try {
      this.#options.onRequest(route, req.headers);
      if (route === undefined) throw new TxmeshError('TXM_NOT_FOUND', `${req.method ?? ''} ${path.slice(0, 200)}`);
      const body = method === 'POST' ? await readJsonBody(req, this.#options.bodyLimit) : undefined;
      const answer = await this.#routes.get(`${method} ${route}`)!({ route, headers: req.headers, body });
      this.#send(res, 200, answer);
    } catch (err) {
      // The caller went away (mid-body, say): there is nobody to answer.
      if (req.socket.destroyed) return;
      const error = toTxmeshError(err);
      if (error.code === 'TXM_INTERNAL') this.#options.log.error({ err }, `${req.method ?? ''} ${path.slice(0, 200)} failed unexpectedly`);
      const retryAfterSeconds = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
      // A body refused unread is not read to its end: the connection cannot carry another request.
      if (error.code === 'TXM_BODY_TOO_LARGE' || error.code === 'TXM_UNSUPPORTED_MEDIA_TYPE') res.shouldKeepAlive = false;
      this.#send(res, error.status, error.toBody(), typeof retryAfterSeconds === 'number' ? { 'retry-after': String(retryAfterSeconds) } : {});
    }
  }

  #send(res: ServerResponse, status: number, answer: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const body = JSON.stringify(answer ?? null);
    res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}
