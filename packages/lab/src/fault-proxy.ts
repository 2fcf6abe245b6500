/**
 * A fault-injecting TCP proxy for tests and `txmesh chaos`: it sits on one link (e.g. coordinator →
 * sidecar), forwards bytes to its target, and can be switched at run time to delay, lose one direction,
 * blackhole or reset the link. It lives in the process that owns the cluster, so it outlasts the
 * restarts of the members it connects (they keep their ports).
 *
 * Lost bytes poison a connection: an HTTP stream with a hole in it is garbage, and on a real network TCP
 * would keep retransmitting until the connection times out. So when the link heals, poisoned connections
 * are destroyed (what the peers would see after that time-out) and fresh ones pass cleanly.
 */
import net from 'node:net';

/** toTarget: bytes from the connecting side (requests). toClient: bytes back from the target (answers). */
export type Direction = 'toTarget' | 'toClient';
export type LinkMode = 'pass' | 'delay' | 'drop' | 'blackhole' | 'reset';

type DirectionFault = { kind: 'pass' } | { kind: 'delay'; ms: number } | { kind: 'drop' };

export interface FaultProxyOptions {
  /** Where to forward, e.g. "http://127.0.0.1:7001" or "127.0.0.1:7001"; may be set later with setTarget. */
  target?: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
}

interface Connection {
  client: net.Socket;
  upstream: net.Socket | undefined;
  poisoned: boolean;
  /** When the last delayed chunk of each direction is due, so delayed bytes keep their order. */
  dueAt: Record<Direction, number>;
  timers: Set<NodeJS.Timeout>;
}

