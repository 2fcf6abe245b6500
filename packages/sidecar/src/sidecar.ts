/**
 * Assembles the sidecar: one HTTP server whose /txmesh/v1/ paths go to the control routes and everything
 * else to the service proxy, plus the registration heartbeat and the in-doubt resolver loop.
 */
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import {
  CallerRole,
  closeServer,
  ConnectionCap,
  LISTEN_BACKLOG,
  LIVENESS_STALL_MS,
  READINESS_STALL_MS,
  MAX_BATCH_BODY_BYTES,
  Paths,
  PROTOCOL_VERSION,
  SERVER_TIMEOUTS,
  TxmeshError,
  answerClientError,
  assertServiceProof,
  authorizationHeader,
  serverLoggerOptions,
  startProbeListener,
  validateBatchRequest,
  type BranchBatchResponse,
  type ProbeRoute,
  type ReadyAnswer,
} from '@txmesh/protocol';
import { handleBatch } from './batch-handler.ts';
import { attachCoordinatorChannel } from './coordinator-channel.ts';
import { withBatchSpan, type BatchSpanParent } from './batch-span.ts';
import { traceLogFields } from '@txmesh/client';
import { ControlRoutes } from './control-routes.ts';
import { CoordinatorClient } from './coordinator-client.ts';
import { InDoubtResolver } from './in-doubt-resolver.ts';
import { InFlightPrepares } from './in-flight-prepares.ts';
import { resolveOptions, type ResolvedOptions, type SidecarOptions } from './options.ts';
import { Registration } from './registration.ts';
import { ResourceMonitor } from './resource-monitor.ts';
import { ServiceClient } from './service-client.ts';
import { createServiceProxy } from './service-proxy.ts';
import { SqlitePreparedStore } from './sqlite-prepared-store.ts';
import { WaitReporter } from './wait-reporter.ts';
import { SidecarMetrics } from './sidecar-metrics.ts';

const CONTROL_PREFIX = '/txmesh/v1';

function isControlPath(url: string | undefined): boolean {
  if (!url?.startsWith(CONTROL_PREFIX)) return false;
  const rest = url.charAt(CONTROL_PREFIX.length);
  return rest === '' || rest === '/' || rest === '?';
}

const PARTICIPANT_PREFIX = '/txmesh/participant';

/** The service's participant routes take only its sidecar: they are never reachable through the proxy. */
function isParticipantPath(url: string | undefined): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent((url ?? '').split('?')[0] ?? '');
  } catch {
    return true;
  }
  // Also catches encoded, doubled-slash and dot-segment spellings that a router might normalise.
  return path.posix.normalize(`/${decoded.replace(/\\/g, '/')}`.replace(/\/+/g, '/')).toLowerCase().startsWith(PARTICIPANT_PREFIX);
}

