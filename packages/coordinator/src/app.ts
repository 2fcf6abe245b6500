/**
 * The coordinator's HTTP face: fastify routes over a TransactionManager, a SQLite decision log and the
 * HTTP branch transport. startCoordinator runs recovery before it listens.
 */
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  NO_SCHEMA_COMPILERS,
  ConnectionCap,
  closeWithSilentGrace,
  DEFAULT_MAX_CONNECTIONS,
  startProbeListener,
  LISTEN_BACKLOG,
  LIVENESS_STALL_MS,
  READINESS_STALL_MS,
  Paths,
  SERVER_TIMEOUTS,
  TxmeshError,
  answerClientError,
  installTxmeshErrorHandlers,
  sendTxmeshError,
  serverLoggerOptions,
  toTxmeshError,
  validateRegisterRequest,
  validateWaitReport,
  type DeadlockMode,
  type ProbeRoute,
  type ReadyAnswer,
  type TransactionResult,
} from '@txmesh/protocol';
import type { BranchTransport } from './branch-transport.ts';
import type { DecisionLog } from './decision-log.ts';
import { HttpBranchTransport } from './http-transport.ts';
import { SqliteDecisionLog } from './sqlite-decision-log.ts';
import { TransactionManager } from './transaction-manager.ts';
import { InDoubtMonitor } from './in-doubt-monitor.ts';
import type { ServiceTimeouts } from './service-timeouts.ts';
import type { DispatcherOptions } from './batching-dispatcher.ts';
import type { SchedulerOptions } from './scheduler.ts';
import { CoordinatorMetrics } from './coordinator-metrics.ts';
import { ObservedTransport } from './observed-transport.ts';
import { RecentActivity } from './dashboard/recent-activity.ts';
import { registerDashboardRoutes } from './dashboard/dashboard-routes.ts';
import { requestContext } from './transaction-spans.ts';
import { traceLogFields } from '@txmesh/client';
import { callerOf, requireCallers } from './caller-access.ts';
import { BeginFastPath } from './begin-fast-path.ts';

export interface CoordinatorOptions {
  shard: number;
  shards: number;
  /**
   * The cluster secrets (hex, the first signs): when given, every route but the probes and stats needs a
   * credential (docs/design.md, Security) and batches to sidecars carry the coordinator's proof. Omitted: no checks.
   */
  secrets?: readonly string[];
  /** Open connections served (default 1000); past it, requests other than the probes get TXM_OVERLOADED. */
  maxConnections?: number;
  /**
   * Also serve GET /v1/health and /v1/ready on this port, from a thread of their own: probes wait neither
   * behind clients in the accept queue nor for the event loop, and answer TXM_STALLED when that loop is stuck.
   */
  probePort?: number;
  /** PEM certificate and key: serve HTTPS instead of HTTP. */
  tls?: { cert: string; key: string };
  /** The cluster's name, stamped into the decision log with shard and shards and checked at every start. Default "txmesh". */
  cluster?: string;
  dataDir: string;
  host?: string;
  port?: number;
  /** pino level of the JSON log lines on stderr (warn). */
  logLevel?: string;
  defaultTimeoutMs?: number;
  heartbeatMs?: number;
  /** Per-service prepare/delivery timeouts (see service-timeouts.ts). */
  serviceTimeouts?: ServiceTimeouts;
  /** A service unseen (no heartbeat) this long takes no new transactions. Default 30 000. */
  registrationLeaseMs?: number;
  /** Unacknowledged this long after the decision, a branch is in doubt. Default 10 000. */
  inDoubtAfterMs?: number;
  /** POSTed {kind:"txmesh.in-doubt", shard, branches} while branches are in doubt, at most once per alertIntervalMs. */
  alertWebhookUrl?: string;
  /** Default 60 000. */
  alertIntervalMs?: number;
  /** Default 5 000; 0 turns pruning of finished decision records off. */
  pruneIntervalMs?: number;
  /** How long a finished keyed record answers retries. Default one hour. */
  idempotencyRetentionMs?: number;
  /** Default true; false fsyncs every decision record on its own (naive mode, for benchmarks). */
  groupCommit?: boolean;
  /**
   * Default true: batches go to each sidecar over its batch channel (one upgraded connection, a frame per
   * batch) while the sidecar takes it, else over HTTP. false (TXMESH_COORDINATOR_CHANNEL=off): always HTTP.
   */
  sidecarChannel?: boolean;
  /** false: resource-blind (no admission limit, no overload refusals); an object tunes it. Default on. */
  scheduler?: boolean | SchedulerOptions;
  /** false: one item per request to a sidecar, no window; an object tunes it. Default on. */
  batching?: boolean | DispatcherOptions;
  /** Default 'detect': the shard aborts the youngest transaction of each wait-for cycle it owns. */
  deadlock?: DeadlockMode;
}

