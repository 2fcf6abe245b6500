/**
 * The payment service over PostgreSQL in native two-phase-commit mode: the same routes as its SQLite twin
 * (participant routes, /health, /ready, /admin/summary, /accounts/:id), its data in the given database.
 */
import http from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { createPgParticipant, type PgParticipant } from '@txmesh/participant-sdk';
import { NO_SCHEMA_COMPILERS, SERVER_TIMEOUTS, TxmeshError, answerClientError, installTxmeshErrorHandlers, serverLoggerOptions, type ReadyAnswer } from '@txmesh/protocol';
import { closeOnce, type BuiltService } from './built-service.ts';
import { resolveCatalog, type CatalogOptions } from './catalog.ts';
import { checkPgPayment, migratePgPayment, pgCharge } from './payment-pg.ts';
import type { ServiceSummary } from './service-definition.ts';

export interface BuildPgPaymentOptions {
  /** postgres://… of the payment service's own database (max_prepared_transactions above 0). */
  pgUrl: string;
  catalog?: Partial<CatalogOptions>;
  lockWaitMs?: number;
  logLevel?: string;
  /** The payment service's key(s): the participant routes then take only its sidecar. */
  keys?: readonly string[];
}

export async function buildPgPaymentService(opts: BuildPgPaymentOptions): Promise<BuiltService> {
  // Loaded here, not with the module: every example service imports this package, and only this one uses
  // PostgreSQL (pg and its dependencies are ~40 files a SQLite service read before its ready line).
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: opts.pgUrl, max: 8 });
  // An idle client's connection dropping (the server restarting) must not crash the service.
  pool.on('error', () => {});
  let participant: PgParticipant | undefined;
  let app: FastifyInstance | undefined;
  const release = async (): Promise<void> => {
    participant?.close();
    await pool.end();
  };
  try {
    await migratePgPayment(pool, resolveCatalog(opts.catalog));
    // Starts only where PREPARE TRANSACTION works; finishes commits a crash interrupted.
    const created = await createPgParticipant({
      service: 'payment',
      pool,
      mode: 'native',
      operations: { charge: pgCharge },
      ...(opts.lockWaitMs !== undefined ? { lockWaitMs: opts.lockWaitMs } : {}),
      ...(opts.keys !== undefined ? { keys: opts.keys } : {}),
    });
    participant = created;
    const server = Fastify({
      logger: serverLoggerOptions('service-payment', opts.logLevel),
      schemaController: NO_SCHEMA_COMPILERS,
      // txmesh's socket timeouts (fastify applies only requestTimeout itself, checked every 30 s): a slow
      // client is answered 408 TXM_REQUEST_TIMEOUT within 35 s, as at the coordinator and the sidecar.
      serverFactory: (handler) => http.createServer(SERVER_TIMEOUTS, handler),
      clientErrorHandler: answerClientError,
    });
    app = server;
    installTxmeshErrorHandlers(server);
    server.get('/health', async () => ({ ok: true }));
    server.get('/ready', async (): Promise<ReadyAnswer> => ({ ready: true, role: 'service payment' }));
    server.get('/admin/summary', async (): Promise<ServiceSummary> => {
      const prepared = (await created.preparedList()).prepared.length;
      const result = await checkPgPayment(pool);
      return { service: 'payment', committedTxIds: result.committedTxIds, preparedBranches: prepared, invariants: result.invariants, ok: result.problems.length === 0, problems: result.problems };
    });
    server.get<{ Params: { id: string } }>('/accounts/:id', async (req) => {
      const { rows } = await pool.query<{ balance: string }>('SELECT balance FROM payment_accounts WHERE id = $1', [req.params.id]);
      if (rows[0] === undefined) throw new TxmeshError('TXM_RESOURCE_NOT_FOUND', `no account ${req.params.id}`);
      const balance = Number(rows[0].balance);
      return { account: req.params.id, balance, held: 0, available: balance };
    });
    await server.register(async (scope) => {
      created.routes(scope);
    });
    await server.ready();
  } catch (err) {
    await app?.close().catch(() => undefined);
    await release().catch(() => undefined);
    throw err;
  }
  return closeOnce(app, release);
}
