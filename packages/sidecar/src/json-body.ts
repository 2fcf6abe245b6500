/**
 * Reads a request's JSON body within a byte limit. A body that says it is not JSON is refused before it is
 * read; one past the limit as soon as the limit is passed, not after it has all arrived.
 */
import type { IncomingMessage } from 'node:http';
import { TxmeshError, parseJsonRefusingPrototypeKeys } from '@txmesh/protocol';

/** undefined when the request carries no body at all (no Content-Length, or 0, and not chunked). */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const contentType = req.headers['content-type'];
  if (contentType === undefined && !chunked && (length === undefined || length === '0')) return undefined;
  if (mediaType(contentType) !== 'application/json') throw new TxmeshError('TXM_UNSUPPORTED_MEDIA_TYPE');
  if (length !== undefined && Number(length) > limit) throw new TxmeshError('TXM_BODY_TOO_LARGE');
  const text = await readText(req, limit);
  if (text.length === 0) throw new TxmeshError('TXM_BAD_REQUEST', 'the body is empty');
  return parseJsonRefusingPrototypeKeys(text);
}

function mediaType(header: string | undefined): string | undefined {
  return header?.split(';', 1)[0]?.trim().toLowerCase();
}

function readText(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        reject(new TxmeshError('TXM_BODY_TOO_LARGE'));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size).toString('utf8')));
    // The caller went away mid-body: nobody is left to answer, the handler never runs.
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('the request was broken off while its body arrived'));
    });
  });
}
