/** A built example service: its fastify app and a close() that runs once (the server first, then its data). */
import type { FastifyInstance } from 'fastify';

export interface BuiltService {
  app: FastifyInstance;
  close(): Promise<void>;
}

/** `release` ends the participant and the database, after the server stopped taking requests. */
export function closeOnce(app: FastifyInstance, release: () => Promise<void> | void): BuiltService {
  let closing: Promise<void> | undefined;
  return {
    app,
    close() {
      closing ??= (async () => {
        await app.close();
        await release();
      })();
      return closing;
    },
  };
}