export interface Coordinator {
  app: FastifyInstance;
  manager: TransactionManager;
  inDoubtMonitor: InDoubtMonitor;
  /** Liveness and readiness as the routes answer them, for a probe listener of their own. */
  probes: readonly ProbeRoute[];
  /**
   * Reads unfinished decisions back from the log and resumes their delivery; from then on GET /v1/ready
   * answers 200. Returns how many decisions it resumed.
   */
  recover(): number;
  close(): Promise<void>;
}

export const BODY_LIMIT_BYTES = 1024 * 1024;
export const DEFAULT_CLUSTER = 'txmesh';

/** Where shard k keeps its decision log inside dataDir. */
export function decisionLogPath(dataDir: string, shard: number): string {
  return path.join(dataDir, `coordinator-shard-${shard}.db`);
}

const COORDINATOR_PROBES: readonly string[] = [Paths.COORDINATOR_HEALTH, Paths.COORDINATOR_READY];

/**
 * Served on any connection, however crowded the port: the probes (a liveness probe must not fail then) and what
 * sidecars call (registration heartbeats, wait-for reports, decision look-ups), a few calls per sidecar per
 * second. Refused with the crowd of clients, the heartbeats let registrations lapse and every begin met
 * TXM_UNKNOWN_SERVICE for the rest of the overload.
 */
function servedPastTheCap(path: string): boolean {
  if (COORDINATOR_PROBES.includes(path) || path === Paths.SERVICES || path === Paths.WAIT_FOR) return true;
  return path.startsWith(`${Paths.TRANSACTIONS}/`) && path.endsWith('/decision');
}

interface TxIdParams {
  txId: string;
}

/** Replaceable parts, for tests: by default HTTP to sidecars and SQLite in dataDir. */
export interface CoordinatorParts {
  transport?: BranchTransport & { close?(): Promise<void> };
  log?: DecisionLog;
}

