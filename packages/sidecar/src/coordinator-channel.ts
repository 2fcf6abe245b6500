/**
 * The sidecar's end of the coordinator's batch channel: GET /txmesh/v1/channel with `Upgrade: txmesh-batch/1`
 * on the sidecar's own port, admitted as the batch route admits a request (the same coordinator credential, not
 * while closing, not on a connection past the cap), then one frame per batch answered as the route answers it.
 * A frame has no headers, so the batch span's trace context (the route's traceparent header) rides in the body
 * as `trace` (protocol BatchChannelRequest), read as the items' carriers are (batch-span.ts). A batch that asks
 * for compact results (`compactResults`) gets each plain `ok` answered as COMPACT_OK, so neither end writes or reads
 * the text of a result that only repeats the item.
 *
 * Any other upgrade (a client's `Upgrade: h2c`, say) is served as the plain request it also is, as node:http
 * did before the sidecar listened for upgrades; one with a body is refused, since its body cannot be read.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  BatchChannelServer,
  CallerRole,
  MAX_BATCH_BODY_BYTES,
  Paths,
  TxmeshError,
  assertServiceProof,
  compactBatchResponse,
  isPlainObject,
  refuseUpgrade,
  validTraceCarrier,
  type ConnectionCap,
  type TraceCarrier,
} from '@txmesh/protocol';
import type { Logger } from 'pino';

export interface CoordinatorChannelOptions {
  service: string;
  /** The service keys a coordinator's proof is checked against; undefined when credentials are off. */
  keys: readonly string[] | undefined;
  connections: ConnectionCap;
  isClosing(): boolean;
  /** Answers one batch body as the batch route does; `trace` names the batch span's parent (the body's, checked). */
  answer(body: unknown, trace: TraceCarrier | undefined): Promise<unknown>;
  /** The server's request listener, for upgrades that are not the channel's. */
  plain: http.RequestListener;
  log: Logger;
}

/** Listens for the channel's upgrades on `server`; close() the result when the sidecar closes. */
export function attachCoordinatorChannel(server: http.Server, o: CoordinatorChannelOptions): BatchChannelServer {
  const channels = new BatchChannelServer({
    path: Paths.SIDECAR_CHANNEL,
    maxPayloadBytes: MAX_BATCH_BODY_BYTES,
    admit(req) {
      if (o.isClosing()) throw new TxmeshError('TXM_SHUTTING_DOWN', `the sidecar of ${o.service} is closing`);
      const overloaded = o.connections.refusalOf(req.socket as Socket);
      if (overloaded !== undefined) throw overloaded;
      // Only a coordinator may hand this service its branches: checked once, for every batch of the channel.
      if (o.keys !== undefined) assertServiceProof(req.headers.authorization, CallerRole.COORDINATOR, o.service, o.keys);
    },
    answer: async (body) => {
      const answer = await o.answer(body, isPlainObject(body) ? validTraceCarrier(body.trace) : undefined);
      return isPlainObject(body) && body.compactResults === true ? compactBatchResponse(body.items, answer) : answer;
    },
    onInternalError: (err) => o.log.error({ err }, 'a batch over the coordinator channel failed unexpectedly'),
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!channels.handleUpgrade(req, socket, head)) servePlain(o.plain, req, socket, head);
  });
  return channels;
}

/** Serves an upgrade request nobody takes as the ordinary request it also is (its answer then ends the connection). */
function servePlain(listener: http.RequestListener, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
    refuseUpgrade(socket, new TxmeshError('TXM_BAD_REQUEST', `an upgrade request with a body is not served here (${req.headers.upgrade ?? ''}); send it without the Upgrade header`));
    return;
  }
  if (head.length > 0) socket.unshift(head);
  // Its head was all of it: the request's body stream ends here.
  req.push(null);
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.on('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  listener(req, res);
}
