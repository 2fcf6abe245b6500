/**
 * The timeouts of a txmesh server's own HTTP(S) server, given to http.createServer / https.createServer in
 * the coordinator's and the sidecar's serverFactory. Fastify sets requestTimeout and keepAliveTimeout only on
 * a server it creates itself: behind a factory Node's defaults stayed (a body could trickle in for 300 s, and
 * idle keep-alive sockets were closed after 5 s, so a pooled client that reused one as the server closed it
 * saw the request reset).
 */
import { REQUEST_TIMEOUT_MS } from './validate.ts';

/** Idle keep-alive sockets are kept this long (fastify's own default): longer than the clients' pools keep them. */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000;

export const SERVER_TIMEOUTS = {
  /** The whole request, headers and body, must arrive within this (else 408 TXM_REQUEST_TIMEOUT). */
  requestTimeout: REQUEST_TIMEOUT_MS,
  headersTimeout: REQUEST_TIMEOUT_MS,
  keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  /** How often Node looks for requests past their timeout (its default, 30 s, would double the bound). */
  connectionsCheckingInterval: 5_000,
} as const;
