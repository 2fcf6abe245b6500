/**
 * The benchmark's null baseline: a fastify server in its own process that answers a begin request at
 * once with a committed result, without doing anything. Driving it with the same client at the same
 * concurrency shows what the machine, Node and HTTP cost before any transaction work.
 */
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { NO_SCHEMA_COMPILERS, Outcome, Paths, serverLoggerOptions, type TransactionResult } from '@txmesh/protocol';

export async function startNullEcho(opts: { host?: string; port?: number; logLevel?: string } = {}): Promise<{ url: string; close(): Promise<void> }> {
  // The same logger as every role: at the default level it writes nothing per request.
  const app = Fastify({ logger: serverLoggerOptions('null-echo', opts.logLevel), schemaController: NO_SCHEMA_COMPILERS });
  let answered = 0;
  // Parses the JSON body like the coordinator does, so only the transaction work differs.
  app.post(Paths.TRANSACTIONS, async (): Promise<TransactionResult> => {
    answered += 1;
    return { txId: `null-${answered}`, outcome: Outcome.COMMITTED, participants: [], durationMs: 0 };
  });
  app.get('/v1/stats', async () => ({ answered }));
  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  const address = app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${address.port}`;
  app.log.info({ url }, 'null-echo ready');
  return { url, close: () => app.close() };
}
