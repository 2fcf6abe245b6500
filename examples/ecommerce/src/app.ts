/**
 * Builds one e-commerce service: its own SQLite database, its fastify app with the SDK participant
 * mounted, health and admin summary routes, and its business routes.
 */
import type { AddressInfo } from 'node:net';
import http from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { createParticipant, openParticipantDatabase } from '@txmesh/participant-sdk';
import { NO_SCHEMA_COMPILERS, SERVER_TIMEOUTS, answerClientError, installTxmeshErrorHandlers, serverLoggerOptions, type ReadyAnswer } from '@txmesh/protocol';
import type { BuildPgPaymentOptions } from './app-pg.ts';
import { closeOnce, type BuiltService } from './built-service.ts';
import { resolveCatalog, type CatalogOptions } from './catalog.ts';
import { migrateShared } from './ledger.ts';
import { ECOMMERCE_SERVICES, type EcommerceService, type ServiceDefinition, type ServiceSummary } from './service-definition.ts';

/** Each service's module is read when that service is built: a process runs one of them. */
const DEFINITIONS: Record<EcommerceService, () => Promise<ServiceDefinition>> = {
  inventory: async () => (await import('./inventory.ts')).inventoryService,
  payment: async () => (await import('./payment.ts')).paymentService,
  order: async () => (await import('./order.ts')).orderService,
  shipping: async () => (await import('./shipping.ts')).shippingService,
};

export interface BuildServiceOptions {
  dbPath: string;
  /** Used only when the database is new: a reopened database keeps its rows. */
  catalog?: Partial<CatalogOptions>;
  lockWaitMs?: number;
  /** pino level of the JSON log lines on stderr (warn). */
  logLevel?: string;
  /** Benchmark knob: makes the service slow (see slowFromEnv). */
  slow?: SlowServiceOptions;
  /** This service's key(s): the participant routes then take only its sidecar. */
  keys?: readonly string[];
}

/** Added to every participant batch call, so a benchmark can slow one service in latency and in CPU. */
export interface SlowServiceOptions {
  /** Extra latency per batch call (a timer: the service stays responsive meanwhile). */
  latencyMs: number;
  /** CPU burnt per item of a batch (blocks the event loop, like real work would). */
  cpuMsPerItem: number;
}

/** TXMESH_SLOW_MS and TXMESH_SLOW_CPU_MS, as set by `txmesh bench --slow-service`. */
export function slowFromEnv(env: NodeJS.ProcessEnv = process.env): SlowServiceOptions | undefined {
  const latencyMs = Math.max(0, Number(env.TXMESH_SLOW_MS ?? 0) || 0);
  const cpuMsPerItem = Math.max(0, Number(env.TXMESH_SLOW_CPU_MS ?? 0) || 0);
  return latencyMs > 0 || cpuMsPerItem > 0 ? { latencyMs, cpuMsPerItem } : undefined;
}

function burnCpu(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy on purpose
  }
}

export interface StartServiceOptions {
  dbPath: string;
  /** Payment only: run on this PostgreSQL database in native two-phase-commit mode instead of SQLite. */
  pgUrl?: string;
  host?: string;
  port?: number;
  catalog?: Partial<CatalogOptions>;
  lockWaitMs?: number;
  logLevel?: string;
  slow?: SlowServiceOptions;
  /** This service's key(s): the participant routes then take only its sidecar. */
  keys?: readonly string[];
}

export function isEcommerceService(value: unknown): value is EcommerceService {
  return typeof value === 'string' && (ECOMMERCE_SERVICES as readonly string[]).includes(value);
}

