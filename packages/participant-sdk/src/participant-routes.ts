/**
 * HTTP face of a participant, mounted on the service's own fastify app. The routes live in their own
 * encapsulated scope so their error handler (TxmeshError bodies) does not replace the service's. Batches also
 * come over the batch channel (protocol BatchChannelServer) that a sidecar opens on the same server, and are
 * answered there by the same checks and handler as on the route.
 */
import type { IncomingMessage } from 'node:http';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import {
  BatchChannelServer,
  CallerRole,
  MAX_BATCH_BODY_BYTES,
  OpenConnections,
  SILENT_CONNECTION_GRACE_MS,
  Paths,
  TxmeshError,
  assertServiceProof,
  refuseUpgrade,
  setTxmeshErrorHandler,
  validateBatchRequest,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type PreparedListResponse,
  type ServiceUsage,
  type WaitReport,
} from '@txmesh/protocol';
import { withHookSpans } from './hook-spans.ts';

export interface BatchHandler {
  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse>;
  preparedList(): PreparedListResponse | Promise<PreparedListResponse>;
  usage?(): ServiceUsage | undefined;
  stats?(): object;
  waits?(): WaitReport;
}

/** When given, every participant route takes only the sidecar of `service` (proof under one of `keys`). */
export interface ParticipantAccess {
  service: string;
  keys: readonly string[];
}

/** A batch body checked and handled: what the route and the channel answer. */
function answerBatch(participant: BatchHandler, body: unknown): Promise<BranchBatchResponse> {
  const batch = validateBatchRequest(body);
  // A sidecar sends only its own service's items; the first names it.
  return withHookSpans(batch.items[0]?.service ?? 'unknown', batch, (traced) => participant.handleBatch(traced));
}

/** Answers batches over the batch channel on the app's server, until the app closes. */
function mountBatchChannel(scope: FastifyInstance, participant: BatchHandler, access: ParticipantAccess | undefined): void {
  const channels = new BatchChannelServer({
    path: Paths.PARTICIPANT_CHANNEL,
    maxPayloadBytes: MAX_BATCH_BODY_BYTES,
    // Only the sidecar of this service may hand it branches: checked once, for every batch of the channel.
    admit(req) {
      if (access !== undefined) assertServiceProof(req.headers.authorization, CallerRole.SIDECAR, access.service, access.keys);
    },
    answer: (body) => answerBatch(participant, body),
    onInternalError: (err) => scope.log.error({ err }, 'a batch over the batch channel failed unexpectedly'),
  });
  const server = scope.server;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (channels.handleUpgrade(req, socket, head)) return;
    // Another listener may take it; alone here, nobody would, and the socket would hang.
    const path = (req.url ?? '').split('?', 1)[0] ?? '';
    if (server.listenerCount('upgrade') === 1) refuseUpgrade(socket, new TxmeshError('TXM_NOT_FOUND', `no upgrade at ${path.slice(0, 200)}`));
  };
  server.on('upgrade', onUpgrade);
  // Before the server stops listening: open channels end once their calls are answered, or closing would wait for them.
  scope.addHook('preClose', (done) => {
    channels.close();
    server.off('upgrade', onUpgrade);
    done();
  });
}

/**
 * The service's `app.close()` closes, 500 ms in, every connection that never sent a byte: fastify's close (and
 * Node's) waits for such a connection without bound, so one client that connected and sent nothing would hold a
 * SIGTERMed service until it is killed. Connections that carried a request or an upgrade are left to fastify.
 */
function closeSilentConnectionsOnClose(scope: FastifyInstance): void {
  const connections = new OpenConnections();
  connections.attach(scope.server, scope.server instanceof tls.Server);
  let sweep: NodeJS.Timeout | undefined;
  scope.addHook('preClose', (done) => {
    sweep = setTimeout(() => connections.closeSilent(), SILENT_CONNECTION_GRACE_MS);
    sweep.unref();
    done();
  });
  scope.addHook('onClose', (_instance, done) => {
    clearTimeout(sweep);
    done();
  });
}

/** `channel: false` takes no batch channel: every batch comes through the route and the app's hooks. */
export function mountParticipantRoutes(app: FastifyInstance, participant: BatchHandler, access?: ParticipantAccess, channel = true): void {
  app.register(async (scope) => {
    if (channel) mountBatchChannel(scope, participant, access);
    closeSilentConnectionsOnClose(scope);
    if (access !== undefined) {
      scope.addHook('onRequest', async (request) => assertServiceProof(request.headers.authorization, CallerRole.SIDECAR, access.service, access.keys));
    }
    setTxmeshErrorHandler(scope);
    // Only JSON, and the same body limit as the sidecar that forwards the batches (not the service's default).
    scope.removeContentTypeParser('text/plain');
    scope.post(Paths.PARTICIPANT_BATCH, { bodyLimit: MAX_BATCH_BODY_BYTES }, async (request) => answerBatch(participant, request.body));
    scope.get(Paths.PARTICIPANT_PREPARED, async () => participant.preparedList());
    // The sidecar asks when the service has been idle, so its report to the shards stays current.
    scope.get(Paths.PARTICIPANT_USAGE, async () => participant.usage?.() ?? { at: Date.now() });
    // Write transactions (= fsyncs) so far, for the benchmark's fsyncs per transaction.
    scope.get(Paths.PARTICIPANT_STATS, async () => participant.stats?.() ?? {});
    // The sidecar asks while a batch call is slow, so the coordinator sees lock waits as they form.
    scope.get(Paths.PARTICIPANT_WAITS, async () => participant.waits?.() ?? { service: '', edges: [] });
  });
}
