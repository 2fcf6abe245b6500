/**
 * The JSON client's transport on node:http: one keep-alive Agent per origin. A txmesh process already has
 * node:http loaded for its own server, so this costs it nothing to load; node:https is loaded only for an
 * https origin.
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import { CallFailure } from './call-failure.ts';
import { CallEnded, KEEP_ALIVE_MS, type HttpTransport, type RawAnswer, type TransportOptions, type TransportRequest } from './http-transport.ts';

interface Origin {
  agent: http.Agent;
  request: typeof http.request;
  host: string;
  port: string;
}

export class NodeHttpTransport implements HttpTransport {
  readonly #options: TransportOptions;
  readonly #origins = new Map<string, Promise<Origin>>();
  readonly #inFlight = new Set<ClientRequest>();
  readonly #calls = new Set<Promise<RawAnswer>>();

  constructor(options: TransportOptions) {
    this.#options = options;
  }

  async send(origin: string, request: TransportRequest): Promise<RawAnswer> {
    const target = await this.#origin(origin);
    const call = this.#call(target, request);
    this.#calls.add(call);
    try {
      return await call;
    } finally {
      this.#calls.delete(call);
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#calls]);
    await this.#destroyAgents();
  }

  async destroy(): Promise<void> {
    for (const request of this.#inFlight) request.destroy(new CallEnded(CallFailure.CLOSED, 'the client was closed during the call'));
    await Promise.allSettled([...this.#calls]);
    await this.#destroyAgents();
  }

  forget(origin: string): void {
    const target = this.#origins.get(origin);
    this.#origins.delete(origin);
    void target?.then((o) => o.agent.destroy(), () => undefined);
  }

  #call(target: Origin, req: TransportRequest): Promise<RawAnswer> {
    const maxBytes = this.#options.maxAnswerBytes;
    const tooLarge = (): CallEnded => new CallEnded(CallFailure.ANSWER_TOO_LARGE, `the answer is larger than ${maxBytes} bytes`);
    return new Promise<RawAnswer>((resolve, reject) => {
      const headers = req.body === undefined ? req.headers : { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) };
      const request = target.request({ agent: target.agent, host: target.host, port: target.port, method: req.method, path: req.path, headers }, (res: IncomingMessage) => {
        if (Number(res.headers['content-length'] ?? 0) > maxBytes) {
          res.destroy(tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) res.destroy(tooLarge());
          else chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
        // The connection closed before the end of the body: the answer is incomplete (a settled call ignores this).
        res.on('close', () => reject(Object.assign(new Error('the connection closed before the answer was complete'), { code: 'ECONNRESET' })));
      });
      // No AbortSignal on the request: node:http ties one to the request, its socket and its streams per call.
      req.deadline.onPass(() => request.destroy(new CallEnded(CallFailure.TIMEOUT, `no complete answer within ${req.timeoutMs} ms`)));
      this.#inFlight.add(request);
      request.on('close', () => this.#inFlight.delete(request));
      request.on('error', reject);
      request.end(req.body);
    });
  }

  #origin(origin: string): Promise<Origin> {
    let target = this.#origins.get(origin);
    if (!target) {
      target = this.#connect(origin);
      this.#origins.set(origin, target);
    }
    return target;
  }

  async #connect(origin: string): Promise<Origin> {
    const url = new URL(origin);
    const stack = url.protocol === 'https:' ? await import('node:https') : http;
    return {
      agent: new stack.Agent({ keepAlive: true, maxSockets: this.#options.connections, timeout: KEEP_ALIVE_MS }),
      request: stack.request,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (url.protocol === 'https:' ? '443' : '80'),
    };
  }

  async #destroyAgents(): Promise<void> {
    const origins = await Promise.allSettled([...this.#origins.values()]);
    for (const o of origins) if (o.status === 'fulfilled') o.value.agent.destroy();
  }
}