export async function buildEcommerceService(
  name: EcommerceService,
  opts: BuildServiceOptions,
): Promise<BuiltService> {
  if (!isEcommerceService(name)) throw new RangeError(`unknown e-commerce service ${String(name)}; expected one of ${ECOMMERCE_SERVICES.join(', ')}`);
  const definition = await DEFINITIONS[name]();
  const catalog = resolveCatalog(opts.catalog);
  const db = openParticipantDatabase(opts.dbPath);
  let participant: ReturnType<typeof createParticipant> | undefined;
  let app: FastifyInstance | undefined;
  const release = (): void => {
    participant?.close();
    if (db.open) db.close();
  };
  try {
    // One transaction, so a fresh database costs one forced write for its whole schema and seed, not one per table.
    db.transaction(() => {
      migrateShared(db);
      definition.migrate(db, catalog);
    })();
    // The participant restores the locks of prepared-undecided branches before we serve any traffic.
    const created = createParticipant({
      service: name,
      db,
      operations: definition.operations,
      ...(opts.lockWaitMs !== undefined ? { lockWaitMs: opts.lockWaitMs } : {}),
      ...(opts.keys !== undefined ? { keys: opts.keys } : {}),
    });
    participant = created;
    const server = Fastify({
      logger: serverLoggerOptions(`service-${name}`, opts.logLevel),
      // txmesh's socket timeouts (fastify applies only requestTimeout itself, checked every 30 s): a slow
      // client is answered 408 TXM_REQUEST_TIMEOUT within 35 s, as at the coordinator and the sidecar.
      serverFactory: (handler) => http.createServer(SERVER_TIMEOUTS, handler),
      clientErrorHandler: answerClientError,
      schemaController: NO_SCHEMA_COMPILERS,
    });
    app = server;
    installTxmeshErrorHandlers(server);
    const slow = opts.slow;
    if (slow) {
      // Around the participant's own handler, so batches are slowed whether they come over the HTTP route or
      // over the batch channel a sidecar opens (which runs no fastify hook).
      const handleBatch = created.handleBatch.bind(created);
      created.handleBatch = async (batch) => {
        burnCpu(slow.cpuMsPerItem * batch.items.length);
        if (slow.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, slow.latencyMs));
        return handleBatch(batch);
      };
    }
    // Liveness, and readiness: the participant restored the locks of prepared branches above, before
    // the server listens, so a service that answers is ready.
    server.get('/health', async () => ({ ok: true }));
    server.get('/ready', async (): Promise<ReadyAnswer> => ({ ready: true, role: `service ${name}` }));
    server.get('/admin/summary', async (): Promise<ServiceSummary> => {
      const prepared = new Set(created.preparedList().prepared.map((p) => p.txId));
      const result = definition.check(db, prepared);
      return {
        service: name,
        committedTxIds: result.committedTxIds,
        preparedBranches: prepared.size,
        invariants: result.invariants,
        ok: result.problems.length === 0,
        problems: result.problems,
      };
    });
    definition.routes(server, db);
    // Own scope, so whatever hooks or handlers the SDK installs stay with its routes.
    await server.register(async (scope) => {
      created.routes(scope);
    });
    await server.ready();
  } catch (err) {
    await app?.close().catch(() => undefined);
    release();
    throw err;
  }
  return closeOnce(app, release);
}

export async function startEcommerceService(name: EcommerceService, opts: StartServiceOptions): Promise<{ url: string; close(): Promise<void> }> {
  if (opts.pgUrl !== undefined && name !== 'payment') throw new RangeError(`only the payment service runs on PostgreSQL, not ${name}`);
  const service = opts.pgUrl === undefined ? await buildEcommerceService(name, opts) : await buildPgPayment({ pgUrl: opts.pgUrl, ...(opts.catalog ? { catalog: opts.catalog } : {}), ...(opts.lockWaitMs !== undefined ? { lockWaitMs: opts.lockWaitMs } : {}), ...(opts.logLevel ? { logLevel: opts.logLevel } : {}), ...(opts.keys !== undefined ? { keys: opts.keys } : {}) });
  try {
    await service.app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  } catch (err) {
    await service.close();
    throw err;
  }
  const address = service.app.server.address() as AddressInfo;
  // A wildcard bind is reachable on loopback; hand out an address a client can dial.
  const dialable = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const host = dialable.includes(':') ? `[${dialable}]` : dialable;
  const url = `http://${host}:${address.port}`;
  service.app.log.info({ url, service: name }, `service ${name} ready`);
  return { url, close: () => service.close() };
}

/** The PostgreSQL payment service, loaded only when asked for: a SQLite service never reads its modules. */
async function buildPgPayment(opts: BuildPgPaymentOptions): Promise<BuiltService> {
  const { buildPgPaymentService } = await import('./app-pg.ts');
  return buildPgPaymentService(opts);
}