function refuseParticipantPath(res: http.ServerResponse): void {
  const body = JSON.stringify(new TxmeshError('TXM_NOT_FOUND', 'the participant routes are not reachable through the sidecar').toBody());
  res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Routes a probe or a scraper calls without credentials: they change nothing and reveal only counts. */
const OPEN_ROUTES = new Set<string>([Paths.SIDECAR_HEALTH, Paths.SIDECAR_READY, Paths.SIDECAR_STATS]);

interface AssembledSidecar {
  /** The sidecar's HTTP(S) server, not listening yet. */
  server: http.Server;
  log: Logger;
  options: ResolvedOptions;
  /** Liveness and readiness as the routes answer them, for the probe port. */
  probes: readonly ProbeRoute[];
  resolveInDoubt(): Promise<number>;
  /** Starts heartbeats and the periodic in-doubt rounds; the first round runs at once. */
  startBackground(sidecarUrl: string): void;
  /** Resolves once every shard accepted the registration; rejects with TXM_NOT_READY after `timeoutMs`. */
  whenReady(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A running sidecar. */
export interface RunningSidecar {
  url: string;
  /** Where the probes are served from a thread of their own, when probePort was given. */
  probeUrl?: string;
  /**
   * Resolves once every shard accepted the registration (GET /txmesh/v1/ready answers 200 from then on).
   * Rejects with TXM_NOT_READY naming the shards it still waits for when `timeoutMs` passes first, and
   * with TXM_SHUTTING_DOWN when the sidecar closes first. Without a bound it waits as long as it takes.
   */
  whenReady(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

async function assembleSidecar(opts: SidecarOptions): Promise<AssembledSidecar> {
  const o = resolveOptions(opts);
  const store = SqlitePreparedStore.forService(o.dataDir, o.service, { forcePuts: o.forcePreparedRecords });
  const monitor = new ResourceMonitor();
  const signingKey = o.keys?.[0];
  const coordinator = new CoordinatorClient(o.coordinatorUrls, o.coordinatorTimeoutMs, signingKey && authorizationHeader(CallerRole.SERVICE, o.service, signingKey));
  let waitReporter: WaitReporter | undefined;
  const serviceClient = new ServiceClient(o.serviceUrl, o.serviceTimeoutMs, {
    requestStarted: () => monitor.requestStarted(),
    serviceUsage: (usage) => monitor.serviceUsage(usage),
    serviceWaits: (edges) => waitReporter?.note(edges),
  }, signingKey && authorizationHeader(CallerRole.SIDECAR, o.service, signingKey), { batchChannel: o.batchChannel });
  const inFlight = new InFlightPrepares();
  /** Batches taken (valid ones, counted as they arrive), of them over the coordinator's channel, and their items. */
  const received = { batches: 0, overChannel: 0, items: 0 };
  const metrics = new SidecarMetrics(o.service, { preparedRecords: () => store.count(), itemsReceived: () => received.items });

  const role = `sidecar of ${o.service}`;
  const connections = new ConnectionCap(o.maxConnections, (path) => path === Paths.SIDECAR_HEALTH || path === Paths.SIDECAR_READY);
  // Lines logged inside a transaction's span carry its trace_id and span_id.
  const { stream, ...loggerOptions } = serverLoggerOptions(`sidecar-${o.service}`, o.logLevel, traceLogFields);
  const log = pino(loggerOptions, stream);
  const routes = new ControlRoutes({
    // Batches of a few thousand items with operations exceed 1 MiB; the participant takes the same.
    bodyLimit: MAX_BATCH_BODY_BYTES,
    log,
    onRequest: (route, headers) => {
      if (closing) throw new TxmeshError('TXM_SHUTTING_DOWN', `the sidecar of ${o.service} is closing`);
      // Only a coordinator may hand this service its branches (the probes and the counters stay open).
      if (o.keys !== undefined && route !== undefined && !OPEN_ROUTES.has(route)) {
        assertServiceProof(headers.authorization, CallerRole.COORDINATOR, o.service, o.keys);
      }
    },
  });
  const proxy = createServiceProxy(o.serviceUrl, monitor, log, o.proxyTimeoutMs, metrics);
  const route: http.RequestListener = (req, res) => {
    if (isControlPath(req.url)) routes.handle(req, res);
    else if (isParticipantPath(req.url)) refuseParticipantPath(res);
    else proxy.handle(req, res);
  };
  // Past maxConnections a connection's requests (proxied ones too) are refused with a code, probes excepted.
  const capped = connections.wrap(route);
  const server = connections.attach(o.tls ? (https.createServer({ ...o.tls, ...SERVER_TIMEOUTS }, capped) as unknown as http.Server) : http.createServer(SERVER_TIMEOUTS, capped), o.tls !== undefined);
  // Parser refusals (and a body that trickles in past SERVER_TIMEOUTS) get the catalogue's shape.
  server.on('clientError', answerClientError);

  waitReporter = new WaitReporter({
    service: o.service,
    shards: coordinator.shards,
    send: (shard, report) => coordinator.reportWaits(shard, report),
    poll: () => serviceClient.waits(),
    onSendFailed: (shard, err) => log.debug({ err, shard }, 'wait report to shard failed'),
  });
  const reporter = waitReporter;
  /** One batch, from the route or the channel; `traceParent` names the coordinator's batch span. */
  const answerBatch = async (body: unknown, traceParent: BatchSpanParent, overChannel: boolean): Promise<BranchBatchResponse> => {
    const batch = validateBatchRequest(body);
    received.batches += 1;
    if (overChannel) received.overChannel += 1;
    received.items += batch.items.length;
    const deps = { service: o.service, store, serviceClient, inFlight, log, ...(o.coordinatorUrls.length > 0 ? { shards: o.coordinatorUrls.length } : {}) };
    const ended = reporter.batchStarted();
    let results;
    try {
      // Naive mode (TXMESH_BATCHING=off): every item is its own service call and its own store write.
      const items = batch.items;
      results = await withBatchSpan(o.service, traceParent, items, async () =>
        o.batching ? handleBatch(items, deps) : (await Promise.all(items.map((item) => handleBatch([item], deps)))).flat(),
      );
    } finally {
      ended();
    }
    return { protocolVersion: PROTOCOL_VERSION, results, report: monitor.report() };
  };
  routes.post(Paths.SIDECAR_BATCH, (request) => answerBatch(request.body, { headers: request.headers }, false));
  // The coordinator's batch channel on this port: the same batches, admitted once per connection (coordinator-channel.ts).
  const channels = attachCoordinatorChannel(server, {
    service: o.service,
    keys: o.keys,
    connections,
    isClosing: () => closing !== undefined,
    answer: (body, trace) => answerBatch(body, { carrier: trace }, true),
    plain: capped,
    log,
  });
  // Liveness: the process answers, whatever the shards do.
  const health = () => ({ ok: true, service: o.service, ready: registration?.ready ?? false, prepared: store.count() });
  // Readiness (a Kubernetes readiness probe): 200 only once every shard accepted the registration.
  const readiness = (): ReadyAnswer => {
    if (closing) throw new TxmeshError('TXM_SHUTTING_DOWN', `the ${role} is closing`);
    if (!registration?.ready) throw new TxmeshError('TXM_NOT_READY', registration?.notReadyReason() ?? 'the sidecar has not started registering with the shards');
    return { ready: true, role };
  };
  routes.get(Paths.SIDECAR_HEALTH, health);
  routes.get(Paths.SIDECAR_READY, readiness);
  // Counters since start, for `txmesh bench` (requests between components per transaction).
  routes.get(Paths.SIDECAR_STATS, () => ({
    service: o.service,
    batchesReceived: received.batches,
    batchesOverChannel: received.overChannel,
    coordinatorChannels: channels.openChannels,
    itemsReceived: received.items,
    serviceCalls: serviceClient.requests,
    serviceCallsOverChannel: serviceClient.channelCalls,
    store: store.stats(),
    coordinatorCalls: coordinator.requests,
    waitReportsSent: reporter.reportsSent,
    connections: connections.stats(),
  }));

  const resolver = new InDoubtResolver({ service: o.service, store, serviceClient, coordinator, inFlight, inDoubtAfterMs: o.inDoubtAfterMs, log });
  let registration: Registration | undefined;
  let resolveTimer: NodeJS.Timeout | undefined;
  let closing: Promise<void> | undefined;
  let closed: () => void = () => undefined;
  const closedSignal = new Promise<void>((resolve) => (closed = resolve));

  const resolveInDoubt = (): Promise<number> => (closing ? Promise.resolve(0) : resolver.resolve());

  function scheduleResolve(delayMs: number): void {
    resolveTimer = setTimeout(() => {
      resolveInDoubt()
        .catch((err: unknown) => log.error({ err }, 'in-doubt resolution round failed'))
        .finally(() => {
          if (!closing) scheduleResolve(o.resolveIntervalMs);
        });
    }, delayMs);
    resolveTimer.unref();
  }

  async function shutdown(): Promise<void> {
    closed();
    registration?.stop();
    reporter.stop();
    if (resolveTimer) clearTimeout(resolveTimer);
    proxy.drain();
    routes.drain();
    // Channels end once their batches in flight are answered; later frames are answered TXM_SHUTTING_DOWN.
    channels.close();
    // The server finishes in-flight batches first, so their records are written before the store closes.
    await closeServer(server, connections);
    // Aborting outgoing calls makes a running resolver round end quickly; what it did not finish stays
    // recorded and is resolved after the next start.
    await Promise.all([coordinator.close(), serviceClient.close()]);
    await resolver.idle();
    proxy.close();
    monitor.close();
    metrics.close();
    store.close();
  }

  return {
    server,
    log,
    options: o,
    probes: [
      { path: Paths.SIDECAR_HEALTH, answer: health, stallMs: LIVENESS_STALL_MS },
      { path: Paths.SIDECAR_READY, answer: readiness, stallMs: READINESS_STALL_MS },
    ],
    resolveInDoubt,
    startBackground(sidecarUrl) {
      const started = new Registration({ service: o.service, sidecarUrl, heartbeatMs: o.heartbeatMs, coordinator, monitor, refreshUsage: () => serviceClient.refreshUsage(), log });
      registration = started;
      void started.whenReady().then(() => {
        if (!closing) log.info({ url: sidecarUrl, service: o.service, shards: o.coordinatorUrls.length }, `${role} ready: every shard (${o.coordinatorUrls.length}) accepted its registration`);
      });
      started.start();
      scheduleResolve(0);
    },
    async whenReady(timeoutMs) {
      if (!registration) throw new TxmeshError('TXM_NOT_READY', 'the sidecar has not started registering with the shards');
      const started = registration;
      let timer: NodeJS.Timeout | undefined;
      const outcomes: Promise<void>[] = [
        started.whenReady(),
        closedSignal.then(() => Promise.reject(new TxmeshError('TXM_SHUTTING_DOWN', `the ${role} closed before it was ready`))),
      ];
      if (timeoutMs !== undefined) {
        outcomes.push(new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new TxmeshError('TXM_NOT_READY', `not ready after ${timeoutMs} ms: ${started.notReadyReason() ?? ''}`)), timeoutMs);
        }));
      }
      try {
        await Promise.race(outcomes);
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}

function listen(server: http.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** How often a closing server looks for keep-alive connections whose last request has been answered. */
/** Builds the sidecar without listening and without background loops (tests, embedding). */
export async function buildSidecar(opts: SidecarOptions): Promise<{ server: http.Server; close(): Promise<void>; resolveInDoubt(): Promise<number> }> {
  const sidecar = await assembleSidecar(opts);
  return { server: sidecar.server, close: sidecar.close, resolveInDoubt: sidecar.resolveInDoubt };
}

/**
 * Listens, registers with every shard (then heartbeats), and resolves in-doubt branches at once and
 * periodically. Resolves once listening; `whenReady` tells when every shard has accepted the registration.
 */
export async function startSidecar(opts: SidecarOptions): Promise<RunningSidecar> {
  const sidecar = await assembleSidecar(opts);
  const { host, port: wantedPort, advertiseUrl } = sidecar.options;
  try {
    await listen(sidecar.server, host, wantedPort);
  } catch (err) {
    await sidecar.close();
    throw err;
  }
  const address = sidecar.server.address();
  const port = typeof address === 'object' && address ? address.port : wantedPort;
  const url = `${sidecar.options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  sidecar.startBackground(advertiseUrl ?? url);
  if (sidecar.options.probePort === undefined) return { url, whenReady: sidecar.whenReady, close: sidecar.close };
  // The probes on a port and a thread of their own: under load neither the accept queue nor the event loop delays them.
  let probes;
  try {
    probes = await startProbeListener({
      host,
      port: sidecar.options.probePort,
      role: `sidecar of ${sidecar.options.service}`,
      probes: sidecar.probes,
      onError: (err) => sidecar.log.error({ err }, 'the probe port failed: the kubelet probes will fail'),
    });
  } catch (err) {
    await sidecar.close();
    throw err;
  }
  const probeListener = probes;
  return {
    url,
    probeUrl: probeListener.url,
    whenReady: sidecar.whenReady,
    close: async () => {
      await probeListener.close();
      await sidecar.close();
    },
  };
}
