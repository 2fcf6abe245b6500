/**
 * Null participants for measuring the coordinator alone (`txmesh bench --loads`, `coordinatorAlone`): one
 * process registers every named service with the shards, as a sidecar would, and answers every branch batch
 * at once: each prepare votes yes, each commit and rollback is acknowledged. It keeps no state and writes
 * nothing, so what a run costs is the coordinator's own work plus the wire around it. Like a real sidecar it takes
 * the coordinator's batch channel (GET /txmesh/v1/channel, a frame per batch) as well as POST /txmesh/v1/batch,
 * so the coordinator measured alone sends its batches the way it sends them to real sidecars.
 */
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import {
  BatchChannelServer,
  COMPACT_OK,
  CallerRole,
  ItemStatus,
  NO_SCHEMA_COMPILERS,
  PROTOCOL_VERSION,
  Paths,
  authorizationHeader,
  deriveServiceKey,
  serverLoggerOptions,
  type BatchChannelRequest,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type BranchItem,
  type RegisterServiceResponse,
} from '@txmesh/protocol';

export interface NullSidecarOptions {
  /** Index = shard number. */
  coordinatorUrls: string[];
  services: readonly string[];
  host?: string;
  port?: number;
  logLevel?: string;
  /**
   * The cluster secret, when the shards run with credentials: it stands in for every service, so it derives
   * each one's key and registers as that service (a lab tool only; a real sidecar holds its own key).
   */
  secret?: string;
}

export interface NullSidecar {
  url: string;
  /** Items answered so far. */
  answered(): number;
  close(): Promise<void>;
}

export async function startNullSidecar(opts: NullSidecarOptions): Promise<NullSidecar> {
  const app = Fastify({ logger: serverLoggerOptions('null-sidecar', opts.logLevel), schemaController: NO_SCHEMA_COMPILERS, bodyLimit: 16 * 1024 * 1024 });
  let answered = 0;
  const answer = (items: readonly BranchItem[]): BranchBatchResponse => {
    answered += items.length;
    return { protocolVersion: PROTOCOL_VERSION, results: items.map((item) => ({ txId: item.txId, action: item.action, status: ItemStatus.OK })) };
  };
  // Over the channel a coordinator that asks for compact results gets every one as COMPACT_OK, as a sidecar answers
  // plain oks (sidecar coordinator-channel.ts).
  const answerChannel = (body: BatchChannelRequest | undefined): unknown => {
    const items = body?.items ?? [];
    if (body?.compactResults !== true) return answer(items);
    answered += items.length;
    return { protocolVersion: PROTOCOL_VERSION, results: items.map(() => COMPACT_OK) };
  };
  app.post(Paths.SIDECAR_BATCH, async (request): Promise<BranchBatchResponse> => answer((request.body as BranchBatchRequest).items ?? []));
  // Credentials are not checked here, on either path: this process stands in for every service of a lab run.
  const channels = new BatchChannelServer({
    path: Paths.SIDECAR_CHANNEL,
    maxPayloadBytes: 16 * 1024 * 1024,
    admit: () => undefined,
    answer: async (body) => answerChannel(body as BatchChannelRequest | undefined),
    onInternalError: (err) => app.log.error({ err }, 'a batch over the channel failed'),
  });
  app.server.on('upgrade', (req, socket, head) => {
    if (!channels.handleUpgrade(req, socket, head)) socket.destroy();
  });
  app.get(Paths.SIDECAR_HEALTH, async () => ({ ok: true, answered }));
  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  let heartbeat: NodeJS.Timeout | undefined;
  let closed = false;
  const registerAll = async (): Promise<number> => {
    let heartbeatMs = 1000;
    for (const [shard, coordinatorUrl] of opts.coordinatorUrls.entries()) {
      for (const service of opts.services) {
        const res = await fetch(`${coordinatorUrl}${Paths.SERVICES}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(opts.secret === undefined ? {} : { authorization: authorizationHeader(CallerRole.SERVICE, service, deriveServiceKey(opts.secret, service)) }) },
          body: JSON.stringify({ service, sidecarUrl: url, shard, shards: opts.coordinatorUrls.length }),
        });
        const text = await res.text();
        if (!res.ok) throw new Error(`shard ${shard} refused the registration of ${service}: ${res.status} ${text}`);
        heartbeatMs = (JSON.parse(text) as RegisterServiceResponse).heartbeatMs;
      }
    }
    return heartbeatMs;
  };
  const beat = (ms: number): void => {
    heartbeat = setTimeout(() => {
      registerAll().then(beat, (err: unknown) => {
        app.log.warn({ err }, 'heartbeat failed');
        if (!closed) beat(ms);
      });
    }, ms);
    heartbeat.unref();
  };
  try {
    beat(await registerAll());
  } catch (err) {
    channels.close();
    await app.close();
    throw err;
  }
  return {
    url,
    answered: () => answered,
    close: async () => {
      closed = true;
      clearTimeout(heartbeat);
      channels.close();
      await app.close();
    },
  };
}