/** Builds the app without listening and without recovery (call recover() for that; until then it is not ready). */
export async function buildCoordinator(opts: CoordinatorOptions, parts: CoordinatorParts = {}): Promise<Coordinator> {
  const role = `coordinator shard ${opts.shard} of ${opts.shards}`;
  let phase: 'recovering' | 'ready' | 'closing' = 'recovering';
  const tls = opts.tls;
  const connections = new ConnectionCap(opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS, servedPastTheCap);
  // Set once the manager exists; a request that arrives before (none can: nothing listens yet) goes to fastify.
  let fastBegin: BeginFastPath | undefined;
  const serve =
    (handler: http.RequestListener): http.RequestListener =>
    (req, res) => {
      if (fastBegin?.take(req, res) !== true) handler(req, res);
    };
  const app = Fastify({
    // Lines logged inside a transaction's span carry its trace_id and span_id.
    logger: serverLoggerOptions(`coordinator-${opts.shard}`, opts.logLevel, traceLogFields),
    bodyLimit: BODY_LIMIT_BYTES,
    schemaController: NO_SCHEMA_COMPILERS,
    // Parser refusals (and a body that trickles in past SERVER_TIMEOUTS, set in the factory) get the catalogue's shape.
    clientErrorHandler: answerClientError,
    // Past maxConnections a connection's requests are refused with a code before any route runs (probes
    // excepted); a TLS listener through the same factory keeps one instance type for both.
    serverFactory: (handler: http.RequestListener) =>
      connections.attach(
        tls ? (https.createServer({ ...tls, ...SERVER_TIMEOUTS }, connections.wrap(serve(handler))) as unknown as http.Server) : http.createServer(SERVER_TIMEOUTS, connections.wrap(serve(handler))),
        tls !== undefined,
      ),
    // Requests arriving while closing get TXM_SHUTTING_DOWN from the hook below, not fastify's code-less 503.
    return503OnClosing: false,
    // Errors fastify raises before routing (an undecodable URL) get our catalogue too.
    frameworkErrors: (err, request, reply) => {
      // An id that cannot be decoded or is far longer than any id is a malformed id, not a bad body.
      const badTxId = (err.code === 'FST_ERR_BAD_URL' || err.code === 'FST_ERR_MAX_PARAM_LENGTH') && request.url.startsWith(`${Paths.TRANSACTIONS}/`);
      const error = badTxId ? new TxmeshError('TXM_BAD_TX_ID', 'the id in the URL cannot be decoded or is too long') : toTxmeshError(err);
      sendTxmeshError(reply, error);
    },
  });
  app.addHook('onRequest', async () => {
    if (phase === 'closing') throw new TxmeshError('TXM_SHUTTING_DOWN', `${role} is closing`);
  });
  // Readiness (a Kubernetes readiness probe): decisions left by the last run are read back first, so a
  // decision query never answers "abort" for a transaction whose COMMIT record is in the log.
  const readiness = (): ReadyAnswer => {
    if (phase === 'closing') throw new TxmeshError('TXM_SHUTTING_DOWN', `${role} is closing`);
    if (phase !== 'ready') throw new TxmeshError('TXM_NOT_READY', `${role} has not recovered its decision log yet`);
    return { ready: true, role };
  };
  app.get(Paths.COORDINATOR_READY, async () => readiness());
  let log: DecisionLog | undefined = parts.log;
  // The gauges read the manager, which exists by the time any reader collects.
  let manager: TransactionManager | undefined;
  const metrics = new CoordinatorMetrics({
    shard: opts.shard,
    listServices: () => manager?.listServices() ?? [],
    inDoubtCount: () => manager?.inDoubt().length ?? 0,
    refusedOverloaded: () => manager?.stats().refusedOverloaded ?? 0,
  });
  const transport = new ObservedTransport(
    parts.transport ?? new HttpBranchTransport({ ...(opts.secrets?.[0] !== undefined ? { secret: opts.secrets[0] } : {}), ...(opts.sidecarChannel === false ? { channel: false } : {}) }),
    metrics,
  );
  try {
    log ??= new SqliteDecisionLog(decisionLogPath(opts.dataDir, opts.shard), {
      identity: { cluster: opts.cluster ?? DEFAULT_CLUSTER, shard: opts.shard, shards: opts.shards },
      ...(opts.groupCommit === undefined ? {} : { groupCommit: opts.groupCommit }),
      onForced: metrics.recordForced,
    });
    const running = new TransactionManager({
      shard: opts.shard,
      shards: opts.shards,
      log,
      transport,
      logger: app.log,
      ...(opts.defaultTimeoutMs !== undefined ? { defaultTimeoutMs: opts.defaultTimeoutMs } : {}),
      ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
      ...(opts.serviceTimeouts !== undefined ? { serviceTimeouts: opts.serviceTimeouts } : {}),
      ...(opts.inDoubtAfterMs !== undefined ? { inDoubtAfterMs: opts.inDoubtAfterMs } : {}),
      ...(opts.registrationLeaseMs !== undefined ? { registrationLeaseMs: opts.registrationLeaseMs } : {}),
      ...(opts.pruneIntervalMs !== undefined ? { pruneIntervalMs: opts.pruneIntervalMs } : {}),
      ...(opts.idempotencyRetentionMs !== undefined ? { idempotencyRetentionMs: opts.idempotencyRetentionMs } : {}),
      ...(opts.scheduler !== undefined ? { scheduler: opts.scheduler } : {}),
      ...(opts.batching !== undefined ? { batching: opts.batching } : {}),
      ...(opts.deadlock !== undefined ? { deadlock: opts.deadlock } : {}),
    });
    manager = running;
    const inDoubtMonitor = new InDoubtMonitor({
      shard: opts.shard,
      list: () => running.inDoubt(),
      logger: app.log,
      ...(opts.alertWebhookUrl !== undefined ? { alertWebhookUrl: opts.alertWebhookUrl } : {}),
      ...(opts.alertIntervalMs !== undefined ? { alertIntervalMs: opts.alertIntervalMs } : {}),
    });
    if (opts.secrets !== undefined) requireCallers(app, opts.secrets);
    const activity = new RecentActivity();
    const onDecided = (result: TransactionResult): void => {
      metrics.recordOutcome(result);
      activity.note(result);
    };
    registerRoutes(app, running, { connections, onDecided });
    fastBegin = new BeginFastPath({
      manager: running,
      ...(opts.secrets !== undefined ? { secrets: opts.secrets } : {}),
      bodyLimit: BODY_LIMIT_BYTES,
      isOpen: () => phase !== 'closing',
      onDecided,
      log: app.log,
    });
    registerDashboardRoutes(app, running, activity);
    await app.ready();
    inDoubtMonitor.start();
    const openLog = log;
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        phase = 'closing';
        running.close();
        metrics.close();
        await inDoubtMonitor.stop();
        // A connection that never sent a byte would hold fastify's close without bound.
        await closeWithSilentGrace(connections, () => app.close());
        await transport.close?.();
        await openLog.close();
      })());
    const recover = (): number => {
      const summary = running.recoverWithSummary();
      // One line for everything resumed; branches already in doubt are not logged again one by one.
      inDoubtMonitor.noteRecovery(summary);
      if (phase === 'recovering') phase = 'ready';
      return summary.resumed;
    };
    const probes: ProbeRoute[] = [
      { path: Paths.COORDINATOR_HEALTH, answer: () => healthOf(running), stallMs: LIVENESS_STALL_MS },
      { path: Paths.COORDINATOR_READY, answer: readiness, stallMs: READINESS_STALL_MS },
    ];
    return { app, manager: running, inDoubtMonitor, probes, recover, close };
  } catch (err) {
    metrics.close();
    await transport.close();
    await log?.close();
    await app.close();
    throw err;
  }
}