function parseTarget(target: string): { host: string; port: number } {
  const url = new URL(target.includes('://') ? target : `tcp://${target}`);
  const port = Number(url.port);
  if (!Number.isInteger(port) || port <= 0) throw new TypeError(`fault proxy target needs a port: ${target}`);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

function hardClose(socket: net.Socket | undefined): void {
  if (!socket || socket.destroyed) return;
  // An RST, as a crashed or partitioned-then-timed-out peer would give, rather than a polite FIN.
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

export class FaultProxy {
  readonly #server: net.Server;
  readonly #connections = new Set<Connection>();
  #target: { host: string; port: number } | undefined;
  #faults: Record<Direction, DirectionFault> = { toTarget: { kind: 'pass' }, toClient: { kind: 'pass' } };
  #resetting = false;
  #taps: ((direction: Direction, chunk: Buffer) => void)[] = [];
  #mode: LinkMode = 'pass';
  /** How many times the link was switched away from pass (for chaos reports). */
  faultsInjected = 0;

  private constructor(server: net.Server, target: string | undefined) {
    this.#server = server;
    if (target !== undefined) this.setTarget(target);
  }

  static async start(options: FaultProxyOptions = {}): Promise<FaultProxy> {
    const server = net.createServer();
    const proxy = new FaultProxy(server, options.target);
    server.on('connection', (socket) => proxy.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get mode(): LinkMode {
    return this.#mode;
  }
  get openConnections(): number {
    return this.#connections.size;
  }

  setTarget(target: string): void {
    this.#target = parseTarget(target);
  }

  /** Back to forwarding everything; connections that lost bytes are cut (as a TCP time-out would). */
  heal(): void {
    this.#mode = 'pass';
    this.#resetting = false;
    this.#faults = { toTarget: { kind: 'pass' }, toClient: { kind: 'pass' } };
    for (const connection of this.#connections) if (connection.poisoned) this.#close(connection);
  }

  /** Holds bytes `ms` before forwarding them, in one direction or both; order is kept. */
  delay(ms: number, direction?: Direction): void {
    this.#switch('delay');
    for (const d of direction ? [direction] : (['toTarget', 'toClient'] as const)) this.#faults[d] = { kind: 'delay', ms };
  }

  /** One-way loss: bytes in `direction` vanish, the other direction still flows. */
  drop(direction: Direction): void {
    this.#switch('drop');
    this.#faults[direction] = { kind: 'drop' };
  }

  /** Accepts connections and holds them, forwarding nothing either way. */
  blackhole(): void {
    this.#switch('blackhole');
    this.#faults = { toTarget: { kind: 'drop' }, toClient: { kind: 'drop' } };
  }

  /** Resets every open connection and every new one until healed. */
  reset(): void {
    this.#switch('reset');
    this.#resetting = true;
    for (const connection of this.#connections) this.#close(connection);
  }

  /**
   * Calls `watch` with every chunk before the current mode handles it, so a test can switch modes at an
   * exact protocol step (e.g. blackhole the link as the commit batch goes out). Returns an un-tap function.
   */
  tap(watch: (direction: Direction, chunk: Buffer) => void): () => void {
    this.#taps.push(watch);
    return () => {
      this.#taps = this.#taps.filter((w) => w !== watch);
    };
  }

  async close(): Promise<void> {
    for (const connection of this.#connections) this.#close(connection);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #switch(mode: LinkMode): void {
    if (this.#mode === 'pass') this.faultsInjected++;
    this.#mode = mode;
  }

  #accept(client: net.Socket): void {
    client.setNoDelay(true);
    if (this.#resetting || !this.#target) {
      hardClose(client);
      return;
    }
    const connection: Connection = { client, upstream: undefined, poisoned: false, dueAt: { toTarget: 0, toClient: 0 }, timers: new Set() };
    this.#connections.add(connection);
    const upstream = net.connect(this.#target);
    upstream.setNoDelay(true);
    connection.upstream = upstream;
    upstream.on('error', () => {
      // Target down: as seen through a lossy link the client learns nothing; otherwise it gets the reset.
      if (this.#faults.toClient.kind === 'drop') connection.poisoned = true;
      else this.#close(connection);
    });
    client.on('error', () => this.#close(connection));
    client.on('data', (chunk) => this.#forward(connection, 'toTarget', chunk));
    upstream.on('data', (chunk) => this.#forward(connection, 'toClient', chunk));
    client.on('close', () => this.#closeAfterPending(connection, 'toTarget'));
    upstream.on('close', () => {
      // Under loss towards the client, the client must not learn that the target went away.
      if (this.#faults.toClient.kind === 'drop') connection.poisoned = true;
      else this.#closeAfterPending(connection, 'toClient');
    });
  }

  #forward(connection: Connection, direction: Direction, chunk: Buffer): void {
    for (const watch of this.#taps) watch(direction, chunk);
    const out = direction === 'toTarget' ? connection.upstream : connection.client;
    const fault = this.#faults[direction];
    if (fault.kind === 'drop') {
      connection.poisoned = true;
      return;
    }
    const now = Date.now();
    if (fault.kind === 'pass' && connection.dueAt[direction] <= now) {
      if (out && !out.destroyed) out.write(chunk);
      return;
    }
    // Delayed (or queued behind earlier delayed bytes): deliver in order.
    const due = Math.max(now + (fault.kind === 'delay' ? fault.ms : 0), connection.dueAt[direction]);
    connection.dueAt[direction] = due;
    const timer = setTimeout(() => {
      connection.timers.delete(timer);
      if (out && !out.destroyed) out.write(chunk);
    }, due - now);
    connection.timers.add(timer);
  }

  /** One side went away: close once the bytes still delayed towards the other side are delivered. */
  #closeAfterPending(connection: Connection, direction: Direction): void {
    const wait = connection.dueAt[direction] - Date.now();
    if (wait <= 0) {
      this.#close(connection);
      return;
    }
    const timer = setTimeout(() => this.#close(connection), wait + 1);
    connection.timers.add(timer);
  }

  #close(connection: Connection): void {
    if (!this.#connections.delete(connection)) return;
    for (const timer of connection.timers) clearTimeout(timer);
    hardClose(connection.client);
    hardClose(connection.upstream);
  }
}
