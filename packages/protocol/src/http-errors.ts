/**
 * Maps whatever a server's request pipeline throws (our TxmeshError, fastify's body-parser errors,
 * anything else) to a TxmeshError, so every HTTP refusal has our code, status and sentence.
 */
import { TxmeshError } from './errors.ts';

export function toTxmeshError(err: unknown): TxmeshError {
  if (err instanceof TxmeshError) return err;
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : undefined;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new TxmeshError('TXM_BODY_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new TxmeshError('TXM_UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new TxmeshError('TXM_BAD_REQUEST', 'the body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_VALIDATION':
      return new TxmeshError('TXM_BAD_REQUEST', message);
  }
  if (err instanceof SyntaxError) return new TxmeshError('TXM_BAD_REQUEST', 'the body is not valid JSON');
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return new TxmeshError('TXM_BODY_TOO_LARGE');
  if (status === 415) return new TxmeshError('TXM_UNSUPPORTED_MEDIA_TYPE');
  if (status >= 400 && status < 500) return new TxmeshError('TXM_BAD_REQUEST', message);
  return new TxmeshError('TXM_INTERNAL');
}

/*
 * The error and not-found glue every txmesh server installs (coordinator, sidecar, participant routes,
 * services). Typed by the shape of fastify's request, reply and instance rather than by fastify itself,
 * so this package keeps no runtime dependency.
 */

export interface ErrorReply {
  code(statusCode: number): ErrorReply;
  header(name: string, value: string): ErrorReply;
  send(payload?: unknown): unknown;
}

export interface ErrorRequest {
  method: string;
  url: string;
  log: { error(bindings: object, message: string): void };
}

export interface ErrorHandlingServer {
  setErrorHandler(handler: (error: unknown, request: ErrorRequest, reply: ErrorReply) => void): unknown;
  setNotFoundHandler(handler: (request: ErrorRequest, reply: ErrorReply) => void): unknown;
}

/** Sends a refusal: its status, Retry-After when it carries one (TXM_OVERLOADED), and its body. */
export function sendTxmeshError(reply: ErrorReply, error: TxmeshError): void {
  const retryAfterSeconds = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  if (typeof retryAfterSeconds === 'number') reply.header('retry-after', String(retryAfterSeconds));
  reply.code(error.status).send(error.toBody());
}

/**
 * Every error a route throws answers with our catalogue; only the unexpected ones (TXM_INTERNAL) are
 * logged, with the original error, because the answer carries none of it.
 */
export function setTxmeshErrorHandler(server: Pick<ErrorHandlingServer, 'setErrorHandler'>): void {
  server.setErrorHandler((err, request, reply) => {
    const error = toTxmeshError(err);
    if (error.code === 'TXM_INTERNAL') request.log.error({ err }, `${request.method} ${pathOf(request.url)} failed unexpectedly`);
    sendTxmeshError(reply, error);
  });
}

/** The error handler above, and TXM_NOT_FOUND naming the method and path for an unknown route. */
export function installTxmeshErrorHandlers(server: ErrorHandlingServer): void {
  setTxmeshErrorHandler(server);
  server.setNotFoundHandler((request, reply) => {
    sendTxmeshError(reply, new TxmeshError('TXM_NOT_FOUND', `${request.method} ${pathOf(request.url)}`));
  });
}

/** The path without its query string, which may hold anything a caller sent. */
function pathOf(url: string): string {
  const query = url.indexOf('?');
  return (query < 0 ? url : url.slice(0, query)).slice(0, 200);
}