/** GET /v1/health's answer, on the main port and the probe port alike. */
function healthOf(manager: TransactionManager): { ok: true; shard: number; shards: number; inFlight: number } {
  return { ok: true, shard: manager.shard, shards: manager.shards, inFlight: manager.inFlight };
}

/**
 * `onDecided` hears every transaction this shard ran to a decision, as its client heard it (metrics,
 * dashboard); `connections` adds the connection cap's figures to /v1/stats.
 */
export function registerRoutes(app: FastifyInstance, manager: TransactionManager, extras: { onDecided?: (result: TransactionResult) => void; connections?: ConnectionCap } = {}): void {
  const { onDecided, connections } = extras;
  // Only JSON bodies: anything else is refused with TXM_UNSUPPORTED_MEDIA_TYPE rather than half-parsed.
  app.removeContentTypeParser('text/plain');
  installTxmeshErrorHandlers(app);

  app.post(Paths.TRANSACTIONS, async (request) => {
    // The caller's traceparent (if any) is the parent of the transaction's span.
    const result = await manager.begin(request.body, requestContext(request.headers));
    onDecided?.(result);
    return result;
  });

  app.get<{ Params: TxIdParams }>(Paths.TRANSACTION, async (request) => manager.status(request.params.txId));

  app.get<{ Params: TxIdParams }>(Paths.TRANSACTION_DECISION, async (request) => manager.decision(request.params.txId));

  app.post(Paths.SERVICES, async (request) => {
    const registration = validateRegisterRequest(request.body);
    const caller = callerOf(request);
    // A service registers itself only: an impostor would receive every prepare, with its arguments.
    if (caller !== undefined && caller.name !== registration.service) {
      throw new TxmeshError('TXM_FORBIDDEN', `the credential of ${caller.name} cannot register ${registration.service}`);
    }
    return manager.registerService(registration);
  });

  app.get(Paths.SERVICES, async () => ({ services: manager.listServices() }));
  app.post(Paths.WAIT_FOR, async (request) => {
    const report = validateWaitReport(request.body);
    const caller = callerOf(request);
    // A forged report could name a cycle and make this shard abort someone else's transaction.
    if (caller !== undefined && caller.name !== report.service) {
      throw new TxmeshError('TXM_FORBIDDEN', `the credential of ${caller.name} cannot report waits of ${report.service}`);
    }
    return manager.reportWaits(report);
  });

  // Liveness: the process answers (readiness is GET /v1/ready).
  app.get(Paths.COORDINATOR_HEALTH, async () => healthOf(manager));

  app.get(Paths.COORDINATOR_STATS, async () => (connections ? { ...manager.stats(), connections: connections.stats() } : manager.stats()));

  app.get<{ Querystring: { olderThanMs?: string } }>(Paths.IN_DOUBT, async (request) => {
    const raw = request.query.olderThanMs;
    if (raw !== undefined && !/^\d{1,12}$/.test(String(raw))) {
      throw new TxmeshError('TXM_BAD_REQUEST', 'olderThanMs must be a non-negative integer of milliseconds');
    }
    const thresholdMs = raw === undefined ? manager.inDoubtAfterMs : Number(raw);
    return { shard: manager.shard, thresholdMs, branches: manager.inDoubt(thresholdMs) };
  });
}

/** Recovers unfinished decisions, then listens. */
export async function startCoordinator(opts: CoordinatorOptions, parts: CoordinatorParts = {}): Promise<{ url: string; probeUrl?: string; close(): Promise<void> }> {
  const coordinator = await buildCoordinator(opts, parts);
  try {
    const resumed = coordinator.recover();
    const listened = await coordinator.app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, backlog: LISTEN_BACKLOG });
    const url = opts.tls ? listened.replace(/^http:/, 'https:') : listened;
    // The probes on a port and a thread of their own as well, when asked: under overload the main port's
    // queue is full and the main loop's turns are long.
    const probes =
      opts.probePort === undefined
        ? undefined
        : await startProbeListener({
            host: opts.host ?? '127.0.0.1',
            port: opts.probePort,
            role: `coordinator shard ${opts.shard} of ${opts.shards}`,
            probes: coordinator.probes,
            onError: (err) => coordinator.app.log.error({ err }, 'the probe port failed: the kubelet probes will fail'),
          });
    coordinator.app.log.info({ url, probeUrl: probes?.url, shard: opts.shard, shards: opts.shards, resumed }, `coordinator shard ${opts.shard} of ${opts.shards} ready`);
    return {
      url,
      ...(probes ? { probeUrl: probes.url } : {}),
      close: async () => {
        await probes?.close();
        await coordinator.close();
      },
    };
  } catch (err) {
    await coordinator.close();
    throw err;
  }
}
