/** A built example service: its fastify app and a close() that runs once (the server first, then its data). */
import type { FastifyInstance } from 'fastify';
import { OpenConnections, closeWithSilentGrace } from '@txmesh/protocol';

export interface BuiltService {
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * `release` ends the participant and the database, after the server stopped taking requests. Call it before the
 * app listens: a connection that never sends a byte is closed 500 ms into the close, where fastify's close alone
 * would wait for it without bound.
 */
export function closeOnce(app: FastifyInstance, release: () => Promise<void> | void): BuiltService {
  const connections = new OpenConnections();
  connections.attach(app.server, false);
  let closing: Promise<void> | undefined;
  return {
    app,
    close() {
      closing ??= (async () => {
        await closeWithSilentGrace(connections, () => app.close());
        await release();
      })();
      return closing;
    },
  };
}
