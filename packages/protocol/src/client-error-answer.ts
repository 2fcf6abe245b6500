/**
 * What a server writes on a socket when Node's HTTP parser refuses a request before any route runs (a
 * 20 KB URL, a request that took too long to arrive, bytes that are not HTTP): our catalogue's shape,
 * not fastify's, then the connection closes. Pass as fastify's `clientErrorHandler`.
 */
import type { Duplex } from 'node:stream';
import { TxmeshError } from './errors.ts';

export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // A reset peer is gone: nothing can be written.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new TxmeshError('TXM_HEADERS_TOO_LARGE')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new TxmeshError('TXM_REQUEST_TIMEOUT')
        : new TxmeshError('TXM_BAD_REQUEST', 'the request is not valid HTTP');
  const body = JSON.stringify(error.toBody());
  const reason = error.status === 431 ? 'Request Header Fields Too Large' : error.status === 408 ? 'Request Timeout' : 'Bad Request';
  // The socket may already be half-closed by the parser; a failed write has nobody left to tell.
  socket.end(
    `HTTP/1.1 ${error.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
