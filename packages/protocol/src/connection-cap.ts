/**
 * Bounds the connections a server works for, without resetting any. The kernel queue is made long enough to
 * hold a burst (LISTEN_BACKLOG), every connection is accepted, and past `maxConnections` open ones a new
 * connection is an *excess* one: each request on it is answered at once with TXM_OVERLOADED (429,
 * Retry-After, Connection: close) before any route, parser or hook runs, and the socket closes after the
 * answer. A probe (health, readiness) is served on any connection, so a liveness probe never fails because
 * clients crowd the port; so are, at the coordinator, the few calls sidecars make (their heartbeats). Used by the coordinator and the sidecar through their serverFactory.
 *
 * It also tracks the server's open connections (OpenConnections), so a closing server closes the silent ones.
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { TxmeshError } from './errors.ts';
import { OpenConnections, closeWithSilentGrace } from './open-connections.ts';

/** The listen backlog (connections the kernel holds before accept): a burst waits instead of being dropped. */
export const LISTEN_BACKLOG = 4096;
/** Default cap of open connections per server process. */
export const DEFAULT_MAX_CONNECTIONS = 1000;
/** How often a closing server closes the keep-alive connections that fell idle since the last look. */
const IDLE_SWEEP_MS = 50;
/** What an excess connection's caller is told to wait before it tries again. */
const RETRY_AFTER_SECONDS = 1;

export interface ConnectionCapStats {
  open: number;
  maxConnections: number;
  /** Requests answered TXM_OVERLOADED because they came on an excess connection. */
  refused: number;
}

export class ConnectionCap {
  readonly #max: number;
  /** Paths served on an excess connection too (the probes; at the coordinator, the sidecars' calls). */
  readonly #servedPastCap: (path: string) => boolean;
  /** Sockets over the cap when they arrived: decided once, when the connection opens. */
  readonly #excess = new WeakSet<Socket>();
  readonly #connections = new OpenConnections();
  #open = 0;
  #refused = 0;

  constructor(maxConnections: number, servedPastCap: (path: string) => boolean) {
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new RangeError(`maxConnections must be a positive integer, got ${maxConnections}`);
    this.#max = maxConnections;
    this.#servedPastCap = servedPastCap;
  }

  stats(): ConnectionCapStats {
    return { open: this.#open, maxConnections: this.#max, refused: this.#refused };
  }

  /** Wraps the server's request listener: excess connections get their answer here. */
  wrap(listener: RequestListener): RequestListener {
    return (req, res) => {
      if (this.#excess.has(req.socket) && !this.#servedPastCap(pathOf(req))) this.#refuse(res);
      else listener(req, res);
    };
  }

  /**
   * Counts the server's connections and marks those past the cap. A TLS server's requests carry the TLS
   * socket, so there the count is taken once the handshake is done.
   */
  attach<S extends Server>(server: S, tls: boolean): S {
    this.#connections.attach(server, tls);
    server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.#open += 1;
      if (this.#open > this.#max) this.#excess.add(socket);
      socket.once('close', () => {
        this.#open -= 1;
      });
    });
    return server;
  }

  /**
   * For an upgrade (which bypasses the request listener): the refusal when its connection is an excess one,
   * counted as refused, or undefined when it may be taken.
   */
  refusalOf(socket: Socket): TxmeshError | undefined {
    if (!this.#excess.has(socket)) return undefined;
    this.#refused += 1;
    return Object.assign(new TxmeshError('TXM_OVERLOADED', `this server already holds ${this.#max} connections; this one is answered and closed`), { retryAfterSeconds: RETRY_AFTER_SECONDS });
  }

  /** Closes the connections that have not sent a byte (see OpenConnections); returns how many. */
  closeSilent(): number {
    return this.#connections.closeSilent();
  }

  #refuse(res: ServerResponse): void {
    this.#refused += 1;
    const error = new TxmeshError('TXM_OVERLOADED', `this server already holds ${this.#max} connections; this one is answered and closed`);
    const body = JSON.stringify(error.toBody());
    res.shouldKeepAlive = false;
    res.writeHead(error.status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'retry-after': String(RETRY_AFTER_SECONDS),
      connection: 'close',
    });
    res.end(body);
  }
}

/**
 * Stops accepting and resolves once the requests in flight have been answered: keep-alive connections are
 * closed as they fall idle (a request arriving on one while closing is answered, with Connection: close), and a
 * connection still silent after SILENT_CONNECTION_GRACE_MS is closed.
 */
export function closeServer(server: Server, connections: ConnectionCap): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return closeWithSilentGrace(
    connections,
    () =>
      new Promise<void>((resolve) => {
        const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
        server.close(() => {
          clearInterval(sweep);
          resolve();
        });
      }),
  );
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}
