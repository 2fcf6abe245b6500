/**
 * A server's open connections, so a closing server can close the *silent* ones: those that have not sent a
 * single byte. Node counts such a connection neither idle nor busy, no timeout of its own ever closes it, and
 * `server.close` (fastify's close too) waits for it without bound — one client that connects and sends nothing
 * would hold a SIGTERMed process until it is killed. On a TLS server a connection whose handshake has not
 * finished is closed the same way: no request can be in flight on it, and only the handshake timeout (120 s by
 * default) would end it. A connection that sent part of a request is left to headersTimeout, one between
 * requests to the server's idle close, an upgraded one to its owner.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** How long a closing server waits for a first byte on a connection that has sent none before closing it. */
export const SILENT_CONNECTION_GRACE_MS = 500;

export class OpenConnections {
  readonly #sockets = new Set<Socket>();
  /** On a TLS server: its TCP sockets whose handshake has not finished yet, by their peer's address and port. */
  readonly #handshaking = new Map<string, Socket>();

  /**
   * Tracks the server's connections. On a TLS server both the TCP socket (silent until its handshake is done)
   * and, once the handshake is done, the TLS socket (whose bytesRead counts only the decrypted request bytes).
   */
  attach<S extends Server>(server: S, tls: boolean): S {
    server.on('connection', (socket: Socket) => {
      this.#track(socket);
      if (tls) this.#trackHandshake(socket);
    });
    if (tls) {
      server.on('secureConnection', (socket: Socket) => {
        // The TLS socket has the same peer as the TCP socket it wraps (public fields, unlike its `_parent`).
        this.#handshaking.delete(peerOf(socket));
        this.#track(socket);
      });
    }
    return server;
  }

  /** Closes every tracked connection that has not sent a byte or not finished its TLS handshake; returns how many. */
  closeSilent(): number {
    let closed = 0;
    for (const socket of this.#sockets) {
      if (socket.bytesRead === 0 || this.#handshaking.get(peerOf(socket)) === socket) {
        socket.destroy();
        closed += 1;
      }
    }
    return closed;
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  #trackHandshake(socket: Socket): void {
    const peer = peerOf(socket);
    this.#handshaking.set(peer, socket);
    socket.once('close', () => {
      if (this.#handshaking.get(peer) === socket) this.#handshaking.delete(peer);
    });
  }
}

/** A connection's peer; unique among a server's open connections. */
function peerOf(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}

/**
 * Runs a server's close (fastify's, or `server.close`) and closes the connections still silent after
 * SILENT_CONNECTION_GRACE_MS, which that close would otherwise wait for without bound.
 */
export async function closeWithSilentGrace<T>(connections: { closeSilent(): number }, close: () => Promise<T>): Promise<T> {
  const silentSweep = setTimeout(() => connections.closeSilent(), SILENT_CONNECTION_GRACE_MS);
  try {
    return await close();
  } finally {
    clearTimeout(silentSweep);
  }
}
