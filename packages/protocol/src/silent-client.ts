/**
 * `@txmesh/protocol/testing`: for a test of a server's close — txmesh's own (coordinator, sidecar, participant,
 * example service, metrics port) or a service's — a client that connects and never sends a byte, which Node's and
 * fastify's close alone would wait for without bound.
 */
import net from 'node:net';

export interface SilentClientOutcome {
  /** The close returned within the bound. */
  closeReturned: boolean;
  /** The server closed the silent connection (it cannot have returned otherwise). */
  connectionClosedByServer: boolean;
}

/** Opens a silent connection to host:port, runs `close`, and waits at most `boundMs` for it. */
export async function closeBesideSilentClient(host: string, port: number, close: () => Promise<unknown>, boundMs = 10_000): Promise<SilentClientOutcome> {
  const silent = net.connect(port, host);
  let bound: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => silent.once('connect', resolve).once('error', reject));
    const closedByServer = new Promise<boolean>((resolve) => silent.once('close', () => resolve(true)));
    const gaveUp = new Promise<false>((resolve) => (bound = setTimeout(() => resolve(false), boundMs)));
    const closeReturned = await Promise.race([close().then(() => true), gaveUp]);
    const connectionClosedByServer = await Promise.race([closedByServer, gaveUp]);
    return { closeReturned, connectionClosedByServer };
  } finally {
    clearTimeout(bound);
    silent.destroy();
  }
}
