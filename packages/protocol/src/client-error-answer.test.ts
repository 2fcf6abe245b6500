import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { answerClientError } from './client-error-answer.ts';

/** What answerClientError writes for a parser error with `code`, on a socket that collects it. */
function answerFor(code: string, destroyed = false): string {
  const socket = new PassThrough();
  if (destroyed) socket.destroy();
  let written = '';
  socket.on('data', (chunk: Buffer) => (written += chunk.toString()));
  answerClientError(Object.assign(new Error(code), { code }), socket);
  return written;
}

test('a request refused by the parser is answered in the catalogue shape, then the connection closes', () => {
  const cases: [string, string, string][] = [
    ['HPE_HEADER_OVERFLOW', '431 Request Header Fields Too Large', 'TXM_HEADERS_TOO_LARGE'],
    ['ERR_HTTP_REQUEST_TIMEOUT', '408 Request Timeout', 'TXM_REQUEST_TIMEOUT'],
    ['HPE_INVALID_METHOD', '400 Bad Request', 'TXM_BAD_REQUEST'],
  ];
  for (const [code, statusLine, txmCode] of cases) {
    const written = answerFor(code);
    assert.ok(written.startsWith(`HTTP/1.1 ${statusLine}\r\n`), `${code}: ${written.slice(0, 60)}`);
    assert.match(written, /\r\nConnection: close\r\n/);
    const [, body] = written.split('\r\n\r\n');
    assert.equal((JSON.parse(body ?? '') as { error: { code: string } }).error.code, txmCode, code);
  }
});

test('nothing is written to a peer that reset or a socket already destroyed', () => {
  assert.equal(answerFor('ECONNRESET'), '');
  assert.equal(answerFor('HPE_HEADER_OVERFLOW', true), '');
});
